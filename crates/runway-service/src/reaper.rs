//! The reaper: ends the work nobody will end otherwise.
//!
//! One pass ([`reap_once`]) does, in this order:
//!
//! 1. **Held attempts that are due** ([`DispatchStore::due_attempts`](runway_core::store::DispatchStore::due_attempts)): for each,
//!    re-read the job and decide from the fresh record, never from the index entry
//!    that named it:
//!    * past its deadline ([`Attempt::deadline`]: the timeout plus a grace for the
//!      agent's own kill sequence) → [`Due::PastDeadline`]: `timed_out`, even
//!      though the agent is gone;
//!    * lease expired → [`Due::LeaseExpired`]: `lost`, re-queued as a new attempt
//!      while retries remain (history kept), or `canceled` if a cancel was
//!      pending;
//!    * lease renewed since the index was read → left alone.
//!
//!    The end is [`DispatchStore::reap_attempt`](runway_core::store::DispatchStore::reap_attempt), whose write is conditional on
//!    the attempt still being due: an agent that renews its lease between this
//!    read and that write keeps its job, and the pass sees `NotHeld`.
//! 2. **Queued jobs past the queue TTL** ([`DispatchStore::stale_queued_jobs`](runway_core::store::DispatchStore::stale_queued_jobs)) →
//!    `expired`.
//! 3. **Expired sessions** ([`SessionStore::purge_expired_sessions`](runway_core::store::SessionStore::purge_expired_sessions)) are deleted, at
//!    most [`MAX_BATCHES`] × [`BATCH`] a pass. Only to keep SQLite's table small:
//!    an expired session is refused on every read anyway, and on DynamoDB the
//!    table's TTL deletes them (the call does nothing there). Not audited: nobody
//!    revoked anything.
//! 4. **Expired abuse-limit counters** ([`LimitStore::purge_expired_attempts`](runway_core::store::LimitStore::purge_expired_attempts)),
//!    bounded the same way and for the same reason: a counter past its window
//!    reads as none anyway, and DynamoDB's TTL deletes them there.
//!
//! Every end is the store's conditional write, so a pass racing an agent's finish,
//! a renewal or another reaper (several Lambda instances, or `runway reap` beside
//! `runway serve`) changes each job at most once and loses gracefully: the loser
//! sees `NotHeld` or an illegal transition and moves on. A pass does at most
//! [`MAX_BATCHES`] batches of [`BATCH`] jobs of each kind, so a huge backlog is
//! worked off over several ticks instead of in one unbounded request.
//!
//! Locally the reaper is a background task of `runway serve`; on AWS an
//! EventBridge schedule invokes the same function every minute; both also run a
//! pass opportunistically from a claim, and `runway reap` runs one by hand.

use runway_core::OffsetDateTime;
use runway_core::audit::AuditAction;
use runway_core::job::Attempt;
use runway_core::lifecycle::{JobStatus, is_held};
use runway_core::store::{Conflict, Due, Store, StoreError};

use crate::audit::Caller;
use crate::error::ServiceResult;

/// Jobs read per batch.
pub const BATCH: u32 = 100;
/// Batches of each kind per pass.
pub const MAX_BATCHES: u32 = 10;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Attempts lost with no retries left (the job is `lost`).
    pub lost: u32,
    /// Attempts lost and their jobs queued again.
    pub requeued: u32,
    /// Attempts ended as `timed_out`.
    pub timed_out: u32,
    /// Attempts whose job was being canceled, now `canceled`.
    pub canceled: u32,
    /// Queued jobs past the queue TTL, now `expired`.
    pub expired: u32,
    /// Expired sessions deleted (not counted in [`Self::ended`]).
    pub sessions_purged: u64,
    /// Expired abuse-limit counters deleted (not counted in [`Self::ended`]).
    pub counters_purged: u64,
}

impl ReapReport {
    /// How many attempts or jobs the pass ended or re-queued.
    #[must_use]
    pub const fn ended(&self) -> u32 {
        self.lost + self.requeued + self.timed_out + self.canceled + self.expired
    }
}

impl std::fmt::Display for ReapReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lost, {} re-queued, {} timed out, {} canceled, {} expired, {} sessions purged, \
             {} limit counters purged",
            self.lost,
            self.requeued,
            self.timed_out,
            self.canceled,
            self.expired,
            self.sessions_purged,
            self.counters_purged
        )
    }
}

/// What is due about `attempt` at `now`, if anything.
fn due_end(attempt: &Attempt, timeout_seconds: u32, now: OffsetDateTime) -> Option<Due> {
    if now >= attempt.deadline(timeout_seconds) {
        Some(Due::PastDeadline)
    } else if attempt.lease_expires_at.is_some_and(|at| at <= now) {
        Some(Due::LeaseExpired)
    } else {
        None
    }
}

/// One pass of the reaper at `now`; see the module documentation.
///
/// # Errors
/// Store failures (the pass stops at the first; what it did until then stands).
pub async fn reap_once<S>(
    store: &S,
    queue_ttl: time::Duration,
    now: OffsetDateTime,
) -> ServiceResult<ReapReport>
where
    S: Store + ?Sized,
{
    let caller = Caller::system();
    let mut report = ReapReport::default();
    for _ in 0..MAX_BATCHES {
        let due = store.due_attempts(now, BATCH).await?;
        let mut acted = 0;
        for held in &due {
            let Some(detail) = store.get_job(held.job).await? else {
                continue;
            };
            let Some(attempt) = detail.attempts.last() else {
                continue;
            };
            if attempt.number != held.attempt || !is_held(detail.job.status) {
                continue;
            }
            let Some(due) = due_end(attempt, detail.job.spec.timeout_seconds, now) else {
                continue;
            };
            let before = detail.job.status;
            // Written in the end's own write, so it says what the reaper found,
            // not what the end made of it (the job's status says that).
            let why = match due {
                Due::LeaseExpired => "lease expired",
                Due::PastDeadline => "past its timeout with no result",
            };
            let audit = caller.event(
                AuditAction::JobReaped,
                held.job,
                Some(format!("attempt {}: {why} (was {before})", held.attempt)),
            );
            match store
                .reap_attempt(held.job, held.attempt, due, now, &audit)
                .await
            {
                Ok(job) => {
                    acted += 1;
                    match job.status {
                        JobStatus::Queued => report.requeued += 1,
                        JobStatus::Canceled => report.canceled += 1,
                        JobStatus::TimedOut => report.timed_out += 1,
                        _ => report.lost += 1,
                    }
                }
                // Finished, renewed or reaped by someone else in between.
                Err(StoreError::Conflict(Conflict::NotHeld) | StoreError::IllegalTransition(_)) => {
                }
                Err(err) => return Err(err.into()),
            }
        }
        // A full batch in which nothing could be done would be read again
        // unchanged; stop rather than spin.
        if due.len() < BATCH as usize || acted == 0 {
            break;
        }
    }
    let cutoff = now - queue_ttl;
    for _ in 0..MAX_BATCHES {
        let stale = store.stale_queued_jobs(cutoff, BATCH).await?;
        let mut acted = 0;
        for &id in &stale {
            let audit = caller.event(
                AuditAction::JobReaped,
                id,
                Some(format!(
                    "queued for more than {} s: expired",
                    queue_ttl.whole_seconds()
                )),
            );
            match store
                .transition_job(id, JobStatus::Expired, now, &audit)
                .await
            {
                Ok(_) => {
                    acted += 1;
                    report.expired += 1;
                }
                Err(StoreError::IllegalTransition(_) | StoreError::NotFound) => {}
                Err(err) => return Err(err.into()),
            }
        }
        if stale.len() < BATCH as usize || acted == 0 {
            break;
        }
    }
    for _ in 0..MAX_BATCHES {
        let purged = store.purge_expired_sessions(now, BATCH).await?;
        report.sessions_purged += purged;
        if purged < u64::from(BATCH) {
            break;
        }
    }
    for _ in 0..MAX_BATCHES {
        let purged = store.purge_expired_attempts(now, BATCH).await?;
        report.counters_purged += purged;
        if purged < u64::from(BATCH) {
            break;
        }
    }
    if report.ended() > 0 || report.sessions_purged > 0 || report.counters_purged > 0 {
        tracing::info!(
            reaper.lost = report.lost,
            reaper.requeued = report.requeued,
            reaper.timed_out = report.timed_out,
            reaper.canceled = report.canceled,
            reaper.expired = report.expired,
            reaper.sessions_purged = report.sessions_purged,
            reaper.counters_purged = report.counters_purged,
            "reaper pass"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use runway_core::id::AgentId;
    use runway_core::secret::TokenHash;
    use time::Duration;

    use super::*;

    fn attempt(lease: Option<OffsetDateTime>) -> Attempt {
        Attempt {
            number: 1,
            agent_id: AgentId::new(),
            status: JobStatus::Running,
            claimed_at: OffsetDateTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            exit_code: None,
            lease_expires_at: lease,
            log_bytes: 0,
            job_token_hash: TokenHash::of("t"),
        }
    }

    #[test]
    fn an_attempt_is_due_when_its_lease_ran_out_or_its_deadline_passed() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let a = attempt(Some(t0 + Duration::seconds(120)));
        assert_eq!(due_end(&a, 3600, t0 + Duration::seconds(119)), None);
        assert_eq!(
            due_end(&a, 3600, t0 + Duration::seconds(120)),
            Some(Due::LeaseExpired)
        );
        // The deadline wins over the lease: timed out, not merely lost.
        let renewed = attempt(Some(t0 + Duration::hours(5)));
        assert_eq!(
            due_end(
                &renewed,
                60,
                t0 + Duration::seconds(60) + runway_core::job::DEADLINE_GRACE
            ),
            Some(Due::PastDeadline)
        );
    }
}
