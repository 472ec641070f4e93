//! Claiming and running jobs: `DispatchStore` on DynamoDB.
//!
//! ## The claim: a query, then one transaction per candidate
//!
//! 1. `Query claimable` with `claim_queue = <the agent's queue>`, ascending (highest
//!    priority, then oldest): first [`FIRST_PAGE`] entries, the head of the queue
//!    where nearly every claim ends, then pages of [`LATER_PAGE`] for an agent whose
//!    labels pass over many jobs. The index projects `labels`, so jobs the agent
//!    cannot run ([`labels_satisfy`]) are skipped without reading them.
//! 2. For a candidate, a strongly consistent `GetItem` of the job: a stale index
//!    entry (claimed a moment ago) is skipped here without a write, and the item is
//!    what the claim returns (secrets included), so nothing is read after the write.
//! 3. One `TransactWriteItems` of three actions (the third is the claim's audit
//!    event, `AuditEvent::of_claim`, put only if its id is free):
//!    * the job: `SET #status = claimed, #attempt_count = n + 1, #attempts =
//!      list_append(#attempts, :attempt)`, the lease keys (`lease_pk = "lease"`,
//!      `lease_expires` = when the attempt is due, `lease_agent`), `REMOVE` the
//!      claim keys and the `queue` reaper key; condition `#status = :queued AND
//!      #attempt_count = :n` (both as read in 2);
//!    * the agent: `ADD #held :member` (the string set of `<job>#<attempt>` it
//!      holds), condition `attribute_exists(agent_id) AND (attribute_not_exists(state)
//!      OR state = :active) AND (attribute_not_exists(held) OR size(held) <
//!      capacity)`: state and capacity are checked in the claim's own write, against
//!      the stored agent, however stale the caller's copy was.
//!
//!    A transaction that fails without an answer (timeouts or 5xx, after the
//!    SDK's retries) may have landed all the same: the claim reads the job once
//!    and returns the claim if it is its own, rather than leaving an attempt that
//!    nobody runs to hold the job and the agent's capacity until its lease ends.
//! 4. The job's condition failed: another agent won (the job's update asks for
//!    the item it failed on, `ReturnValuesOnConditionCheckFailure=ALL_OLD`, so
//!    telling a lost race from our own retried write needs no read). Another
//!    candidate is tried (the next page when this one is used up), up to
//!    [`MAX_CANDIDATES`] transactions and [`MAX_PAGES`] pages, then `Ok(None)`:
//!    the agent polls again. The agent's condition failed: it is paused, draining,
//!    full or deleted, and no other job would change that: `Ok(None)` at once.
//!
//! **Contending claims spread out.** Every claim of a queue reads the same head,
//! so claims that run at once would all try the first job, all but one lose a
//! transaction, then all try the second, and so on. Instead a claim picks at
//! random among the first few candidates of the head's priority ([`SPREAD`] at
//! most) once it has evidence of contention: other claims of the same queue in
//! flight in this process (`runway serve` with many agents), or a race it has
//! already lost (a Lambda instance serves one request at a time, so there only
//! the loss says so). A claim with neither takes the head, so claims one after
//! another keep the exact order; among concurrent claims the order is only ever
//! loosened within one priority, never across priorities.
//!
//! Exactly once: two claims of one job cannot both pass `#status = :queued AND
//! #attempt_count = :n`, and a transaction is all or nothing, so an agent's `held`
//! set never counts a job it did not get.
//!
//! **Leases and capacity.** An attempt counts against its agent's capacity from its
//! claim until the write that ends it (`end_attempt`, or a `transition_job` out of a
//! held status), not until its lease runs out: an expired lease is the reaper's
//! signal, and until the reaper has ended the attempt the agent may still be running
//! it. The reaper runs opportunistically on claims too, so that window is short.
//!
//! ## The `by_lease` index: one key condition for the reaper
//!
//! `lease_expires` of a held job is the attempt's **due** time, `min(lease end,
//! Attempt::deadline)`, as a 19-digit nanosecond string then `#<job_id>`. Every
//! write that changes either input (claim, `start_attempt`, `renew_lease`) rewrites
//! it, so [`DispatchStore::due_attempts`] is `lease_pk = "lease" AND lease_expires <
//! :now`, ascending: soonest due first, every entry a hit. Queued jobs have entries
//! in the partition `queue`, keyed by when they were queued, which makes
//! [`DispatchStore::stale_queued_jobs`] one key condition too. Both read the items
//! behind the entries consistently and check them again (the index lags), so a
//! lease renewed a moment ago is not reported.
//!
//! ## `held_by`: the agent's own `held` set
//!
//! One consistent `GetItem` of the agent, then the jobs it names by consistent
//! `BatchGetItem`, keeping those whose current attempt is still that agent's and
//! held. It is exact the moment a claim returns (a GSI would lag), which a heartbeat
//! comparing the agent's running jobs with the store's needs. A deleted agent has no
//! item: then the `lease` partition of `by_lease`, which projects `lease_agent`, is
//! read whole and filtered, so `held_by` still finds the jobs a deleted agent left
//! behind (for its caller to end as abandoned). That read costs ~0.5 RCU per 40 held
//! attempts in the whole deployment, and only happens after a deletion.
//!
//! ## The other calls
//!
//! `start_attempt`, `renew_lease` and `end_attempt` read the job, decide in code
//! (`lifecycle::settle` for an end), and write conditional on the status and
//! attempt count read (`jobs.rs`). A renewal (and a start that only extends the
//! lease) is one `UpdateItem`; a start that moves the job to `running` is a
//! `TransactWriteItems` with its audit event; an end is a `TransactWriteItems` with
//! the agent's `DELETE #held :member` (left out when the agent has been deleted)
//! and its audit event. A write whose response was lost is retried by
//! the SDK and fails the condition on our own write; on the next round the call
//! finds its own result (the attempt token for a claim; the status, `finished_at ==
//! now` and exit code for an end, after a write of this call) and returns it.
//!
//! `reap_attempt`, the reaper's end, is `end_attempt` checking on its fresh read
//! that the attempt is still due, and for an expired lease also conditional on
//! `#attempts[i].#lease_expires_at <= :now`: a renewal changes neither the status
//! nor the attempt count, so without that condition a lease renewed between the
//! reaper's read and its write would be ended anyway. A deadline is fixed at the
//! claim and needs no such condition.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use runway_core::agent::{AgentState, labels_satisfy};
use runway_core::audit::AuditEvent;
use runway_core::id::{AgentId, JobId};
use runway_core::job::Job;
use runway_core::lifecycle::{self, AttemptEnd, JobStatus};
use runway_core::store::{
    Claim, ClaimRequest, Conflict, DispatchStore, Due, HeldAttempt, StoreError, StoreResult,
};
use time::OffsetDateTime;

use crate::DynamoStore;
use crate::audit::{self, event_taken};
use crate::error::{RETRY_AFTER, cancellation_reasons, sdk_error, transaction_error};
use crate::expr::Expr;
use crate::items::{
    AttemptItem, HELD, Item, JobItem, LEASE_PARTITION, QUEUE_PARTITION, held_member, nanos, number,
    parse_held_member, reaper_bound, string,
};
use crate::jobs::{
    BUSY_BACKOFF, Contention, MAX_ROUNDS, WriteOutcome, attempt_value, decode_job, lifecycle_expr,
    set_attempt_field,
};
use crate::page::id_in;
use crate::schema::{
    AGENT_ID, BY_LEASE, CLAIM_QUEUE, CLAIM_RANK, CLAIMABLE, JOB_ID, LABELS, LEASE_AGENT,
    LEASE_EXPIRES, LEASE_PK,
};

/// Entries of `claimable` read by a claim's first `Query`: the head of the queue,
/// where nearly every claim ends, with room for the claims that run at once to
/// spread over ([`SPREAD`]).
const FIRST_PAGE: i32 = 10;
/// Entries read per `Query` page after the first, for an agent whose labels pass
/// over many queued jobs.
const LATER_PAGE: i32 = 50;
/// The most candidates (of one priority) that contending claims spread over.
const SPREAD: usize = 8;
/// Claim transactions one `claim_job` call tries before it gives up for this poll.
const MAX_CANDIDATES: usize = 32;
/// `claimable` pages one `claim_job` call reads before it gives up for this poll.
const MAX_PAGES: usize = 8;
/// `by_lease` entries read per page by the reaper's queries.
const REAPER_PAGE: i32 = 100;
/// Pages the reaper's queries read before they return what they found.
const REAPER_PAGES: usize = 10;

/// A `claimable` entry.
struct Candidate {
    id: JobId,
    labels: Vec<String>,
    /// The entry's `claim_rank`: the priority band is what precedes its `#`.
    rank: String,
}

impl Candidate {
    fn priority_band(&self) -> &str {
        self.rank.split_once('#').map_or("", |(band, _)| band)
    }
}

/// Which of the `open` candidates (in claim order) to try next: the first, unless
/// the claim should spread over `spread` of them; then one at random among the
/// first `spread` that share the first one's priority.
fn pick(open: &[Candidate], spread: usize) -> usize {
    let Some(first) = open.first() else {
        return 0;
    };
    let window = open
        .iter()
        .take(spread)
        .take_while(|c| c.priority_band() == first.priority_band())
        .count();
    if window <= 1 {
        return 0;
    }
    // A fresh `RandomState` is freshly keyed: its empty hash is a random number,
    // which is all a spread needs (no `rand` dependency for one number).
    let random = std::hash::BuildHasher::build_hasher(&std::hash::RandomState::new());
    let random = std::hash::Hasher::finish(&random);
    usize::try_from(random % window as u64).unwrap_or(0)
}

/// What one candidate came to.
enum Attempted {
    Claimed(Box<Claim>),
    /// Someone else has it, or it changed: try the next one.
    Lost,
    /// The agent may not claim (state, capacity, gone).
    Refused,
}

/// The claim `item` records for `request`, if it is `request`'s own: how a claim
/// whose response was lost recognises its write (the SDK's retry failed the
/// condition on it). The job token is minted per claim, so this is exact.
fn own_claim(item: JobItem, request: &ClaimRequest) -> Option<Claim> {
    let attempt = item.attempts.last()?;
    let ours = lifecycle::is_held(item.status())
        && attempt.number == item.attempt_count
        && attempt.agent_id == request.agent.id
        && attempt.job_token_hash == request.job_token;
    if !ours {
        return None;
    }
    let attempt = attempt.to_attempt();
    Some(Claim {
        job: item.into_claimed_job(),
        attempt,
    })
}

impl DynamoStore {
    /// One claim transaction for `id` (steps 2 and 3 of the module docs).
    async fn claim_one(
        &self,
        id: JobId,
        request: &ClaimRequest,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Attempted> {
        let agent = &request.agent;
        for _ in 0..4 {
            let Some(before) = self.job_item(id).await? else {
                return Ok(Attempted::Lost);
            };
            if before.status() != JobStatus::Queued
                || before.queue() != agent.queue
                || !labels_satisfy(&agent.labels, before.labels())
            {
                return Ok(Attempted::Lost);
            }
            let number = before.attempt_count + 1;
            let attempt = AttemptItem::claimed(
                number,
                agent.id,
                request.job_token.clone(),
                request.lease_expires_at,
                now,
            );
            let mut after = before.clone();
            after.status = JobStatus::Claimed;
            after.updated_at = now;
            after.attempt_count = number;
            after.attempts.push(attempt.clone());
            let keys = after.index_keys()?;
            after.set_index_keys(&keys);
            let mut e = lifecycle_expr(&before, &after)?;
            let attempts = e.name("attempts");
            let empty = e.value(AttributeValue::L(vec![]));
            let new = e.value(AttributeValue::L(vec![attempt_value(&attempt)?]));
            e.set_to(
                attempts.clone(),
                &format!("list_append(if_not_exists({attempts}, {empty}), {new})"),
            );
            let job = Update::builder()
                .table_name(&self.tables.jobs)
                .key(JOB_ID, string(id.to_string()))
                .set_update_expression(e.update_expression())
                .set_condition_expression(e.condition_expression())
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(StoreError::internal)?;
            let hold = self.hold_update(agent.id, held_member(id, number))?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(job).build())
                .transact_items(TransactWriteItem::builder().update(hold).build())
                .transact_items(self.put_event(&audit.of_claim(id, number))?)
                .send()
                .await;
            let reasons = match result {
                Ok(_) => {
                    return Ok(Attempted::Claimed(Box::new(Claim {
                        attempt: attempt.to_attempt(),
                        job: after.into_claimed_job(),
                    })));
                }
                Err(err) => match cancellation_reasons(&err) {
                    Some(reasons) => reasons.to_vec(),
                    // No answer after the SDK's retries (timeouts, 5xx): the write
                    // may have landed all the same. Unrecognised, such a claim would
                    // hold the job and the agent's capacity for a whole lease with
                    // nobody running it, so look once before giving up.
                    None => {
                        if let Ok(Some(item)) = self.job_item(id).await
                            && let Some(claim) = own_claim(item, request)
                        {
                            return Ok(Attempted::Claimed(Box::new(claim)));
                        }
                        return Err(transaction_error(err));
                    }
                },
            };
            let code = |i: usize| reasons.get(i).and_then(CancellationReason::code);
            if code(0) == Some("ConditionalCheckFailed") {
                // Someone else's claim, or our own whose response was lost (the
                // SDK's retry then fails on our write): the job token in the item
                // the condition failed on tells.
                let item = reasons.first().and_then(CancellationReason::item);
                let own = match item {
                    Some(item) => own_claim(decode_job(item.clone())?, request),
                    None => None,
                };
                return Ok(match own {
                    Some(claim) => Attempted::Claimed(Box::new(claim)),
                    None if code(1) == Some("ConditionalCheckFailed") => Attempted::Refused,
                    None => Attempted::Lost,
                });
            }
            if code(1) == Some("ConditionalCheckFailed") {
                return Ok(Attempted::Refused);
            }
            if event_taken(&reasons, 2) {
                return Err(audit::taken());
            }
            match (code(0), code(1)) {
                // Another agent's claim of this job was in flight: it wins.
                (Some("TransactionConflict"), _) => return Ok(Attempted::Lost),
                // This agent's own concurrent claim (of another job) was in flight:
                // its `held` set is contended, not full; read again and retry.
                (_, Some("TransactionConflict")) => {
                    tokio::time::sleep(BUSY_BACKOFF).await;
                }
                _ => {
                    return Err(StoreError::unavailable(Contention(id), Some(RETRY_AFTER)));
                }
            }
        }
        Ok(Attempted::Lost)
    }

    /// The agent's side of a claim: `ADD #held :member` if it exists, is active and
    /// holds fewer than `capacity` attempts.
    fn hold_update(&self, agent: AgentId, member: String) -> StoreResult<Update> {
        let mut e = Expr::new();
        let held = e.name(HELD);
        e.add(held.clone(), AttributeValue::Ss(vec![member]));
        let id = e.name(AGENT_ID);
        let state = e.name("state");
        let capacity = e.name("capacity");
        let active = e.value(string(AgentState::Active.as_str()));
        e.condition(&format!("attribute_exists({id})"));
        e.condition(&format!(
            "attribute_not_exists({state}) OR {state} = {active}"
        ));
        e.condition(&format!(
            "attribute_not_exists({held}) OR size({held}) < {capacity}"
        ));
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

    /// A page of up to `limit` entries of `claimable` for `queue` from `start`, in
    /// claim order, and where the next page starts.
    async fn candidates(
        &self,
        queue: &str,
        start: Option<Item>,
        limit: i32,
    ) -> StoreResult<(Vec<Candidate>, Option<Item>)> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.jobs)
            .index_name(CLAIMABLE)
            .key_condition_expression("#queue = :queue")
            .expression_attribute_names("#queue", CLAIM_QUEUE)
            .expression_attribute_values(":queue", string(queue))
            .scan_index_forward(true)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk_error)?;
        let mut candidates = Vec::new();
        for entry in output.items.unwrap_or_default() {
            let Some(id) = id_in(&entry, JOB_ID).and_then(|id| id.parse::<JobId>().ok()) else {
                continue;
            };
            let labels = match entry.get(LABELS) {
                Some(AttributeValue::L(labels)) => labels
                    .iter()
                    .filter_map(|l| l.as_s().ok().cloned())
                    .collect(),
                _ => Vec::new(),
            };
            let rank = id_in(&entry, CLAIM_RANK).unwrap_or_default();
            candidates.push(Candidate { id, labels, rank });
        }
        Ok((candidates, output.last_evaluated_key))
    }

    /// Reads the job for a dispatch write: `NotFound`, or `NotHeld` unless attempt
    /// `attempt` is the current one and the job is held.
    async fn held_job(&self, job: JobId, attempt: u32) -> StoreResult<JobItem> {
        let item = self.job_item(job).await?.ok_or(StoreError::NotFound)?;
        if item.current_attempt(attempt).is_none() || !lifecycle::is_held(item.status()) {
            return Err(Conflict::NotHeld.into());
        }
        Ok(item)
    }

    /// `start_attempt` and `renew_lease`: the lease (and, for a start of a claimed
    /// job, the status and `started_at`) of the current, held attempt.
    async fn extend(
        &self,
        job: JobId,
        attempt: u32,
        lease_expires_at: OffsetDateTime,
        start: Option<&AuditEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<Job> {
        for _ in 0..MAX_ROUNDS {
            let before = self.held_job(job, attempt).await?;
            let index = before.attempts.len() - 1;
            let mut after = before.clone();
            let starts = start.is_some() && before.status() == JobStatus::Claimed;
            if starts {
                after.status = JobStatus::Running;
                after.updated_at = now;
                after.attempts[index].status = JobStatus::Running;
                after.attempts[index].started_at = Some(now);
            }
            after.attempts[index].lease_expires_at = Some(lease_expires_at);
            let keys = after.index_keys()?;
            after.set_index_keys(&keys);
            let mut e = lifecycle_expr(&before, &after)?;
            set_attempt_field(
                &mut e,
                index,
                "lease_expires_at",
                Some(number(nanos(lease_expires_at)?)),
            );
            if starts {
                set_attempt_field(
                    &mut e,
                    index,
                    "status",
                    Some(string(JobStatus::Running.as_str())),
                );
                set_attempt_field(&mut e, index, "started_at", Some(number(nanos(now)?)));
            }
            // Only a move to running is audited; a renewal, or a start that
            // only extends the lease, stays one `UpdateItem`.
            let audit = start.filter(|_| starts);
            match self.write_job(job, &e, None, audit).await? {
                WriteOutcome::Written(Some(item)) => {
                    return decode_job(item).map(JobItem::into_job);
                }
                WriteOutcome::Written(None) => return Ok(after.into_job()),
                // Moved meanwhile (a cancel, or our own retried write): read again.
                // A start or renewal is idempotent, so finding our own write is no
                // different from finding someone else's.
                WriteOutcome::JobChanged | WriteOutcome::Busy | WriteOutcome::AgentRefused => {}
            }
        }
        Err(StoreError::unavailable(Contention(job), Some(RETRY_AFTER)))
    }

    /// Consistent reads of `ids` from `jobs`, decoded, in no particular order.
    async fn jobs_by_id(&self, ids: &[JobId]) -> StoreResult<Vec<JobItem>> {
        let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let mut found = self.batch_get(&self.tables.jobs, JOB_ID, &keys).await?;
        keys.iter()
            .filter_map(|id| found.remove(id))
            .map(decode_job)
            .collect()
    }

    /// `by_lease` entries of `partition` below `bound`, ascending, a page at a time:
    /// `(job id, lease_agent)`.
    async fn reaper_entries(
        &self,
        partition: &str,
        bound: Option<String>,
        start: Option<Item>,
    ) -> StoreResult<(Vec<(JobId, Option<String>)>, Option<Item>)> {
        let mut request = self
            .client
            .query()
            .table_name(&self.tables.jobs)
            .index_name(BY_LEASE)
            .expression_attribute_names("#pk", LEASE_PK)
            .expression_attribute_values(":pk", string(partition))
            .scan_index_forward(true)
            .limit(REAPER_PAGE)
            .set_exclusive_start_key(start);
        request = match bound {
            Some(bound) => request
                .key_condition_expression("#pk = :pk AND #due < :bound")
                .expression_attribute_names("#due", LEASE_EXPIRES)
                .expression_attribute_values(":bound", string(bound)),
            None => request.key_condition_expression("#pk = :pk"),
        };
        let output = request.send().await.map_err(sdk_error)?;
        let entries = output
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|entry| {
                let id = id_in(entry, JOB_ID)?.parse().ok()?;
                Some((id, id_in(entry, LEASE_AGENT)))
            })
            .collect();
        Ok((entries, output.last_evaluated_key))
    }

    /// The held attempts among `items` whose current attempt is `agent`'s.
    fn held_attempts(items: Vec<JobItem>, agent: Option<AgentId>) -> Vec<HeldAttempt> {
        let mut held: Vec<HeldAttempt> = items
            .into_iter()
            .filter(|item| lifecycle::is_held(item.status()))
            .filter_map(|item| {
                let current = item.attempts.last()?;
                if current.number != item.attempt_count
                    || agent.is_some_and(|agent| current.agent_id != agent)
                {
                    return None;
                }
                Some(HeldAttempt {
                    job: item.id(),
                    attempt: current.number,
                    status: item.status(),
                })
            })
            .collect();
        held.sort_by_key(|h| (h.job, h.attempt));
        held
    }
}

/// How many claims of each queue this process has in flight: the local evidence
/// that claims contend (see the module docs). One per store, shared by its clones.
#[derive(Debug, Default)]
pub(crate) struct ClaimsInFlight(Mutex<HashMap<String, usize>>);

/// A claim counted in [`ClaimsInFlight`] until dropped.
struct InFlight<'a> {
    claims: &'a ClaimsInFlight,
    queue: String,
}

impl ClaimsInFlight {
    /// Counts a claim of `queue` until the guard drops; and how many claims of it
    /// are in flight, this one included.
    fn enter(&self, queue: &str) -> (InFlight<'_>, usize) {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(queue.to_owned()).or_default();
        *count += 1;
        let now = *count;
        drop(counts);
        let guard = InFlight {
            claims: self,
            queue: queue.to_owned(),
        };
        (guard, now)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut counts = self.claims.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.queue) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.queue);
            }
        }
    }
}

/// Whether the current attempt of `item` is still `due` at `now`, on a fresh read:
/// a lease renewed since the reaper's read is not.
fn still_due(item: &JobItem, due: Due, now: OffsetDateTime) -> bool {
    match due {
        Due::LeaseExpired => item
            .attempts
            .last()
            .and_then(|a| a.lease_expires_at)
            .is_some_and(|at| at <= now),
        Due::PastDeadline => item.deadline().is_some_and(|at| at <= now),
    }
}

/// What `end_attempt` is about to write, kept to recognise it on a later round.
struct Ending {
    job: JobStatus,
    attempt: JobStatus,
    exit_code: Option<i32>,
}

impl Ending {
    /// Whether `item` is exactly what this end wrote at `now` to attempt `number`.
    fn landed(&self, item: &JobItem, number: u32, now: OffsetDateTime) -> bool {
        item.status() == self.job
            && item.updated_at() == now
            && item.current_attempt(number).is_some_and(|a| {
                a.status == self.attempt
                    && a.finished_at == Some(now)
                    && a.exit_code == self.exit_code
            })
    }
}

#[async_trait]
impl DispatchStore for DynamoStore {
    async fn claim_job(
        &self,
        request: &ClaimRequest,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Option<Claim>> {
        let agent = &request.agent;
        // The authenticated copy already says no; the write would too.
        if agent.state != AgentState::Active || agent.capacity == 0 {
            return Ok(None);
        }
        let (_in_flight, contending) = self.claims_in_flight.enter(&agent.queue);
        let mut spread = contending.min(SPREAD);
        let mut start = None;
        let mut tried = 0;
        for page in 0..MAX_PAGES {
            let limit = if page == 0 { FIRST_PAGE } else { LATER_PAGE };
            let (candidates, next) = self.candidates(&agent.queue, start, limit).await?;
            let mut open: Vec<Candidate> = candidates
                .into_iter()
                .filter(|c| labels_satisfy(&agent.labels, &c.labels))
                .collect();
            while !open.is_empty() {
                let candidate = open.remove(pick(&open, spread));
                match self.claim_one(candidate.id, request, now, audit).await? {
                    Attempted::Claimed(claim) => return Ok(Some(*claim)),
                    Attempted::Refused => return Ok(None),
                    // Contended: spread the next try.
                    Attempted::Lost => spread = SPREAD,
                }
                tried += 1;
                if tried >= MAX_CANDIDATES {
                    return Ok(None);
                }
            }
            match next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(None)
    }

    async fn start_attempt(
        &self,
        job: JobId,
        attempt: u32,
        lease_expires_at: OffsetDateTime,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job> {
        self.extend(job, attempt, lease_expires_at, Some(audit), now)
            .await
    }

    async fn renew_lease(
        &self,
        job: JobId,
        attempt: u32,
        lease_expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<Job> {
        self.extend(job, attempt, lease_expires_at, None, now).await
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
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        // Due at or before `now`: every key whose 19 digits are below those of
        // the next nanosecond.
        let bound = reaper_bound(now + time::Duration::nanoseconds(1))?;
        let mut due: Vec<(OffsetDateTime, HeldAttempt)> = Vec::new();
        let mut start = None;
        for _ in 0..REAPER_PAGES {
            let (entries, next) = self
                .reaper_entries(LEASE_PARTITION, Some(bound.clone()), start)
                .await?;
            let ids: Vec<JobId> = entries.into_iter().map(|(id, _)| id).collect();
            for item in self.jobs_by_id(&ids).await? {
                // Checked again on the fresh item: a renewal the index has not
                // caught up with yet is not due.
                let Some(at) = item.due_at().filter(|at| *at <= now) else {
                    continue;
                };
                if let Some(held) = Self::held_attempts(vec![item], None).pop() {
                    due.push((at, held));
                }
            }
            match next {
                Some(key) if due.len() < limit => start = Some(key),
                _ => break,
            }
        }
        due.sort_by_key(|(at, held)| (*at, held.job));
        Ok(due.into_iter().take(limit).map(|(_, held)| held).collect())
    }

    async fn stale_queued_jobs(
        &self,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<JobId>> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let bound = reaper_bound(cutoff)?;
        let mut stale: Vec<(OffsetDateTime, JobId)> = Vec::new();
        let mut start = None;
        for _ in 0..REAPER_PAGES {
            let (entries, next) = self
                .reaper_entries(QUEUE_PARTITION, Some(bound.clone()), start)
                .await?;
            let ids: Vec<JobId> = entries.into_iter().map(|(id, _)| id).collect();
            for item in self.jobs_by_id(&ids).await? {
                if item.status() == JobStatus::Queued && item.updated_at() < cutoff {
                    stale.push((item.updated_at(), item.id()));
                }
            }
            match next {
                Some(key) if stale.len() < limit => start = Some(key),
                _ => break,
            }
        }
        stale.sort();
        Ok(stale.into_iter().take(limit).map(|(_, id)| id).collect())
    }

    async fn held_by(&self, agent: AgentId) -> StoreResult<Vec<HeldAttempt>> {
        let item = self
            .client
            .get_item()
            .table_name(&self.tables.agents)
            .key(AGENT_ID, string(agent.to_string()))
            .consistent_read(true)
            .projection_expression("#id, #held")
            .expression_attribute_names("#id", AGENT_ID)
            .expression_attribute_names("#held", HELD)
            .send()
            .await
            .map_err(sdk_error)?
            .item;
        let ids: Vec<JobId> = match item {
            Some(mut item) => match item.remove(HELD) {
                Some(AttributeValue::Ss(members)) => members
                    .iter()
                    .filter_map(|m| parse_held_member(m))
                    .map(|(job, _)| job)
                    .collect(),
                _ => Vec::new(),
            },
            // Deleted: what the reaper's index says it held (module docs).
            None => self.held_by_deleted(agent).await?,
        };
        let items = self.jobs_by_id(&ids).await?;
        Ok(Self::held_attempts(items, Some(agent)))
    }
}

impl DynamoStore {
    /// `end_attempt`, and for the reaper (`due`) also conditional on the attempt
    /// still being due at `now` (see the module docs). `audit` goes in the same
    /// transaction.
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
        let mut agent_gone = false;
        let mut sent: Option<Ending> = None;
        for _ in 0..MAX_ROUNDS {
            let before = self.job_item(job).await?.ok_or(StoreError::NotFound)?;
            if let Some(ending) = &sent
                && ending.landed(&before, attempt, now)
            {
                return Ok(before.into_job());
            }
            if before.current_attempt(attempt).is_none() || !lifecycle::is_held(before.status()) {
                return Err(Conflict::NotHeld.into());
            }
            if due.is_some_and(|due| !still_due(&before, due, now)) {
                return Err(Conflict::NotHeld.into());
            }
            let settlement = lifecycle::settle(before.status(), end, before.retry_budget())?;
            let index = before.attempts.len() - 1;
            let mut after = before.clone();
            after.status = settlement.job;
            after.updated_at = now;
            let current = &mut after.attempts[index];
            current.status = settlement.attempt;
            current.finished_at = Some(now);
            current.exit_code = exit_code;
            current.lease_expires_at = None;
            let agent = current.agent_id;
            if settlement.job.is_terminal() {
                after.drop_secrets();
            }
            let keys = after.index_keys()?;
            after.set_index_keys(&keys);
            let mut e = lifecycle_expr(&before, &after)?;
            set_attempt_field(
                &mut e,
                index,
                "status",
                Some(string(settlement.attempt.as_str())),
            );
            set_attempt_field(&mut e, index, "finished_at", Some(number(nanos(now)?)));
            set_attempt_field(&mut e, index, "exit_code", exit_code.map(number));
            set_attempt_field(&mut e, index, "lease_expires_at", None);
            if due == Some(Due::LeaseExpired) {
                // A renewal writes this field and nothing the condition above
                // reads, so it is checked here, in the same write.
                let lease = e.element("attempts", index, "lease_expires_at");
                let cutoff = e.value(number(nanos(now)?));
                e.condition(&format!("{lease} <= {cutoff}"));
            }
            let release = if agent_gone {
                None
            } else {
                Some(self.release_update(agent, held_member(job, attempt))?)
            };
            sent = Some(Ending {
                job: settlement.job,
                attempt: settlement.attempt,
                exit_code,
            });
            match self.write_job(job, &e, release, Some(audit)).await? {
                WriteOutcome::Written(Some(item)) => {
                    return decode_job(item).map(JobItem::into_job);
                }
                WriteOutcome::Written(None) => return Ok(after.into_job()),
                WriteOutcome::JobChanged | WriteOutcome::Busy => {}
                // The agent was deleted: nothing holds its capacity any more.
                WriteOutcome::AgentRefused => agent_gone = true,
            }
        }
        Err(StoreError::unavailable(Contention(job), Some(RETRY_AFTER)))
    }

    /// The jobs whose `by_lease` entry names `agent`: every page of the `lease`
    /// partition (not only the first [`REAPER_PAGES`]: this must be complete).
    async fn held_by_deleted(&self, agent: AgentId) -> StoreResult<Vec<JobId>> {
        let agent = agent.to_string();
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let (entries, next) = self.reaper_entries(LEASE_PARTITION, None, start).await?;
            ids.extend(
                entries
                    .into_iter()
                    .filter(|(_, holder)| holder.as_deref() == Some(agent.as_str()))
                    .map(|(id, _)| id),
            );
            match next {
                Some(key) => start = Some(key),
                None => return Ok(ids),
            }
        }
    }
}
