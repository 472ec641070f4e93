//! Abuse-limit counters (`LimitStore`), in `abuse_counters`.
//!
//! Counting is one `INSERT … ON CONFLICT DO UPDATE … RETURNING` on the writer: it
//! starts an absent or expired counter at 1 and adds 1 to a live one in the same
//! statement, so concurrent attempts count exactly and no read precedes the write.
//! Reporting a lockout is one `UPDATE` conditional on the count and on the lockout
//! not having been reported yet. Expired rows are deleted by the reaper, at most
//! `limit` per call, through the `abuse_counters_by_expiry` index.

use async_trait::async_trait;
use runway_core::limit::{Attempts, LimitKey};
use runway_core::store::{LimitStore, StoreResult};
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::error::store_error;
use crate::rows::{self, ATTEMPTS_COLUMNS, ts};

#[async_trait]
impl LimitStore for SqliteStore {
    async fn attempts(&self, key: &LimitKey, now: OffsetDateTime) -> StoreResult<Option<Attempts>> {
        let now = ts(now)?;
        self.db.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {ATTEMPTS_COLUMNS} FROM abuse_counters \
                 WHERE limit_key = ?1 AND expires_at > ?2"
            ))?
            .query_row(params![key.as_str(), now], rows::attempts)
            .optional()
        })
    }

    async fn record_attempt(
        &self,
        key: &LimitKey,
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> StoreResult<Attempts> {
        let window =
            time::Duration::try_from(window).map_err(runway_core::store::StoreError::internal)?;
        let (at, expires_at) = (ts(now)?, ts(now + window)?);
        let key = key.as_str().to_owned();
        self.db
            .write(move |conn| {
                conn.prepare_cached(&format!(
                    "INSERT INTO abuse_counters (limit_key, attempts, last_at, expires_at) \
                     VALUES (?1, 1, ?2, ?3) \
                     ON CONFLICT (limit_key) DO UPDATE SET \
                       attempts = CASE WHEN abuse_counters.expires_at > ?2 \
                                  THEN abuse_counters.attempts + 1 ELSE 1 END, \
                       refused_count = CASE WHEN abuse_counters.expires_at > ?2 \
                                       THEN abuse_counters.refused_count END, \
                       last_at = ?2, expires_at = ?3 \
                     RETURNING {ATTEMPTS_COLUMNS}"
                ))
                .and_then(|mut stmt| stmt.query_row(params![key, at, expires_at], rows::attempts))
                .map_err(store_error)
            })
            .await
    }

    async fn clear_attempts(&self, key: &LimitKey) -> StoreResult<()> {
        let key = key.as_str().to_owned();
        self.db
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM abuse_counters WHERE limit_key = ?1")
                    .and_then(|mut stmt| stmt.execute([key]))
                    .map_err(store_error)?;
                Ok(())
            })
            .await
    }

    async fn note_refusal(
        &self,
        key: &LimitKey,
        count: u32,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let now = ts(now)?;
        let key = key.as_str().to_owned();
        self.db
            .write(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE abuse_counters SET refused_count = ?2 \
                         WHERE limit_key = ?1 AND attempts = ?2 AND expires_at > ?3 \
                           AND (refused_count IS NULL OR refused_count < ?2)",
                    )
                    .and_then(|mut stmt| stmt.execute(params![key, count, now]))
                    .map_err(store_error)?;
                Ok(changed == 1)
            })
            .await
    }

    async fn purge_expired_attempts(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        let now = ts(now)?;
        self.db
            .write(move |conn| {
                let deleted = conn
                    .prepare_cached(
                        "DELETE FROM abuse_counters WHERE limit_key IN \
                         (SELECT limit_key FROM abuse_counters WHERE expires_at <= ?1 \
                          ORDER BY expires_at LIMIT ?2)",
                    )
                    .and_then(|mut stmt| stmt.execute(params![now, limit]))
                    .map_err(store_error)?;
                Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
            })
            .await
    }
}
