//! Users and their sessions.
//!
//! `get_session` is the hottest query in Runway (every authenticated request), so it
//! is a single primary-key lookup on a cached statement, run inline on a pooled
//! reader. Expiry is decided by the caller with `Session::is_active`, and
//! `list_user_sessions` filters with that same function, so SQLite and DynamoDB
//! (whose TTL deletes lazily) give the same answer. Expired rows are deleted
//! afterwards, only to keep the table small: by the reaper
//! (`purge_expired_sessions`, through the `sessions_by_expiry` expression index) and,
//! for the user signing in, by `create_session`.
//!
//! ## Credential changes win races
//!
//! A sign-in reads the user (hash and `credential_epoch`), spends tens of
//! milliseconds on argon2, then creates the session. `create_session` is one
//! `BEGIN IMMEDIATE` transaction on the single writer that first checks the user's
//! epoch is still the one the session carries, and `set_password_hash` and
//! `revoke_user_sessions` bump the epoch in the transaction that deletes the
//! sessions. Writes are serialised, so either the session was inserted before the
//! change (and the change deletes it) or it is checked after (and refused with
//! `Conflict::CredentialsChanged`). Validation stays one read: revoked sessions are
//! really deleted, never merely outdated.
//!
//! ## At most `MAX_SESSIONS_PER_USER` sessions
//!
//! The same transaction deletes the user's sessions whose absolute expiry has
//! passed at the new session's `created_at`, counts the rest, and deletes the
//! oldest (by id, through `sessions_by_user`) until the new one fits.

use std::sync::LazyLock;

use async_trait::async_trait;
use runway_core::audit::AuditEvent;
use runway_core::id::{SessionId, UserId};
use runway_core::session::{MAX_SESSIONS_PER_USER, Session};
use runway_core::store::{Conflict, RecordKind, SessionStore, StoreError, StoreResult, UserStore};
use runway_core::user::User;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::audit::insert_event;
use crate::error::{Key, store_error, store_error_or_conflict};
use crate::rows::{self, SESSION_COLUMNS, USER_COLUMNS, int, ts};

// Point reads run on every request: their SQL is built once, not per call.
static USER_BY_USERNAME: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"));
static USER_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"));
/// A user's sessions not absolutely expired at `?2`, newest first, by the
/// `sessions_by_user (user_id, id)` index.
pub(crate) static SESSIONS_OF_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SESSION_COLUMNS} FROM sessions \
         WHERE user_id = ?1 AND expires_at > ?2 ORDER BY id DESC"
    )
});
static SESSION_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"));
/// Up to `?2` sessions whose effective expiry is at or before `?1`. The expression
/// is the one `sessions_by_expiry` indexes (migration 0007), character for
/// character, so the purge reads only the expired rows.
pub(crate) const EXPIRED_SESSIONS: &str = "SELECT id FROM sessions \
     WHERE min(expires_at, last_seen_at + idle_timeout_seconds * 1000000000) <= ?1 LIMIT ?2";

/// Checks, inside a write's transaction, that `user` exists and is still at
/// credential `epoch`: `NotFound`, else `CredentialsChanged` if a reset, a
/// sign-out everywhere or a disable moved it on since the caller read it.
pub(crate) fn check_epoch(conn: &rusqlite::Connection, user: &str, epoch: i64) -> StoreResult<()> {
    let current: Option<i64> = conn
        .prepare_cached("SELECT credential_epoch FROM users WHERE id = ?1")
        .and_then(|mut stmt| stmt.query_row([user], |row| row.get(0)).optional())
        .map_err(store_error)?;
    match current {
        None => Err(StoreError::NotFound),
        Some(current) if current != epoch => Err(Conflict::CredentialsChanged.into()),
        Some(_) => Ok(()),
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let user = user.clone();
        let created_at = ts(user.created_at)?;
        let epoch = int(user.credential_epoch)?;
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO users (id, username, role, created_at, password_hash, \
                     credential_epoch, disabled) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        user.id.to_string(),
                        user.username,
                        user.role.as_str(),
                        created_at,
                        user.password_hash,
                        epoch,
                        user.disabled,
                    ])
                })
                .map_err(|e| {
                    store_error_or_conflict(e, |key| match key {
                        Key::Unique => Conflict::UsernameTaken(user.username),
                        Key::Primary => Conflict::Exists(RecordKind::User),
                    })
                })?;
                Ok(())
            })
            .await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        self.db.read(|conn| {
            conn.prepare_cached(&USER_BY_USERNAME)?
                .query_row([username], rows::user)
                .optional()
        })
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.db.read(|conn| {
            conn.prepare_cached(&USER_BY_ID)?
                .query_row([id.to_string()], rows::user)
                .optional()
        })
    }

    /// The update (new hash, epoch + 1) and the deletion of the user's sessions
    /// share one `BEGIN IMMEDIATE` transaction: an unknown user returns before the
    /// delete, and the dropped transaction rolls back, so nothing at all is written.
    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let password_hash = password_hash.to_owned();
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                let changed = tx
                    .prepare_cached(
                        "UPDATE users SET password_hash = ?1, \
                         credential_epoch = credential_epoch + 1 WHERE id = ?2",
                    )
                    .and_then(|mut stmt| stmt.execute(params![password_hash, id.to_string()]))
                    .map_err(store_error)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")
                    .and_then(|mut stmt| stmt.execute([id.to_string()]))
                    .map_err(store_error)?;
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)
            })
            .await
    }

    async fn has_users(&self) -> StoreResult<bool> {
        self.db.read(|conn| {
            conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM users)")?
                .query_row([], |row| row.get(0))
        })
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    /// One `BEGIN IMMEDIATE` transaction: the epoch check, the deletion of the
    /// user's expired and surplus sessions, the insert (see the module docs).
    async fn create_session(
        &self,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<Vec<SessionId>> {
        let s = session.clone();
        let audit = audit.clone();
        let (created_at, last_seen_at, expires_at) =
            (ts(s.created_at)?, ts(s.last_seen_at)?, ts(s.expires_at)?);
        let epoch = int(s.credential_epoch)?;
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                let user = s.user_id.to_string();
                check_epoch(&tx, &user, epoch)?;
                tx.prepare_cached("DELETE FROM sessions WHERE user_id = ?1 AND expires_at <= ?2")
                    .and_then(|mut stmt| stmt.execute(params![user, created_at]))
                    .map_err(store_error)?;
                let mut evicted: Vec<SessionId> = tx
                    .prepare_cached("SELECT id FROM sessions WHERE user_id = ?1 ORDER BY id")
                    .and_then(|mut stmt| {
                        stmt.query_map([&user], |row| rows::get_parsed(row, 0, "sessions.id"))?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .map_err(store_error)?;
                let surplus = (evicted.len() + 1).saturating_sub(MAX_SESSIONS_PER_USER);
                evicted.truncate(surplus);
                for id in &evicted {
                    tx.prepare_cached("DELETE FROM sessions WHERE id = ?1")
                        .and_then(|mut stmt| stmt.execute([id.to_string()]))
                        .map_err(store_error)?;
                }
                tx.prepare_cached(&format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ))
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        s.id.to_string(),
                        user,
                        s.username,
                        s.role.as_str(),
                        s.device_name,
                        s.user_agent,
                        s.ip,
                        created_at,
                        last_seen_at,
                        expires_at,
                        s.idle_timeout_seconds,
                        s.token_hash.as_str(),
                        epoch,
                    ])
                })
                .map_err(|e| {
                    store_error_or_conflict(e, |_| Conflict::Exists(RecordKind::Session))
                })?;
                insert_event(&tx, &audit)?;
                for id in &evicted {
                    insert_event(&tx, &audit.of_eviction(*id))?;
                }
                tx.commit().map_err(store_error)?;
                Ok(evicted)
            })
            .await
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        self.db.read(|conn| {
            conn.prepare_cached(&SESSION_BY_ID)?
                .query_row([id.to_string()], rows::session)
                .optional()
        })
    }

    /// `last_seen_at < ?1` keeps the column monotonic when touches race: zero rows
    /// changed means the session is gone or someone already wrote a later time.
    async fn touch_session(&self, id: SessionId, now: OffsetDateTime) -> StoreResult<()> {
        let now = ts(now)?;
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE sessions SET last_seen_at = ?1 WHERE id = ?2 AND last_seen_at < ?1",
                )
                .and_then(|mut stmt| stmt.execute(params![now, id.to_string()]))
                .map_err(store_error)?;
                Ok(())
            })
            .await
    }

    async fn list_user_sessions(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>> {
        let now_ns = ts(now)?;
        // SQL drops the absolutely expired ones using the index order; the idle rule
        // is applied by `Session::is_active` itself, so it cannot disagree with it.
        let sessions = self.db.read(|conn| {
            conn.prepare_cached(&SESSIONS_OF_USER)?
                .query_map(params![user.to_string(), now_ns], rows::session)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(sessions.into_iter().filter(|s| s.is_active(now)).collect())
    }

    async fn revoke_session(
        &self,
        user: UserId,
        id: SessionId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(store_error)?;
                let deleted = tx
                    .prepare_cached("DELETE FROM sessions WHERE id = ?1 AND user_id = ?2")
                    .and_then(|mut stmt| stmt.execute([id.to_string(), user.to_string()]))
                    .map_err(store_error)?;
                if deleted == 0 {
                    return Err(StoreError::NotFound);
                }
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)
            })
            .await
    }

    /// The epoch bump and the delete share one `BEGIN IMMEDIATE` transaction, so a
    /// `create_session` that checked the old epoch committed before it (and its
    /// session is deleted here) and one that checks afterwards is refused.
    async fn revoke_user_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        audit: &AuditEvent,
    ) -> StoreResult<u64> {
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                let bumped = tx
                    .prepare_cached(
                        "UPDATE users SET credential_epoch = credential_epoch + 1 WHERE id = ?1",
                    )
                    .and_then(|mut stmt| stmt.execute([user.to_string()]))
                    .map_err(store_error)?;
                if bumped == 0 {
                    // No such user: nothing to revoke, nothing written.
                    return Ok(0);
                }
                let deleted = tx
                    .prepare_cached(
                        "DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR id <> ?2)",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![user.to_string(), keep.map(|k| k.to_string())])
                    })
                    .map_err(store_error)?;
                let deleted = u64::try_from(deleted).unwrap_or(u64::MAX);
                insert_event(&tx, &audit.of_revoked_all(deleted, keep.is_some()))?;
                tx.commit().map_err(store_error)?;
                Ok(deleted)
            })
            .await
    }

    /// One `DELETE` of at most `limit` rows found through `sessions_by_expiry`, so
    /// a backlog is worked off over several reaper passes without holding the
    /// writer long.
    async fn purge_expired_sessions(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        let now = ts(now)?;
        self.db
            .write(move |conn| {
                let deleted = conn
                    .prepare_cached(&format!(
                        "DELETE FROM sessions WHERE id IN ({EXPIRED_SESSIONS})"
                    ))
                    .and_then(|mut stmt| stmt.execute(params![now, limit]))
                    .map_err(store_error)?;
                Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
            })
            .await
    }
}
