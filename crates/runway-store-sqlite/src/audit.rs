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
//! **Durability.** An append commits with `synchronous=NORMAL` instead of the
//! store's `FULL`: in WAL mode the event is in the log as soon as it commits, safe
//! from a crash of the process, and it reaches the disk with the next `FULL`
//! commit's fsync (the WAL is one file, synced as a whole) or a checkpoint. Only a
//! power cut or kernel crash within that window can lose it, and the API already
//! appends an event *after* the change it records, so a crash between the two
//! could lose it anyway. What this buys: every audited mutation costs one fsync,
//! not two, which is what write throughput (`POST /api/v1/jobs`) is bound by.

use async_trait::async_trait;
use runway_core::audit::{ActorFilter, AuditEvent, AuditFilter};
use runway_core::page::Page;
use runway_core::store::{AuditQuery, AuditStore, Conflict, RecordKind, StoreError, StoreResult};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter};

use crate::SqliteStore;
use crate::error::{store_error, store_error_or_conflict};
use crate::page::Seek;
use crate::rows::{self, AUDIT_COLUMNS, ts};

/// Inserts `event` on `conn`: inside the caller's transaction when the event
/// records a change made in it, so the two commit or roll back together. The
/// caller has checked [`AuditEvent::validate`]. A taken id is
/// `Conflict::Exists(AuditEvent)`.
pub(crate) fn insert_event(conn: &rusqlite::Connection, event: &AuditEvent) -> StoreResult<()> {
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
        self.db
            .write(move |conn| {
                conn.pragma_update(None, "synchronous", "NORMAL")
                    .map_err(store_error)?;
                let inserted = insert_event(conn, &event);
                // Back to the store's setting whatever the insert did: every other
                // write must fsync before it is acknowledged.
                conn.pragma_update(None, "synchronous", "FULL")
                    .map_err(store_error)?;
                inserted.map(drop)
            })
            .await
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

    /// The writer's `synchronous` setting: 2 is `FULL`, 1 `NORMAL`.
    async fn writer_synchronous(store: &SqliteStore) -> i64 {
        store
            .db
            .write(|conn| {
                conn.pragma_query_value(None, "synchronous", |row| row.get(0))
                    .map_err(store_error)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_append_leaves_the_writer_fsyncing_every_other_commit_even_when_it_fails() {
        use runway_core::audit::{Actor, AuditAction};
        let dir = tempfile::tempdir().unwrap();
        let store = crate::open(&dir.path().join("runway.db")).unwrap();
        assert_eq!(writer_synchronous(&store).await, 2);
        let event = AuditEvent::new(
            Actor::System,
            AuditAction::UserCreated,
            None,
            time::OffsetDateTime::now_utc(),
        );
        store.append_audit(&event).await.unwrap();
        assert_eq!(writer_synchronous(&store).await, 2);
        let duplicate = store.append_audit(&event).await.unwrap_err();
        assert!(
            matches!(
                duplicate,
                StoreError::Conflict(Conflict::Exists(RecordKind::AuditEvent))
            ),
            "{duplicate:?}"
        );
        assert_eq!(writer_synchronous(&store).await, 2);
    }
}
