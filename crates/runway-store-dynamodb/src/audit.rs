//! The audit log: append, and list newest first.
//!
//! One table, `audit`, keyed by `audit_id` (a ULID), with the `KEYS_ONLY`
//! `by_created` index (`list_pk = "audit"`, `audit_id`) for the newest-first
//! listing, exactly like jobs and agents.
//!
//! * **Append** is one `PutItem` with `attribute_not_exists(audit_id)`: an event is
//!   written once and a second event with its id is `Conflict`, leaving the first
//!   untouched. Nothing in this crate updates or deletes an audit item, and the
//!   function's IAM policy (`deploy/terraform`) grants only `PutItem` and reads on
//!   this table, so append-only holds even against a bug elsewhere.
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
use aws_sdk_dynamodb::types::TransactWriteItem;
use runway_core::audit::{ActorFilter, AuditEvent};
use runway_core::page::Page;
use runway_core::store::{AuditQuery, AuditStore, Conflict, RecordKind, StoreError, StoreResult};

use crate::items::{AUDIT_LIST_PK, AuditItem, Item, from_item, string, to_item};
use crate::page::{IndexQuery, Seek};
use crate::schema::{ACTOR_ID, AUDIT_ID, BY_ACTOR, BY_CREATED, BY_SUBJECT, LIST_PK, SUBJECT};
use crate::{DynamoStore, PutNew};

/// A `Put` of `event` into the audit table `table`, conditional on its id being
/// free, as an action of the `TransactWriteItems` of the change it records, so
/// the two land together or not at all. Checks [`AuditEvent::validate`] first.
pub(crate) fn put_event(table: &str, event: &AuditEvent) -> StoreResult<TransactWriteItem> {
    event.validate().map_err(StoreError::internal)?;
    let item = to_item("audit", &AuditItem::from(event))?;
    crate::accounts::put_new(table, item, AUDIT_ID)
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
