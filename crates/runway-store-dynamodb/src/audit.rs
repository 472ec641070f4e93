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
//!   items by consistent `BatchGetItem`. The index is eventually consistent, so an
//!   event appended a moment ago can be missing from the first page for a moment;
//!   events never change, so nothing listed is ever stale.
//!
//! The one index partition takes about 1,000 writes a second, one per mutation
//! anywhere in Runway; sharding `list_pk` (as for jobs) is the step if that is
//! ever near.

use async_trait::async_trait;
use runway_core::audit::AuditEvent;
use runway_core::page::Page;
use runway_core::store::{AuditQuery, AuditStore, Conflict, RecordKind, StoreError, StoreResult};

use crate::items::{AUDIT_LIST_PK, AuditItem, Item, from_item, string, to_item};
use crate::page::{IndexQuery, Seek};
use crate::schema::{AUDIT_ID, BY_CREATED, LIST_PK};
use crate::{DynamoStore, PutNew};

fn decode_audit(item: Item) -> StoreResult<AuditItem> {
    from_item("audit", item)
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
        let seek = Seek::new(&query.page)?;
        let index = IndexQuery {
            table: &self.tables.audit,
            index: BY_CREATED,
            partition: (LIST_PK, string(AUDIT_LIST_PK)),
            id: AUDIT_ID,
            filtered: false,
        };
        let items = self
            .list_index(&index, &seek, decode_audit, |_: &AuditItem| true)
            .await?;
        let events = items
            .into_iter()
            .map(AuditItem::into_event)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(seek.finish(events, |e: &AuditEvent| e.id.to_string()))
    }
}
