//! The control state shared by the agent's tasks: the agent's [`Mode`], each
//! job's [`StopSignal`], and the [`JobTable`] of running attempts.
//!
//! Requests to stop come from many places (a heartbeat's `cancel_job_ids`, a
//! lease answer, a log upload told the job is gone, the operator's second SIGTERM,
//! the server's `disconnect`), while the one task that owns a job's process acts
//! on them. So a stop is a value on a `watch` channel that only ever escalates,
//! never a direct call into the job: the owner sees the latest request whenever it
//! looks, and a request made before it looked is not lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use runway_protocol::{AgentAction, AttemptResult};
use tokio::sync::{Notify, watch};

/// Why a job must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A user canceled it (heartbeat `cancel_job_ids`, or `cancel` on a lease).
    Cancel,
    /// The server told the whole agent to disconnect.
    Disconnect,
    /// The operator sent the agent a second SIGTERM or Ctrl-C.
    Shutdown,
    /// The job is not this agent's any more (404/409/401 on a job call, or the
    /// agent's own token was rejected): kill at once, report nothing.
    Lost,
}

impl Stop {
    /// What `finish` reports for a job stopped this way (`None`: nothing).
    pub(crate) fn result(self) -> Option<AttemptResult> {
        match self {
            Self::Cancel | Self::Disconnect => Some(AttemptResult::Canceled),
            Self::Shutdown => Some(AttemptResult::Failed),
            Self::Lost => None,
        }
    }

    /// The line written into the job's log when the kill sequence starts.
    pub(crate) fn explain(self, grace_seconds: u32) -> String {
        let why = match self {
            Self::Cancel => "the job was canceled",
            Self::Disconnect => "the server told this agent to disconnect",
            Self::Shutdown => "the agent is shutting down (a second SIGTERM or Ctrl-C)",
            Self::Lost => "the job is no longer this agent's",
        };
        format!("{why}: stopping it (SIGTERM, then SIGKILL after {grace_seconds} s)")
    }
}

/// One job's stop request: `None` until something asks it to stop. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct StopSignal(Arc<watch::Sender<Option<Stop>>>);

impl Default for StopSignal {
    fn default() -> Self {
        Self(Arc::new(watch::channel(None).0))
    }
}

impl StopSignal {
    /// Asks the job to stop. The first reason sticks, except that [`Stop::Lost`]
    /// overrides any other (a job being canceled that turns out not to be ours is
    /// killed at once).
    pub(crate) fn request(&self, stop: Stop) {
        self.0.send_if_modified(|current| match *current {
            None => {
                *current = Some(stop);
                true
            }
            Some(existing) if stop == Stop::Lost && existing != Stop::Lost => {
                *current = Some(Stop::Lost);
                true
            }
            Some(_) => false,
        });
    }

    pub(crate) fn current(&self) -> Option<Stop> {
        *self.0.borrow()
    }

    /// Waits for a stop request.
    pub(crate) async fn requested(&self) -> Stop {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`, so `changed` cannot fail here.
        loop {
            if let Some(stop) = *rx.borrow_and_update() {
                return stop;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Waits for a stop request other than [`Stop::Cancel`]: the ones that mean
    /// "give up on this job" rather than "report it canceled".
    pub(crate) async fn abandoned(&self) -> Stop {
        let mut rx = self.0.subscribe();
        let found = rx
            .wait_for(|s| matches!(s, Some(stop) if *stop != Stop::Cancel))
            .await
            .map(|stop| stop.unwrap_or(Stop::Lost));
        match found {
            Ok(stop) => stop,
            Err(_) => std::future::pending().await,
        }
    }

    /// Waits until the job is [`Stop::Lost`].
    pub(crate) async fn lost(&self) {
        let mut rx = self.0.subscribe();
        if rx.wait_for(|s| *s == Some(Stop::Lost)).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What the agent as a whole is doing. It only moves forward (run → drain →
/// stop), except that a pause ends when the server says `none` again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Claiming jobs.
    Run,
    /// Claiming nothing new; heartbeats and running jobs go on.
    Pause,
    /// Claiming nothing new; exit once the running jobs are done.
    Drain,
    /// Stopping the running jobs this way, then exit.
    Stop(Stop),
}

impl Mode {
    /// The mode a heartbeat's (or config's) action asks for.
    pub(crate) fn from_action(action: AgentAction) -> Self {
        match action {
            AgentAction::None => Self::Run,
            AgentAction::Pause => Self::Pause,
            AgentAction::Drain => Self::Drain,
            AgentAction::Disconnect => Self::Stop(Stop::Disconnect),
        }
    }

    /// The mode after `requested` arrives in mode `self`.
    pub(crate) fn then(self, requested: Self) -> Self {
        match (self, requested) {
            (Self::Stop(_), Self::Stop(Stop::Lost)) => Self::Stop(Stop::Lost),
            (Self::Stop(current), _) => Self::Stop(current),
            (Self::Drain, Self::Run | Self::Pause) => Self::Drain,
            (_, requested) => requested,
        }
    }

    /// Whether claim loops should end.
    pub(crate) fn is_leaving(self) -> bool {
        matches!(self, Self::Drain | Self::Stop(_))
    }
}

/// The attempts running on this agent.
#[derive(Debug, Default)]
pub(crate) struct JobTable {
    inner: Mutex<TableInner>,
    /// Signalled whenever an attempt leaves the table.
    left: Notify,
}

#[derive(Debug, Default)]
struct TableInner {
    running: BTreeMap<(String, u32), StopSignal>,
    /// Set by [`JobTable::stop_all`]: applies to attempts registered later too.
    stop_all: Option<Stop>,
}

/// Keeps an attempt in the table; dropping it removes the attempt.
#[derive(Debug)]
pub(crate) struct Registration<'a> {
    table: &'a JobTable,
    key: (String, u32),
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.table.lock().running.remove(&self.key);
        self.table.left.notify_waiters();
    }
}

impl JobTable {
    fn lock(&self) -> MutexGuard<'_, TableInner> {
        // The table stays consistent even if a holder panicked: every change is
        // one map operation.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an attempt. If an older attempt of the same job still runs here (the
    /// server gave the job out again after taking it back), that one is killed
    /// first and this waits for it to leave: one job never runs twice at once on
    /// an agent.
    pub(crate) async fn register(
        &self,
        job_id: &str,
        attempt: u32,
        stop: StopSignal,
    ) -> Registration<'_> {
        loop {
            let left = self.left.notified();
            {
                let mut inner = self.lock();
                let older: Vec<StopSignal> = inner
                    .running
                    .iter()
                    .filter(|((id, _), _)| id == job_id)
                    .map(|(_, signal)| signal.clone())
                    .collect();
                if older.is_empty() {
                    if let Some(all) = inner.stop_all {
                        stop.request(all);
                    }
                    let key = (job_id.to_owned(), attempt);
                    inner.running.insert(key.clone(), stop);
                    return Registration { table: self, key };
                }
                for signal in older {
                    signal.request(Stop::Lost);
                }
            }
            tracing::warn!(
                job.id = job_id,
                job.attempt = attempt,
                "an older attempt of this job is still running here; stopping it first"
            );
            left.await;
        }
    }

    /// The distinct ids of the running jobs, for heartbeats.
    pub(crate) fn running_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .lock()
            .running
            .keys()
            .map(|(id, _)| id.clone())
            .collect();
        ids.dedup();
        ids
    }

    /// Asks every attempt of `job_id` to stop; whether there was one.
    pub(crate) fn request(&self, job_id: &str, stop: Stop) -> bool {
        let inner = self.lock();
        let mut found = false;
        for ((id, _), signal) in &inner.running {
            if id == job_id {
                signal.request(stop);
                found = true;
            }
        }
        found
    }

    /// Asks every attempt, now and later, to stop.
    pub(crate) fn stop_all(&self, stop: Stop) {
        let mut inner = self.lock();
        // Same rule as a single job's request: the first reason, unless lost.
        inner.stop_all = Some(match inner.stop_all {
            Some(_) if stop == Stop::Lost => Stop::Lost,
            Some(existing) => existing,
            None => stop,
        });
        for signal in inner.running.values() {
            signal.request(stop);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn pause_then_none_resumes_claiming() {
        let mode = Mode::Run.then(Mode::from_action(AgentAction::Pause));
        assert_eq!(mode, Mode::Pause);
        assert_eq!(mode.then(Mode::from_action(AgentAction::None)), Mode::Run);
    }

    #[test]
    fn drain_and_stop_are_never_undone() {
        assert_eq!(Mode::Drain.then(Mode::Run), Mode::Drain);
        assert_eq!(Mode::Drain.then(Mode::Pause), Mode::Drain);
        let stop = Mode::Drain.then(Mode::from_action(AgentAction::Disconnect));
        assert_eq!(stop, Mode::Stop(Stop::Disconnect));
        assert_eq!(stop.then(Mode::Run), stop);
        assert_eq!(stop.then(Mode::Stop(Stop::Shutdown)), stop);
        assert_eq!(stop.then(Mode::Stop(Stop::Lost)), Mode::Stop(Stop::Lost));
    }

    #[test]
    fn a_stop_request_keeps_its_first_reason_unless_the_job_is_lost() {
        let signal = StopSignal::default();
        assert_eq!(signal.current(), None);
        signal.request(Stop::Cancel);
        signal.request(Stop::Shutdown);
        assert_eq!(signal.current(), Some(Stop::Cancel));
        signal.request(Stop::Lost);
        signal.request(Stop::Cancel);
        assert_eq!(signal.current(), Some(Stop::Lost));
    }

    #[tokio::test]
    async fn a_stop_requested_before_anyone_waits_is_not_missed() {
        let signal = StopSignal::default();
        signal.request(Stop::Lost);
        assert_eq!(signal.requested().await, Stop::Lost);
        tokio::time::timeout(Duration::from_secs(1), signal.lost())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_cancel_does_not_abandon_a_job_but_a_shutdown_does() {
        let signal = StopSignal::default();
        signal.request(Stop::Cancel);
        let waited = tokio::time::timeout(Duration::from_millis(50), signal.abandoned()).await;
        assert!(waited.is_err(), "a cancel is reported, not abandoned");
        signal.request(Stop::Lost);
        assert_eq!(signal.abandoned().await, Stop::Lost);
        let shutdown = StopSignal::default();
        shutdown.request(Stop::Shutdown);
        assert_eq!(shutdown.abandoned().await, Stop::Shutdown);
    }

    #[tokio::test]
    async fn stop_all_reaches_attempts_registered_afterwards() {
        let table = JobTable::default();
        let early = StopSignal::default();
        let _a = table.register("a", 1, early.clone()).await;
        table.stop_all(Stop::Shutdown);
        let late = StopSignal::default();
        let _b = table.register("b", 1, late.clone()).await;
        assert_eq!(early.current(), Some(Stop::Shutdown));
        assert_eq!(late.current(), Some(Stop::Shutdown));
    }

    #[tokio::test]
    async fn a_second_attempt_of_a_running_job_waits_until_the_first_is_killed_and_gone() {
        let table = Arc::new(JobTable::default());
        let first = StopSignal::default();
        let registration = table.register("job", 1, first.clone()).await;
        let second = {
            let table = Arc::clone(&table);
            tokio::spawn(async move {
                let _r = table.register("job", 2, StopSignal::default()).await;
                table.running_ids()
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(first.current(), Some(Stop::Lost));
        assert!(!second.is_finished(), "must wait for attempt 1 to leave");
        drop(registration);
        let ids = tokio::time::timeout(Duration::from_secs(1), second)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ids, ["job"]);
    }

    #[tokio::test]
    async fn cancel_requests_reach_only_the_named_job() {
        let table = JobTable::default();
        let (a, b) = (StopSignal::default(), StopSignal::default());
        let _ra = table.register("a", 1, a.clone()).await;
        let _rb = table.register("b", 1, b.clone()).await;
        assert!(table.request("b", Stop::Cancel));
        assert!(!table.request("zzz", Stop::Cancel));
        assert_eq!((a.current(), b.current()), (None, Some(Stop::Cancel)));
        assert_eq!(table.running_ids(), ["a", "b"]);
    }
}
