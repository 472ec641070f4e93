//! Claiming and running jobs: the claim, an attempt's start, lease and end, and the
//! reaper's reads.
//!
//! ## One call, one transaction, one commit
//!
//! Each write below is one `BEGIN IMMEDIATE` transaction on the single writer
//! that reads what it decides on and writes conditionally on it, and so costs one
//! commit (one fsync): a job's whole life on an agent — claim, start, a log chunk,
//! finish — is four. The audit event of a claim, a start and an end is inserted in
//! that same transaction (`audit::insert_event`), so it costs no commit of its own
//! and cannot be missing from a change that committed; a renewal records none.
//!
//! ## The claim
//!
//! [`pick`] is the decision, and runs on any connection:
//!
//! 1. the agent's stored row: gone or not `active` → nothing (its state and
//!    capacity are read here, never taken from the request; its queue and labels
//!    are the request's, which nothing changes after registration);
//! 2. the attempts it holds, counted through `job_attempts_held_by` (the held
//!    attempts only): at `capacity` → nothing;
//! 3. the agent's queue in `jobs_claimable`, a partial index over queued jobs
//!    ordered `priority DESC, id` (highest priority, then oldest) that also holds
//!    each job's labels, stepped one entry at a time until a job's labels are
//!    satisfied (`labels_satisfy`, the rule every backend shares). The walk never
//!    reads a job's row, and stops at the first match; jobs ahead in the queue that
//!    this agent cannot run make it longer (each is an index entry and a label
//!    check), never wrong.
//!
//! The claim then runs `pick` again inside its transaction and, on the job picked,
//! `UPDATE jobs SET status = 'claimed', attempt_count = attempt_count + 1 … WHERE
//! id = ? AND status = 'queued' RETURNING …, secrets` and inserts the attempt with
//! its lease, deadline and job token hash. The write lock is taken before the
//! first read, so nothing can claim the job, fill the agent's capacity or pause
//! the agent in between; sixteen agents racing for one job are serialized, and
//! every one after the first finds it gone from the index and moves on. A race is
//! never seen as an error.
//!
//! Before that, `pick` runs once on a pooled reader, and when it finds nothing
//! (an empty queue, a paused or full agent — what nearly every poll of an idle
//! agent sees) the claim returns without touching the writer, so idle agents
//! polling do not queue behind other writes' fsyncs. That read decides only "no";
//! a "yes" is decided again by the writer, so this is not a read followed by a
//! blind write. A reader's snapshot is at least as new as the call, so "no job"
//! from it is a true answer at some instant during the call.
//!
//! ## Held attempts
//!
//! "Held" is stored once: `job_attempts.lease_expires_at` is non-NULL exactly while
//! an agent holds the attempt (migration 4). The claim sets it; `end_attempt` and
//! any `transition_job` out of a held status clear it in the write that moves the
//! job. Every other write here first checks, in its transaction, that the job is in
//! a held status with the named attempt as its latest (else `Conflict::NotHeld`),
//! then updates the attempt `WHERE … AND lease_expires_at IS NOT NULL` and the job
//! `WHERE … AND status = <the status read>`.
//!
//! ## The reaper's reads
//!
//! `due_attempts` reads the virtual column `due_at = min(lease_expires_at,
//! deadline_at)` through `job_attempts_due`: an expired lease and a passed deadline
//! are one range, already in the order they fell due. `stale_queued_jobs` reads
//! `jobs_queued_since (updated_at, id) WHERE status = 'queued'`; `held_by` reads
//! `job_attempts_held_by`. These run on the pooled readers; the reaper acts on them
//! with `reap_attempt` and `transition_job`, which check again. `reap_attempt` is
//! `end_attempt` with one more condition on the attempt's `UPDATE`
//! (`lease_expires_at <= now`, or `deadline_at <= now`), so an agent that renewed
//! its lease after the reaper's read keeps its job.

use std::sync::LazyLock;

use async_trait::async_trait;
use runway_core::agent::{Agent, AgentState, labels_satisfy};
use runway_core::audit::AuditEvent;
use runway_core::id::{AgentId, JobId};
use runway_core::job::{Attempt, Job};
use runway_core::lifecycle::{self, AttemptEnd, JobStatus, RetryBudget};
use runway_core::store::{
    Claim, ClaimRequest, Conflict, DispatchStore, Due, HeldAttempt, StoreError, StoreResult,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::audit::insert_event;
use crate::error::store_error;
use crate::jobs::LostUpdate;
use crate::rows::{self, JOB_COLUMNS, ts};

/// The agent's stored state and capacity.
const AGENT_STATE: &str = "SELECT state, capacity FROM agents WHERE id = ?1";
/// How many attempts an agent holds, by `job_attempts_held_by`.
pub(crate) const HELD_COUNT: &str =
    "SELECT COUNT(*) FROM job_attempts WHERE agent_id = ?1 AND lease_expires_at IS NOT NULL";
/// The attempts an agent holds, by `job_attempts_held_by`.
pub(crate) const HELD_BY: &str = "SELECT job_id, number, status FROM job_attempts \
     WHERE agent_id = ?1 AND lease_expires_at IS NOT NULL";
/// One queue's queued jobs in claim order, with their labels, all from
/// `jobs_claimable`. Stepped lazily, so `LIMIT` would only cap the walk.
pub(crate) const CLAIM_CANDIDATES: &str = "SELECT id, labels FROM jobs \
     WHERE status = 'queued' AND queue = ?1 ORDER BY priority DESC, id";
/// Held attempts due at `?1`, soonest first, by `job_attempts_due`.
pub(crate) const DUE_ATTEMPTS: &str = "SELECT job_id, number, status FROM job_attempts \
     WHERE lease_expires_at IS NOT NULL AND due_at <= ?1 ORDER BY due_at LIMIT ?2";
/// Queued jobs unchanged since before `?1`, oldest first, by `jobs_queued_since`.
///
/// `INDEXED BY`, because without statistics the planner prefers an equality on
/// `jobs_by_status (status, id)` and then sorts the whole backlog by `updated_at`.
/// This is the use SQLite intends the clause for: should the index ever stop being
/// usable, the statement fails to prepare instead of silently scanning.
pub(crate) const STALE_QUEUED: &str = "SELECT id FROM jobs INDEXED BY jobs_queued_since \
     WHERE status = 'queued' AND updated_at < ?1 ORDER BY updated_at, id LIMIT ?2";
/// The claim's write on the job it picked; it returns the secrets, which no other
/// statement selects.
static CLAIM_JOB: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET status = 'claimed', updated_at = ?1, attempt_count = attempt_count + 1 \
         WHERE id = ?2 AND status = 'queued' RETURNING {JOB_COLUMNS}, secrets"
    )
});
static JOB_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"));
static START_JOB: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET status = 'running', updated_at = ?2 \
         WHERE id = ?1 AND status = 'claimed' RETURNING {JOB_COLUMNS}"
    )
});
static END_JOB: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET status = ?2, updated_at = ?3, \
         secrets = CASE WHEN ?5 THEN NULL ELSE secrets END \
         WHERE id = ?1 AND status = ?4 RETURNING {JOB_COLUMNS}"
    )
});

/// An attempt's side of its end: `?3` its status, `?4` `finished_at`, `?5` the
/// exit code.
const END_ATTEMPT: &str = "UPDATE job_attempts \
     SET status = ?3, finished_at = ?4, exit_code = ?5, lease_expires_at = NULL \
     WHERE job_id = ?1 AND number = ?2 AND lease_expires_at IS NOT NULL";
/// [`END_ATTEMPT`] for the reaper, only while the lease has run out at `?4`.
static REAP_EXPIRED_LEASE: LazyLock<String> =
    LazyLock::new(|| format!("{END_ATTEMPT} AND lease_expires_at <= ?4"));
/// [`END_ATTEMPT`] for the reaper, only once the deadline has passed at `?4`.
static REAP_PAST_DEADLINE: LazyLock<String> =
    LazyLock::new(|| format!("{END_ATTEMPT} AND deadline_at <= ?4"));

/// The job `agent` should claim now, if any; see the module docs. Runs on a reader
/// (the fast "no") and again inside the claim's transaction (the decision).
fn pick(conn: &Connection, agent: &Agent) -> rusqlite::Result<Option<JobId>> {
    let agent_id = agent.id.to_string();
    let stored = conn
        .prepare_cached(AGENT_STATE)?
        .query_row([&agent_id], |row| {
            Ok((
                rows::get_agent_state(row, 0)?,
                rows::get_u32(row, 1, "agents.capacity")?,
            ))
        })
        .optional()?;
    let Some((AgentState::Active, capacity)) = stored else {
        return Ok(None);
    };
    let held: i64 = conn
        .prepare_cached(HELD_COUNT)?
        .query_row([&agent_id], |row| row.get(0))?;
    if held >= i64::from(capacity) {
        return Ok(None);
    }
    let mut candidates = conn.prepare_cached(CLAIM_CANDIDATES)?;
    let mut rows = candidates.query([agent.queue.as_str()])?;
    while let Some(row) = rows.next()? {
        if labels_satisfy(&agent.labels, &rows::get_labels(row, 1, "jobs.labels")?) {
            return rows::get_parsed(row, 0, "jobs.id").map(Some);
        }
    }
    Ok(None)
}

/// What the transaction read about a job whose attempt is held.
struct Current {
    status: JobStatus,
    budget: RetryBudget,
}

/// Reads `job` and checks that `attempt` is its latest and held.
/// `NotFound` without the job, `Conflict::NotHeld` otherwise.
fn current(tx: &Transaction<'_>, job: JobId, attempt: u32) -> StoreResult<Current> {
    let current = tx
        .prepare_cached(
            "SELECT status, attempt_count, retried_at_attempt, max_retries FROM jobs \
             WHERE id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([job.to_string()], |row| {
                Ok(Current {
                    status: rows::get_status(row, 0)?,
                    budget: RetryBudget {
                        attempt_count: rows::get_u32(row, 1, "jobs.attempt_count")?,
                        retried_at_attempt: rows::get_u32(row, 2, "jobs.retried_at_attempt")?,
                        max_retries: rows::get_u32(row, 3, "jobs.max_retries")?,
                    },
                })
            })
            .optional()
        })
        .map_err(store_error)?
        .ok_or(StoreError::NotFound)?;
    if current.budget.attempt_count != attempt || !lifecycle::is_held(current.status) {
        return Err(Conflict::NotHeld.into());
    }
    Ok(current)
}

/// Runs an `UPDATE job_attempts … WHERE job_id = ?1 AND number = ?2 AND
/// lease_expires_at IS NOT NULL`; an attempt that is not held is `NotHeld`.
fn update_held_attempt(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> StoreResult<()> {
    let changed = tx
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(store_error)?;
    if changed == 1 {
        Ok(())
    } else {
        Err(Conflict::NotHeld.into())
    }
}

/// Runs a statement that returns the job's row, which must exist.
fn job_row(
    tx: &Transaction<'_>,
    id: JobId,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> StoreResult<Job> {
    tx.prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(params, rows::job).optional())
        .map_err(store_error)?
        .ok_or_else(|| StoreError::internal(LostUpdate(id)))
}

fn held_attempt(row: &Row<'_>) -> rusqlite::Result<HeldAttempt> {
    Ok(HeldAttempt {
        job: rows::get_parsed(row, 0, "job_attempts.job_id")?,
        attempt: rows::get_u32(row, 1, "job_attempts.number")?,
        status: rows::get_status(row, 2)?,
    })
}

/// Extends a held attempt's lease, returning the job; `start` and `renew` share it.
fn extend_lease(tx: &Transaction<'_>, job: JobId, attempt: u32, lease: i64) -> StoreResult<Job> {
    update_held_attempt(
        tx,
        "UPDATE job_attempts SET lease_expires_at = ?3 \
         WHERE job_id = ?1 AND number = ?2 AND lease_expires_at IS NOT NULL",
        params![job.to_string(), attempt, lease],
    )?;
    job_row(tx, job, &JOB_BY_ID, params![job.to_string()])
}

fn begin(conn: &mut Connection) -> StoreResult<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)
}

#[async_trait]
impl DispatchStore for SqliteStore {
    async fn claim_job(
        &self,
        request: &ClaimRequest,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Option<Claim>> {
        if self.db.read(|conn| pick(conn, &request.agent))?.is_none() {
            return Ok(None);
        }
        let request = request.clone();
        let audit = audit.clone();
        let (now_ns, lease) = (ts(now)?, ts(request.lease_expires_at)?);
        self.db
            .write(move |conn| {
                let tx = begin(conn)?;
                let Some(id) = pick(&tx, &request.agent).map_err(store_error)? else {
                    return Ok(None);
                };
                let job = tx
                    .prepare_cached(&CLAIM_JOB)
                    .and_then(|mut stmt| {
                        stmt.query_row(params![now_ns, id.to_string()], |row| {
                            let mut job = rows::job(row)?;
                            job.spec.secrets = rows::get_secrets(row, rows::JOB_COLUMN_COUNT)?;
                            Ok(job)
                        })
                        .optional()
                    })
                    .map_err(store_error)?
                    .ok_or_else(|| StoreError::internal(LostUpdate(id)))?;
                let attempt = Attempt {
                    number: job.attempt_count,
                    agent_id: request.agent.id,
                    status: JobStatus::Claimed,
                    claimed_at: now,
                    started_at: None,
                    finished_at: None,
                    exit_code: None,
                    lease_expires_at: Some(request.lease_expires_at),
                    log_bytes: 0,
                    job_token_hash: request.job_token,
                };
                let deadline = ts(attempt.deadline(job.spec.timeout_seconds))?;
                tx.prepare_cached(
                    "INSERT INTO job_attempts (job_id, number, agent_id, status, claimed_at, \
                     lease_expires_at, deadline_at, job_token_hash) \
                     VALUES (?1, ?2, ?3, 'claimed', ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        id.to_string(),
                        attempt.number,
                        attempt.agent_id.to_string(),
                        now_ns,
                        lease,
                        deadline,
                        attempt.job_token_hash.as_str(),
                    ])
                })
                .map_err(store_error)?;
                insert_event(&tx, &audit.of_claim(id, attempt.number))?;
                tx.commit().map_err(store_error)?;
                Ok(Some(Claim { job, attempt }))
            })
            .await
    }

    async fn start_attempt(
        &self,
        job: JobId,
        attempt: u32,
        lease_expires_at: OffsetDateTime,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job> {
        let (now, lease) = (ts(now)?, ts(lease_expires_at)?);
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = begin(conn)?;
                let current = current(&tx, job, attempt)?;
                let started = if current.status == JobStatus::Claimed {
                    lifecycle::check(current.status, JobStatus::Running)?;
                    update_held_attempt(
                        &tx,
                        "UPDATE job_attempts SET status = 'running', started_at = ?3, \
                         lease_expires_at = ?4 \
                         WHERE job_id = ?1 AND number = ?2 AND lease_expires_at IS NOT NULL",
                        params![job.to_string(), attempt, now, lease],
                    )?;
                    let started = job_row(&tx, job, &START_JOB, params![job.to_string(), now])?;
                    insert_event(&tx, &audit)?;
                    started
                } else {
                    // Running (a retried start) or canceling: only the lease moves.
                    extend_lease(&tx, job, attempt, lease)?
                };
                tx.commit().map_err(store_error)?;
                Ok(started)
            })
            .await
    }

    async fn renew_lease(
        &self,
        job: JobId,
        attempt: u32,
        lease_expires_at: OffsetDateTime,
        _now: OffsetDateTime,
    ) -> StoreResult<Job> {
        let lease = ts(lease_expires_at)?;
        self.db
            .write(move |conn| {
                let tx = begin(conn)?;
                current(&tx, job, attempt)?;
                let renewed = extend_lease(&tx, job, attempt, lease)?;
                tx.commit().map_err(store_error)?;
                Ok(renewed)
            })
            .await
    }

    async fn end_attempt(
        &self,
        job: JobId,
        attempt: u32,
        end: AttemptEnd,
        exit_code: Option<i32>,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job> {
        self.end_held(job, attempt, end, exit_code, now, None, audit)
            .await
    }

    async fn reap_attempt(
        &self,
        job: JobId,
        attempt: u32,
        due: Due,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job> {
        self.end_held(job, attempt, due.end(), None, now, Some(due), audit)
            .await
    }

    async fn due_attempts(&self, now: OffsetDateTime, limit: u32) -> StoreResult<Vec<HeldAttempt>> {
        let now = ts(now)?;
        self.db.read(|conn| {
            conn.prepare_cached(DUE_ATTEMPTS)?
                .query_map(params![now, limit], held_attempt)?
                .collect()
        })
    }

    async fn stale_queued_jobs(
        &self,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<JobId>> {
        let cutoff = ts(cutoff)?;
        self.db.read(|conn| {
            conn.prepare_cached(STALE_QUEUED)?
                .query_map(params![cutoff, limit], |row| {
                    rows::get_parsed(row, 0, "jobs.id")
                })?
                .collect()
        })
    }

    async fn held_by(&self, agent: AgentId) -> StoreResult<Vec<HeldAttempt>> {
        self.db.read(|conn| {
            conn.prepare_cached(HELD_BY)?
                .query_map([agent.to_string()], held_attempt)?
                .collect()
        })
    }
}

impl SqliteStore {
    /// `end_attempt`, and for the reaper (`due`) also conditional on the attempt
    /// still being due at `now`: the attempt's `UPDATE` then carries `AND
    /// lease_expires_at <= now` (or `deadline_at <= now`), so a lease renewed
    /// since the reaper's read leaves it unchanged, which is `NotHeld`. `audit`
    /// is inserted with the end.
    #[expect(
        clippy::too_many_arguments,
        reason = "the trait's arguments, plus `due`"
    )]
    async fn end_held(
        &self,
        job: JobId,
        attempt: u32,
        end: AttemptEnd,
        exit_code: Option<i32>,
        now: OffsetDateTime,
        due: Option<Due>,
        audit: &AuditEvent,
    ) -> StoreResult<Job> {
        let now = ts(now)?;
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = begin(conn)?;
                let current = current(&tx, job, attempt)?;
                let settled = lifecycle::settle(current.status, end, current.budget)?;
                let sql: &str = match due {
                    None => END_ATTEMPT,
                    Some(Due::LeaseExpired) => &REAP_EXPIRED_LEASE,
                    Some(Due::PastDeadline) => &REAP_PAST_DEADLINE,
                };
                update_held_attempt(
                    &tx,
                    sql,
                    params![
                        job.to_string(),
                        attempt,
                        settled.attempt.as_str(),
                        now,
                        exit_code
                    ],
                )?;
                let ended = job_row(
                    &tx,
                    job,
                    &END_JOB,
                    params![
                        job.to_string(),
                        settled.job.as_str(),
                        now,
                        current.status.as_str(),
                        settled.job.is_terminal(),
                    ],
                )?;
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)?;
                Ok(ended)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::query_plans::plan;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn claim_candidates_are_walked_in_claim_order_inside_the_partial_index() {
        let plan = plan(CLAIM_CANDIDATES, vec![text("default")]);
        assert!(plan.contains("COVERING INDEX jobs_claimable"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn what_an_agent_holds_is_counted_and_listed_from_the_held_attempts_only() {
        for sql in [HELD_COUNT, HELD_BY] {
            let plan = plan(sql, vec![text("agent")]);
            assert!(
                plan.contains("COVERING INDEX job_attempts_held_by"),
                "{sql}: {plan}"
            );
        }
    }

    #[test]
    fn due_attempts_are_one_range_of_the_due_index_in_due_order() {
        let plan = plan(DUE_ATTEMPTS, vec![Value::Integer(0), Value::Integer(10)]);
        assert!(plan.contains("INDEX job_attempts_due (due_at<?)"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn stale_queued_jobs_are_one_range_of_the_queued_since_index_oldest_first() {
        let plan = plan(STALE_QUEUED, vec![Value::Integer(0), Value::Integer(10)]);
        assert!(
            plan.contains("COVERING INDEX jobs_queued_since (updated_at<?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
