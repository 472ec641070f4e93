//! Users as admins manage them (`UserAdminStore`, migration 10).
//!
//! Each write is one `BEGIN IMMEDIATE` transaction on the single writer that
//! also inserts its audit event ([`crate::audit::insert_event`]).
//!
//! **At least one enabled admin.** A write that takes an enabled admin away
//! (demoting, disabling or deleting one) counts the enabled admins inside its own
//! transaction, through `users_enabled_admins`, and refuses with
//! `Conflict::LastAdmin` if the user is the only one. Writes are serialised, so
//! of two admins demoting each other at once the second sees the first's commit
//! and is refused: no separate counter is needed here (DynamoDB, which has no
//! such transactions, keeps one).
//!
//! **Credentials.** A new role or a disable bumps the credential epoch and deletes
//! the user's sessions and API tokens in the same transaction, so a copy of the
//! old role cannot survive and a sign-in that read the old epoch is refused.
//! Deleting a user deletes the same, and their issuer identities.

use async_trait::async_trait;
use runway_core::audit::AuditEvent;
use runway_core::id::UserId;
use runway_core::page::{Page, PageRequest};
use runway_core::store::{Conflict, RecordKind, StoreError, StoreResult, UserAdminStore};
use runway_core::user::{Role, User, UserChange};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter};

use crate::SqliteStore;
use crate::audit::insert_event;
use crate::error::{Key, store_error, store_error_or_conflict};
use crate::page::Seek;
use crate::rows::{self, USER_COLUMNS, int, ts};

/// The user `id`, read inside `tx`.
fn read_user(tx: &Transaction<'_>, id: UserId) -> StoreResult<Option<User>> {
    tx.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
        .and_then(|mut stmt| stmt.query_row([id.to_string()], rows::user).optional())
        .map_err(store_error)
}

/// Refuses with `LastAdmin` if `user` is the only enabled admin, read inside `tx`.
fn keep_an_admin(tx: &Transaction<'_>, user: &User) -> StoreResult<()> {
    if !user.is_enabled_admin() {
        return Ok(());
    }
    let admins: i64 = tx
        .prepare_cached("SELECT count(*) FROM users WHERE role = ?1 AND disabled = 0")
        .and_then(|mut stmt| stmt.query_row([Role::Admin.as_str()], |row| row.get(0)))
        .map_err(store_error)?;
    if admins <= 1 {
        return Err(Conflict::LastAdmin.into());
    }
    Ok(())
}

/// Deletes every session and API token of `user`, inside `tx`.
fn delete_credentials(tx: &Transaction<'_>, user: UserId) -> StoreResult<()> {
    for sql in [
        "DELETE FROM sessions WHERE user_id = ?1",
        "DELETE FROM api_tokens WHERE user_id = ?1",
    ] {
        tx.prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute([user.to_string()]))
            .map_err(store_error)?;
    }
    Ok(())
}

#[async_trait]
impl UserAdminStore for SqliteStore {
    async fn create_user_audited(&self, user: &User, audit: &AuditEvent) -> StoreResult<()> {
        audit.validate().map_err(StoreError::internal)?;
        let (user, audit) = (user.clone(), audit.clone());
        let created_at = ts(user.created_at)?;
        let epoch = int(user.credential_epoch)?;
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                tx.prepare_cached(&format!(
                    "INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ))
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
                        Key::Unique => Conflict::UsernameTaken(user.username.clone()),
                        Key::Primary => Conflict::Exists(RecordKind::User),
                    })
                })?;
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)
            })
            .await
    }

    async fn list_users(&self, page: &PageRequest) -> StoreResult<Page<User>> {
        let seek = Seek::new(page)?;
        let mut values = Vec::new();
        let sql = seek.select(USER_COLUMNS, "users", Vec::new(), &mut values);
        let users = self.db.read(|conn| {
            conn.prepare_cached(&sql)?
                .query_map(params_from_iter(values), rows::user)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(seek.finish(users, |u| u.id.to_string()))
    }

    async fn update_user(
        &self,
        id: UserId,
        change: UserChange,
        audit: &AuditEvent,
    ) -> StoreResult<User> {
        audit.validate().map_err(StoreError::internal)?;
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                let user = read_user(&tx, id)?.ok_or(StoreError::NotFound)?;
                let mut changed = change.apply(&user);
                if !changed.is_enabled_admin() {
                    keep_an_admin(&tx, &user)?;
                }
                let revokes = change.revokes_credentials(&user);
                if revokes {
                    changed.credential_epoch += 1;
                    delete_credentials(&tx, id)?;
                }
                let epoch = int(changed.credential_epoch)?;
                tx.prepare_cached(
                    "UPDATE users SET role = ?1, disabled = ?2, credential_epoch = ?3 \
                     WHERE id = ?4",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        changed.role.as_str(),
                        changed.disabled,
                        epoch,
                        id.to_string(),
                    ])
                })
                .map_err(store_error)?;
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)?;
                Ok(changed)
            })
            .await
    }

    async fn delete_user(&self, id: UserId, audit: &AuditEvent) -> StoreResult<()> {
        audit.validate().map_err(StoreError::internal)?;
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                let user = read_user(&tx, id)?.ok_or(StoreError::NotFound)?;
                keep_an_admin(&tx, &user)?;
                delete_credentials(&tx, id)?;
                for sql in [
                    "DELETE FROM oidc_identities WHERE user_id = ?1",
                    "DELETE FROM users WHERE id = ?1",
                ] {
                    tx.prepare_cached(sql)
                        .and_then(|mut stmt| stmt.execute([id.to_string()]))
                        .map_err(store_error)?;
                }
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)
            })
            .await
    }
}
