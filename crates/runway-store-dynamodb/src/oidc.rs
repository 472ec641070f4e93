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
//!   Reading it is two strongly consistent `GetItem`s, as for a username.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use runway_core::oidc::{OidcIdentity, PendingLogin};
use runway_core::secret::TokenHash;
use runway_core::store::{Conflict, OidcIdentityStore, OidcLoginStore, RecordKind, StoreResult};
use runway_core::user::User;
use time::OffsetDateTime;

use crate::accounts::put_new;
use crate::error::{failed_condition, is_condition_failure, sdk_error, transaction_error};
use crate::items::{
    LookupItem, PendingLoginItem, UserItem, from_item, oidc_identity_key, string, to_item,
    username_key,
};
use crate::schema::{LOOKUP_KEY, STATE_HASH, USER_ID};
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

    async fn create_oidc_user(&self, user: &User, identity: &OidcIdentity) -> StoreResult<()> {
        let user_item = to_item("users", &UserItem::from(user))?;
        let name = to_item(
            "lookups",
            &LookupItem {
                lookup_key: username_key(&user.username),
                target_id: user.id.to_string(),
            },
        )?;
        let link = to_item(
            "lookups",
            &LookupItem {
                lookup_key: oidc_identity_key(identity),
                target_id: user.id.to_string(),
            },
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(put_new(&self.tables.users, user_item, USER_ID)?)
            .transact_items(put_new(&self.tables.lookups, name, LOOKUP_KEY)?)
            .transact_items(put_new(&self.tables.lookups, link, LOOKUP_KEY)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => Err(match failed_condition(&err) {
                Some(0) => Conflict::Exists(RecordKind::User).into(),
                Some(1) => Conflict::UsernameTaken(user.username.clone()).into(),
                Some(_) => Conflict::Exists(RecordKind::OidcIdentity).into(),
                None => transaction_error(err),
            }),
        }
    }
}
