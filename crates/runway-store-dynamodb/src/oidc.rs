//! Pending OpenID Connect logins, and users found by their issuer identity.
//!
//! * **A login** is one item in `oidc_logins`, keyed by the SHA-256 of its state,
//!   written with `attribute_not_exists`. The callback takes it with one
//!   `DeleteItem` conditional on the item existing and asking for the old item
//!   back (`ReturnValues=ALL_OLD`): DynamoDB applies deletes of one key one at a
//!   time, so of two racing callbacks exactly one gets the item and the other's
//!   condition fails. Expiry is decided in code from `now`; the `ttl` attribute
//!   only lets DynamoDB collect logins nobody called back.
//! * **An identity** is a `lookups` item `oidc#<issuer>#<subject>` pointing at
//!   the user, written in the same `TransactWriteItems` as the user and its
//!   `username#` item, so a user never exists without the identity that created
//!   it, and a second first sign-in of the same person fails its condition.
//!   Reading it is two strongly consistent `GetItem`s, as for a username. The
//!   user item lists the key (`oidc_identities`), so deleting the user deletes
//!   the identity in the same transaction (`users.rs`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use runway_core::audit::AuditEvent;
use runway_core::oidc::{OidcIdentity, PendingLogin};
use runway_core::secret::TokenHash;
use runway_core::store::{Conflict, OidcIdentityStore, OidcLoginStore, RecordKind, StoreResult};
use runway_core::user::User;
use time::OffsetDateTime;

use crate::error::{is_condition_failure, sdk_error};
use crate::items::{PendingLoginItem, UserItem, from_item, oidc_identity_key, string, to_item};
use crate::schema::{STATE_HASH, USER_ID};
use crate::{DynamoStore, PutNew};

#[async_trait]
impl OidcLoginStore for DynamoStore {
    async fn create_oidc_login(&self, login: &PendingLogin) -> StoreResult<()> {
        let item = to_item("oidc_logins", &PendingLoginItem::from(login))?;
        match self
            .put_if_absent(&self.tables.oidc_logins, item, STATE_HASH)
            .await?
        {
            PutNew::Written => Ok(()),
            PutNew::Taken => Err(Conflict::Exists(RecordKind::OidcLogin).into()),
        }
    }

    async fn take_oidc_login(
        &self,
        state_hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<PendingLogin>> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.oidc_logins)
            .key(STATE_HASH, string(state_hash.as_str()))
            .condition_expression("attribute_exists(#key)")
            .expression_attribute_names("#key", STATE_HASH)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let item = match result {
            Ok(output) => output.attributes,
            // Never stored, taken already, or collected by TTL.
            Err(err) if is_condition_failure(&err) => None,
            Err(err) => return Err(sdk_error(err)),
        };
        let Some(item) = item else { return Ok(None) };
        let login = PendingLogin::from(from_item::<PendingLoginItem>("oidc_logins", item)?);
        Ok(Some(login).filter(|l| l.is_live(now)))
    }
}

#[async_trait]
impl OidcIdentityStore for DynamoStore {
    async fn user_by_oidc_identity(&self, identity: &OidcIdentity) -> StoreResult<Option<User>> {
        let Some(id) = self.lookup(oidc_identity_key(identity)).await? else {
            return Ok(None);
        };
        let user = self.get_item(&self.tables.users, USER_ID, id).await?;
        user.map(|item| from_item::<UserItem>("users", item).map(User::from))
            .transpose()
    }

    /// See [`DynamoStore::put_user`]: the user, their username, the identity
    /// and, for an enabled admin, the admin counter, with `audit`, in one
    /// transaction.
    async fn create_oidc_user(
        &self,
        user: &User,
        identity: &OidcIdentity,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        self.put_user(user, Some(identity), Some(audit)).await
    }
}
