//! Users as admins manage them, and the count of enabled admins.
//!
//! ## At least one enabled admin
//!
//! DynamoDB has no "count the rows inside my transaction", so the number of
//! enabled admins is an item of its own: `lookups/counter#enabled_admins`, with
//! the attribute `admins`. Every write that changes the number includes an
//! `Update` of it in its `TransactWriteItems`: `ADD admins 1` for a new enabled
//! admin (a created one, a promotion, an admin enabled again), and `ADD admins -1`
//! conditional on `admins >= 2` for one taken away (a demotion, a disable, a
//! delete). Transactions on one item are serialised, so of two admins demoting
//! each other at once exactly one sees the counter at 2; the other's condition
//! fails and it is `Conflict::LastAdmin`. Both kinds of update are conditional on
//! the counter existing, so a write can never create it with a wrong value.
//!
//! The counter is created the first time a write needs it
//! ([`DynamoStore::ensure_admin_counter`]): a consistent `Scan` counts the enabled
//! admins and a `Put` conditional on the counter's absence stores the number. A
//! write that could change the count needs the counter to exist first, so none
//! can land between that scan and that put. Deployments from before the counter
//! get it on their first such write.
//!
//! ## One transaction per change
//!
//! Each change is one `TransactWriteItems`: the user item's write, conditional on
//! what was read (its role, whether it is disabled and its `session_version`,
//! which every change to its `sessions` and `api_tokens` maps bumps), the counter
//! if the change moves it, the deletes of every session and API token in the two
//! maps when credentials are revoked (a new role, a disable, a delete), and the
//! audit event's `Put` last. With at most 50 sessions and 40 tokens that is at
//! most 1 + 1 + 50 + 40 + 1 = 93 actions (a delete adds the username and issuer
//! lookups), inside DynamoDB's 100. A lost race (the user's item changed since
//! the read) plans again from a fresh read.
//!
//! ## Listing
//!
//! `list_users` is a consistent `Scan` of the whole table, sorted newest first in
//! code, with the cursor of every listing (`page.rs`). Users are few (people, not
//! jobs); a `by_created` index like the agents' is the step if a deployment ever
//! has many thousands.

use std::cmp::Reverse;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};
use runway_core::audit::AuditEvent;
use runway_core::id::UserId;
use runway_core::oidc::OidcIdentity;
use runway_core::page::{Page, PageRequest};
use runway_core::store::{Conflict, RecordKind, StoreError, StoreResult, UserAdminStore};
use runway_core::user::{User, UserChange};

use crate::accounts::{
    Contended, SESSION_VERSION, SESSION_WRITE_ROUNDS, SESSIONS, lost_to_a_conflict, put_new,
};
use crate::error::{RETRY_AFTER, failed_condition, sdk_error, transaction_error};
use crate::expr::Expr;
use crate::items::{
    ADMIN_COUNTER_KEY, LookupItem, UserItem, api_token_key, from_item, number, oidc_identity_key,
    string, to_item, username_key,
};
use crate::page::Seek;
use crate::schema::{LOOKUP_KEY, USER_ID};
use crate::{DynamoStore, PutNew};

/// The counter's attribute.
const ADMINS: &str = "admins";
/// The user item's map of API tokens (see `items.rs`).
pub(crate) const API_TOKENS: &str = "api_tokens";

/// How an enabled-admin count moves with a write.
fn admin_delta(before: Option<&User>, after: Option<&User>) -> i64 {
    let count = |user: Option<&User>| i64::from(user.is_some_and(User::is_enabled_admin));
    count(after) - count(before)
}

/// What a failed transaction's first failed condition was about.
enum Failed {
    /// The user item (read again and plan anew).
    User,
    /// The counter: `LastAdmin` for a decrement, missing for an increment.
    Counter,
    /// The audit event's id is taken.
    Audit,
    /// Anything else the caller decodes.
    Other(usize),
}

/// Where the actions of a user write sit in its transaction.
struct Layout {
    counter: Option<usize>,
    audit: Option<usize>,
}

impl Layout {
    fn failed(&self, index: usize, user: usize) -> Failed {
        if index == user {
            Failed::User
        } else if Some(index) == self.counter {
            Failed::Counter
        } else if Some(index) == self.audit {
            Failed::Audit
        } else {
            Failed::Other(index)
        }
    }
}

impl DynamoStore {
    /// Creates the enabled-admin counter if it does not exist (module docs).
    pub(crate) async fn ensure_admin_counter(&self) -> StoreResult<()> {
        if self
            .get_item(
                &self.tables.lookups,
                LOOKUP_KEY,
                ADMIN_COUNTER_KEY.to_owned(),
            )
            .await?
            .is_some()
        {
            return Ok(());
        }
        let admins = self
            .scan_users()
            .await?
            .iter()
            .filter(|u| u.is_enabled_admin())
            .count();
        let item = HashMap::from([
            (LOOKUP_KEY.to_owned(), string(ADMIN_COUNTER_KEY)),
            (ADMINS.to_owned(), number(admins)),
        ]);
        match self
            .put_if_absent(&self.tables.lookups, item, LOOKUP_KEY)
            .await?
        {
            // Another writer created it first, from the same count.
            PutNew::Written | PutNew::Taken => Ok(()),
        }
    }

    /// `ADD admins delta` on the counter, as a transaction action; a decrement is
    /// conditional on leaving at least one.
    fn admin_counter_change(&self, delta: i64) -> StoreResult<TransactWriteItem> {
        let mut expr = Expr::new();
        let key = expr.name(LOOKUP_KEY);
        expr.condition(&format!("attribute_exists({key})"));
        let admins = expr.name(ADMINS);
        if delta < 0 {
            let least = expr.value(number(1 - delta));
            expr.condition(&format!("{admins} >= {least}"));
        }
        expr.add(admins, number(delta));
        let update = Update::builder()
            .table_name(&self.tables.lookups)
            .key(LOOKUP_KEY, string(ADMIN_COUNTER_KEY))
            .set_update_expression(expr.update_expression())
            .set_condition_expression(expr.condition_expression())
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .build()
            .map_err(StoreError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Every user, read with a consistent `Scan`.
    async fn scan_users(&self) -> StoreResult<Vec<User>> {
        let mut users = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.tables.users)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            for item in output.items.unwrap_or_default() {
                users.push(User::from(from_item::<UserItem>("users", item)?));
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(users)
    }

    /// Creates `user` (with the issuer `identity` that signs them in, if any),
    /// their username, the admin counter's increment for an enabled admin and
    /// `audit`, in one transaction.
    pub(crate) async fn put_user(
        &self,
        user: &User,
        identity: Option<&OidcIdentity>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        let delta = admin_delta(None, Some(user));
        for _ in 0..SESSION_WRITE_ROUNDS {
            if delta != 0 {
                self.ensure_admin_counter().await?;
            }
            let mut user_item = UserItem::from(user);
            if let Some(identity) = identity {
                user_item = user_item.with_oidc_identity(oidc_identity_key(identity));
            }
            let lookup = |lookup_key: String| {
                to_item(
                    "lookups",
                    &LookupItem {
                        lookup_key,
                        target_id: user.id.to_string(),
                    },
                )
            };
            let mut actions = vec![
                put_new(&self.tables.users, to_item("users", &user_item)?, USER_ID)?,
                put_new(
                    &self.tables.lookups,
                    lookup(username_key(&user.username))?,
                    LOOKUP_KEY,
                )?,
            ];
            if let Some(identity) = identity {
                actions.push(put_new(
                    &self.tables.lookups,
                    lookup(oidc_identity_key(identity))?,
                    LOOKUP_KEY,
                )?);
            }
            let mut layout = Layout {
                counter: None,
                audit: None,
            };
            if delta != 0 {
                layout.counter = Some(actions.len());
                actions.push(self.admin_counter_change(delta)?);
            }
            if let Some(audit) = audit {
                layout.audit = Some(actions.len());
                actions.push(self.put_event(audit)?);
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            match failed_condition(&err).map(|i| layout.failed(i, 0)) {
                Some(Failed::User) => return Err(Conflict::Exists(RecordKind::User).into()),
                Some(Failed::Other(1)) => {
                    return Err(Conflict::UsernameTaken(user.username.clone()).into());
                }
                Some(Failed::Other(_)) => {
                    return Err(Conflict::Exists(RecordKind::OidcIdentity).into());
                }
                Some(Failed::Audit) => {
                    return Err(Conflict::Exists(RecordKind::AuditEvent).into());
                }
                // The counter was missing: create it, then again.
                Some(Failed::Counter) => {}
                None if lost_to_a_conflict(&err) => {}
                None => return Err(transaction_error(err)),
            }
        }
        Err(StoreError::unavailable(Contended, Some(RETRY_AFTER)))
    }

    /// The deletes of every session and API token in `item`'s maps.
    fn credential_deletes(&self, item: &UserItem) -> StoreResult<Vec<TransactWriteItem>> {
        let mut deletes = Vec::new();
        for id in item.sessions().into_iter().flat_map(|m| m.keys()) {
            deletes.push(self.delete_session(id)?);
        }
        for id in item.api_tokens().into_iter().flat_map(|m| m.keys()) {
            let id = id.parse().map_err(StoreError::internal)?;
            deletes.push(self.delete_session(&api_token_key(id))?);
        }
        Ok(deletes)
    }
}

/// Conditions that the user item is still as `item` was read: it exists, its
/// role and state are the ones read (so the admin counter moves by what was
/// planned, even against a racing enable that changes no map), and its
/// `session_version` (so its two maps) is the one read.
fn unchanged_since_read(expr: &mut Expr, item: &UserItem) {
    let user = User::from(item.clone());
    let id = expr.name(USER_ID);
    expr.condition(&format!("attribute_exists({id})"));
    let role = expr.name("role");
    let read_role = expr.value(string(user.role.as_str()));
    expr.condition(&format!("{role} = {read_role}"));
    let disabled = expr.name("disabled");
    if user.disabled {
        let yes = expr.value(AttributeValue::Bool(true));
        expr.condition(&format!("{disabled} = {yes}"));
    } else {
        let no = expr.value(AttributeValue::Bool(false));
        expr.condition(&format!(
            "attribute_not_exists({disabled}) OR {disabled} = {no}"
        ));
    }
    let version = expr.name(SESSION_VERSION);
    match item.session_version() {
        Some(read) => {
            let read = expr.value(number(read));
            expr.condition(&format!("{version} = {read}"));
        }
        None => expr.condition(&format!("attribute_not_exists({version})")),
    }
}

#[async_trait::async_trait]
impl UserAdminStore for DynamoStore {
    async fn create_user_audited(&self, user: &User, audit: &AuditEvent) -> StoreResult<()> {
        self.put_user(user, None, Some(audit)).await
    }

    async fn list_users(&self, page: &PageRequest) -> StoreResult<Page<User>> {
        let seek = Seek::new(page)?;
        let mut users = self.scan_users().await?;
        users.sort_by_key(|u| Reverse(u.id));
        let users: Vec<User> = users
            .into_iter()
            .filter(|u| {
                seek.before
                    .as_ref()
                    .is_none_or(|before| u.id.to_string() < *before)
            })
            .take(seek.limit + 1)
            .collect();
        Ok(seek.finish(users, |u| u.id.to_string()))
    }

    async fn update_user(
        &self,
        id: UserId,
        change: UserChange,
        audit: &AuditEvent,
    ) -> StoreResult<User> {
        for _ in 0..SESSION_WRITE_ROUNDS {
            let Some(item) = self.user_item(id).await? else {
                return Err(StoreError::NotFound);
            };
            let user = User::from(item.clone());
            let mut changed = change.apply(&user);
            let delta = admin_delta(Some(&user), Some(&changed));
            if delta != 0 {
                self.ensure_admin_counter().await?;
            }
            let mut expr = Expr::new();
            unchanged_since_read(&mut expr, &item);
            let role = expr.name("role");
            expr.set(role, string(changed.role.as_str()));
            let disabled = expr.name("disabled");
            expr.set(disabled, AttributeValue::Bool(changed.disabled));
            let revokes = change.revokes_credentials(&user);
            let mut deletes = Vec::new();
            if revokes {
                changed.credential_epoch += 1;
                let epoch = expr.name(crate::accounts::CREDENTIAL_EPOCH);
                expr.set(epoch, number(changed.credential_epoch));
                let version = expr.name(SESSION_VERSION);
                let (zero, one) = (expr.value(number(0)), expr.value(number(1)));
                expr.set_to(
                    version.clone(),
                    &format!("if_not_exists({version}, {zero}) + {one}"),
                );
                for map in [SESSIONS, API_TOKENS] {
                    let name = expr.name(map);
                    expr.set(name, AttributeValue::M(HashMap::new()));
                }
                deletes = self.credential_deletes(&item)?;
            }
            let mut actions = vec![self.update_user_item(id, &expr)?];
            let mut layout = Layout {
                counter: None,
                audit: None,
            };
            if delta != 0 {
                layout.counter = Some(actions.len());
                actions.push(self.admin_counter_change(delta)?);
            }
            actions.extend(deletes);
            layout.audit = Some(actions.len());
            actions.push(self.put_event(audit)?);
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(changed),
                Err(err) => err,
            };
            match failed_condition(&err).map(|i| layout.failed(i, 0)) {
                Some(Failed::Counter) if delta < 0 => return Err(Conflict::LastAdmin.into()),
                Some(Failed::Audit) => {
                    return Err(Conflict::Exists(RecordKind::AuditEvent).into());
                }
                // The user changed since the read, or the counter was missing.
                Some(Failed::User | Failed::Counter) => {}
                None if lost_to_a_conflict(&err) => {}
                Some(Failed::Other(_)) | None => return Err(transaction_error(err)),
            }
        }
        Err(StoreError::unavailable(Contended, Some(RETRY_AFTER)))
    }

    async fn delete_user(&self, id: UserId, audit: &AuditEvent) -> StoreResult<()> {
        for _ in 0..SESSION_WRITE_ROUNDS {
            let Some(item) = self.user_item(id).await? else {
                return Err(StoreError::NotFound);
            };
            let user = User::from(item.clone());
            let delta = admin_delta(Some(&user), None);
            if delta != 0 {
                self.ensure_admin_counter().await?;
            }
            let mut expr = Expr::new();
            unchanged_since_read(&mut expr, &item);
            let delete = Delete::builder()
                .table_name(&self.tables.users)
                .key(USER_ID, string(id.to_string()))
                .set_condition_expression(expr.condition_expression())
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .build()
                .map_err(StoreError::internal)?;
            let mut actions = vec![TransactWriteItem::builder().delete(delete).build()];
            let mut layout = Layout {
                counter: None,
                audit: None,
            };
            if delta != 0 {
                layout.counter = Some(actions.len());
                actions.push(self.admin_counter_change(delta)?);
            }
            let lookups = std::iter::once(username_key(&user.username))
                .chain(item.oidc_identities().iter().cloned());
            for key in lookups {
                let delete = Delete::builder()
                    .table_name(&self.tables.lookups)
                    .key(LOOKUP_KEY, string(key))
                    .build()
                    .map_err(StoreError::internal)?;
                actions.push(TransactWriteItem::builder().delete(delete).build());
            }
            actions.extend(self.credential_deletes(&item)?);
            layout.audit = Some(actions.len());
            actions.push(self.put_event(audit)?);
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            match failed_condition(&err).map(|i| layout.failed(i, 0)) {
                Some(Failed::Counter) => return Err(Conflict::LastAdmin.into()),
                Some(Failed::Audit) => {
                    return Err(Conflict::Exists(RecordKind::AuditEvent).into());
                }
                Some(Failed::User) => {}
                None if lost_to_a_conflict(&err) => {}
                Some(Failed::Other(_)) | None => return Err(transaction_error(err)),
            }
        }
        Err(StoreError::unavailable(Contended, Some(RETRY_AFTER)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runway_core::user::Role;

    fn user(role: Role, disabled: bool) -> User {
        User {
            id: UserId::new(),
            username: "ada".into(),
            role,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            password_hash: String::new(),
            credential_epoch: 0,
            disabled,
        }
    }

    #[test]
    fn only_enabled_admins_move_the_counter() {
        let admin = user(Role::Admin, false);
        let member = user(Role::Member, false);
        let disabled = user(Role::Admin, true);
        assert_eq!(admin_delta(None, Some(&admin)), 1);
        assert_eq!(admin_delta(Some(&admin), None), -1);
        assert_eq!(admin_delta(Some(&admin), Some(&member)), -1);
        assert_eq!(admin_delta(Some(&admin), Some(&disabled)), -1);
        assert_eq!(admin_delta(Some(&disabled), Some(&admin)), 1);
        assert_eq!(admin_delta(None, Some(&member)), 0);
        assert_eq!(admin_delta(Some(&member), None), 0);
    }
}
