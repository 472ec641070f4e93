//! Jobs, their attempts, and the lifecycle write.
//!
//! `transition_job` is where the lifecycle is enforced for users' cancels and the
//! queue TTL. In one `BEGIN IMMEDIATE` transaction it reads the status, asks
//! `lifecycle::check`, then writes with `WHERE id = ? AND status = ?` and moves the
//! current attempt with it. IMMEDIATE takes the write lock before the read, so no
//! other writer (not even another process on the same file) can change the status
//! in between; the conditional `UPDATE` is the same rule stated a second time, so
//! the code reads like the DynamoDB condition expression and would still be safe if
//! the locking were ever relaxed. Sixteen concurrent `queued → claimed` calls
//! therefore yield one success and fifteen
//! `IllegalTransition { from: claimed, to: claimed }`.
//!
//! The attempt that moves with the job is its current one: the latest, and only
//! while the job is held (claimed, running, canceling). A queued job's latest
//! attempt has finished (it was lost and the job re-queued), and attempts are never
//! rewritten once finished, so canceling or expiring that job leaves its history
//! as it was. A move to a status that is not held drops the attempt's lease; a
//! move to a final status sets the job's `secrets` to NULL, in the same write.
//!
//! `retry_job`, a user's retry of a final job, is the same shape: in one
//! IMMEDIATE transaction it reads the status and the retry budget, asks
//! `lifecycle::check_retry` and `RetryBudget::has_room_for_a_retry`, and writes
//! `queued`, the supplied secrets and `retried_at_attempt = attempt_count` with
//! `WHERE id = ? AND status = <the final status read>`. Of two racing retries the
//! second finds `queued` and is refused. It touches no attempt: the finished ones
//! keep their history, and the next claim inserts attempt `attempt_count + 1`.
//!
//! `get_job` reads the job and its attempts inside one read transaction, so the
//! attempts always belong to the job version returned. Neither it nor `list_jobs`
//! selects `secrets` ([`JOB_COLUMNS`] does not name the column).
//!
//! Every write of a job inserts its audit event (`audit::insert_event`) in its
//! own transaction, after the change: a failed insert (an event id that is
//! taken) rolls the change back with it.
//!
//! Claiming and the rest of an attempt's life are in `dispatch.rs`.

use async_trait::async_trait;
use runway_core::audit::AuditEvent;
use runway_core::id::JobId;
use runway_core::job::{Job, JobDetail, JobSecrets};
use runway_core::lifecycle::{self, JobStatus, RetryBudget};
use runway_core::page::Page;
use runway_core::store::{Conflict, JobQuery, JobStore, RecordKind, StoreError, StoreResult};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, TransactionBehavior, params, params_from_iter};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::audit::insert_event;
use crate::error::{store_error, store_error_or_conflict};
use crate::page::Seek;
use crate::rows::{self, ATTEMPT_COLUMNS, JOB_COLUMNS, json, secrets_json, ts};

/// A conditional write that found another status than the one it read: impossible
/// under `BEGIN IMMEDIATE`, so a bug if it ever happens.
#[derive(Debug, thiserror::Error)]
#[error("job {0} changed inside a write transaction")]
pub(crate) struct LostUpdate(pub(crate) JobId);

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_job(&self, job: &Job, audit: &AuditEvent) -> StoreResult<()> {
        let job = job.clone();
        let audit = audit.clone();
        let (env, labels) = (json(&job.spec.env)?, json(&job.spec.labels)?);
        let secrets = secrets_json(&job.spec.secrets)?;
        let secret_names = json(&job.secret_names)?;
        let (created_at, updated_at) = (ts(job.created_at)?, ts(job.updated_at)?);
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(store_error)?;
                tx.prepare_cached(&format!(
                    "INSERT INTO jobs ({JOB_COLUMNS}, secrets) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
                ))
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        job.id.to_string(),
                        job.spec.name,
                        job.spec.script,
                        env,
                        labels,
                        job.spec.queue,
                        job.spec.priority,
                        job.spec.timeout_seconds,
                        job.spec.max_retries,
                        job.status.as_str(),
                        job.created_by.to_string(),
                        created_at,
                        updated_at,
                        job.attempt_count,
                        secret_names,
                        job.retried_at_attempt,
                        secrets,
                    ])
                })
                .map_err(|e| store_error_or_conflict(e, |_| Conflict::Exists(RecordKind::Job)))?;
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)
            })
            .await
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<JobDetail>> {
        self.db.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let job = tx
                .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
                .query_row([id.to_string()], rows::job)
                .optional()?;
            let Some(job) = job else {
                return Ok(None);
            };
            let attempts = tx
                .prepare_cached(&format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM job_attempts \
                     WHERE job_id = ?1 ORDER BY number"
                ))?
                .query_map([id.to_string()], rows::attempt)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(Some(JobDetail { job, attempts }))
        })
    }

    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<Page<Job>> {
        let seek = Seek::new(&query.page)?;
        let (sql, values) = list_sql(query, &seek);
        let jobs = self.db.read(|conn| {
            conn.prepare_cached(&sql)?
                .query_map(params_from_iter(values), rows::job)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(seek.finish(jobs, |j| j.id.to_string()))
    }

    async fn transition_job(
        &self,
        id: JobId,
        to: JobStatus,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job> {
        let now = ts(now)?;
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                let (from, attempt) = tx
                    .prepare_cached("SELECT status, attempt_count FROM jobs WHERE id = ?1")
                    .and_then(|mut stmt| {
                        stmt.query_row([id.to_string()], |row| {
                            Ok((rows::get_status(row, 0)?, row.get::<_, i64>(1)?))
                        })
                        .optional()
                    })
                    .map_err(store_error)?
                    .ok_or(StoreError::NotFound)?;
                lifecycle::check(from, to)?;
                let job = tx
                    .prepare_cached(&format!(
                        "UPDATE jobs SET status = ?1, updated_at = ?2, \
                         secrets = CASE WHEN ?5 THEN NULL ELSE secrets END \
                         WHERE id = ?3 AND status = ?4 RETURNING {JOB_COLUMNS}"
                    ))
                    .and_then(|mut stmt| {
                        stmt.query_row(
                            params![
                                to.as_str(),
                                now,
                                id.to_string(),
                                from.as_str(),
                                to.is_terminal()
                            ],
                            rows::job,
                        )
                        .optional()
                    })
                    .map_err(store_error)?
                    .ok_or_else(|| StoreError::internal(LostUpdate(id)))?;
                if lifecycle::is_held(from) {
                    tx.prepare_cached(
                        "UPDATE job_attempts SET status = ?1, \
                         lease_expires_at = CASE WHEN ?4 THEN lease_expires_at END \
                         WHERE job_id = ?2 AND number = ?3",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            to.as_str(),
                            id.to_string(),
                            attempt,
                            lifecycle::is_held(to)
                        ])
                    })
                    .map_err(store_error)?;
                }
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)?;
                Ok(job)
            })
            .await
    }

    async fn retry_job(
        &self,
        id: JobId,
        secrets: &JobSecrets,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job> {
        let now = ts(now)?;
        let secrets = secrets_json(secrets)?;
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                let (from, budget) = tx
                    .prepare_cached(
                        "SELECT status, attempt_count, retried_at_attempt, max_retries \
                         FROM jobs WHERE id = ?1",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_row([id.to_string()], |row| {
                            Ok((
                                rows::get_status(row, 0)?,
                                RetryBudget {
                                    attempt_count: rows::get_u32(row, 1, "jobs.attempt_count")?,
                                    retried_at_attempt: rows::get_u32(
                                        row,
                                        2,
                                        "jobs.retried_at_attempt",
                                    )?,
                                    max_retries: rows::get_u32(row, 3, "jobs.max_retries")?,
                                },
                            ))
                        })
                        .optional()
                    })
                    .map_err(store_error)?
                    .ok_or(StoreError::NotFound)?;
                let to = lifecycle::check_retry(from)?;
                if !budget.has_room_for_a_retry() {
                    return Err(Conflict::AttemptsExhausted {
                        attempts: budget.attempt_count,
                    }
                    .into());
                }
                let job = tx
                    .prepare_cached(&format!(
                        "UPDATE jobs SET status = ?1, updated_at = ?2, secrets = ?3, \
                         retried_at_attempt = attempt_count \
                         WHERE id = ?4 AND status = ?5 RETURNING {JOB_COLUMNS}"
                    ))
                    .and_then(|mut stmt| {
                        stmt.query_row(
                            params![to.as_str(), now, secrets, id.to_string(), from.as_str()],
                            rows::job,
                        )
                        .optional()
                    })
                    .map_err(store_error)?
                    .ok_or_else(|| StoreError::internal(LostUpdate(id)))?;
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)?;
                Ok(job)
            })
            .await
    }
}

/// The `list_jobs` query and its parameters. A status filter uses the
/// `jobs_by_status (status, id)` index, which also yields the `id DESC` order.
pub(crate) fn list_sql(query: &JobQuery, seek: &Seek) -> (String, Vec<Value>) {
    let mut conditions: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(status) = query.status {
        conditions.push("status = ?");
        values.push(Value::Text(status.as_str().to_owned()));
    }
    let sql = seek.select(JOB_COLUMNS, "jobs", conditions, &mut values);
    (sql, values)
}
