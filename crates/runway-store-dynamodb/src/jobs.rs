//! Jobs, their attempts, and the lifecycle writes they share with `dispatch.rs`.
//!
//! ## Attempts live inside the job item
//!
//! A job's attempts are a list attribute of the job item, not items of their own:
//!
//! * `get_job` is one strongly consistent `GetItem` that returns the job and its
//!   attempts as one snapshot (SQLite needs a read transaction for the same);
//! * a lifecycle write moves the job and its latest attempt in one update
//!   (`SET #status = :to, #attempts[N].#status = :to, …`), atomic by itself; it is
//!   sent in a `TransactWriteItems` with its audit event's put (`audit.rs`) and,
//!   where the agent's `held` set must move with it (below), the agent's update;
//!   only a lease renewal, which is not audited, is still a plain `UpdateItem`;
//! * the list stays small: a job has at most `limits::ATTEMPTS_MAX` (50) attempts,
//!   because a user's retry that could go past it is refused, and an attempt is
//!   about 250 bytes, so even the longest history is ~12 KB next to a spec of up
//!   to 300 KiB, within the item's 400 KB.
//!
//! ## Every lifecycle write: read, decide in code, write conditionally
//!
//! `transition_job` and the dispatch calls all follow one pattern. They read the
//! job (strongly consistent), decide the next state in code (`lifecycle::check`,
//! `lifecycle::settle`), build the new item in memory, and write the difference
//! with `ConditionExpression: #status = :read_status AND #attempt_count = :read_n`.
//! If another writer got there first the condition fails and the loop reads again;
//! each failed round means someone else's write succeeded, so the loop ends (it is
//! capped anyway, and a cap reached is `Unavailable`, contention, not a bug).
//!
//! The difference always includes the sparse index keys, derived from the new
//! item by [`JobItem::index_keys`] and written or removed in the same `UpdateItem`
//! ([`lifecycle_expr`]), so no index lists a job under a state it has left for
//! longer than the index's own lag:
//!
//! * `claim_queue`/`claim_rank` (`claimable`) exist exactly while the job is
//!   `queued`, with the job's original rank when a lost job is re-queued;
//! * `lease_pk`/`lease_expires` (`by_lease`) exist while the job is `queued`
//!   (partition `queue`, sorted by when it was queued: the queue TTL's clock) and
//!   while an agent holds it (partition `lease`, sorted by when the attempt is due:
//!   the earlier of its lease's end and its deadline), with `lease_agent`;
//! * a job that becomes final loses its `secrets` attribute in the same write.
//!
//! Attempt fields are written one by one (`#attempts[2].#lease_expires_at = …`),
//! never the whole attempt map, so a lifecycle write and a log append (which
//! advances `log_bytes` under its own condition, `logs.rs`) never undo each other.
//!
//! `retry_job`, a user's retry of a final job, follows the same pattern with
//! `lifecycle::check_retry` and `RetryBudget::has_room_for_a_retry` (which keeps
//! the attempts list, and so the item, within its size): one `UpdateItem` sets
//! `queued` (and with it the claim and queue index keys), the supplied `secrets`
//! and `retried_at_attempt = attempt_count`, conditional on the final status and
//! attempt count read. Of two racing retries one passes the condition; the other
//! reads `queued` on its next round and is refused. No attempt is touched.
//!
//! ## Leaving a held status releases the agent's capacity
//!
//! A claim adds `<job>#<attempt>` to the agent's `held` string set in the claim's
//! transaction (`dispatch.rs`). Any write that moves a job out of a held status
//! (`claimed`, `running`, `canceling`) takes the member out again in the same
//! `TransactWriteItems`, whether it is `end_attempt` or a `transition_job` (the
//! lifecycle allows `running → failed` there too). The agent's update is
//! conditional on the agent existing (an `UpdateItem` of a missing key would create
//! it); if the agent has been deleted, that condition fails and the write is done
//! again without it: a deleted agent has no capacity left to release.
//!
//! ## A retried write that finds itself
//!
//! The SDK retries a write whose response was lost, and the retry then fails the
//! condition on our own update. `transition_job` recognises that on its next
//! round: the job is where we asked and stamped with our `now` (to the
//! nanosecond); that check stays, though every audited write is now a
//! transaction. A `TransactWriteItems` carries an idempotency token
//! (`ClientRequestToken`, filled in by the SDK once per call and reused by its
//! retries), so DynamoDB itself answers a retried transaction with success.
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
use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use runway_core::audit::AuditEvent;
use runway_core::id::{AgentId, JobId};
use runway_core::job::{Job, JobDetail, JobSecrets};
use runway_core::lifecycle::{self, JobStatus};
use runway_core::page::Page;
use runway_core::store::{Conflict, JobQuery, JobStore, RecordKind, StoreError, StoreResult};
use time::OffsetDateTime;

use crate::DynamoStore;
use crate::audit;
use crate::error::{
    RETRY_AFTER, cancellation_codes, cancellation_reasons, failed_condition, is_condition_failure,
    sdk_error, transaction_error,
};
use crate::expr::Expr;
use crate::items::{
    HELD, Item, JOB_LIST_PK, JobItem, from_item, held_member, nanos, number, string, to_item,
    to_value,
};
use crate::page::{IndexQuery, Seek};
use crate::schema::{
    AGENT_ID, BY_CREATED, BY_STATUS, CLAIM_QUEUE, CLAIM_RANK, JOB_ID, LEASE_AGENT, LEASE_EXPIRES,
    LEASE_PK, LIST_PK, STATUS,
};

/// Conditional-write rounds before a lifecycle write gives up.
pub(crate) const MAX_ROUNDS: usize = 64;

/// A lifecycle write lost [`MAX_ROUNDS`] races in a row.
#[derive(Debug, thiserror::Error)]
#[error("job {0} kept changing under a write; gave up after {MAX_ROUNDS} rounds")]
pub(crate) struct Contention(pub(crate) JobId);

pub(crate) fn decode_job(item: Item) -> StoreResult<JobItem> {
    from_item("jobs", item)
}

/// The part of a lifecycle write that every write has: the condition on the state
/// read (`before`), the status, `updated_at` and `attempt_count` if they changed,
/// the sparse index keys `after` calls for, and the secrets' removal when `after`
/// is final. The caller adds the attempt's own fields.
pub(crate) fn lifecycle_expr(before: &JobItem, after: &JobItem) -> StoreResult<Expr> {
    let mut e = Expr::new();
    let status = e.name(STATUS);
    let count = e.name("attempt_count");
    let from = e.value(string(before.status().as_str()));
    let n = e.value(number(before.attempt_count));
    e.condition(&format!("{status} = {from} AND {count} = {n}"));
    if after.status() != before.status() {
        e.set(status, string(after.status().as_str()));
    }
    if after.updated_at() != before.updated_at() {
        let path = e.name("updated_at");
        e.set(path, number(nanos(after.updated_at())?));
    }
    if after.attempt_count != before.attempt_count {
        e.set(count, number(after.attempt_count));
    }
    let old = before.index_keys()?;
    let new = after.index_keys()?;
    // Write only what changed: a GSI key set to the value it has would still be a
    // write; a REMOVE of an absent attribute costs nothing.
    if new.claim != old.claim || new.claim.is_none() {
        match &new.claim {
            Some((queue, rank)) => {
                let (q, r) = (e.name(CLAIM_QUEUE), e.name(CLAIM_RANK));
                e.set(q, string(queue.clone()));
                e.set(r, string(rank.clone()));
            }
            None => {
                let (q, r) = (e.name(CLAIM_QUEUE), e.name(CLAIM_RANK));
                e.remove(q);
                e.remove(r);
            }
        }
    }
    if new.reaper != old.reaper || new.reaper.is_none() {
        match &new.reaper {
            Some((partition, key)) => {
                let (pk, sk) = (e.name(LEASE_PK), e.name(LEASE_EXPIRES));
                e.set(pk, string(*partition));
                e.set(sk, string(key.clone()));
            }
            None => {
                let (pk, sk) = (e.name(LEASE_PK), e.name(LEASE_EXPIRES));
                e.remove(pk);
                e.remove(sk);
            }
        }
    }
    if new.lease_agent != old.lease_agent || new.lease_agent.is_none() {
        let path = e.name(LEASE_AGENT);
        match new.lease_agent {
            Some(agent) => e.set(path, string(agent.to_string())),
            None => e.remove(path),
        }
    }
    if after.status().is_terminal() {
        let path = e.name("secrets");
        e.remove(path);
    }
    Ok(e)
}

/// Sets (or, for `None`, removes) one field of attempt `index`.
pub(crate) fn set_attempt_field(
    e: &mut Expr,
    index: usize,
    field: &str,
    value: Option<AttributeValue>,
) {
    let path = e.element("attempts", index, field);
    match value {
        Some(value) => e.set(path, value),
        None => e.remove(path),
    }
}

/// How long to wait before reading again after a transaction on the same item was
/// in flight: such a conflict clears within milliseconds, and reading at once
/// would mostly find it still there.
pub(crate) const BUSY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// How a conditional write of a job (and perhaps its agent) ended.
#[derive(Debug)]
pub(crate) enum WriteOutcome {
    /// Written; the new item, when the write could return it.
    Written(Option<Item>),
    /// The job's condition failed: someone else changed it since the read.
    JobChanged,
    /// Only the agent's condition failed (the agent is gone, or refused).
    AgentRefused,
    /// A concurrent transaction touched the same item; nothing was written (and
    /// [`BUSY_BACKOFF`] has passed).
    Busy,
}

impl DynamoStore {
    pub(crate) async fn job_item(&self, id: JobId) -> StoreResult<Option<JobItem>> {
        self.get_item(&self.tables.jobs, JOB_ID, id.to_string())
            .await?
            .map(decode_job)
            .transpose()
    }

    /// The agent's `held` update releasing `member`, conditional on the agent
    /// existing (an update of a missing key would create it).
    pub(crate) fn release_update(&self, agent: AgentId, member: String) -> StoreResult<Update> {
        let mut e = Expr::new();
        let held = e.name(HELD);
        e.delete(held, AttributeValue::Ss(vec![member]));
        let id = e.name(AGENT_ID);
        e.condition(&format!("attribute_exists({id})"));
        Update::builder()
            .table_name(&self.tables.agents)
            .key(AGENT_ID, string(agent.to_string()))
            .set_update_expression(e.update_expression())
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .build()
            .map_err(StoreError::internal)
    }

    /// Writes `e` to job `id`: a plain `UpdateItem` (returning the new item) when
    /// there is neither an `agent` update nor an `audit` event (a lease renewal),
    /// else one `TransactWriteItems` of the job's update, the agent's and the
    /// event's put, in that order. A taken event id is
    /// `Conflict::Exists(AuditEvent)`, unless the job's or the agent's condition
    /// failed too (those are decided first).
    pub(crate) async fn write_job(
        &self,
        id: JobId,
        e: &Expr,
        agent: Option<Update>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<WriteOutcome> {
        if agent.is_none() && audit.is_none() {
            let result = self
                .client
                .update_item()
                .table_name(&self.tables.jobs)
                .key(JOB_ID, string(id.to_string()))
                .set_update_expression(e.update_expression())
                .set_condition_expression(e.condition_expression())
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            return match result {
                Ok(output) => Ok(WriteOutcome::Written(output.attributes)),
                Err(err) if is_condition_failure(&err) => Ok(WriteOutcome::JobChanged),
                Err(err) if err.code() == Some("TransactionConflictException") => {
                    tokio::time::sleep(BUSY_BACKOFF).await;
                    Ok(WriteOutcome::Busy)
                }
                Err(err) => Err(sdk_error(err)),
            };
        }
        let job = Update::builder()
            .table_name(&self.tables.jobs)
            .key(JOB_ID, string(id.to_string()))
            .set_update_expression(e.update_expression())
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .build()
            .map_err(StoreError::internal)?;
        let has_agent = agent.is_some();
        let mut items = vec![TransactWriteItem::builder().update(job).build()];
        if let Some(agent) = agent {
            items.push(TransactWriteItem::builder().update(agent).build());
        }
        if let Some(event) = audit {
            items.push(self.put_event(event)?);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(WriteOutcome::Written(None)),
            Err(err) => match cancellation_codes(&err) {
                Some(codes) if failed(&codes, 0) => Ok(WriteOutcome::JobChanged),
                Some(codes) if has_agent && failed(&codes, 1) => Ok(WriteOutcome::AgentRefused),
                Some(codes) if failed(&codes, 1 + usize::from(has_agent)) => Err(audit::taken()),
                Some(codes) if codes.contains(&"TransactionConflict") => {
                    tokio::time::sleep(BUSY_BACKOFF).await;
                    Ok(WriteOutcome::Busy)
                }
                _ => Err(transaction_error(err)),
            },
        }
    }
}

/// Whether action `i` of a canceled transaction failed its condition.
fn failed(codes: &[&str], i: usize) -> bool {
    codes.get(i) == Some(&"ConditionalCheckFailed")
}

/// What one round of `transition_job` wrote.
struct Transition {
    after: JobItem,
    expr: Expr,
    /// The agent whose `held` set loses the attempt, and the member.
    release: Option<(AgentId, String)>,
}

fn transition(before: &JobItem, to: JobStatus, now: OffsetDateTime) -> StoreResult<Transition> {
    let from = before.status();
    let mut after = before.clone();
    after.status = to;
    after.updated_at = now;
    let leaves_hold = lifecycle::is_held(from) && !lifecycle::is_held(to);
    // Only a live attempt moves with the job: once a job is back in the queue (or
    // final) its latest attempt is finished and keeps the status it ended with.
    let latest = after
        .attempts
        .len()
        .checked_sub(1)
        .filter(|_| lifecycle::is_held(from));
    let mut release = None;
    if let Some(i) = latest {
        after.attempts[i].status = to;
        if leaves_hold {
            after.attempts[i].lease_expires_at = None;
            release = Some((
                after.attempts[i].agent_id,
                held_member(after.id(), after.attempts[i].number),
            ));
        }
    }
    if to.is_terminal() {
        after.drop_secrets();
    }
    let keys = after.index_keys()?;
    after.set_index_keys(&keys);
    let mut expr = lifecycle_expr(before, &after)?;
    if let Some(i) = latest {
        set_attempt_field(&mut expr, i, STATUS, Some(string(to.as_str())));
        if leaves_hold {
            set_attempt_field(&mut expr, i, "lease_expires_at", None);
        }
    }
    Ok(Transition {
        after,
        expr,
        release,
    })
}

/// What one round of `retry_job` writes: the job back to `queued`, claimable
/// (the claim and queue index keys come back with the status), its secrets set
/// from the retry, and its automatic-retry budget reset. Its attempts are not
/// touched.
fn retry(
    before: &JobItem,
    secrets: &JobSecrets,
    now: OffsetDateTime,
) -> StoreResult<(JobItem, Expr)> {
    let to = lifecycle::check_retry(before.status())?;
    if !before.retry_budget().has_room_for_a_retry() {
        return Err(Conflict::AttemptsExhausted {
            attempts: before.attempt_count,
        }
        .into());
    }
    let mut after = before.clone();
    after.status = to;
    after.updated_at = now;
    after.retried_at_attempt = before.attempt_count;
    after.set_secrets(secrets);
    let keys = after.index_keys()?;
    after.set_index_keys(&keys);
    let mut expr = lifecycle_expr(before, &after)?;
    let retried_at = expr.name("retried_at_attempt");
    expr.set(retried_at, number(after.retried_at_attempt));
    let path = expr.name("secrets");
    if secrets.is_empty() {
        expr.remove(path);
    } else {
        let map: std::collections::BTreeMap<&str, &str> = secrets.iter().collect();
        expr.set(path, to_value("jobs", &map)?);
    }
    Ok((after, expr))
}

/// Whether `item` is what our own retry at `now` left: the SDK retried the write
/// after its response was lost, and the retry failed the condition on our own
/// update. Only asked after this call has sent a write; `now` is the caller's
/// clock to the nanosecond, so another user's retry does not look like ours.
fn retried_by_us(item: &JobItem, now: OffsetDateTime) -> bool {
    item.status() == JobStatus::Queued
        && item.updated_at() == now
        && item.retried_at_attempt == item.attempt_count
}

#[async_trait]
impl JobStore for DynamoStore {
    /// One `TransactWriteItems`: the job's `Put` with `attribute_not_exists` and
    /// its event's. A retry of a transaction whose response was lost finds its own
    /// event (`audit::landed`) and is success.
    async fn create_job(&self, job: &Job, audit: &AuditEvent) -> StoreResult<()> {
        let item = to_item("jobs", &JobItem::new(job)?)?;
        let put = Put::builder()
            .table_name(&self.tables.jobs)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", JOB_ID)
            .build()
            .map_err(StoreError::internal)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(self.put_event(audit)?)
            .send()
            .await;
        let Err(err) = result else {
            return Ok(());
        };
        // Our own transaction, retried after its response was lost.
        if let Some(reasons) = cancellation_reasons(&err)
            && audit::landed(reasons, 1, audit)?
        {
            return Ok(());
        }
        match failed_condition(&err) {
            Some(0) => Err(Conflict::Exists(RecordKind::Job).into()),
            Some(_) => Err(audit::taken()),
            None => Err(transaction_error(err)),
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

    /// One round per read: `lifecycle::check`, then the conditional write that
    /// `transition` builds; a single `UpdateItem`, or a `TransactWriteItems` with the
    /// agent's `held` update when the job leaves a held status (see the module docs).
    async fn transition_job(
        &self,
        id: JobId,
        to: JobStatus,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job> {
        let mut agent_gone = false;
        for _ in 0..MAX_ROUNDS {
            let current = self.job_item(id).await?.ok_or(StoreError::NotFound)?;
            let from = current.status();
            // This very write already landed: the SDK retried it after its response
            // was lost, and the retry failed the condition on our own update. The
            // job is where we asked, stamped with our `now` (to the nanosecond), so
            // it is our success, not someone else's `IllegalTransition { to, to }`.
            if from == to && current.updated_at() == now {
                return Ok(current.into_job());
            }
            lifecycle::check(from, to)?;
            let Transition {
                after,
                expr,
                release,
            } = transition(&current, to, now)?;
            let agent = match release {
                Some((agent, member)) if !agent_gone => Some(self.release_update(agent, member)?),
                _ => None,
            };
            match self.write_job(id, &expr, agent, Some(audit)).await? {
                WriteOutcome::Written(Some(item)) => {
                    return decode_job(item).map(JobItem::into_job);
                }
                WriteOutcome::Written(None) => return Ok(after.into_job()),
                // Another writer moved the job (or deleted it) since the read.
                WriteOutcome::JobChanged | WriteOutcome::Busy => {}
                WriteOutcome::AgentRefused => agent_gone = true,
            }
        }
        Err(StoreError::unavailable(Contention(id), Some(RETRY_AFTER)))
    }

    /// One round per read: `lifecycle::check_retry`, then one `UpdateItem`
    /// conditional on the final status and attempt count read (see `retry`). No
    /// agent is involved: a final job holds no capacity.
    async fn retry_job(
        &self,
        id: JobId,
        secrets: &JobSecrets,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job> {
        let mut sent = false;
        for _ in 0..MAX_ROUNDS {
            let current = self.job_item(id).await?.ok_or(StoreError::NotFound)?;
            if sent && retried_by_us(&current, now) {
                return Ok(current.into_job());
            }
            let (after, expr) = retry(&current, secrets, now)?;
            sent = true;
            match self.write_job(id, &expr, None, Some(audit)).await? {
                WriteOutcome::Written(Some(item)) => {
                    return decode_job(item).map(JobItem::into_job);
                }
                WriteOutcome::Written(None) => return Ok(after.into_job()),
                // Another writer (another retry, say) moved the job since the read.
                WriteOutcome::JobChanged | WriteOutcome::Busy | WriteOutcome::AgentRefused => {}
            }
        }
        Err(StoreError::unavailable(Contention(id), Some(RETRY_AFTER)))
    }
}

/// `to_value` for the attempts list element type, for callers that append one.
pub(crate) fn attempt_value(attempt: &crate::items::AttemptItem) -> StoreResult<AttributeValue> {
    to_value("jobs", attempt)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use runway_core::id::UserId;
    use runway_core::job::JobSpec;
    use runway_core::secret::TokenHash;

    use super::*;
    use crate::items::AttemptItem;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(1_750_000_000_123_456_789).unwrap()
    }

    fn queued() -> JobItem {
        let spec = JobSpec {
            name: "build".into(),
            script: "make".into(),
            env: BTreeMap::new(),
            labels: vec![],
            queue: "default".into(),
            priority: 0,
            timeout_seconds: 60,
            max_retries: 2,
            secrets: [("TOKEN".to_owned(), "s3cr3t".to_owned())]
                .into_iter()
                .collect(),
        };
        JobItem::new(&Job::new(spec, UserId::new(), t0())).unwrap()
    }

    fn held(status: JobStatus) -> JobItem {
        let mut item = queued();
        item.status = status;
        item.attempt_count = 1;
        item.attempts.push(AttemptItem::claimed(
            1,
            AgentId::new(),
            TokenHash::of("rwj_x"),
            t0() + time::Duration::minutes(2),
            t0(),
        ));
        let keys = item.index_keys().unwrap();
        item.set_index_keys(&keys);
        item
    }

    #[test]
    fn a_cancel_of_a_queued_job_removes_its_claim_and_queue_keys_and_its_secrets() {
        let before = queued();
        let t = transition(
            &before,
            JobStatus::Canceled,
            t0() + time::Duration::seconds(1),
        )
        .unwrap();
        assert_eq!(
            t.expr.update_expression().as_deref(),
            Some(
                "SET #status = :v2, #updated_at = :v3 \
                 REMOVE #claim_queue, #claim_rank, #lease_pk, #lease_expires, #lease_agent, #secrets"
            )
        );
        assert!(t.release.is_none(), "nobody held it");
        assert!(t.after.index_keys().unwrap() == Default::default());
    }

    #[test]
    fn a_cancel_request_keeps_the_lease_and_the_agents_hold() {
        let before = held(JobStatus::Running);
        let t = transition(&before, JobStatus::Canceling, t0()).unwrap();
        let update = t.expr.update_expression().unwrap();
        assert!(!update.contains("#lease_pk"), "{update}");
        assert!(!update.contains("#secrets"), "{update}");
        assert!(update.contains("#attempts[0].#status"), "{update}");
        assert!(t.release.is_none());
    }

    #[test]
    fn leaving_a_held_status_drops_the_lease_and_releases_the_agent() {
        let before = held(JobStatus::Running);
        let agent = before.attempts[0].agent_id;
        let t = transition(&before, JobStatus::Failed, t0()).unwrap();
        let update = t.expr.update_expression().unwrap();
        for removed in ["#lease_pk", "#lease_expires", "#lease_agent", "#secrets"] {
            assert!(update.contains(removed), "{removed}: {update}");
        }
        assert!(update.contains("REMOVE") && update.contains("#attempts[0].#lease_expires_at"));
        assert_eq!(
            t.release,
            Some((agent, held_member(before.id(), 1))),
            "the agent's capacity comes back in the same transaction"
        );
    }

    #[test]
    fn a_retry_requeues_with_the_claim_keys_the_new_secrets_and_a_fresh_budget() {
        let mut before = held(JobStatus::Running);
        before.status = JobStatus::Failed;
        before.attempts[0].status = JobStatus::Failed;
        before.attempts[0].lease_expires_at = None;
        before.drop_secrets();
        before.set_index_keys(&Default::default());
        let secrets: JobSecrets = [("TOKEN".to_owned(), "new".to_owned())]
            .into_iter()
            .collect();
        let at = t0() + time::Duration::minutes(5);
        let (after, e) = retry(&before, &secrets, at).unwrap();
        assert_eq!(
            e.condition_expression().as_deref(),
            Some("(#status = :v0 AND #attempt_count = :v1)")
        );
        let update = e.update_expression().unwrap();
        for set in [
            "#status",
            "#updated_at",
            "#claim_queue",
            "#claim_rank",
            "#lease_pk",
            "#retried_at_attempt",
            "#secrets",
        ] {
            assert!(update.contains(set), "{set}: {update}");
        }
        assert!(
            !update.contains("#attempts"),
            "attempts are never rewritten: {update}"
        );
        assert!(!update.contains("#attempt_count ="), "{update}");
        assert_eq!(after.retried_at_attempt, 1);
        assert_eq!(after.retry_budget().attempts_since_retry(), 0);
        assert_eq!(after.into_claimed_job().spec.secrets, secrets);

        let mut running = held(JobStatus::Running);
        assert!(matches!(
            retry(&running, &secrets, at),
            Err(StoreError::IllegalTransition(_))
        ));
        running.status = JobStatus::Queued;
        assert!(
            retry(&running, &secrets, at).is_err(),
            "a queued job is not final"
        );
    }

    #[test]
    fn the_condition_is_the_status_and_attempt_count_read() {
        let before = held(JobStatus::Claimed);
        let t = transition(&before, JobStatus::Running, t0()).unwrap();
        assert_eq!(
            t.expr.condition_expression().as_deref(),
            Some("(#status = :v0 AND #attempt_count = :v1)")
        );
    }
}
