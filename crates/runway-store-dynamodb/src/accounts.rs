//! Users and their sessions. (Users as admins manage them are `users.rs`; creating
//! any user goes through its `put_user`, which keeps the count of enabled admins.)
//!
//! * **Unique usernames.** A user is two items written in one `TransactWriteItems`:
//!   the user (`attribute_not_exists(user_id)`) and `lookups/username#<name>`
//!   (`attribute_not_exists(lookup_key)`). If the second condition fails the name is
//!   taken and nothing is written. `user_by_username` is two strongly consistent
//!   `GetItem`s (lookup, then user), so a user can sign in the moment they exist.
//! * **Validating a session** (every request) is one strongly consistent `GetItem`
//!   by id; the caller checks `Session::is_active`. The item's `ttl` lets DynamoDB
//!   delete it eventually, but an expired session still read back is still expired.
//!
//! ## The user item keeps its sessions
//!
//! Every session a user holds is an entry of the user item's `sessions` map
//! (session id → absolute expiry), next to `credential_epoch` and
//! `session_version`, a counter bumped by every write to the map. The item is read
//! strongly consistently and every change to it is conditional, so "which sessions
//! does this user have" has an exact answer, which a GSI (eventually consistent:
//! a session created a moment ago may be missing) cannot give.
//!
//! * **Creating a session** is one `TransactWriteItems`: the session's `Put`
//!   (`attribute_not_exists`), the user's `Update` that adds the map entry,
//!   conditional on `credential_epoch` being the one the sign-in read with the
//!   password hash, and a `Delete` of each session it evicts. Before it, a
//!   consistent read of the user decides the evictions: entries whose absolute
//!   expiry has passed, then the oldest until the new one fits in
//!   `MAX_SESSIONS_PER_USER`. The update is conditional on each evicted entry still
//!   being there and on `size(sessions)` being at most what the plan allows, so two
//!   sign-ins racing for the last place cannot both take it; the loser reads again
//!   and evicts one more. Sign-ins that are not at the bound do not conflict.
//! * **Signing out everywhere and a password change** read the user, then write one
//!   `TransactWriteItems`: the user's `Update` (epoch + 1, the map emptied or cut
//!   to the session kept, the new hash for a password change), conditional on
//!   `session_version` being the one read, and an unconditional `Delete` of every
//!   session in the map. A sign-in that committed after the read changed the
//!   version, so the transaction fails and is planned again from a fresh read; one
//!   that commits after it finds the epoch moved and is refused. With at most 50
//!   sessions this is at most 51 actions, inside the limit of 100, so the
//!   revocation is all or nothing and a Lambda timed out half-way leaves nothing
//!   half-done.
//! * **Revoking one session** is one transaction: its `Delete`, conditional on
//!   `user_id = :user`, and the `REMOVE` of its map entry, conditional on the entry
//!   existing.
//! * **Listing** a user's sessions reads the map, then the sessions with one
//!   consistent `BatchGetItem`, filtered with `Session::is_active(now)` in code and
//!   sorted newest first (ids are ULIDs). There is no GSI on `sessions`.
//!
//! Each of these writes (a user's creation, a sign-in, a revocation, a sign-out
//! everywhere, a password change) ends its `TransactWriteItems` with the `Put` of
//! its audit event (`crate::audit`); a sign-in adds one more per session it evicts
//! for the bound, and a sign-out everywhere's event carries the count this round
//! of the write deleted. A retry whose response was lost finds its own event
//! (`audit::landed`) and is success.
//!
//! Sessions written before the map existed are in no map, so no revocation could
//! reach them: they carry no `credential_epoch` and read as no session at all
//! (`SessionItem::into_session`), i.e. the upgrade signs everyone out once. Users
//! from before lack the three attributes; the first sign-in creates the map
//! (conditional on it being absent) and epoch 0 stands for an absent epoch.
//!
//! DynamoDB's TTL deletes expired session items eventually, so
//! `purge_expired_sessions` does nothing here; an expired entry left in a map is
//! deleted by the user's next sign-in (or revocation).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use runway_core::audit::AuditEvent;
use runway_core::id::{SessionId, UserId};
use runway_core::session::{MAX_SESSIONS_PER_USER, Session};
use runway_core::store::{Conflict, RecordKind, SessionStore, StoreError, StoreResult, UserStore};
use runway_core::user::User;
use time::OffsetDateTime;

use crate::DynamoStore;
use crate::audit;
use crate::error::{
    RETRY_AFTER, cancellation_codes, cancellation_reasons, failed_condition, is_condition_failure,
    sdk_error, transaction_error,
};
use crate::expr::Expr;
use crate::items::{
    Item, LookupItem, SessionItem, UserItem, from_item, nanos, number, string, to_item,
    ttl_seconds, username_key,
};
use crate::schema::{LOOKUP_KEY, SESSION_ID, USER_ID};

/// The user item's attributes that track its sessions (see the module docs).
pub(crate) const SESSIONS: &str = "sessions";
pub(crate) const SESSION_VERSION: &str = "session_version";
pub(crate) const CREDENTIAL_EPOCH: &str = "credential_epoch";

/// How many times a session write is planned again after another write to the
/// same user item won, before the call gives up as unavailable. Only writes of
/// one user's sessions contend, and a sign-in costs tens of milliseconds of
/// argon2 before it gets here, so a handful of rounds is plenty.
pub(crate) const SESSION_WRITE_ROUNDS: usize = 32;

/// Another write to the user item kept winning.
#[derive(Debug, thiserror::Error)]
#[error("the user's sessions kept changing for {SESSION_WRITE_ROUNDS} attempts")]
pub(crate) struct Contended;

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

    /// The user item, read consistently.
    pub(crate) async fn user_item(&self, id: UserId) -> StoreResult<Option<UserItem>> {
        self.get_item(&self.tables.users, USER_ID, id.to_string())
            .await?
            .map(|item| from_item::<UserItem>("users", item))
            .transpose()
    }

    /// An unconditional `Delete` of one session, as a transaction action.
    pub(crate) fn delete_session(&self, id: &str) -> StoreResult<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(&self.tables.sessions)
            .key(SESSION_ID, string(id))
            .build()
            .map_err(StoreError::internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// An `Update` of the user item from `expr`, as a transaction action.
    /// Deletes the credential item `key` (a session or an API token, both in the
    /// sessions table) of `user`, with its entry `entry` in the user item's map
    /// `map`, and writes `audit`, in one transaction (actions: the item, the user
    /// item, the event). The transaction's own failure is the caller's to decode.
    pub(crate) async fn remove_credential(
        &self,
        user: UserId,
        key: String,
        map: &str,
        entry: &str,
        audit: &AuditEvent,
    ) -> StoreResult<Result<(), aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError>>> {
        let delete = Delete::builder()
            .table_name(&self.tables.sessions)
            .key(SESSION_ID, string(key))
            .condition_expression("#user = :user")
            .expression_attribute_names("#user", USER_ID)
            .expression_attribute_values(":user", string(user.to_string()))
            .build()
            .map_err(StoreError::internal)?;
        let mut expr = Expr::new();
        let entry = format!("{}.{}", expr.name(map), expr.name(entry));
        expr.condition(&format!("attribute_exists({entry})"));
        expr.remove(entry);
        let version = expr.name(SESSION_VERSION);
        expr.add(version, number(1));
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(self.update_user_item(user, &expr)?)
            .transact_items(self.put_event(audit)?)
            .send()
            .await;
        Ok(result.map(drop))
    }

    pub(crate) fn update_user_item(
        &self,
        user: UserId,
        expr: &Expr,
    ) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.tables.users)
            .key(USER_ID, string(user.to_string()))
            .set_update_expression(expr.update_expression())
            .set_condition_expression(expr.condition_expression())
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .build()
            .map_err(StoreError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Deletes every session in `user`'s map except `keep`, bumps the epoch and,
    /// for a password change, sets `password_hash`, in one transaction (see the
    /// module docs), with the event `audit` makes of the count. Returns how many
    /// sessions were deleted; `None` if there is no such user (and then nothing is
    /// written).
    async fn revoke_all(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        password_hash: Option<&str>,
        audit: impl Fn(u64) -> AuditEvent + Send + Sync,
    ) -> StoreResult<Option<u64>> {
        let keep = keep.map(|k| k.to_string());
        for _ in 0..SESSION_WRITE_ROUNDS {
            let Some(item) = self.user_item(user).await? else {
                return Ok(None);
            };
            let mut expr = Expr::new();
            let id = expr.name(USER_ID);
            expr.condition(&format!("attribute_exists({id})"));
            let version = expr.name(SESSION_VERSION);
            match item.session_version() {
                Some(read) => {
                    let read = expr.value(number(read));
                    expr.condition(&format!("{version} = {read}"));
                }
                None => expr.condition(&format!("attribute_not_exists({version})")),
            }
            let epoch = expr.name(CREDENTIAL_EPOCH);
            let (zero, one) = (expr.value(number(0)), expr.value(number(1)));
            expr.set_to(
                epoch.clone(),
                &format!("if_not_exists({epoch}, {zero}) + {one}"),
            );
            expr.set_to(
                version.clone(),
                &format!("if_not_exists({version}, {zero}) + {one}"),
            );
            if let Some(hash) = password_hash {
                let name = expr.name("password_hash");
                expr.set(name, string(hash));
            }
            let mut deletes = Vec::new();
            if let Some(sessions) = item.sessions() {
                let kept: HashMap<String, AttributeValue> = sessions
                    .iter()
                    .filter(|(id, _)| Some(*id) == keep.as_ref())
                    .map(|(id, expires)| (id.clone(), number(expires)))
                    .collect();
                for id in sessions.keys().filter(|id| Some(*id) != keep.as_ref()) {
                    deletes.push(self.delete_session(id)?);
                }
                let name = expr.name(SESSIONS);
                expr.set(name, AttributeValue::M(kept));
            }
            let revoked = u64::try_from(deletes.len()).unwrap_or(u64::MAX);
            let event = audit(revoked);
            let mut actions = Vec::with_capacity(2 + deletes.len());
            actions.push(self.update_user_item(user, &expr)?);
            actions.extend(deletes);
            let event_at = actions.len();
            actions.push(self.put_event(&event)?);
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await;
            let Err(err) = result else {
                return Ok(Some(revoked));
            };
            // Our own transaction, retried after its response was lost.
            if let Some(reasons) = cancellation_reasons(&err)
                && audit::landed(reasons, event_at, &event)?
            {
                return Ok(Some(revoked));
            }
            match failed_condition(&err) {
                Some(i) if i == event_at => return Err(audit::taken()),
                // The user's map changed since the read, or the user is gone: read again.
                Some(0) => {}
                None if lost_to_a_conflict(&err) => {}
                _ => return Err(transaction_error(err)),
            }
        }
        Err(StoreError::unavailable(Contended, Some(RETRY_AFTER)))
    }

    /// Whether `session` (encoded as `item`) is already stored exactly so: a
    /// retried transaction whose first try landed.
    async fn is_stored(&self, session: &Session, item: &Item) -> StoreResult<bool> {
        let stored = self
            .get_item(&self.tables.sessions, SESSION_ID, session.id.to_string())
            .await?;
        Ok(stored.as_ref() == Some(item))
    }
}

/// A transaction canceled only because another one touched the same item.
pub(crate) fn lost_to_a_conflict(
    err: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError>,
) -> bool {
    cancellation_codes(err).is_some_and(|codes| codes.contains(&"TransactionConflict"))
}

/// Which of a user's sessions a new one evicts, decided from the map read.
#[derive(Debug, PartialEq, Eq)]
struct Admission {
    /// Entries whose absolute expiry is at or before the new session's creation.
    expired: Vec<String>,
    /// The oldest live entries, evicted to stay within the bound.
    evicted: Vec<String>,
}

impl Admission {
    /// Plans the admission of a session created at `now` into `sessions`.
    fn plan(sessions: &BTreeMap<String, i64>, now: i64) -> Self {
        let (expired, live): (Vec<_>, Vec<_>) =
            sessions.iter().partition(|(_, expires)| **expires <= now);
        // A BTreeMap iterates in key order, and ids are ULIDs: oldest first.
        let surplus = (live.len() + 1).saturating_sub(MAX_SESSIONS_PER_USER);
        Self {
            expired: expired.into_iter().map(|(id, _)| id.clone()).collect(),
            evicted: live
                .into_iter()
                .take(surplus)
                .map(|(id, _)| id.clone())
                .collect(),
        }
    }

    /// Every entry removed.
    fn removed(&self) -> impl Iterator<Item = &String> {
        self.expired.iter().chain(&self.evicted)
    }

    /// The most entries the map may hold before the write for the new one to fit.
    fn size_limit(&self) -> usize {
        MAX_SESSIONS_PER_USER - 1 + self.expired.len() + self.evicted.len()
    }
}

/// The condition that the user is still at `epoch` (an absent epoch is 0).
pub(crate) fn epoch_condition(expr: &mut Expr, epoch: u64) {
    let name = expr.name(CREDENTIAL_EPOCH);
    let value = expr.value(number(epoch));
    if epoch == 0 {
        expr.condition(&format!("attribute_not_exists({name}) OR {name} = {value}"));
    } else {
        expr.condition(&format!("{name} = {value}"));
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
    /// See [`DynamoStore::put_user`]: the user, their username and, for an
    /// enabled admin, the admin counter, in one transaction.
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        self.put_user(user, None, None).await
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
        Ok(self.user_item(id).await?.map(User::from))
    }

    /// One transaction with the revocation of every session (see the module docs).
    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        match self
            .revoke_all(id, None, Some(password_hash), |_| audit.clone())
            .await?
        {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound),
        }
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
    /// Read the user, plan the evictions, one transaction; again from the read if
    /// another write to the user's map won (see the module docs).
    async fn create_session(
        &self,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<Vec<SessionId>> {
        let item = to_item("sessions", &SessionItem::from(session))?;
        let id = session.id.to_string();
        let (created_at, expires_at) = (nanos(session.created_at)?, nanos(session.expires_at)?);
        for _ in 0..SESSION_WRITE_ROUNDS {
            let Some(user) = self.user_item(session.user_id).await? else {
                return Err(StoreError::NotFound);
            };
            if user.credential_epoch() != session.credential_epoch {
                return Err(Conflict::CredentialsChanged.into());
            }
            let mut expr = Expr::new();
            let user_id = expr.name(USER_ID);
            expr.condition(&format!("attribute_exists({user_id})"));
            epoch_condition(&mut expr, session.credential_epoch);
            let sessions = expr.name(SESSIONS);
            let admission = match user.sessions() {
                None => {
                    expr.condition(&format!("attribute_not_exists({sessions})"));
                    let map = HashMap::from([(id.clone(), number(expires_at))]);
                    expr.set(sessions, AttributeValue::M(map));
                    Admission {
                        expired: vec![],
                        evicted: vec![],
                    }
                }
                Some(map) => {
                    let admission = Admission::plan(map, created_at);
                    let limit = expr.value(number(admission.size_limit()));
                    expr.condition(&format!("size({sessions}) <= {limit}"));
                    for old in admission.removed() {
                        let entry = format!("{sessions}.{}", expr.name(old));
                        expr.condition(&format!("attribute_exists({entry})"));
                        expr.remove(entry);
                    }
                    let entry = format!("{sessions}.{}", expr.name(&id));
                    expr.set(entry, number(expires_at));
                    admission
                }
            };
            let version = expr.name(SESSION_VERSION);
            expr.add(version, number(1));

            let mut actions = vec![
                put_new(&self.tables.sessions, item.clone(), SESSION_ID)?,
                self.update_user_item(session.user_id, &expr)?,
            ];
            for old in admission.removed() {
                actions.push(self.delete_session(old)?);
            }
            let evicted: Vec<SessionId> = admission
                .evicted
                .iter()
                .map(|id| id.parse().map_err(StoreError::internal))
                .collect::<StoreResult<_>>()?;
            let event_at = actions.len();
            actions.push(self.put_event(audit)?);
            for id in &evicted {
                actions.push(self.put_event(&audit.of_eviction(*id))?);
            }
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await
            {
                Ok(_) => return Ok(evicted),
                // Only an event's id is taken (a failure before it comes first).
                Err(err) if failed_condition(&err).is_some_and(|i| i >= event_at) => {
                    return Err(audit::taken());
                }
                Err(err) if failed_condition(&err) == Some(0) => {
                    // The SDK's retry of a transaction that landed finds its own
                    // session; anything else is an id taken by another session.
                    return if self.is_stored(session, &item).await? {
                        Ok(vec![])
                    } else {
                        Err(Conflict::Exists(RecordKind::Session).into())
                    };
                }
                // The user's epoch or map changed since the read: read again, and
                // the next round says which.
                Err(err) if failed_condition(&err) == Some(1) || lost_to_a_conflict(&err) => {}
                Err(err) => return Err(transaction_error(err)),
            }
        }
        Err(StoreError::unavailable(Contended, Some(RETRY_AFTER)))
    }

    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        let session = self
            .get_item(&self.tables.sessions, SESSION_ID, id.to_string())
            .await?;
        Ok(session
            .map(|item| from_item::<SessionItem>("sessions", item))
            .transpose()?
            .and_then(SessionItem::into_session))
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

    /// The user's map, then one consistent `BatchGetItem` of at most
    /// `MAX_SESSIONS_PER_USER` sessions.
    async fn list_user_sessions(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>> {
        let Some(item) = self.user_item(user).await? else {
            return Ok(vec![]);
        };
        let ids: Vec<String> = item
            .sessions()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default();
        let mut sessions = Vec::with_capacity(ids.len());
        for (_, item) in self
            .batch_get(&self.tables.sessions, SESSION_ID, &ids)
            .await?
        {
            if let Some(session) = from_item::<SessionItem>("sessions", item)?.into_session() {
                // TTL deletes lazily: an expired item may still be there. Same rule
                // as SQLite.
                if session.user_id == user && session.is_active(now) {
                    sessions.push(session);
                }
            }
        }
        sessions.sort_by_key(|s| std::cmp::Reverse(s.id));
        Ok(sessions)
    }

    async fn revoke_session(
        &self,
        user: UserId,
        id: SessionId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let Err(err) = self
            .remove_credential(user, id.to_string(), SESSIONS, &id.to_string(), audit)
            .await?
        else {
            return Ok(());
        };
        // Our own transaction, retried after its response was lost.
        if let Some(reasons) = cancellation_reasons(&err)
            && audit::landed(reasons, 2, audit)?
        {
            return Ok(());
        }
        match failed_condition(&err) {
            Some(2) => Err(audit::taken()),
            // Missing, someone else's, or not in the user's map: the same answer,
            // so ids cannot be probed.
            Some(_) => Err(StoreError::NotFound),
            None => Err(transaction_error(err)),
        }
    }

    async fn revoke_user_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        audit: &AuditEvent,
    ) -> StoreResult<u64> {
        let kept = keep.is_some();
        Ok(self
            .revoke_all(user, keep, None, |revoked| {
                audit.of_revoked_all(revoked, kept)
            })
            .await?
            .unwrap_or(0))
    }

    /// DynamoDB's TTL deletes expired sessions (the `ttl` attribute); see the
    /// module docs.
    async fn purge_expired_sessions(&self, _now: OffsetDateTime, _limit: u32) -> StoreResult<u64> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, i64)]) -> BTreeMap<String, i64> {
        entries
            .iter()
            .map(|(id, expires)| ((*id).to_owned(), *expires))
            .collect()
    }

    #[test]
    fn a_sign_in_below_the_bound_evicts_only_expired_sessions() {
        let plan = Admission::plan(&map(&[("a", 5), ("b", 10), ("c", 20)]), 10);
        assert_eq!(plan.expired, ["a", "b"]);
        assert!(plan.evicted.is_empty());
        assert_eq!(plan.size_limit(), MAX_SESSIONS_PER_USER + 1);
    }

    #[test]
    fn a_sign_in_at_the_bound_evicts_the_oldest_live_session() {
        let full: BTreeMap<String, i64> = (0..MAX_SESSIONS_PER_USER)
            .map(|n| (format!("{n:03}"), 100))
            .collect();
        let plan = Admission::plan(&full, 10);
        assert!(plan.expired.is_empty());
        assert_eq!(plan.evicted, ["000"]);
        assert_eq!(plan.size_limit(), MAX_SESSIONS_PER_USER);
    }
}
