//! Pending OpenID Connect logins and the identities issuers vouch for.
//!
//! Taking a login is one `DELETE … RETURNING` on the writer: SQLite runs it
//! atomically, so of two callbacks racing with one state exactly one gets the
//! row, and an expired row is deleted by the same statement that refuses it.
//! Creating a user with their identity is one `BEGIN IMMEDIATE` transaction, so a
//! username taken or an identity linked meanwhile leaves nothing behind.

use async_trait::async_trait;
use runway_core::audit::AuditEvent;
use runway_core::oidc::{OidcIdentity, PendingLogin};
use runway_core::secret::TokenHash;
use runway_core::store::{Conflict, OidcIdentityStore, OidcLoginStore, RecordKind, StoreResult};
use runway_core::user::User;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::audit::insert_event;
use crate::error::{Key, store_error, store_error_or_conflict};
use crate::rows::{self, OIDC_LOGIN_COLUMNS, USER_COLUMNS, ts};

#[async_trait]
impl OidcLoginStore for SqliteStore {
    async fn create_oidc_login(&self, login: &PendingLogin) -> StoreResult<()> {
        let login = login.clone();
        let (created_at, expires_at) = (ts(login.created_at)?, ts(login.expires_at)?);
        self.db
            .write(move |conn| {
                conn.prepare_cached(&format!(
                    "INSERT INTO oidc_logins ({OIDC_LOGIN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ))
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        login.state_hash.as_str(),
                        login.nonce.expose(),
                        login.pkce_verifier.expose(),
                        login.return_to,
                        created_at,
                        expires_at,
                    ])
                })
                .map_err(|e| {
                    store_error_or_conflict(e, |_| Conflict::Exists(RecordKind::OidcLogin))
                })?;
                Ok(())
            })
            .await
    }

    async fn take_oidc_login(
        &self,
        state_hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<PendingLogin>> {
        let key = state_hash.as_str().to_owned();
        let taken = self
            .db
            .write(move |conn| {
                conn.prepare_cached(&format!(
                    "DELETE FROM oidc_logins WHERE state_hash = ?1 RETURNING {OIDC_LOGIN_COLUMNS}"
                ))
                .and_then(|mut stmt| stmt.query_row([key], rows::pending_login).optional())
                .map_err(store_error)
            })
            .await?;
        Ok(taken.filter(|login| login.is_live(now)))
    }
}

#[async_trait]
impl OidcIdentityStore for SqliteStore {
    async fn user_by_oidc_identity(&self, identity: &OidcIdentity) -> StoreResult<Option<User>> {
        let columns = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.db.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {columns} FROM oidc_identities i JOIN users u ON u.id = i.user_id \
                 WHERE i.issuer = ?1 AND i.subject = ?2"
            ))?
            .query_row([&identity.issuer, &identity.subject], rows::user)
            .optional()
        })
    }

    async fn create_oidc_user(
        &self,
        user: &User,
        identity: &OidcIdentity,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let user = user.clone();
        let audit = audit.clone();
        let identity = identity.clone();
        let created_at = ts(user.created_at)?;
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                tx.prepare_cached(
                    "INSERT INTO users (id, username, role, created_at, password_hash, \
                     disabled) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        user.id.to_string(),
                        user.username,
                        user.role.as_str(),
                        created_at,
                        user.password_hash,
                        user.disabled,
                    ])
                })
                .map_err(|e| {
                    store_error_or_conflict(e, |key| match key {
                        Key::Unique => Conflict::UsernameTaken(user.username.clone()),
                        Key::Primary => Conflict::Exists(RecordKind::User),
                    })
                })?;
                tx.prepare_cached(
                    "INSERT INTO oidc_identities (issuer, subject, user_id) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        identity.issuer,
                        identity.subject,
                        user.id.to_string()
                    ])
                })
                .map_err(|e| {
                    store_error_or_conflict(e, |_| Conflict::Exists(RecordKind::OidcIdentity))
                })?;
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)
            })
            .await
    }
}
