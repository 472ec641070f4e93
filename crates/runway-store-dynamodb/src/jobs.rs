//! Jobs, their attempts, and the lifecycle write.
//!
//! ## Attempts live inside the job item
//!
//! A job's attempts are a list attribute of the job item, not items of their own:
//!
//! * `get_job` is one strongly consistent `GetItem` that returns the job and its
//!   attempts as one snapshot (SQLite needs a read transaction for the same);
//! * a transition moves the job and its latest attempt in one `UpdateItem`
//!   (`SET #status = :to, attempts[N].#status = :to`), atomic without the doubled
//!   cost of `TransactWriteItems`;
//! * the list stays small: retries are capped at 10, an attempt is about 150 bytes,
//!   so even the longest history is ~2 KB next to a script of up to 64 KiB.
//!
//! ## Transitions
//!
//! `transition_job` reads the job (strongly consistent), asks `lifecycle::check`,
//! then writes with `ConditionExpression: #status = :from AND size(attempts) = :n`.
//! If another writer got there first the condition fails and the loop reads again:
//! the loser of a `queued → claimed` race then sees `claimed` and gets
//! `IllegalTransition { from: claimed, to: claimed }`, exactly like SQLite. Each
//! failed round means someone else's write succeeded, so the loop ends; it is capped
//! anyway, and a cap reached is reported as `Unavailable` (contention), not a bug.
//!
//! The same `UpdateItem` keeps the sparse claim and lease keys in step with the
//! status, so no index can list a job under a state it has left for longer than
//! the index's own lag:
//!
//! * leaving `queued` removes `claim_queue` and `claim_rank` (the `claimable`
//!   entry goes); going back to `queued` (a lost attempt with retries left) sets
//!   them again, with the job's original rank;
//! * moving to a status in which no agent holds the job (`queued` or a terminal
//!   one) removes `lease_pk` and `lease_expires` (the `by_lease` entry). Nothing
//!   writes those yet: the claim and lease calls of the agent protocol will, and
//!   this removal is already in place for them. Removing an absent attribute costs
//!   nothing and writes no index.
//!
//! ## Claiming, expired leases and the queue TTL (the agent protocol's calls)
//!
//! * Claimable jobs for an agent: `Query claimable` with `claim_queue = <its
//!   queue>`, ascending (highest priority, then oldest), labels checked in code on
//!   the projected `labels` (the job's labels must all be among the agent's), then
//!   the claim as a transition `queued → claimed`, conditional on `#status =
//!   :queued`: exactly once, however stale the index entry was.
//! * Expired leases: `Query by_lease` with `lease_pk = "lease" AND lease_expires <
//!   :now` (19-digit nanoseconds), oldest expiry first.
//! * Queued past the queue TTL: `Query by_status` with `status = "queued" AND
//!   job_id < :cutoff` ascending, where `:cutoff` is the ULID of the cutoff instant
//!   with a zero random part; the reaper re-reads each job and judges its age from
//!   `updated_at`, so a retried job (old id, re-queued lately) is not expired early.
//!
//! ## Listing
//!
//! `by_created` (`list_pk = "job"`, `job_id`) for all jobs and `by_status`
//! (`status`, `job_id`) for one status, both `KEYS_ONLY`, newest first, then the
//! items by consistent `BatchGetItem` with the status checked again on the fresh
//! item: the index may still list a job under the status it just left. One
//! constant `list_pk` puts every job in one index partition, which takes about
//! 1,000 writes a second: job creations, not transitions (those change no
//! `by_created` key). Sharding it (`job#0`…`job#N`, merged on read) is the next
//! step if a deployment ever gets near that.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use runway_core::id::JobId;
use runway_core::job::{Job, JobDetail};
use runway_core::lifecycle::{self, JobStatus};
use runway_core::page::Page;
use runway_core::store::{JobQuery, JobStore, StoreError, StoreResult};
use time::OffsetDateTime;

use crate::error::{RETRY_AFTER, is_condition_failure, sdk_error};
use crate::items::{Item, JOB_LIST_PK, JobItem, from_item, nanos, number, string, to_item};
use crate::page::{IndexQuery, Seek};
use crate::schema::{
    BY_CREATED, BY_STATUS, CLAIM_QUEUE, CLAIM_RANK, JOB_ID, LEASE_EXPIRES, LEASE_PK, LIST_PK,
    STATUS,
};
use crate::{DynamoStore, PutNew};

/// Whether an agent holds a job in `status`, and so whether it has a lease (and a
/// `by_lease` entry, once the agent protocol writes them).
const fn holds_lease(status: JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Claimed | JobStatus::Running | JobStatus::Canceling
    )
}

/// The `UpdateExpression` of a move to `to`: the status, `updated_at`, the latest
/// attempt's status, and the sparse index keys that follow from the new status.
#[derive(Debug)]
struct TransitionUpdate {
    /// Index of the latest attempt, if any.
    latest: Option<usize>,
    /// The job becomes claimable: set `claim_queue` and `claim_rank`; otherwise
    /// they are removed (a no-op, and no index write, when they are absent).
    queued: bool,
    /// No agent holds the job any more: remove `lease_pk` and `lease_expires`.
    drops_lease: bool,
}

impl TransitionUpdate {
    fn new(to: JobStatus, attempts: usize) -> Self {
        Self {
            latest: attempts.checked_sub(1),
            queued: to == JobStatus::Queued,
            drops_lease: !holds_lease(to),
        }
    }

    /// Uses `:to`, `:now`, and `:claim_queue`/`:claim_rank` when `queued`;
    /// `#status`, `#claim_queue`, `#claim_rank`, and `#lease_pk`/`#lease_expires`
    /// when `drops_lease`.
    fn expression(&self) -> String {
        let mut set = String::from("#status = :to, updated_at = :now");
        if let Some(latest) = self.latest {
            set.push_str(&format!(", attempts[{latest}].#status = :to"));
        }
        let mut remove = Vec::new();
        if self.queued {
            set.push_str(", #claim_queue = :claim_queue, #claim_rank = :claim_rank");
        } else {
            remove.extend(["#claim_queue", "#claim_rank"]);
        }
        if self.drops_lease {
            remove.extend(["#lease_pk", "#lease_expires"]);
        }
        if remove.is_empty() {
            format!("SET {set}")
        } else {
            format!("SET {set} REMOVE {}", remove.join(", "))
        }
    }
}

/// Conditional-write rounds before `transition_job` gives up.
const MAX_ROUNDS: usize = 64;

/// `transition_job` lost [`MAX_ROUNDS`] races in a row.
#[derive(Debug, thiserror::Error)]
#[error("job {0} kept changing under a transition; gave up after {MAX_ROUNDS} rounds")]
struct Contention(JobId);

fn decode_job(item: Item) -> StoreResult<JobItem> {
    from_item("jobs", item)
}

impl DynamoStore {
    async fn job_item(&self, id: JobId) -> StoreResult<Option<JobItem>> {
        self.get_item(&self.tables.jobs, JOB_ID, id.to_string())
            .await?
            .map(decode_job)
            .transpose()
    }
}

#[async_trait]
impl JobStore for DynamoStore {
    async fn create_job(&self, job: &Job) -> StoreResult<()> {
        let item = to_item("jobs", &JobItem::new(job))?;
        match self.put_if_absent(&self.tables.jobs, item, JOB_ID).await? {
            PutNew::Written => Ok(()),
            PutNew::Taken => Err(StoreError::Conflict(format!("job {} exists", job.id))),
        }
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<JobDetail>> {
        Ok(self.job_item(id).await?.map(JobItem::into_detail))
    }

    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<Page<Job>> {
        let seek = Seek::new(&query.page)?;
        let index = IndexQuery {
            table: &self.tables.jobs,
            index: if query.status.is_some() {
                BY_STATUS
            } else {
                BY_CREATED
            },
            partition: match query.status {
                Some(status) => (STATUS, string(status.as_str())),
                None => (LIST_PK, string(JOB_LIST_PK)),
            },
            id: JOB_ID,
            filtered: false,
        };
        let jobs = self
            .list_index(&index, &seek, decode_job, |job: &JobItem| {
                query.status.is_none_or(|status| job.status() == status)
            })
            .await?;
        let jobs = jobs.into_iter().map(JobItem::into_job).collect();
        Ok(seek.finish(jobs, |j: &Job| j.id.to_string()))
    }

    async fn transition_job(
        &self,
        id: JobId,
        to: JobStatus,
        now: OffsetDateTime,
    ) -> StoreResult<Job> {
        let stamp = now;
        let now = number(nanos(now)?);
        for _ in 0..MAX_ROUNDS {
            let current = self.job_item(id).await?.ok_or(StoreError::NotFound)?;
            let from = current.status();
            // This very write already landed: the SDK retried it after its response
            // was lost, and the retry failed the condition on our own update. The
            // job is where we asked, stamped with our `now` (to the nanosecond), so
            // it is our success, not someone else's `IllegalTransition { to, to }`.
            if from == to && current.updated_at() == stamp {
                return Ok(current.into_job());
            }
            lifecycle::check(from, to)?;
            let attempts = current.attempts_len();
            let update = TransitionUpdate::new(to, attempts);
            let mut request = self
                .client
                .update_item()
                .table_name(&self.tables.jobs)
                .key(JOB_ID, string(id.to_string()))
                .update_expression(update.expression())
                .condition_expression("#status = :from AND size(attempts) = :attempts")
                .expression_attribute_names("#status", STATUS)
                .expression_attribute_names("#claim_queue", CLAIM_QUEUE)
                .expression_attribute_names("#claim_rank", CLAIM_RANK)
                .expression_attribute_values(":to", string(to.as_str()))
                .expression_attribute_values(":from", string(from.as_str()))
                .expression_attribute_values(":now", now.clone())
                .expression_attribute_values(":attempts", number(attempts))
                .return_values(ReturnValue::AllNew);
            if update.queued {
                request = request
                    .expression_attribute_values(":claim_queue", string(current.queue()))
                    .expression_attribute_values(":claim_rank", string(current.rank()));
            }
            if update.drops_lease {
                request = request
                    .expression_attribute_names("#lease_pk", LEASE_PK)
                    .expression_attribute_names("#lease_expires", LEASE_EXPIRES);
            }
            let result = request.send().await;
            match result {
                Ok(output) => {
                    return decode_job(output.attributes.unwrap_or_default())
                        .map(JobItem::into_job);
                }
                // Another writer moved the job (or deleted it) since the read.
                Err(err) if is_condition_failure(&err) => {}
                Err(err) => return Err(sdk_error(err)),
            }
        }
        Err(StoreError::unavailable(Contention(id), Some(RETRY_AFTER)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaving_queued_for_a_claim_removes_the_claim_keys_and_keeps_any_lease() {
        assert_eq!(
            TransitionUpdate::new(JobStatus::Claimed, 1).expression(),
            "SET #status = :to, updated_at = :now, attempts[0].#status = :to \
             REMOVE #claim_queue, #claim_rank"
        );
    }

    #[test]
    fn a_cancel_or_a_finish_removes_the_claim_keys_and_the_lease() {
        for to in [JobStatus::Canceled, JobStatus::Succeeded, JobStatus::Lost] {
            assert_eq!(
                TransitionUpdate::new(to, 0).expression(),
                "SET #status = :to, updated_at = :now \
                 REMOVE #claim_queue, #claim_rank, #lease_pk, #lease_expires",
                "{to}"
            );
        }
    }

    #[test]
    fn going_back_to_queued_sets_the_claim_keys_and_drops_the_lease() {
        assert_eq!(
            TransitionUpdate::new(JobStatus::Queued, 2).expression(),
            "SET #status = :to, updated_at = :now, attempts[1].#status = :to, \
             #claim_queue = :claim_queue, #claim_rank = :claim_rank \
             REMOVE #lease_pk, #lease_expires"
        );
    }

    #[test]
    fn exactly_the_statuses_in_which_an_agent_holds_the_job_keep_a_lease() {
        let holding: Vec<_> = JobStatus::ALL
            .into_iter()
            .filter(|s| holds_lease(*s))
            .collect();
        assert_eq!(
            holding,
            [JobStatus::Claimed, JobStatus::Running, JobStatus::Canceling]
        );
    }
}
