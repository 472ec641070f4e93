//! Personal API tokens.
//!
//! A token is an item of the `sessions` table under the key `api_token#<id>`
//! (`items.rs`): that table already holds the one credential read on every
//! request, with the same access pattern (a strongly consistent `GetItem` by
//! key), the same IAM actions and the same capacity plan, so tokens add no table,
//! no index and no permission. A ULID session id can never collide with that key.
//! Token items carry no `ttl`: an expired token stays until it is revoked or its
//! user makes another one, exactly as in SQLite.
//!
//! Like sessions, the user item keeps a map of its tokens (`api_tokens`: id →
//! expiry in unix ns, 0 for never), bumping `session_version` with every change,
//! so disabling or deleting the user can delete every token in one transaction
//! (`users.rs`), and "which tokens does this user hold" has an exact answer.
//!
//! * **Create** reads the user, then one `TransactWriteItems`: the token's `Put`
//!   (`attribute_not_exists`), the user's `Update` that adds the map entry and
//!   removes the entries expired at `created_at`, conditional on the credential
//!   epoch the session asking for it carries and on `size(api_tokens)` being what
//!   the plan allows (so two creates racing for the last place cannot both take
//!   it), a `Delete` of each expired token, and the audit event's `Put`. A lost
//!   race plans again from a fresh read.
//! * **Revoke** is one transaction: the token's `Delete` conditional on
//!   `user_id = :user`, the `REMOVE` of its map entry conditional on the entry,
//!   and the audit event.
//! * **List** reads the map, then the tokens with one consistent `BatchGetItem`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use runway_core::api_token::{ApiToken, MAX_API_TOKENS_PER_USER};
use runway_core::audit::AuditEvent;
use runway_core::id::{ApiTokenId, UserId};
use runway_core::store::{ApiTokenStore, Conflict, RecordKind, StoreError, StoreResult};

use crate::DynamoStore;
use crate::accounts::{
    Contended, SESSION_VERSION, SESSION_WRITE_ROUNDS, epoch_condition, lost_to_a_conflict, put_new,
};
use crate::error::{RETRY_AFTER, failed_condition, transaction_error};
use crate::expr::Expr;
use crate::items::{ApiTokenItem, api_token_key, from_item, nanos, number, to_item};
use crate::schema::{SESSION_ID, USER_ID};
use crate::users::API_TOKENS;

/// The map's value for a token that never expires.
const NEVER: i64 = 0;

/// Which of a user's token entries a new one's write removes, or why it cannot.
fn plan(tokens: &BTreeMap<String, i64>, now: i64) -> Result<Vec<String>, Conflict> {
    let (expired, live): (Vec<_>, Vec<_>) = tokens
        .iter()
        .partition(|(_, expires)| **expires != NEVER && **expires <= now);
    if live.len() >= MAX_API_TOKENS_PER_USER {
        return Err(Conflict::TooManyApiTokens);
    }
    Ok(expired.into_iter().map(|(id, _)| id.clone()).collect())
}

#[async_trait]
impl ApiTokenStore for DynamoStore {
    async fn create_api_token(&self, token: &ApiToken, audit: &AuditEvent) -> StoreResult<()> {
        let item = to_item("sessions", &ApiTokenItem::from(token))?;
        let id = token.id.to_string();
        let created_at = nanos(token.created_at)?;
        let expires = token.expires_at.map(nanos).transpose()?.unwrap_or(NEVER);
        for _ in 0..SESSION_WRITE_ROUNDS {
            let Some(user) = self.user_item(token.user_id).await? else {
                return Err(StoreError::NotFound);
            };
            if user.credential_epoch() != token.credential_epoch {
                return Err(Conflict::CredentialsChanged.into());
            }
            let mut expr = Expr::new();
            let user_id = expr.name(USER_ID);
            expr.condition(&format!("attribute_exists({user_id})"));
            epoch_condition(&mut expr, token.credential_epoch);
            let tokens = expr.name(API_TOKENS);
            let expired = match user.api_tokens() {
                None => {
                    expr.condition(&format!("attribute_not_exists({tokens})"));
                    let map = HashMap::from([(id.clone(), number(expires))]);
                    expr.set(tokens, AttributeValue::M(map));
                    Vec::new()
                }
                Some(map) => {
                    let expired = plan(map, created_at)?;
                    let limit = expr.value(number(MAX_API_TOKENS_PER_USER - 1 + expired.len()));
                    expr.condition(&format!("size({tokens}) <= {limit}"));
                    for old in &expired {
                        let entry = format!("{tokens}.{}", expr.name(old));
                        expr.condition(&format!("attribute_exists({entry})"));
                        expr.remove(entry);
                    }
                    let entry = format!("{tokens}.{}", expr.name(&id));
                    expr.set(entry, number(expires));
                    expired
                }
            };
            let version = expr.name(SESSION_VERSION);
            expr.add(version, number(1));

            let mut actions = vec![
                put_new(&self.tables.sessions, item.clone(), SESSION_ID)?,
                self.update_user_item(token.user_id, &expr)?,
            ];
            for old in &expired {
                let old: ApiTokenId = old.parse().map_err(StoreError::internal)?;
                actions.push(self.delete_session(&api_token_key(old))?);
            }
            let audit_at = actions.len();
            actions.push(self.put_event(audit)?);
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(err) => match failed_condition(&err) {
                    Some(0) => return Err(Conflict::Exists(RecordKind::ApiToken).into()),
                    Some(i) if i == audit_at => {
                        return Err(Conflict::Exists(RecordKind::AuditEvent).into());
                    }
                    // The epoch or the map changed since the read: read again, and
                    // the next round says which.
                    Some(1) => {}
                    None if lost_to_a_conflict(&err) => {}
                    _ => return Err(transaction_error(err)),
                },
            }
        }
        Err(StoreError::unavailable(Contended, Some(RETRY_AFTER)))
    }

    async fn get_api_token(&self, id: ApiTokenId) -> StoreResult<Option<ApiToken>> {
        self.get_item(&self.tables.sessions, SESSION_ID, api_token_key(id))
            .await?
            .map(|item| from_item::<ApiTokenItem>("sessions", item).map(ApiToken::from))
            .transpose()
    }

    async fn list_api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiToken>> {
        let Some(item) = self.user_item(user).await? else {
            return Ok(vec![]);
        };
        let keys: Vec<String> = item
            .api_tokens()
            .into_iter()
            .flat_map(BTreeMap::keys)
            .filter_map(|id| id.parse().ok().map(api_token_key))
            .collect();
        let mut tokens = Vec::with_capacity(keys.len());
        for (_, item) in self
            .batch_get(&self.tables.sessions, SESSION_ID, &keys)
            .await?
        {
            let token = ApiToken::from(from_item::<ApiTokenItem>("sessions", item)?);
            if token.user_id == user {
                tokens.push(token);
            }
        }
        tokens.sort_by_key(|t| Reverse(t.id));
        Ok(tokens)
    }

    async fn revoke_api_token(
        &self,
        user: UserId,
        id: ApiTokenId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let result = self
            .remove_credential(user, api_token_key(id), API_TOKENS, &id.to_string(), audit)
            .await?;
        match result {
            Ok(()) => Ok(()),
            Err(err) => match failed_condition(&err) {
                Some(2) => Err(Conflict::Exists(RecordKind::AuditEvent).into()),
                // Missing, someone else's, or not in the user's map: the same
                // answer, so ids cannot be probed.
                Some(_) => Err(StoreError::NotFound),
                None => Err(transaction_error(err)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_removes_the_expired_ones_and_is_refused_at_the_bound() {
        let map: BTreeMap<String, i64> =
            [("a".into(), 5), ("b".into(), NEVER), ("c".into(), 20)].into();
        assert_eq!(plan(&map, 10), Ok(vec!["a".to_owned()]));
        let full: BTreeMap<String, i64> = (0..MAX_API_TOKENS_PER_USER)
            .map(|n| (format!("{n:03}"), NEVER))
            .collect();
        assert_eq!(plan(&full, 10), Err(Conflict::TooManyApiTokens));
    }
}
