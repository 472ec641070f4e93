//! One attempt of a claimed job, from `start` to `finish`.
//!
//! ```text
//! claim ─► JobTable ─► spool ─► start ─► spawn bash ──────────────► exit │ stop │ timeout
//!                                 │        ├─ reader task:   pipe → LogWriter (mask, cap, spool)
//!                                 │        ├─ uploader task: spool → PUT logs
//!                                 │        └─ lease task:    lease every lease_renew_interval
//!                                 └─► close log ─► journal ─► rest of the log ─► finish (202: resend, again)
//! ```
//!
//! The process wait, the pipe reader, the uploader and the lease renewal are four
//! separate futures, so none of them waits on another: a job that floods its
//! pipe still has its lease renewed, a server that is down only delays the
//! uploader, and a cancel reaches the process while output is pouring in.
//!
//! Whatever asks the job to stop goes through its [`StopSignal`]. A
//! [`Stop::Lost`] (the server says the job is not ours) kills the process group at
//! once and skips `finish`; any other stop runs the kill sequence and reports the
//! matching result. The journal line is written once the process group is gone,
//! before the result is reported, so it records when the job really stopped
//! running here even if the agent dies while reporting.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use runway_protocol::{
    AttemptResult, ClaimResponse, ClaimedJob, FinishRequest, SecretValue, Timings,
};
use tokio::io::AsyncReadExt as _;
use tokio::net::unix::pipe;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::Chain;
use crate::agent::Shared;
use crate::backoff::Backoff;
use crate::client::{ClientError, Finish, JobApi};
use crate::control::{Stop, StopSignal};
use crate::job::{self, Spawned};
use crate::logs::{LogWriter, Masker, UploadError, Uploader};
use crate::state::{JournalEntry, JournalResult, create_private_dir};

/// Once the job's process group is gone its pipe closes, unless a process that
/// left the group (a daemon that called `setsid`) still holds it; the reader
/// gives up on such a straggler after this long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// One read from the job's pipe.
const READ_BUF: usize = 64 * 1024;

/// Runs one claimed attempt to its end, reporting it unless the server took it back.
pub(crate) async fn run(shared: &Shared, claim: ClaimResponse) {
    let ClaimResponse {
        job,
        job_token,
        timings,
        ..
    } = claim;
    shared.timings.send_replace(timings);
    let span = tracing::info_span!("job", job.id = %job.id, job.attempt = job.attempt);
    if !is_safe_id(&job.id) {
        span.in_scope(|| {
            tracing::error!(
                "the job id is not a plain id and cannot name a directory; not running it"
            );
        });
        return;
    }
    let api = shared.agent.job(&job.id, job_token);
    attempt(shared, &job, &api).instrument(span).await;
}

/// Job ids name directories, so only ULID-like ids are accepted (a server that
/// sent `../..` must not make the agent delete outside its work directory).
fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn attempt(shared: &Shared, job: &ClaimedJob, api: &JobApi) {
    let stop = StopSignal::default();
    let _registration = shared
        .jobs
        .register(&job.id, job.attempt, stop.clone())
        .await;
    let dirs = AttemptDirs::new(&shared.config.work_dir, &shared.state.jobs_dir(), job);
    supervise(shared, job, api, &dirs, &stop).await;
    dirs.remove().await;
}

/// How the process part of an attempt went.
#[derive(Debug)]
struct Ran {
    started_at_ms: u64,
    finished_at_ms: u64,
    /// `None`: the job was lost, nothing is reported.
    result: Option<AttemptResult>,
    exit_code: Option<i32>,
}

async fn supervise(
    shared: &Shared,
    job: &ClaimedJob,
    api: &JobApi,
    dirs: &AttemptDirs,
    stop: &StopSignal,
) {
    // The spool first: without it nothing could be reported, so the job is left
    // to its lease, becomes lost on the server, and is retried elsewhere.
    let (writer, uploader) = match open_log(shared, job, api, dirs) {
        Ok(log) => log,
        Err(err) => {
            tracing::error!(path = %dirs.private.display(), error = %err, "cannot create the log spool; not starting the job");
            return;
        }
    };

    // A cancel that arrives meanwhile is reported once the start is confirmed
    // (as `canceled`, without running the script); a shutdown does not wait for
    // a server that may be down, and leaves the job to its lease.
    let started = tokio::select! {
        answer = api.start() => answer,
        stop = stop.abandoned() => {
            tracing::info!(?stop, "stopped before the server confirmed the start");
            return;
        }
    };
    let lease = match started {
        Ok(lease) => lease,
        Err(ClientError::JobGone(detail)) => {
            tracing::warn!(%detail, "the server took the job back before it started");
            return;
        }
        Err(err) => {
            tracing::error!(error = %Chain(&err), "the server refused to start the job");
            return;
        }
    };
    tracing::info!(job.name = %job.name, "running the job");
    if lease.cancel {
        stop.request(Stop::Cancel);
    }

    let _lease_task = AbortOnDrop(tokio::spawn(
        renew_lease(api.clone(), stop.clone(), shared.timings.subscribe()).in_current_span(),
    ));
    let mut upload_task = AbortOnDrop(tokio::spawn(
        upload(uploader, stop.clone()).in_current_span(),
    ));

    let ran = execute(shared, job, dirs, &writer, stop).await;
    let totals = {
        let mut writer = lock(&writer);
        writer.close().unwrap_or_else(|err| {
            tracing::error!(error = %err, "cannot write the end of the log spool");
            writer.totals()
        })
    };
    if totals.truncated {
        tracing::warn!(
            log.bytes = totals.bytes,
            "the job's log reached the server's cap; the rest of its output was dropped"
        );
    }
    journal(shared, job, &ran);
    let Some(result) = ran.result else {
        tracing::warn!(
            "the job is no longer this agent's: its processes were killed, no result is reported"
        );
        return;
    };

    let uploaded = tokio::select! {
        joined = &mut upload_task.0 => joined,
        () = stop.lost() => {
            tracing::warn!("the job is no longer this agent's: not reporting its result");
            return;
        }
    };
    let mut uploader = match uploaded {
        Ok((uploader, Ok(()))) => uploader,
        Ok((_, Err(UploadError::JobGone(_)))) => return,
        Ok((_, Err(err))) => {
            tracing::error!(error = %Chain(&err), "cannot upload the log; not reporting the result");
            return;
        }
        Err(err) => {
            tracing::error!(error = %err, "the log uploader failed; not reporting the result");
            return;
        }
    };
    let request = FinishRequest {
        result,
        exit_code: ran.exit_code,
        log_bytes: totals.bytes,
        log_crc32: totals.crc32,
    };
    finish(api, &mut uploader, stop, &request).await;
}

/// The spool and its uploader.
fn open_log(
    shared: &Shared,
    job: &ClaimedJob,
    api: &JobApi,
    dirs: &AttemptDirs,
) -> io::Result<(Arc<Mutex<LogWriter>>, Uploader<JobApi>)> {
    create_private_dir(&dirs.private)?;
    let masker = Masker::new(job.secrets.values().map(SecretValue::expose));
    let max_bytes = shared.timings.borrow().log_max_bytes;
    let (writer, progress) = LogWriter::create(&dirs.spool, masker, max_bytes)?;
    let uploader = Uploader::new(
        api.clone(),
        File::open(&dirs.spool)?,
        progress,
        shared.timings.subscribe(),
    );
    Ok((Arc::new(Mutex::new(writer)), uploader))
}

/// Starts the script and waits for it to end, be stopped, or time out.
async fn execute(
    shared: &Shared,
    job: &ClaimedJob,
    dirs: &AttemptDirs,
    writer: &Arc<Mutex<LogWriter>>,
    stop: &StopSignal,
) -> Ran {
    let started_at_ms = unix_ms();
    let not_run = |result: Option<AttemptResult>, message: &str| {
        note(writer, message);
        Ran {
            started_at_ms,
            finished_at_ms: unix_ms(),
            result,
            exit_code: None,
        }
    };
    if let Some(reason) = stop.current() {
        return not_run(
            reason.result(),
            "the job was canceled before its script started",
        );
    }
    let env = match job::job_env(job, &shared.config.name, std::env::vars_os()) {
        Ok(env) => env,
        Err(err) => {
            return not_run(
                Some(AttemptResult::Failed),
                &format!("cannot start the job: {err}"),
            );
        }
    };
    if let Err(err) = job::write_script(&dirs.script, &job.script) {
        return not_run(
            Some(AttemptResult::Failed),
            &format!("cannot write the job's script: {err}"),
        );
    }
    if let Err(err) = dirs.create_workspace().await {
        return not_run(
            Some(AttemptResult::Failed),
            &format!(
                "cannot create the workspace {}: {err}",
                dirs.workspace.display()
            ),
        );
    }
    let Spawned {
        mut child,
        group,
        output,
    } = match job::spawn(&dirs.script, &dirs.workspace, &env) {
        Ok(spawned) => spawned,
        Err(err) => {
            return not_run(
                Some(AttemptResult::Failed),
                &format!("cannot start `bash -eo pipefail`: {err}"),
            );
        }
    };
    let mut reader = AbortOnDrop(tokio::spawn(
        pump(output, Arc::clone(writer)).in_current_span(),
    ));
    let timeout = Duration::from_secs(job.timeout_seconds.into());
    let deadline = (job.timeout_seconds > 0).then(|| Instant::now() + timeout);
    let grace_seconds = || shared.timings.borrow().cancel_grace_seconds;
    let grace = || Duration::from_secs(grace_seconds().into());

    enum Ended {
        Exited(io::Result<ExitStatus>),
        Stopped(Stop),
        TimedOut,
    }
    let ended = tokio::select! {
        status = child.wait() => Ended::Exited(status),
        reason = stop.requested() => Ended::Stopped(reason),
        () = sleep_until(deadline) => Ended::TimedOut,
    };
    let lost = || stop.current() == Some(Stop::Lost);
    let (result, exit_code) = match ended {
        Ended::Exited(status) => {
            if job::reap_leftovers(group, grace()).await {
                note(writer, "stopped the processes the script left running");
            }
            match status {
                Ok(status) => {
                    let (result, code) = job::result_of(status);
                    (Some(result), code)
                }
                Err(err) => {
                    note(writer, &format!("cannot wait for the script: {err}"));
                    (Some(AttemptResult::Failed), None)
                }
            }
        }
        Ended::Stopped(Stop::Lost) => {
            group.signal(Signal::SIGKILL);
            let _ = child.wait().await;
            (None, None)
        }
        Ended::Stopped(reason) => {
            tracing::info!(?reason, "stopping the job");
            note(writer, &reason.explain(grace_seconds()));
            let status = job::terminate(&mut child, group, grace(), stop.lost()).await;
            if lost() {
                (None, None)
            } else {
                (reason.result(), status.ok().and_then(|s| s.code()))
            }
        }
        Ended::TimedOut => {
            tracing::info!(timeout_seconds = job.timeout_seconds, "the job timed out");
            note(
                writer,
                &format!(
                    "the job exceeded its timeout of {} s: stopping it (SIGTERM, then SIGKILL after {} s)",
                    job.timeout_seconds,
                    grace_seconds()
                ),
            );
            let status = job::terminate(&mut child, group, grace(), stop.lost()).await;
            if lost() {
                (None, None)
            } else {
                (
                    Some(AttemptResult::TimedOut),
                    status.ok().and_then(|s| s.code()),
                )
            }
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, &mut reader.0)
        .await
        .is_err()
    {
        note(
            writer,
            "a process that left the job's process group still holds its output; the rest of it is not captured",
        );
    }
    Ran {
        started_at_ms,
        finished_at_ms: unix_ms(),
        result,
        exit_code,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The reader task: the job's pipe into the log, until EOF. After a spool write
/// error it keeps draining, so the job never blocks on a full pipe.
async fn pump(mut output: pipe::Receiver, writer: Arc<Mutex<LogWriter>>) {
    let mut buf = vec![0u8; READ_BUF];
    let mut spooling = true;
    loop {
        match output.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if spooling && let Err(err) = lock(&writer).write(&buf[..n]) {
                    tracing::error!(error = %err, "cannot write the log spool; the rest of the output is dropped");
                    spooling = false;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                tracing::error!(error = %err, "cannot read the job's output");
                return;
            }
        }
    }
}

/// The uploader task; a job-gone answer stops the job too.
async fn upload(
    mut uploader: Uploader<JobApi>,
    stop: StopSignal,
) -> (Uploader<JobApi>, Result<(), UploadError>) {
    let result = uploader.run().await;
    if let Err(UploadError::JobGone(err)) = &result {
        tracing::warn!(error = %Chain(err), "the server refused the log: the job is no longer this agent's; killing it");
        stop.request(Stop::Lost);
    }
    (uploader, result)
}

/// How long after `start` the first lease renewal goes out.
const FIRST_LEASE_AFTER: Duration = Duration::from_secs(1);

/// The lease task, until aborted or the job is gone. Each renewal is a long poll
/// (`wait` = the renewal interval) that the server answers at once on a cancel, so
/// a cancel reaches even a silent job immediately; an answer that comes back early
/// without one (a server that does not wait, as on Lambda) is followed by the rest
/// of the interval, so renewals are never more frequent than the server asked.
async fn renew_lease(api: JobApi, stop: StopSignal, timings: watch::Receiver<Timings>) {
    // `start` has just extended the lease and said whether to cancel; the script
    // gets a moment to set up (its traps, say) before the first long poll.
    tokio::time::sleep(FIRST_LEASE_AFTER).await;
    loop {
        let every = timings.borrow().lease_renew_interval_seconds.max(1);
        let asked = Instant::now();
        let answer = api.lease(every).await;
        let rest = Duration::from_secs(every.into()).saturating_sub(asked.elapsed());
        match answer {
            Ok(answer) => {
                if answer.cancel && stop.current().is_none() {
                    tracing::info!("the server asked to cancel the job");
                    stop.request(Stop::Cancel);
                }
            }
            Err(ClientError::JobGone(detail)) => {
                tracing::warn!(%detail, "the lease was refused: the job is no longer this agent's; killing it");
                stop.request(Stop::Lost);
                return;
            }
            Err(err) => {
                tracing::warn!(error = %Chain(&err), "lease renewal refused");
            }
        }
        tokio::time::sleep(rest).await;
    }
}

/// Reports the result; resends the log from wherever a 202 says, until a 200.
async fn finish(
    api: &JobApi,
    uploader: &mut Uploader<JobApi>,
    stop: &StopSignal,
    request: &FinishRequest,
) {
    let mut backoff = Backoff::new();
    loop {
        let answer = tokio::select! {
            answer = api.finish(request) => answer,
            () = stop.lost() => return,
        };
        match answer {
            Ok(Finish::Done(done)) => {
                tracing::info!(
                    job.status = %done.status,
                    log.bytes = request.log_bytes,
                    "the job is finished"
                );
                return;
            }
            Ok(Finish::Pending { next_offset }) => {
                tracing::warn!(
                    log.next_offset = next_offset,
                    log.bytes = request.log_bytes,
                    "the server is missing part of the log; resending it"
                );
                // The first resend goes at once; a server that keeps answering
                // 202 is not hammered.
                if backoff.attempts() > 0 {
                    tokio::time::sleep(backoff.next_delay()).await;
                } else {
                    backoff.skip();
                }
                uploader.rewind(next_offset);
                let resent = tokio::select! {
                    resent = uploader.run() => resent,
                    () = stop.lost() => return,
                };
                if let Err(err) = resent {
                    tracing::warn!(error = %Chain(&err), "cannot resend the log; not reporting the result");
                    return;
                }
            }
            Err(ClientError::JobGone(detail)) => {
                tracing::warn!(%detail, "the server refused the result: the job is no longer this agent's");
                return;
            }
            Err(err) => {
                tracing::error!(error = %Chain(&err), "the server refused the result");
                return;
            }
        }
    }
}

fn journal(shared: &Shared, job: &ClaimedJob, ran: &Ran) {
    let entry = JournalEntry {
        job_id: job.id.clone(),
        attempt: job.attempt,
        started_at_ms: ran.started_at_ms,
        finished_at_ms: ran.finished_at_ms,
        result: ran.result.map_or(JournalResult::Lost, JournalResult::from),
        exit_code: ran.exit_code,
    };
    if let Err(err) = shared.state.append_journal(&entry) {
        tracing::error!(error = %Chain(&err), "cannot append to the journal");
    }
}

fn note(writer: &Mutex<LogWriter>, message: &str) {
    if let Err(err) = lock(writer).note(message) {
        tracing::error!(error = %err, "cannot write the log spool");
    }
}

fn lock(writer: &Mutex<LogWriter>) -> MutexGuard<'_, LogWriter> {
    // A panic while writing leaves at worst a partial write, which the totals
    // (counted after each write) do not include.
    writer.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Aborts a helper task when the attempt is over, however it ended.
#[derive(Debug)]
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The attempt's directories.
#[derive(Debug)]
struct AttemptDirs {
    /// `<work dir>/<id>-<attempt>`: the script's cwd.
    workspace: PathBuf,
    /// `<state dir>/jobs/<id>-<attempt>`: script and spool, out of the job's reach.
    private: PathBuf,
    script: PathBuf,
    spool: PathBuf,
}

impl AttemptDirs {
    fn new(work_dir: &Path, jobs_dir: &Path, job: &ClaimedJob) -> Self {
        let name = format!("{}-{}", job.id, job.attempt);
        let private = jobs_dir.join(&name);
        Self {
            workspace: work_dir.join(&name),
            script: private.join("script.sh"),
            spool: private.join("log"),
            private,
        }
    }

    /// A fresh, empty workspace (a leftover from a crash is removed first).
    async fn create_workspace(&self) -> io::Result<()> {
        remove_tree(&self.workspace).await?;
        create_private_dir(&self.workspace)
    }

    async fn remove(&self) {
        for dir in [&self.workspace, &self.private] {
            if let Err(err) = remove_tree(dir).await {
                tracing::warn!(path = %dir.display(), error = %err, "cannot remove the attempt's directory");
            }
        }
    }
}

/// `rm -rf`, on the blocking pool (a workspace can hold a large checkout).
async fn remove_tree(path: &Path) -> io::Result<()> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || remove_tree_blocking(&path))
        .await
        .unwrap_or_else(|err| Err(io::Error::other(err)))
}

fn remove_tree_blocking(path: &Path) -> io::Result<()> {
    let not_found_is_fine = |result: io::Result<()>| match result {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    if not_found_is_fine(std::fs::remove_dir_all(path)).is_ok() {
        return Ok(());
    }
    // Tools leave read-only directories behind (Go's module cache is 0555);
    // make them writable and try again.
    make_dirs_writable(path);
    not_found_is_fine(std::fs::remove_dir_all(path))
}

fn make_dirs_writable(path: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mut perms = meta.permissions();
    perms.set_mode(perms.mode() | 0o700);
    let _ = std::fs::set_permissions(path, perms);
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            make_dirs_writable(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests;
