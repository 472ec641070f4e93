//! Registration tokens and agents.
//!
//! * **Tokens by hash.** A registration token and an agent each have a `lookups`
//!   item (`registration_token#<hash>`, `agent_token#<hash>`) written in the same
//!   transaction as the record, so resolving a presented token is two strongly
//!   consistent reads and never misses a record that exists.
//! * **Registering** reads the token's lookup item (unknown hash → `NotFound`),
//!   then writes in one `TransactWriteItems`: an `Update` of the token counting one
//!   use (`SET uses = if_not_exists(uses, 0) + 1`) conditional on the token item
//!   still existing, `expires_at` absent or `> :now`, and `max_uses` absent or
//!   `uses < max_uses`; the agent (`attribute_not_exists`); and the agent's lookup
//!   item. If the admin deleted the token in between, it expired, or its last use
//!   went to a racing registration, the condition fails and nothing is written: a
//!   token with one use left admits exactly one of two. A registration whose
//!   response was lost is retried by the SDK; the retry fails on the agent it wrote
//!   itself, which the call recognises by reading it back (identical → success), so
//!   the use is counted once.
//! * **Audit.** Every write here but a heartbeat carries its audit event as the
//!   last action of its `TransactWriteItems` (`audit.rs`); a taken event id fails
//!   the whole transaction (`Conflict::Exists(AuditEvent)`), which is told apart
//!   from the write's own conditions by the position of the failed one. A
//!   registration's event names the token that admitted the agent
//!   (`AuditEvent::of_registration`).
//! * **States** (`set_agent_state`) are one `TransactWriteItems` of the update,
//!   conditional on the agent existing, and the event, then a consistent read of
//!   the agent; the claim's own condition reads the state (`dispatch.rs`).
//! * **Rotating a token** reads the agent (for the old hash), then swaps the hash
//!   (conditional on the old one) and the two lookup items in one transaction: the
//!   old token stops working in the same write that makes the new one work.
//! * **Deleting an agent** deletes it (conditional on the token hash read) and its
//!   lookup item in one transaction. Its `held` set goes with it; the jobs keep
//!   their attempts, which `held_by` still finds through `by_lease` and the caller
//!   ends as abandoned.
//! * **Deleting a token** removes the token and its lookup item in one transaction,
//!   conditional on the token existing.
//! * **Listing tokens** is a strongly consistent `Scan` sorted in code: there are a
//!   handful, the admin page wants all of them, and a GSI could show one just
//!   deleted.
//! * **Heartbeats** are an `UpdateItem` of `last_heartbeat_at` and the metrics map,
//!   conditional on the agent existing, returning the new item. No GSI key changes,
//!   so no index is written.
//! * **Listing agents** reads the `by_region` or `by_created` GSI, then the items
//!   consistently, and judges health with `Agent::status(now)` in code, so the
//!   boundary is exactly the domain's (and a heartbeat a moment ago counts).

use std::cmp::Reverse;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, ReturnValue, TransactWriteItem, Update};
use runway_core::agent::{Agent, AgentMetrics, AgentState, RegistrationToken};
use runway_core::audit::AuditEvent;
use runway_core::id::{AgentId, RegistrationTokenId};
use runway_core::page::Page;
use runway_core::secret::TokenHash;
use runway_core::store::{
    AgentQuery, AgentStore, Conflict, RecordKind, RegistrationTokenStore, StoreError, StoreResult,
};
use time::OffsetDateTime;

use crate::DynamoStore;
use crate::accounts::put_new;
use crate::audit;
use crate::error::{
    RETRY_AFTER, cancellation_reasons, failed_condition, is_condition_failure, sdk_error,
    transaction_error,
};
use crate::expr::Expr;
use crate::items::{
    AGENT_LIST_PK, AgentItem, LookupItem, RegistrationTokenItem, agent_token_key, from_item, nanos,
    number, registration_token_key, string, to_item, to_value,
};
use crate::page::{IndexQuery, Seek};
use crate::schema::{AGENT_ID, BY_CREATED, BY_REGION, LIST_PK, LOOKUP_KEY, REGION, TOKEN_ID};

fn decode_agent(item: crate::items::Item) -> StoreResult<Agent> {
    from_item::<AgentItem>("agents", item).map(Agent::from)
}

#[async_trait]
impl RegistrationTokenStore for DynamoStore {
    async fn create_registration_token(
        &self,
        token: &RegistrationToken,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let item = to_item("registration_tokens", &RegistrationTokenItem::from(token))?;
        let lookup = to_item(
            "lookups",
            &LookupItem {
                lookup_key: registration_token_key(&token.token_hash),
                target_id: token.id.to_string(),
            },
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(put_new(&self.tables.registration_tokens, item, TOKEN_ID)?)
            .transact_items(put_new(&self.tables.lookups, lookup, LOOKUP_KEY)?)
            .transact_items(self.put_event(audit)?)
            .send()
            .await;
        let Err(err) = result else {
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
            Some(_) => Err(Conflict::Exists(RecordKind::RegistrationToken).into()),
            None => Err(transaction_error(err)),
        }
    }

    async fn list_registration_tokens(&self) -> StoreResult<Vec<RegistrationToken>> {
        let mut tokens = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.tables.registration_tokens)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            for item in output.items.unwrap_or_default() {
                tokens.push(RegistrationToken::from(from_item::<RegistrationTokenItem>(
                    "registration_tokens",
                    item,
                )?));
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        tokens.sort_by_key(|t| Reverse(t.id));
        Ok(tokens)
    }

    async fn delete_registration_token(
        &self,
        id: RegistrationTokenId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let Some(item) = self
            .get_item(&self.tables.registration_tokens, TOKEN_ID, id.to_string())
            .await?
        else {
            return Err(StoreError::NotFound);
        };
        let token = from_item::<RegistrationTokenItem>("registration_tokens", item)?;
        let delete = |table: &str, key: &'static str, value: String| {
            Delete::builder()
                .table_name(table)
                .key(key, string(value))
                .condition_expression("attribute_exists(#key)")
                .expression_attribute_names("#key", key)
                .build()
                .map(|d| TransactWriteItem::builder().delete(d).build())
                .map_err(StoreError::internal)
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(delete(
                &self.tables.registration_tokens,
                TOKEN_ID,
                id.to_string(),
            )?)
            .transact_items(
                Delete::builder()
                    .table_name(&self.tables.lookups)
                    .key(
                        LOOKUP_KEY,
                        string(registration_token_key(&token.token_hash)),
                    )
                    .build()
                    .map(|d| TransactWriteItem::builder().delete(d).build())
                    .map_err(StoreError::internal)?,
            )
            .transact_items(self.put_event(audit)?)
            .send()
            .await;
        let Err(err) = result else {
            return Ok(());
        };
        // Our own transaction, retried after its response was lost.
        if let Some(reasons) = cancellation_reasons(&err)
            && audit::landed(reasons, 2, audit)?
        {
            return Ok(());
        }
        match failed_condition(&err) {
            // Deleted by a concurrent caller between the read and the write.
            Some(0) => Err(StoreError::NotFound),
            Some(_) => Err(audit::taken()),
            None => Err(transaction_error(err)),
        }
    }
}

#[async_trait]
impl AgentStore for DynamoStore {
    async fn register_agent(
        &self,
        registration: &TokenHash,
        agent: Agent,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Agent> {
        let Some(token_id) = self.lookup(registration_token_key(registration)).await? else {
            return Err(StoreError::NotFound);
        };
        let mut agent = agent;
        agent.registration_token_id = token_id.parse().map_err(StoreError::internal)?;
        let mut e = Expr::new();
        let id = e.name(TOKEN_ID);
        let expires = e.name("expires_at");
        let uses = e.name("uses");
        let max = e.name("max_uses");
        let at = e.value(number(nanos(now)?));
        let zero = e.value(number(0));
        let one = e.value(number(1));
        e.set_to(
            uses.clone(),
            &format!("if_not_exists({uses}, {zero}) + {one}"),
        );
        e.condition(&format!("attribute_exists({id})"));
        e.condition(&format!(
            "attribute_not_exists({expires}) OR {expires} > {at}"
        ));
        e.condition(&format!("attribute_not_exists({max}) OR {uses} < {max}"));
        let count_use = Update::builder()
            .table_name(&self.tables.registration_tokens)
            .key(TOKEN_ID, string(token_id))
            .set_update_expression(e.update_expression())
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .build()
            .map_err(StoreError::internal)?;
        let item = to_item("agents", &AgentItem::from(&agent))?;
        let lookup = to_item(
            "lookups",
            &LookupItem {
                lookup_key: agent_token_key(&agent.token_hash),
                target_id: agent.id.to_string(),
            },
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(count_use).build())
            .transact_items(put_new(&self.tables.agents, item, AGENT_ID)?)
            .transact_items(put_new(&self.tables.lookups, lookup, LOOKUP_KEY)?)
            .transact_items(self.put_event(&audit.of_registration(agent.registration_token_id))?)
            .send()
            .await;
        let Err(err) = result else {
            return Ok(agent);
        };
        let Some(failed) = failed_condition(&err) else {
            return Err(transaction_error(err));
        };
        // The SDK retried a registration whose response was lost: the retry found
        // the agent it had written itself (and used the token once, not twice).
        if self.get_agent(agent.id).await?.as_ref() == Some(&agent) {
            return Ok(agent);
        }
        Err(match failed {
            0 => StoreError::NotFound,
            3 => audit::taken(),
            _ => Conflict::Exists(RecordKind::Agent).into(),
        })
    }

    async fn agent_by_token_hash(&self, hash: &TokenHash) -> StoreResult<Option<Agent>> {
        let Some(id) = self.lookup(agent_token_key(hash)).await? else {
            return Ok(None);
        };
        let agent = self.get_item(&self.tables.agents, AGENT_ID, id).await?;
        agent.map(decode_agent).transpose()
    }

    async fn get_agent(&self, id: AgentId) -> StoreResult<Option<Agent>> {
        let agent = self
            .get_item(&self.tables.agents, AGENT_ID, id.to_string())
            .await?;
        agent.map(decode_agent).transpose()
    }

    async fn record_heartbeat(
        &self,
        id: AgentId,
        metrics: &AgentMetrics,
        now: OffsetDateTime,
    ) -> StoreResult<Agent> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.agents)
            .key(AGENT_ID, string(id.to_string()))
            .update_expression("SET last_heartbeat_at = :now, #metrics = :metrics")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", AGENT_ID)
            // `metrics` is one of DynamoDB's reserved words.
            .expression_attribute_names("#metrics", "metrics")
            .expression_attribute_values(":now", number(nanos(now)?))
            .expression_attribute_values(":metrics", to_value("agents", metrics)?)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => decode_agent(output.attributes.unwrap_or_default()),
            Err(err) if is_condition_failure(&err) => Err(StoreError::NotFound),
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn list_agents(
        &self,
        query: &AgentQuery,
        now: OffsetDateTime,
    ) -> StoreResult<Page<Agent>> {
        let seek = Seek::new(&query.page)?;
        let index = IndexQuery {
            table: &self.tables.agents,
            index: if query.region.is_some() {
                BY_REGION
            } else {
                BY_CREATED
            },
            partition: match &query.region {
                Some(region) => (REGION, string(region.clone())),
                None => (LIST_PK, string(AGENT_LIST_PK)),
            },
            id: AGENT_ID,
            filtered: query.status.is_some(),
        };
        let agents = self
            .list_index_bounded(&index, &seek, decode_agent, |agent: &Agent| {
                // Region again on the fresh item (the index may lag); health at `now`.
                (query.region.is_none() || agent.region == query.region)
                    && query
                        .status
                        .is_none_or(|status| agent.status(now) == status)
            })
            .await?;
        Ok(seek.finish_bounded(agents, |a| a.id.to_string()))
    }

    /// One `TransactWriteItems`: `SET #state` conditional on the agent existing,
    /// and the event. A transaction returns no item, so the agent is read after
    /// it (consistently): what an admin sees is the agent as it now is.
    async fn set_agent_state(
        &self,
        id: AgentId,
        state: AgentState,
        audit: &AuditEvent,
    ) -> StoreResult<Agent> {
        let update = Update::builder()
            .table_name(&self.tables.agents)
            .key(AGENT_ID, string(id.to_string()))
            .update_expression("SET #state = :state")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", AGENT_ID)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", string(state.as_str()))
            .build()
            .map_err(StoreError::internal)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(self.put_event(audit)?)
            .send()
            .await;
        if let Err(err) = &result
            && let Some(reasons) = cancellation_reasons(err)
            && audit::landed(reasons, 1, audit)?
        {
            // Our own transaction, retried after its response was lost.
            return self.get_agent(id).await?.ok_or(StoreError::NotFound);
        }
        match result {
            Ok(_) => self.get_agent(id).await?.ok_or(StoreError::NotFound),
            Err(err) => match failed_condition(&err) {
                Some(0) => Err(StoreError::NotFound),
                Some(_) => Err(audit::taken()),
                None => Err(transaction_error(err)),
            },
        }
    }

    /// Read the agent (for the old hash), then one `TransactWriteItems`: the
    /// agent's `SET token_hash = :new` conditional on `token_hash = :old`, the old
    /// lookup item's deletion and the new one's creation (`attribute_not_exists`).
    /// A concurrent rotation fails the condition and the call reads again; finding
    /// the new hash already in place (our own write, retried) is success.
    async fn rotate_agent_token(
        &self,
        id: AgentId,
        token_hash: &TokenHash,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        for _ in 0..MAX_ROUNDS {
            let Some(item) = self
                .get_item(&self.tables.agents, AGENT_ID, id.to_string())
                .await?
            else {
                return Err(StoreError::NotFound);
            };
            let old = from_item::<AgentItem>("agents", item)?.token_hash;
            if &old == token_hash {
                return Ok(());
            }
            let swap = Update::builder()
                .table_name(&self.tables.agents)
                .key(AGENT_ID, string(id.to_string()))
                .update_expression("SET #hash = :new")
                .condition_expression("#hash = :old")
                .expression_attribute_names("#hash", "token_hash")
                .expression_attribute_values(":new", string(token_hash.as_str()))
                .expression_attribute_values(":old", string(old.as_str()))
                .build()
                .map_err(StoreError::internal)?;
            let forget = Delete::builder()
                .table_name(&self.tables.lookups)
                .key(LOOKUP_KEY, string(agent_token_key(&old)))
                .build()
                .map_err(StoreError::internal)?;
            let lookup = to_item(
                "lookups",
                &LookupItem {
                    lookup_key: agent_token_key(token_hash),
                    target_id: id.to_string(),
                },
            )?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(swap).build())
                .transact_items(TransactWriteItem::builder().delete(forget).build())
                .transact_items(put_new(&self.tables.lookups, lookup, LOOKUP_KEY)?)
                .transact_items(self.put_event(audit)?)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                // Rotated (or deleted) meanwhile: read again.
                Err(err) if failed_condition(&err) == Some(0) => {}
                Err(err) if failed_condition(&err) == Some(3) => return Err(audit::taken()),
                // The new hash already names something: tokens are 256 random
                // bits, so this is the caller reusing a hash.
                Err(err) if failed_condition(&err).is_some() => {
                    return Err(Conflict::Exists(RecordKind::Agent).into());
                }
                Err(err) => return Err(transaction_error(err)),
            }
        }
        Err(StoreError::unavailable(
            AgentContention(id),
            Some(RETRY_AFTER),
        ))
    }

    /// Read the agent (for its token's lookup key), then one `TransactWriteItems`:
    /// the agent's deletion conditional on its token hash being the one read, and
    /// the lookup item's. The agent's `held` set goes with it; the jobs keep their
    /// attempts, and `held_by` still finds them through `by_lease` (`dispatch.rs`).
    async fn delete_agent(&self, id: AgentId, audit: &AuditEvent) -> StoreResult<()> {
        let mut sent = false;
        for _ in 0..MAX_ROUNDS {
            let Some(item) = self
                .get_item(&self.tables.agents, AGENT_ID, id.to_string())
                .await?
            else {
                // Gone after a delete of ours was sent: the SDK retried it after
                // its response was lost, and the retry found our own work done.
                return if sent {
                    Ok(())
                } else {
                    Err(StoreError::NotFound)
                };
            };
            let hash = from_item::<AgentItem>("agents", item)?.token_hash;
            let agent = Delete::builder()
                .table_name(&self.tables.agents)
                .key(AGENT_ID, string(id.to_string()))
                .condition_expression("#hash = :hash")
                .expression_attribute_names("#hash", "token_hash")
                .expression_attribute_values(":hash", string(hash.as_str()))
                .build()
                .map_err(StoreError::internal)?;
            let lookup = Delete::builder()
                .table_name(&self.tables.lookups)
                .key(LOOKUP_KEY, string(agent_token_key(&hash)))
                .build()
                .map_err(StoreError::internal)?;
            sent = true;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().delete(agent).build())
                .transact_items(TransactWriteItem::builder().delete(lookup).build())
                .transact_items(self.put_event(audit)?)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(err) if failed_condition(&err) == Some(2) => return Err(audit::taken()),
                Err(err) if failed_condition(&err).is_some() => {}
                Err(err) => return Err(transaction_error(err)),
            }
        }
        Err(StoreError::unavailable(
            AgentContention(id),
            Some(RETRY_AFTER),
        ))
    }
}

/// Rounds of an agent write before it gives up.
const MAX_ROUNDS: usize = 16;

/// An agent write lost [`MAX_ROUNDS`] races in a row.
#[derive(Debug, thiserror::Error)]
#[error("agent {0} kept changing under a write; gave up after {MAX_ROUNDS} rounds")]
struct AgentContention(AgentId);
