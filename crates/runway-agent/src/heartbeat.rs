//! Heartbeats: the machine's health, the running jobs, and what the server wants.
//!
//! Every `heartbeat_interval_seconds` (the latest the server sent) the agent
//! reports CPU, memory and work-directory disk use, the one-minute load average
//! and its running jobs. The answer carries the timings to follow from now on, the
//! jobs to cancel, and the agent-wide action, which [`crate::agent::Shared::set_mode`]
//! applies.
//!
//! `sysinfo` is built with only its `system` feature and refreshes only the CPU
//! and RAM figures it reports. CPU use is the average since the previous
//! heartbeat (sysinfo diffs `/proc/stat` between refreshes), which suits a
//! 30-second report better than an instant sample. Disk use is `statvfs` on the
//! work directory itself, computed like `df` (used over used plus available to
//! unprivileged users), so it is the filesystem the jobs write to even when the
//! work directory is a separate mount; it costs one syscall where sysinfo's disk
//! list would parse every mount.

use std::path::PathBuf;
use std::time::Duration;

use runway_protocol::HeartbeatRequest;
use sysinfo::{MemoryRefreshKind, System};
use tokio::time::Instant;

use crate::AgentError;
use crate::agent::Shared;
use crate::client::ClientError;
use crate::control::{Mode, Stop};

/// The host's figures for one heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Metrics {
    pub(crate) cpu_percent: Option<f64>,
    pub(crate) memory_percent: Option<f64>,
    pub(crate) disk_percent: Option<f64>,
    pub(crate) load_average: Option<f64>,
}

/// Takes [`Metrics`] samples.
#[derive(Debug)]
pub(crate) struct Sampler {
    system: System,
    work_dir: PathBuf,
    /// When the CPU counters were last read; a diff over less than sysinfo's
    /// minimum interval is noise.
    cpu_read_at: Instant,
}

impl Sampler {
    pub(crate) fn new(work_dir: PathBuf) -> Self {
        let mut system = System::new();
        system.refresh_cpu_usage();
        Self {
            system,
            work_dir,
            cpu_read_at: Instant::now(),
        }
    }

    pub(crate) async fn sample(&mut self) -> Metrics {
        tokio::time::sleep_until(self.cpu_read_at + sysinfo::MINIMUM_CPU_UPDATE_INTERVAL).await;
        self.system.refresh_cpu_usage();
        self.cpu_read_at = Instant::now();
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let total = self.system.total_memory();
        let memory_percent = (total > 0).then(|| {
            let used = total.saturating_sub(self.system.available_memory());
            used as f64 * 100.0 / total as f64
        });
        let disk_percent = nix::sys::statvfs::statvfs(&self.work_dir)
            .ok()
            .and_then(|s| {
                disk_percent(
                    wide(s.blocks()),
                    wide(s.blocks_free()),
                    wide(s.blocks_available()),
                )
            });
        Metrics {
            cpu_percent: percent(f64::from(self.system.global_cpu_usage())),
            memory_percent: memory_percent.and_then(percent),
            disk_percent,
            load_average: Some(System::load_average().one).filter(|l| l.is_finite() && *l >= 0.0),
        }
    }
}

/// Disk use as `df` shows it: used / (used + available to unprivileged users).
pub(crate) fn disk_percent(blocks: u64, free: u64, available: u64) -> Option<f64> {
    let used = blocks.saturating_sub(free);
    let usable = used + available;
    if usable == 0 {
        return None;
    }
    percent(used as f64 * 100.0 / usable as f64)
}

/// `fsblkcnt_t` is `u64` on 64-bit Linux and `u32` elsewhere.
fn wide(blocks: impl Into<u64>) -> u64 {
    blocks.into()
}

/// A figure within the protocol's 0–100, or none.
fn percent(value: f64) -> Option<f64> {
    value.is_finite().then(|| value.clamp(0.0, 100.0))
}

/// Heartbeats until the agent token is rejected (the only way it returns).
pub(crate) async fn run(shared: &Shared) -> Result<(), AgentError> {
    let mut sampler = Sampler::new(shared.config.work_dir.clone());
    loop {
        let metrics = sampler.sample().await;
        let running_job_ids = shared.jobs.running_ids();
        let request = HeartbeatRequest {
            cpu_percent: metrics.cpu_percent,
            memory_percent: metrics.memory_percent,
            disk_percent: metrics.disk_percent,
            load_average: metrics.load_average,
            running_jobs: Some(u32::try_from(running_job_ids.len()).unwrap_or(u32::MAX)),
            running_job_ids,
        };
        match shared.agent.heartbeat(&request).await {
            Ok(answer) => {
                shared.timings.send_replace(answer.timings);
                for id in &answer.cancel_job_ids {
                    if shared.jobs.request(id, Stop::Cancel) {
                        tracing::info!(job.id = %id, "the server asked to cancel the job");
                    }
                }
                shared.set_mode(Mode::from_action(answer.action));
            }
            Err(ClientError::AgentTokenRejected(detail)) => {
                return Err(shared.token_rejected(detail));
            }
            Err(err) => {
                tracing::warn!(error = %crate::Chain(&err), "heartbeat refused");
            }
        }
        let every = shared.timings.borrow().heartbeat_interval_seconds.max(1);
        tokio::time::sleep(Duration::from_secs(every.into())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_use_is_computed_like_df() {
        // 1000 blocks, 300 free of which 250 are available to users: 700 used.
        let pct = disk_percent(1000, 300, 250).unwrap();
        assert!((pct - 700.0 * 100.0 / 950.0).abs() < 1e-9, "{pct}");
        assert_eq!(disk_percent(0, 0, 0), None);
        assert_eq!(disk_percent(100, 100, 100), Some(0.0));
    }

    #[test]
    fn figures_are_clamped_to_0_to_100_and_nan_is_dropped() {
        assert_eq!(percent(100.4), Some(100.0));
        assert_eq!(percent(-1.0), Some(0.0));
        assert_eq!(percent(f64::NAN), None);
    }

    #[tokio::test]
    async fn a_real_sample_reports_every_figure_within_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut sampler = Sampler::new(dir.path().to_owned());
        let metrics = sampler.sample().await;
        for (name, value) in [
            ("cpu", metrics.cpu_percent),
            ("memory", metrics.memory_percent),
            ("disk", metrics.disk_percent),
        ] {
            let value = value.unwrap_or_else(|| panic!("no {name} figure"));
            assert!((0.0..=100.0).contains(&value), "{name} {value}");
        }
        assert!(metrics.memory_percent.unwrap() > 0.0);
        assert!(metrics.load_average.unwrap() >= 0.0);
    }
}
