//! Jobs as users see them: submit, inspect, cancel, retry, read the log.
//!
//! Cancelling asks the lifecycle table ([`cancel_target`]) what a cancel means in
//! the job's current state (`queued → canceled` at once, `claimed | running →
//! canceling`, which the agent learns from its next lease renewal or heartbeat and
//! honours by stopping the script), then lets the store apply it with a write
//! conditional on that state, so a job that finished in between is an illegal
//! transition instead of being overwritten.
//!
//! Retrying ([`Service::retry_job`]) puts a job in a final status back in its
//! queue: the store's one conditional write moves it `final → queued`, stores the
//! secrets supplied with the retry and resets its automatic-retry budget
//! (`lifecycle::RetryBudget`), and its next claim is a new attempt, so every
//! earlier attempt stays in its history as it ended. The rules, in the order a
//! caller meets them:
//!
//! 1. members may retry the jobs they submitted, admins any (403 otherwise, as
//!    for a cancel);
//! 2. only a final job ([`check_retry`]): one that is still waiting or running
//!    has nothing to retry (an illegal transition, 409);
//! 3. only while the job has room for the retry's attempts
//!    (`RetryBudget::has_room_for_a_retry`: a job keeps at most
//!    `limits::ATTEMPTS_MAX`), a conflict (409) otherwise;
//! 4. a job submitted with secrets lost their values when it became final, so the
//!    retry must supply every one again, by the names the job kept
//!    ([`Job::check_retry_secrets`], 422 naming the missing ones);
//! 5. the write is conditional on the final status read, so of two racing
//!    retries one wins and the other is the 409 of step 2.
//!
//! The retry wakes waiting claims, as a submission does, so an idle agent in a
//! long poll takes the job at once; it is audited as `job.retried`, the event
//! written by the store in the retry's own write (as every event here is).
//!
//! A queued job that no online agent could run says so ([`JobView::waiting_reason`]):
//! the commonest "why is my job not running?" answered without reading logs.

use runway_core::OffsetDateTime;
use runway_core::agent::{AgentStatus, labels_satisfy};
use runway_core::audit::AuditAction;
use runway_core::id::JobId;
use runway_core::job::{Job, JobDetail, JobSecrets, JobSpec};
use runway_core::lifecycle::{IllegalTransition, JobStatus, cancel_target, check_retry};
use runway_core::log::LogSlice;
use runway_core::page::{MAX_LIMIT, PageRequest};
use runway_core::store::{AgentQuery, Conflict, StoreError};

use crate::audit::Caller;
use crate::dispatch::Service;
use crate::error::{ServiceError, ServiceResult};

/// A job for a user: the record, its attempts, and why it waits (if it does).
#[derive(Debug, Clone)]
pub struct JobView {
    /// The job and its attempts.
    pub detail: JobDetail,
    /// For a queued job that no online agent can run: why.
    pub waiting_reason: Option<String>,
}

/// A read of a job's log.
#[derive(Debug, Clone)]
pub struct LogRead {
    /// The attempt read (`None`: the job has not been claimed yet).
    pub attempt: Option<u32>,
    /// The bytes.
    pub slice: LogSlice,
    /// Whether the log can still grow: false once the attempt has ended.
    pub complete: bool,
}

/// Who asks for a change to a job, for the authorization rule.
#[derive(Debug, Clone, Copy)]
pub struct Requester {
    /// The user.
    pub user: runway_core::id::UserId,
    /// Whether they are an admin.
    pub admin: bool,
}

impl Requester {
    /// The user behind a session or an API token.
    #[must_use]
    pub fn of(principal: &runway_core::user::Principal) -> Self {
        Self {
            user: principal.user_id,
            admin: principal.is_admin(),
        }
    }
}

/// The most bytes one log read returns.
pub const LOG_READ_MAX_BYTES: usize = 1024 * 1024;

impl Service {
    /// Submits a job as `caller`; it waits in its queue and wakes waiting claims.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a spec out of bounds; store failures.
    pub async fn submit_job(
        &self,
        caller: &Caller,
        created_by: runway_core::id::UserId,
        spec: JobSpec,
    ) -> ServiceResult<Job> {
        spec.validate()?;
        let job = Job::new(spec, created_by, OffsetDateTime::now_utc());
        let audit = caller.event(AuditAction::JobCreated, job.id, None);
        self.store.create_job(&job, &audit).await?;
        self.work_arrived();
        let mut job = job;
        job.spec.secrets = JobSecrets::default();
        Ok(job)
    }

    /// One job with its attempts and, if it is queued with no online agent able to
    /// run it, why.
    ///
    /// # Errors
    /// `NotFound("job")`; store failures.
    pub async fn job(&self, id: JobId) -> ServiceResult<JobView> {
        let detail = self
            .store
            .get_job(id)
            .await?
            .ok_or(ServiceError::NotFound("job"))?;
        let waiting_reason = if detail.job.status == JobStatus::Queued {
            self.waiting_reason(&detail.job).await?
        } else {
            None
        };
        Ok(JobView {
            detail,
            waiting_reason,
        })
    }

    /// Why no online agent can run `job`, judged from one page of online agents
    /// (at most 100: a bounded read on every `GET`; a fleet larger than that gets
    /// no reason rather than a slow answer).
    async fn waiting_reason(&self, job: &Job) -> ServiceResult<Option<String>> {
        let now = OffsetDateTime::now_utc();
        let page = self
            .store
            .list_agents(
                &AgentQuery {
                    region: None,
                    status: Some(AgentStatus::Online),
                    page: PageRequest {
                        limit: MAX_LIMIT,
                        after: None,
                    },
                },
                now,
            )
            .await?;
        if page.next_cursor.is_some() {
            return Ok(None);
        }
        let in_queue: Vec<_> = page
            .items
            .iter()
            .filter(|a| a.queue == job.spec.queue)
            .collect();
        if in_queue.is_empty() {
            return Ok(Some(format!(
                "no online agent pulls from queue `{}`",
                job.spec.queue
            )));
        }
        if !in_queue
            .iter()
            .any(|a| labels_satisfy(&a.labels, &job.spec.labels))
        {
            return Ok(Some(format!(
                "no online agent in queue `{}` has all of the labels [{}]",
                job.spec.queue,
                job.spec.labels.join(", ")
            )));
        }
        Ok(None)
    }

    /// The job, if `requester` may change it: its submitter, or an admin.
    /// [`ServiceError::Forbidden`] with `refusal` otherwise.
    async fn owned_job(
        &self,
        requester: Requester,
        id: JobId,
        refusal: &'static str,
    ) -> ServiceResult<JobDetail> {
        let detail = self
            .store
            .get_job(id)
            .await?
            .ok_or(ServiceError::NotFound("job"))?;
        if !requester.admin && detail.job.created_by != requester.user {
            return Err(ServiceError::Forbidden(refusal));
        }
        Ok(detail)
    }

    /// Cancels a job for `requester`: `canceled` at once if queued, `canceling` if
    /// an agent holds it (the agent stops the script and reports `canceled`).
    /// Members may cancel the jobs they submitted; admins any job.
    ///
    /// # Errors
    /// `NotFound("job")`; `Forbidden` for a member's cancel of someone else's
    /// job; an illegal transition if it already finished or is already
    /// canceling; store failures.
    pub async fn cancel_job(
        &self,
        caller: &Caller,
        requester: Requester,
        id: JobId,
    ) -> ServiceResult<Job> {
        // The target depends on the status, and an agent may move the job between
        // the read and the write. The store's conditional write then refuses, and
        // the cancel is worked out again from the new status; a handful of rounds
        // is plenty, since every move is forward.
        let mut rounds_left = 4;
        loop {
            let detail = self
                .owned_job(
                    requester,
                    id,
                    "members may cancel only the jobs they submitted; ask an admin",
                )
                .await?;
            let from = detail.job.status;
            let Some(to) = cancel_target(from) else {
                return Err(IllegalTransition {
                    from,
                    to: JobStatus::Canceled,
                }
                .into());
            };
            let audit = caller.event(AuditAction::JobCanceled, id, Some(format!("{from} → {to}")));
            match self
                .store
                .transition_job(id, to, OffsetDateTime::now_utc(), &audit)
                .await
            {
                Ok(job) => {
                    self.log_grew();
                    self.job_changed();
                    return Ok(job);
                }
                Err(StoreError::IllegalTransition(t)) if t.from != from && rounds_left > 1 => {
                    rounds_left -= 1;
                }
                Err(err) => return Err(ServiceError::or_not_found("job")(err)),
            }
        }
    }

    /// Retries a finished job for `requester` with `secrets` (see the module
    /// docs): it goes back to its queue, keeping its attempts, and waiting claims
    /// are woken. Members may retry the jobs they submitted; admins any job.
    /// Returns the job as the retry left it (queued, its attempts so far).
    ///
    /// # Errors
    /// `NotFound("job")`; `Forbidden` for a member's retry of someone else's job;
    /// an illegal transition for a job that is not final (or that another retry
    /// re-queued first); `Conflict(AttemptsExhausted)` for a job with no room for
    /// another retry; `Invalid` for secrets that are missing, unknown or out of
    /// bounds; store failures.
    pub async fn retry_job(
        &self,
        caller: &Caller,
        requester: Requester,
        id: JobId,
        secrets: JobSecrets,
    ) -> ServiceResult<JobView> {
        let detail = self
            .owned_job(
                requester,
                id,
                "members may retry only the jobs they submitted; ask an admin",
            )
            .await?;
        let from = detail.job.status;
        check_retry(from)?;
        // The store checks this again in its write; here it comes before the
        // secrets, which a job out of room could not use anyway.
        if !detail.job.retry_budget().has_room_for_a_retry() {
            return Err(ServiceError::Conflict(Conflict::AttemptsExhausted {
                attempts: detail.job.attempt_count,
            }));
        }
        detail.job.check_retry_secrets(&secrets)?;
        // A retry always re-queues, and its write is conditional on the attempt
        // count read, so the next attempt is known before the write.
        let audit = caller.event(
            AuditAction::JobRetried,
            id,
            Some(format!(
                "{from} → {}; attempt {} next",
                JobStatus::Queued,
                detail.job.attempt_count + 1
            )),
        );
        let job = self
            .store
            .retry_job(id, &secrets, OffsetDateTime::now_utc(), &audit)
            .await
            .map_err(ServiceError::or_not_found("job"))?;
        self.work_arrived();
        // The retry has happened: a failure to say why the job waits must not turn
        // it into an error, which would invite the client to retry it again.
        let waiting_reason = match self.waiting_reason(&job).await {
            Ok(reason) => reason,
            Err(err) => {
                tracing::warn!(job.id = %id, error = %err, "could not tell why the retried job waits");
                None
            }
        };
        Ok(JobView {
            // Attempts are never rewritten, and none is added until the next claim.
            detail: JobDetail {
                job,
                attempts: detail.attempts,
            },
            waiting_reason,
        })
    }

    /// Up to [`LOG_READ_MAX_BYTES`] of an attempt's log from `offset` (the latest
    /// attempt when none is named).
    ///
    /// # Errors
    /// `NotFound("job")`, `NotFound("attempt")`; store failures.
    pub async fn read_log(
        &self,
        id: JobId,
        attempt: Option<u32>,
        offset: u64,
        max_bytes: usize,
    ) -> ServiceResult<LogRead> {
        let detail = self
            .store
            .get_job(id)
            .await?
            .ok_or(ServiceError::NotFound("job"))?;
        let chosen = match attempt {
            Some(n) => Some(
                detail
                    .attempts
                    .iter()
                    .find(|a| a.number == n)
                    .ok_or(ServiceError::NotFound("attempt"))?,
            ),
            None => detail.attempts.last(),
        };
        let Some(chosen) = chosen else {
            // Never claimed: nothing yet, and nothing ever if the job is final.
            return Ok(LogRead {
                attempt: None,
                slice: LogSlice {
                    data: Vec::new(),
                    next_offset: offset,
                    size: 0,
                },
                complete: detail.job.status.is_terminal(),
            });
        };
        let slice = self
            .logs
            .read_log(id, chosen.number, offset, max_bytes.min(LOG_READ_MAX_BYTES))
            .await
            .map_err(ServiceError::or_not_found("attempt"))?;
        Ok(LogRead {
            attempt: Some(chosen.number),
            complete: chosen.status.is_terminal() && slice.next_offset >= slice.size,
            slice,
        })
    }
}
