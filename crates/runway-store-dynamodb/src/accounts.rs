//! Users and their sessions.
//!
//! * **Unique usernames.** A user is two items written in one `TransactWriteItems`:
//!   the user (`attribute_not_exists(user_id)`) and `lookups/username#<name>`
//!   (`attribute_not_exists(lookup_key)`). If the second condition fails the name is
//!   taken and nothing is written. `user_by_username` is two strongly consistent
//!   `GetItem`s (lookup, then user), so a user can sign in the moment they exist.
//! * **Validating a session** (every request) is one strongly consistent `GetItem`
//!   by id; the caller checks `Session::is_active`. The item's `ttl` lets DynamoDB
//!   delete it eventually, but an expired session still read back is still expired.
//! * **Listing and revoking** a user's sessions go through the `by_user` GSI
//!   (`user_id`, `session_id`; ULIDs, so newest first), then consistent reads of the
//!   items, which are filtered with `Session::is_active(now)` in code.
//!   `revoke_session` is a `DeleteItem` conditional on `user_id = :user`;
//!   `revoke_user_sessions` deletes each listed session the same way and counts the
//!   deletes whose condition held, so the count is exact even when the index lags.
//! * **A password change** is the new hash and the deletion of every listed session
//!   in one `TransactWriteItems`; past 99 sessions the surplus is deleted first, in
//!   earlier transactions, so the new hash is only ever written together with the
//!   last deletes (see `set_password_hash`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use runway_core::id::{SessionId, UserId};
use runway_core::page::{MAX_LIMIT, PageRequest};
use runway_core::session::Session;
use runway_core::store::{Conflict, RecordKind, SessionStore, StoreError, StoreResult, UserStore};
use runway_core::user::User;
use time::OffsetDateTime;

use crate::error::{failed_condition, is_condition_failure, sdk_error, transaction_error};
use crate::items::{
    Item, LookupItem, SessionItem, UserItem, from_item, nanos, number, string, to_item,
    ttl_seconds, username_key,
};
use crate::page::{IndexQuery, Seek};
use crate::schema::{BY_USER, LOOKUP_KEY, SESSION_ID, USER_ID};
use crate::{DynamoStore, PutNew};

impl DynamoStore {
    /// A strongly consistent read of one item by its key.
    pub(crate) async fn get_item(
        &self,
        table: &str,
        key: &'static str,
        id: String,
    ) -> StoreResult<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key(key, string(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(output.item)
    }

    /// The id a `lookups` item points at.
    pub(crate) async fn lookup(&self, lookup_key: String) -> StoreResult<Option<String>> {
        match self
            .get_item(&self.tables.lookups, LOOKUP_KEY, lookup_key)
            .await?
        {
            Some(item) => Ok(Some(from_item::<LookupItem>("lookups", item)?.target_id)),
            None => Ok(None),
        }
    }

    /// Every session of `user` found through the `by_user` index, read consistently, newest first.
    async fn sessions_of(&self, user: UserId) -> StoreResult<Vec<Session>> {
        let query = IndexQuery {
            table: &self.tables.sessions,
            index: BY_USER,
            partition: (USER_ID, string(user.to_string())),
            id: SESSION_ID,
            filtered: false,
        };
        let mut sessions = Vec::new();
        let mut seek = Seek::new(&PageRequest {
            limit: MAX_LIMIT,
            after: None,
        })?;
        loop {
            let mut page = self
                .list_index(
                    &query,
                    &seek,
                    |item| from_item::<SessionItem>("sessions", item).map(Session::from),
                    // The index may lag a revocation or (never, but cheaply checked)
                    // point at someone else's session.
                    |s: &Session| s.user_id == user,
                )
                .await?;
            let more = page.len() > seek.limit;
            page.truncate(seek.limit);
            let last = page.last().map(|s| s.id.to_string());
            sessions.append(&mut page);
            match last {
                Some(last) if more => seek.before = Some(last),
                _ => return Ok(sessions),
            }
        }
    }
}

/// Session deletes per `TransactWriteItems`: the API's limit of 100 actions, less
/// the one action on the user that each of a password change's transactions has.
const SESSIONS_PER_TRANSACTION: usize = 99;

impl DynamoStore {
    /// One transaction of `user_action` (conditional on the user existing, at index
    /// 0) and `deletes`. [`StoreError::NotFound`] if the user's condition failed.
    async fn transact_on_user(
        &self,
        user_action: TransactWriteItem,
        deletes: &[TransactWriteItem],
    ) -> StoreResult<()> {
        let mut items = Vec::with_capacity(1 + deletes.len());
        items.push(user_action);
        items.extend_from_slice(deletes);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Only the user's action has a condition.
            Err(err) if failed_condition(&err).is_some() => Err(StoreError::NotFound),
            Err(err) => Err(transaction_error(err)),
        }
    }
}

/// A transaction action that puts `item` only if its `key` is not taken yet.
pub(crate) fn put_new(table: &str, item: Item, key: &str) -> StoreResult<TransactWriteItem> {
    Ok(TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#key)")
                .expression_attribute_names("#key", key)
                .build()
                .map_err(StoreError::internal)?,
        )
        .build())
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let user_item = to_item("users", &UserItem::from(user))?;
        let lookup = to_item(
            "lookups",
            &LookupItem {
                lookup_key: username_key(&user.username),
                target_id: user.id.to_string(),
            },
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(put_new(&self.tables.users, user_item, USER_ID)?)
            .transact_items(put_new(&self.tables.lookups, lookup, LOOKUP_KEY)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => Err(match failed_condition(&err) {
                Some(1) => Conflict::UsernameTaken(user.username.clone()).into(),
                Some(_) => Conflict::Exists(RecordKind::User).into(),
                None => transaction_error(err),
            }),
        }
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let Some(id) = self.lookup(username_key(username)).await? else {
            return Ok(None);
        };
        let user = self.get_item(&self.tables.users, USER_ID, id).await?;
        user.map(|item| from_item::<UserItem>("users", item).map(User::from))
            .transpose()
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        let user = self
            .get_item(&self.tables.users, USER_ID, id.to_string())
            .await?;
        user.map(|item| from_item::<UserItem>("users", item).map(User::from))
            .transpose()
    }

    /// The user's sessions (found through `by_user`) are deleted in
    /// `TransactWriteItems` of at most `SESSIONS_PER_TRANSACTION` deletes plus one
    /// action on the user, and the **last** transaction is the one that carries the
    /// `UpdateItem` of the hash (`attribute_exists(user_id)`). The earlier ones, only
    /// for a user with more sessions than fit in one, carry a `ConditionCheck` that
    /// the user exists instead.
    ///
    /// Why the deletes come first and the new hash last: a crash or an error
    /// between two transactions then leaves the *old* password with some sessions
    /// already signed out — the reset failed, the operator sees the error and runs
    /// it again — and never the new password live beside sessions opened with the
    /// old one, which is what a reset must prevent. Updating first and deleting the
    /// overflow afterwards would reopen exactly that window. The `ConditionCheck`
    /// keeps an unknown user's reset from deleting anything, whatever its size.
    ///
    /// Deletes are unconditional: a session revoked meanwhile is simply already
    /// gone, and a condition failing would cancel the password change for nothing.
    /// The `by_user` index is eventually consistent, so a session created in the
    /// same instant (typically well under a second before) may not be listed yet
    /// and survive, the same known gap as `revoke_user_sessions`.
    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> StoreResult<()> {
        let sessions = self.sessions_of(id).await?;
        let deletes = sessions
            .iter()
            .map(|s| {
                Delete::builder()
                    .table_name(&self.tables.sessions)
                    .key(SESSION_ID, string(s.id.to_string()))
                    .build()
                    .map(|d| TransactWriteItem::builder().delete(d).build())
                    .map_err(StoreError::internal)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let mut chunks: Vec<&[TransactWriteItem]> =
            deletes.chunks(SESSIONS_PER_TRANSACTION).collect();
        let last = chunks.pop().unwrap_or_default();
        let user_key = || string(id.to_string());
        for chunk in chunks {
            let user_exists = ConditionCheck::builder()
                .table_name(&self.tables.users)
                .key(USER_ID, user_key())
                .condition_expression("attribute_exists(#id)")
                .expression_attribute_names("#id", USER_ID)
                .build()
                .map_err(StoreError::internal)?;
            self.transact_on_user(
                TransactWriteItem::builder()
                    .condition_check(user_exists)
                    .build(),
                chunk,
            )
            .await?;
        }
        let update = Update::builder()
            .table_name(&self.tables.users)
            .key(USER_ID, user_key())
            .update_expression("SET password_hash = :hash")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", USER_ID)
            .expression_attribute_values(":hash", string(password_hash))
            .build()
            .map_err(StoreError::internal)?;
        self.transact_on_user(TransactWriteItem::builder().update(update).build(), last)
            .await
    }

    /// A consistent `Scan` that stops at the first item: 0.5 RCU however many users.
    async fn has_users(&self) -> StoreResult<bool> {
        let output = self
            .client
            .scan()
            .table_name(&self.tables.users)
            .limit(1)
            .consistent_read(true)
            .projection_expression("#id")
            .expression_attribute_names("#id", USER_ID)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(output.count > 0)
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        let item = to_item("sessions", &SessionItem::from(session))?;
        match self
            .put_if_absent(&self.tables.sessions, item, SESSION_ID)
            .await?
        {
            PutNew::Written => Ok(()),
            PutNew::Taken => Err(Conflict::Exists(RecordKind::Session).into()),
        }
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        let session = self
            .get_item(&self.tables.sessions, SESSION_ID, id.to_string())
            .await?;
        session
            .map(|item| from_item::<SessionItem>("sessions", item).map(Session::from))
            .transpose()
    }

    /// One conditional `UpdateItem`, no read first: `attribute_exists` so a revoked
    /// session is not resurrected, and `last_seen_at < :now` so racing touches
    /// never move it back. Either condition failing is success: the session is gone,
    /// or a later touch already landed.
    ///
    /// The `ttl` becomes the idle expiry, `idle_timeout_seconds + ⌈now⌉`, computed
    /// by DynamoDB from the item's own attribute. An update expression has no
    /// `min`, so it cannot also cap that at the absolute `expires_at` as
    /// `create_session` does; that only lets DynamoDB's garbage collection run up
    /// to one idle timeout late, never early, and expiry is decided in code anyway.
    /// Saving the `GetItem` halves the cost of a touch.
    async fn touch_session(&self, id: SessionId, now: OffsetDateTime) -> StoreResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.sessions)
            .key(SESSION_ID, string(id.to_string()))
            .update_expression("SET last_seen_at = :now, #ttl = idle_timeout_seconds + :now_ttl")
            .condition_expression("attribute_exists(#id) AND last_seen_at < :now")
            .expression_attribute_names("#id", SESSION_ID)
            .expression_attribute_names("#ttl", crate::schema::TTL)
            .expression_attribute_values(":now", number(nanos(now)?))
            .expression_attribute_values(":now_ttl", number(ttl_seconds(now)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn list_user_sessions(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>> {
        let mut sessions = self.sessions_of(user).await?;
        // TTL deletes lazily: an expired item may still be there. Same rule as SQLite.
        sessions.retain(|s| s.is_active(now));
        Ok(sessions)
    }

    async fn revoke_session(&self, user: UserId, id: SessionId) -> StoreResult<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.sessions)
            .key(SESSION_ID, string(id.to_string()))
            .condition_expression("#user = :user")
            .expression_attribute_names("#user", USER_ID)
            .expression_attribute_values(":user", string(user.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Missing, or someone else's: the same answer, so ids cannot be probed.
            Err(err) if is_condition_failure(&err) => Err(StoreError::NotFound),
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn revoke_user_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
    ) -> StoreResult<u64> {
        let mut deleted = 0;
        for session in self.sessions_of(user).await? {
            if Some(session.id) == keep {
                continue;
            }
            let result = self
                .client
                .delete_item()
                .table_name(&self.tables.sessions)
                .key(SESSION_ID, string(session.id.to_string()))
                .condition_expression("#user = :user")
                .expression_attribute_names("#user", USER_ID)
                .expression_attribute_values(":user", string(user.to_string()))
                .return_values(ReturnValue::None)
                .send()
                .await;
            match result {
                Ok(_) => deleted += 1,
                // Deleted meanwhile by someone else: not ours to count.
                Err(err) if is_condition_failure(&err) => {}
                Err(err) => return Err(sdk_error(err)),
            }
        }
        Ok(deleted)
    }
}
