//! Personal API tokens (migration 9).
//!
//! `get_api_token` runs on every request that carries an `rwp_` token, so it is a
//! primary-key lookup on a cached statement on a pooled reader, like
//! `get_session`. Creating and revoking are `BEGIN IMMEDIATE` transactions on the
//! single writer that also insert the audit event ([`crate::audit::insert_event`]),
//! so the change and its record commit together:
//!
//! * **create** checks that the user is still at the token's credential epoch
//!   (the same rule, for the same race, as `create_session`), deletes the user's
//!   tokens expired at its `created_at`, counts the rest through
//!   `api_tokens_by_user`, refuses past the bound, inserts;
//! * **revoke** deletes by id *and* user, so someone else's token is `NotFound`
//!   exactly like an unknown one, and the event is written only if a row went.

use std::sync::LazyLock;

use async_trait::async_trait;
use runway_core::api_token::{ApiToken, MAX_API_TOKENS_PER_USER};
use runway_core::audit::AuditEvent;
use runway_core::id::{ApiTokenId, UserId};
use runway_core::store::{ApiTokenStore, Conflict, RecordKind, StoreError, StoreResult};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::SqliteStore;
use crate::accounts::check_epoch;
use crate::audit::insert_event;
use crate::error::{store_error, store_error_or_conflict};
use crate::rows::{self, API_TOKEN_COLUMNS, int, opt_ts, ts};

static TOKEN_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"));
static TOKENS_OF_USER: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE user_id = ?1 ORDER BY id DESC")
});

#[async_trait]
impl ApiTokenStore for SqliteStore {
    async fn create_api_token(&self, token: &ApiToken, audit: &AuditEvent) -> StoreResult<()> {
        audit.validate().map_err(StoreError::internal)?;
        let (t, audit) = (token.clone(), audit.clone());
        let (created_at, expires_at) = (ts(t.created_at)?, opt_ts(t.expires_at)?);
        let epoch = int(t.credential_epoch)?;
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                let user = t.user_id.to_string();
                check_epoch(&tx, &user, epoch)?;
                tx.prepare_cached(
                    "DELETE FROM api_tokens WHERE user_id = ?1 \
                     AND expires_at IS NOT NULL AND expires_at <= ?2",
                )
                .and_then(|mut stmt| stmt.execute(params![user, created_at]))
                .map_err(store_error)?;
                let held: i64 = tx
                    .prepare_cached("SELECT count(*) FROM api_tokens WHERE user_id = ?1")
                    .and_then(|mut stmt| stmt.query_row([&user], |row| row.get(0)))
                    .map_err(store_error)?;
                if usize::try_from(held).unwrap_or(usize::MAX) >= MAX_API_TOKENS_PER_USER {
                    return Err(Conflict::TooManyApiTokens.into());
                }
                tx.prepare_cached(&format!(
                    "INSERT INTO api_tokens ({API_TOKEN_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ))
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        t.id.to_string(),
                        user,
                        t.username,
                        t.role.as_str(),
                        t.name,
                        t.read_only,
                        created_at,
                        expires_at,
                        t.token_hash.as_str(),
                        epoch,
                    ])
                })
                .map_err(|e| {
                    store_error_or_conflict(e, |_| Conflict::Exists(RecordKind::ApiToken))
                })?;
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)
            })
            .await
    }

    async fn get_api_token(&self, id: ApiTokenId) -> StoreResult<Option<ApiToken>> {
        self.db.read(|conn| {
            conn.prepare_cached(&TOKEN_BY_ID)?
                .query_row([id.to_string()], rows::api_token)
                .optional()
        })
    }

    async fn list_api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiToken>> {
        self.db.read(|conn| {
            conn.prepare_cached(&TOKENS_OF_USER)?
                .query_map([user.to_string()], rows::api_token)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
    }

    async fn revoke_api_token(
        &self,
        user: UserId,
        id: ApiTokenId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        audit.validate().map_err(StoreError::internal)?;
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                let deleted = tx
                    .prepare_cached("DELETE FROM api_tokens WHERE id = ?1 AND user_id = ?2")
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
}
