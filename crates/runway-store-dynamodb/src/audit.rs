//! The audit log: append, and list newest first.
//!
//! One table, `audit`, keyed by `audit_id` (a ULID), with the `KEYS_ONLY`
//! `by_created` index (`list_pk = "audit"`, `audit_id`) for the newest-first
//! listing, exactly like jobs and agents.
//!
//! * **With its change.** An audited write is one `TransactWriteItems` whose
//!   last action(s) are [`DynamoStore::put_event`]: a `Put` of the event with
//!   `attribute_not_exists(audit_id)`. The change and its event land together or
//!   not at all; a write that was one `UpdateItem` or `PutItem` is now a
//!   transaction of two items (2 WCU each, so about four times the cost of the
//!   write alone; `docs/dynamodb.md`). Each call site reads the transaction's
//!   `CancellationReasons` by position, so a failed condition on the change keeps
//!   its own meaning, and one on the event is `Conflict::Exists(AuditEvent)`
//!   ([`event_taken`]). A retried transaction is answered by DynamoDB itself,
//!   through the SDK's idempotency token; where a call has no other way to
//!   recognise its own write, the event put returns the item it failed on
//!   (`ALL_OLD`), and an event identical to its own means the transaction landed
//!   ([`landed`]).
//! * **Append** alone (`append_audit`, for an event with no change of its own,
//!   such as a refused sign-in) is one `PutItem` with the same condition. An event
//!   is written once and a second event with its id is `Conflict`, leaving the
//!   first untouched. Nothing in this crate updates or deletes an audit item, and
//!   the function's IAM policy (`deploy/terraform`) grants only `PutItem` (and the
//!   transaction's put) and reads on this table, so append-only holds even
//!   against a bug elsewhere.
//! * **List** is the shared `page.rs` listing: the index newest first, then the
//!   items by consistent `BatchGetItem`. A subject filter lists the sparse
//!   `by_subject` index, an actor filter `by_actor` (both `KEYS_ONLY`, keyed by the
//!   attribute and `audit_id`); a time range is an id range in the key condition;
//!   the action and whatever else the index does not narrow is checked on each
//!   event, within the bounded read of `page.rs` (a page examines at most 1,000
//!   events and may come back short with a cursor). The index is eventually consistent, so an
//!   event appended a moment ago can be missing from the first page for a moment;
//!   events never change, so nothing listed is ever stale.
//!
//! The one index partition takes about 1,000 writes a second, one per mutation
//! anywhere in Runway; sharding `list_pk` (as for jobs) is the step if that is
//! ever near.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use runway_core::audit::{ActorFilter, AuditEvent};
use runway_core::page::Page;
use runway_core::store::{AuditQuery, AuditStore, Conflict, RecordKind, StoreError, StoreResult};

use crate::items::{AUDIT_LIST_PK, AuditItem, Item, from_item, string, to_item};
use crate::page::{IndexQuery, Seek};
use crate::schema::{ACTOR_ID, AUDIT_ID, BY_ACTOR, BY_CREATED, BY_SUBJECT, LIST_PK, SUBJECT};
use crate::{DynamoStore, PutNew};

impl DynamoStore {
    /// The `Put` of `event` for the `TransactWriteItems` of the change it records:
    /// conditional on its id being free, after checking [`AuditEvent::validate`]
    /// (an event out of bounds is a bug: `Internal`, and nothing is written).
    pub(crate) fn put_event(&self, event: &AuditEvent) -> StoreResult<TransactWriteItem> {
        event.validate().map_err(StoreError::internal)?;
        let put = Put::builder()
            .table_name(&self.tables.audit)
            .set_item(Some(to_item("audit", &AuditItem::from(event))?))
            .condition_expression("attribute_not_exists(#audit_id)")
            .expression_attribute_names("#audit_id", AUDIT_ID)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(StoreError::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

/// Whether a canceled transaction failed on an event's put: one of the actions
/// from `first_event` on (the events come last) failed its condition. The caller
/// asks after its own actions' reasons, which take precedence.
pub(crate) fn event_taken(reasons: &[CancellationReason], first_event: usize) -> bool {
    reasons
        .iter()
        .skip(first_event)
        .any(|reason| reason.code() == Some("ConditionalCheckFailed"))
}

/// Whether the event put at `index` of a canceled transaction failed on an item
/// identical to `event`: then this very transaction landed before (the SDK retried
/// it after its response was lost, and moto ignores the idempotency token), since
/// an event is written only with its change and every event has a fresh id. Asked
/// by calls that have no other way to recognise their own write.
pub(crate) fn landed(
    reasons: &[CancellationReason],
    index: usize,
    event: &AuditEvent,
) -> StoreResult<bool> {
    let Some(found) = reasons.get(index).and_then(CancellationReason::item) else {
        return Ok(false);
    };
    Ok(*found == to_item("audit", &AuditItem::from(event))?)
}

/// The error of a change whose event's id is taken.
pub(crate) fn taken() -> StoreError {
    Conflict::Exists(RecordKind::AuditEvent).into()
}

fn decode_event(item: Item) -> StoreResult<AuditEvent> {
    from_item::<AuditItem>("audit", item)?.into_event()
}

#[async_trait]
impl AuditStore for DynamoStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        event.validate().map_err(StoreError::internal)?;
        let item = to_item("audit", &AuditItem::from(event))?;
        match self
            .put_if_absent(&self.tables.audit, item, AUDIT_ID)
            .await?
        {
            PutNew::Written => Ok(()),
            PutNew::Taken => Err(Conflict::Exists(RecordKind::AuditEvent).into()),
        }
    }

    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent>> {
        let filter = &query.filter;
        let (lowest, below) = filter.id_range();
        let seek = Seek::new(&query.page)?.within(lowest, below);
        // The most selective index the filter allows; whatever it leaves is
        // checked on each event, and the index's own key again (it may lag).
        let partition = match (&filter.subject, filter.actor) {
            (Some(subject), _) => (BY_SUBJECT, (SUBJECT, string(subject.clone()))),
            (None, Some(ActorFilter::Id(id))) => (BY_ACTOR, (ACTOR_ID, string(id.to_string()))),
            _ => (BY_CREATED, (LIST_PK, string(AUDIT_LIST_PK))),
        };
        let narrows_further = filter.action.is_some()
            || filter.since.is_some()
            || filter.until.is_some()
            || matches!(filter.actor, Some(ActorFilter::System))
            || (filter.subject.is_some() && filter.actor.is_some());
        let index = IndexQuery {
            table: &self.tables.audit,
            index: partition.0,
            partition: partition.1,
            id: AUDIT_ID,
            filtered: narrows_further,
        };
        let listed = self
            .list_index_bounded(&index, &seek, decode_event, |event: &AuditEvent| {
                filter.matches(event)
            })
            .await?;
        Ok(seek.finish_bounded(listed, |e: &AuditEvent| e.id.to_string()))
    }
}
