//! The audit log: append, and list newest first.
//!
//! `audit_events` (migration 3) is append-only. This module holds its only SQL:
//! one `INSERT` and one keyset `SELECT`, with no `UPDATE` or `DELETE` anywhere, and
//! triggers in the schema refuse either from any other connection. A duplicate id
//! is a PRIMARY KEY violation, hence `Conflict`, and the stored event is left as it
//! was (a plain `INSERT`, never `OR REPLACE`).
//!
//! Listing is the keyset seek of every listing ([`Seek::select`]): `ORDER BY id
//! DESC` on the primary key, so newest first (ids are ULIDs) at the same cost on
//! every page. A filter adds exact `WHERE` conditions; the actor, action and
//! subject each have an index ending in `id` (migration 8), so a filtered page is a
//! keyset seek on that index, and a time range is also an id range.
//!
//! **With its change.** [`insert_event`] is called by every audited write inside
//! its own transaction, after the change: the event commits with the change (one
//! commit, one fsync, at the store's `synchronous=FULL`) or rolls back with it, a
//! taken id included. `append_audit` is only for events with no change of their
//! own (a refused sign-in), and commits the same way.

use async_trait::async_trait;
use runway_core::audit::{ActorFilter, AuditEvent, AuditFilter};
use runway_core::page::Page;
use runway_core::store::{AuditQuery, AuditStore, Conflict, RecordKind, StoreError, StoreResult};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter};

use crate::SqliteStore;
use crate::error::store_error_or_conflict;
use crate::page::Seek;
use crate::rows::{self, AUDIT_COLUMNS, ts};

/// Inserts `event` on `conn`, which is inside the transaction of the change it
/// records: the change and its event commit together or not at all. Checks
/// [`AuditEvent::validate`] first (an event out of bounds is a bug: `Internal`,
/// and the caller's transaction rolls back). A duplicate id is
/// `Conflict::Exists(AuditEvent)`, and the stored event is left as it was.
pub(crate) fn insert_event(conn: &rusqlite::Connection, event: &AuditEvent) -> StoreResult<()> {
    event.validate().map_err(StoreError::internal)?;
    let at = ts(event.at)?;
    conn.prepare_cached(&format!(
        "INSERT INTO audit_events ({AUDIT_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))
    .and_then(|mut stmt| {
        stmt.execute(params![
            event.id.to_string(),
            at,
            event.actor.kind(),
            event.actor.id(),
            event.actor.name(),
            event.action.as_str(),
            event.subject,
            event.request_id,
            event.detail,
        ])
    })
    .map_err(|e| store_error_or_conflict(e, |_| Conflict::Exists(RecordKind::AuditEvent)))?;
    Ok(())
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        event.validate().map_err(StoreError::internal)?;
        let event = event.clone();
        self.db.write(move |conn| insert_event(conn, &event)).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent>> {
        let seek = Seek::new(&query.page)?;
        let (conditions, mut values) = filter_conditions(&query.filter)?;
        let sql = seek.select(AUDIT_COLUMNS, "audit_events", conditions, &mut values);
        let events = self.db.read(|conn| {
            conn.prepare_cached(&sql)?
                .query_map(params_from_iter(values), rows::audit_event)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(seek.finish(events, |e| e.id.to_string()))
    }
}

/// The `WHERE` conditions of `filter`, and their values in order.
///
/// Every condition is exact, so SQLite returns exactly the matching events; the id
/// range from [`AuditFilter::id_range`] is there so that a time range is a range of
/// the primary key (or of the index SQLite picks) rather than a scan.
fn filter_conditions(filter: &AuditFilter) -> StoreResult<(Vec<&'static str>, Vec<Value>)> {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    match filter.actor {
        Some(ActorFilter::System) => conditions.push("actor_kind = 'system'"),
        Some(ActorFilter::Id(id)) => {
            conditions.push("actor_id = ?");
            values.push(Value::Text(id.to_string()));
        }
        None => {}
    }
    if let Some(action) = filter.action {
        conditions.push("action = ?");
        values.push(Value::Text(action.as_str().to_owned()));
    }
    if let Some(subject) = &filter.subject {
        conditions.push("subject = ?");
        values.push(Value::Text(subject.clone()));
    }
    let (lowest, below) = filter.id_range();
    if let Some(lowest) = lowest {
        conditions.push("id >= ?");
        values.push(Value::Text(lowest.to_string()));
    }
    if let Some(below) = below {
        conditions.push("id < ?");
        values.push(Value::Text(below.to_string()));
    }
    if let Some(since) = filter.since {
        conditions.push("at >= ?");
        values.push(Value::Integer(ts(since)?));
    }
    if let Some(until) = filter.until {
        conditions.push("at < ?");
        values.push(Value::Integer(ts(until)?));
    }
    Ok((conditions, values))
}

#[cfg(test)]
mod tests {
    use runway_core::page::{Cursor, PageRequest};
    use rusqlite::types::Value;

    use super::*;

    #[test]
    fn the_audit_listing_walks_the_primary_key_backwards_without_sorting() {
        for page in [
            PageRequest::default(),
            PageRequest {
                limit: 10,
                after: Some(Cursor(ulid::Ulid::new().to_string())),
            },
        ] {
            let seek = Seek::new(&page).unwrap();
            let mut values: Vec<Value> = Vec::new();
            let sql = seek.select(AUDIT_COLUMNS, "audit_events", Vec::new(), &mut values);
            let plan = crate::query_plans::plan(&sql, values);
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    #[test]
    fn each_audit_filter_seeks_an_index_instead_of_scanning_the_log() {
        use runway_core::audit::{ActorFilter, AuditAction};
        let now = time::OffsetDateTime::now_utc();
        let filters = [
            AuditFilter {
                actor: Some(ActorFilter::Id(ulid::Ulid::new())),
                ..AuditFilter::default()
            },
            AuditFilter {
                action: Some(AuditAction::JobCanceled),
                ..AuditFilter::default()
            },
            AuditFilter {
                subject: Some(ulid::Ulid::new().to_string()),
                ..AuditFilter::default()
            },
            AuditFilter {
                since: Some(now - time::Duration::hours(1)),
                until: Some(now),
                ..AuditFilter::default()
            },
        ];
        for filter in filters {
            let seek = Seek::new(&PageRequest::default()).unwrap();
            let (conditions, mut values) = filter_conditions(&filter).unwrap();
            let sql = seek.select(AUDIT_COLUMNS, "audit_events", conditions, &mut values);
            let plan = crate::query_plans::plan(&sql, values);
            assert!(plan.contains("SEARCH"), "{filter:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{filter:?}: {plan}");
        }
    }

    #[tokio::test]
    async fn an_event_with_a_taken_id_is_a_conflict_and_leaves_the_first_as_it_was() {
        use runway_core::audit::{Actor, AuditAction};
        let dir = tempfile::tempdir().unwrap();
        let store = crate::open(&dir.path().join("runway.db")).unwrap();
        let event = AuditEvent::new(
            Actor::System,
            AuditAction::UserCreated,
            None,
            time::OffsetDateTime::now_utc(),
        );
        store.append_audit(&event).await.unwrap();
        let mut other = event.clone();
        other.action = AuditAction::JobCreated;
        let duplicate = store.append_audit(&other).await.unwrap_err();
        assert!(
            matches!(
                duplicate,
                StoreError::Conflict(Conflict::Exists(RecordKind::AuditEvent))
            ),
            "{duplicate:?}"
        );
        let listed = store.list_audit(&AuditQuery::default()).await.unwrap();
        assert_eq!(listed.items, vec![event]);
    }
}
