//! Registration tokens and agents.
//!
//! Registering is the one multi-step rule here: the token must exist and be usable
//! at `now` (unexpired, with a use left) when the agent row is inserted, and the
//! use is counted. One `UPDATE registration_tokens SET uses = uses + 1 WHERE
//! token_hash = ? AND <usable> RETURNING id` both checks and consumes, and the
//! agent's `INSERT` follows in the same `BEGIN IMMEDIATE` transaction on the
//! writer: an admin deleting the token at the same moment either wins
//! (registration fails) or loses (the agent exists), never both; two registrations
//! racing for a token's last use are serialized by the write lock, and the second
//! finds `uses = max_uses`; an insert that fails (a duplicate agent) rolls the use
//! back with it.
//!
//! Rotating an agent's token and deleting an agent are single statements on the
//! agent's row: `agents_by_token_hash` is the only way a token resolves, so the
//! old token stops working in the write that commits.
//!
//! Every audited write (registering, a state change, a rotation, a deletion)
//! inserts its audit event in its own transaction (`audit::insert_event`), so a
//! taken event id rolls the change back too; a registration's event names the
//! token that admitted the agent (`AuditEvent::of_registration`).
//!
//! An agent's health is not stored. `list_agents` filters on `last_heartbeat_at`
//! with the same boundary as `Agent::status`: online iff `now - at < 90 s`, i.e.
//! `at > now - 90 s`.

use std::sync::LazyLock;

use async_trait::async_trait;
use runway_core::agent::{
    Agent, AgentMetrics, AgentState, AgentStatus, OFFLINE_AFTER, RegistrationToken,
};
use runway_core::audit::AuditEvent;
use runway_core::id::{AgentId, RegistrationTokenId};
use runway_core::page::Page;
use runway_core::secret::TokenHash;
use runway_core::store::{
    AgentQuery, AgentStore, Conflict, RecordKind, RegistrationTokenStore, StoreError, StoreResult,
};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, TransactionBehavior, params, params_from_iter};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::audit::insert_event;
use crate::error::{store_error, store_error_or_conflict};
use crate::page::Seek;
use crate::rows::{self, AGENT_COLUMNS, REGISTRATION_TOKEN_COLUMNS, json, opt_ts, ts};

// Point reads run on every agent call: their SQL is built once, not per call.
static AGENT_BY_TOKEN_HASH: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {AGENT_COLUMNS} FROM agents WHERE token_hash = ?1"));
static AGENT_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?1"));

#[async_trait]
impl RegistrationTokenStore for SqliteStore {
    async fn create_registration_token(
        &self,
        token: &RegistrationToken,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let t = token.clone();
        let audit = audit.clone();
        let (created_at, expires_at) = (ts(t.created_at)?, opt_ts(t.expires_at)?);
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(store_error)?;
                tx.prepare_cached(&format!(
                    "INSERT INTO registration_tokens ({REGISTRATION_TOKEN_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ))
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        t.id.to_string(),
                        t.description,
                        t.created_by.to_string(),
                        created_at,
                        expires_at,
                        t.max_uses,
                        t.uses,
                        t.token_hash.as_str(),
                    ])
                })
                .map_err(|e| {
                    store_error_or_conflict(e, |_| Conflict::Exists(RecordKind::RegistrationToken))
                })?;
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)
            })
            .await
    }

    async fn list_registration_tokens(&self) -> StoreResult<Vec<RegistrationToken>> {
        self.db.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {REGISTRATION_TOKEN_COLUMNS} FROM registration_tokens ORDER BY id DESC"
            ))?
            .query_map([], rows::registration_token)?
            .collect()
        })
    }

    async fn delete_registration_token(
        &self,
        id: RegistrationTokenId,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(store_error)?;
                let deleted = tx
                    .prepare_cached("DELETE FROM registration_tokens WHERE id = ?1")
                    .and_then(|mut stmt| stmt.execute([id.to_string()]))
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

#[async_trait]
impl AgentStore for SqliteStore {
    async fn register_agent(
        &self,
        registration: &TokenHash,
        agent: Agent,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Agent> {
        let registration = registration.clone();
        let audit = audit.clone();
        let now = ts(now)?;
        let created_at = ts(agent.created_at)?;
        let last_heartbeat_at = opt_ts(agent.last_heartbeat_at)?;
        let labels = json(&agent.labels)?;
        self.db
            .write(move |conn| {
                let mut agent = agent;
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                let token: Option<String> = tx
                    .prepare_cached(
                        "UPDATE registration_tokens SET uses = uses + 1 \
                         WHERE token_hash = ?1 AND (expires_at IS NULL OR expires_at > ?2) \
                         AND (max_uses IS NULL OR uses < max_uses) RETURNING id",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_row(params![registration.as_str(), now], |row| row.get(0))
                            .optional()
                    })
                    .map_err(store_error)?;
                let Some(token) = token else {
                    return Err(StoreError::NotFound);
                };
                agent.registration_token_id = token.parse().map_err(StoreError::internal)?;
                let m = &agent.metrics;
                tx.prepare_cached(&format!(
                    "INSERT INTO agents ({AGENT_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                     ?17)"
                ))
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        agent.id.to_string(),
                        agent.name,
                        agent.region,
                        labels,
                        agent.queue,
                        agent.capacity,
                        agent.version,
                        created_at,
                        last_heartbeat_at,
                        m.cpu_percent,
                        m.memory_percent,
                        m.disk_percent,
                        m.load_average,
                        m.running_jobs,
                        token,
                        agent.token_hash.as_str(),
                        agent.state.as_str(),
                    ])
                })
                .map_err(|e| store_error_or_conflict(e, |_| Conflict::Exists(RecordKind::Agent)))?;
                insert_event(&tx, &audit.of_registration(agent.registration_token_id))?;
                tx.commit().map_err(store_error)?;
                Ok(agent)
            })
            .await
    }

    async fn agent_by_token_hash(&self, hash: &TokenHash) -> StoreResult<Option<Agent>> {
        self.db.read(|conn| {
            conn.prepare_cached(&AGENT_BY_TOKEN_HASH)?
                .query_row([hash.as_str()], rows::agent)
                .optional()
        })
    }

    async fn get_agent(&self, id: AgentId) -> StoreResult<Option<Agent>> {
        self.db.read(|conn| {
            conn.prepare_cached(&AGENT_BY_ID)?
                .query_row([id.to_string()], rows::agent)
                .optional()
        })
    }

    async fn record_heartbeat(
        &self,
        id: AgentId,
        metrics: &AgentMetrics,
        now: OffsetDateTime,
    ) -> StoreResult<Agent> {
        let m = metrics.clone();
        let now = ts(now)?;
        self.db
            .write(move |conn| {
                conn.prepare_cached(&format!(
                    "UPDATE agents SET last_heartbeat_at = ?1, cpu_percent = ?2, \
                     memory_percent = ?3, disk_percent = ?4, load_average = ?5, \
                     running_jobs = ?6 WHERE id = ?7 RETURNING {AGENT_COLUMNS}"
                ))
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![
                            now,
                            m.cpu_percent,
                            m.memory_percent,
                            m.disk_percent,
                            m.load_average,
                            m.running_jobs,
                            id.to_string(),
                        ],
                        rows::agent,
                    )
                    .optional()
                })
                .map_err(store_error)?
                .ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn list_agents(
        &self,
        query: &AgentQuery,
        now: OffsetDateTime,
    ) -> StoreResult<Page<Agent>> {
        let seek = Seek::new(&query.page)?;
        let (sql, values) = list_sql(query, &seek, now)?;
        let agents = self.db.read(|conn| {
            conn.prepare_cached(&sql)?
                .query_map(params_from_iter(values), rows::agent)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(seek.finish(agents, |a| a.id.to_string()))
    }

    async fn set_agent_state(
        &self,
        id: AgentId,
        state: AgentState,
        audit: &AuditEvent,
    ) -> StoreResult<Agent> {
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(store_error)?;
                let agent = tx
                    .prepare_cached(&format!(
                        "UPDATE agents SET state = ?1 WHERE id = ?2 RETURNING {AGENT_COLUMNS}"
                    ))
                    .and_then(|mut stmt| {
                        stmt.query_row(params![state.as_str(), id.to_string()], rows::agent)
                            .optional()
                    })
                    .map_err(store_error)?
                    .ok_or(StoreError::NotFound)?;
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)?;
                Ok(agent)
            })
            .await
    }

    async fn rotate_agent_token(
        &self,
        id: AgentId,
        token_hash: &TokenHash,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let token_hash = token_hash.clone();
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(store_error)?;
                let changed = tx
                    .prepare_cached("UPDATE agents SET token_hash = ?1 WHERE id = ?2")
                    .and_then(|mut stmt| stmt.execute(params![token_hash.as_str(), id.to_string()]))
                    .map_err(store_error)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                insert_event(&tx, &audit)?;
                tx.commit().map_err(store_error)
            })
            .await
    }

    async fn delete_agent(&self, id: AgentId, audit: &AuditEvent) -> StoreResult<()> {
        let audit = audit.clone();
        self.db
            .write(move |conn| {
                let tx = conn.transaction().map_err(store_error)?;
                let deleted = tx
                    .prepare_cached("DELETE FROM agents WHERE id = ?1")
                    .and_then(|mut stmt| stmt.execute([id.to_string()]))
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

/// The `list_agents` query and its parameters. Filters on `region` use the
/// `agents_by_region (region, id)` index, which also yields the `id DESC` order, so
/// no query sorts (checked by the `query_plans` tests).
pub(crate) fn list_sql(
    query: &AgentQuery,
    seek: &Seek,
    now: OffsetDateTime,
) -> StoreResult<(String, Vec<Value>)> {
    let mut conditions: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(region) = &query.region {
        conditions.push("region = ?");
        values.push(Value::Text(region.clone()));
    }
    match query.status {
        None => {}
        Some(AgentStatus::NeverConnected) => conditions.push("last_heartbeat_at IS NULL"),
        Some(status) => {
            conditions.push(if status == AgentStatus::Online {
                "last_heartbeat_at > ?"
            } else {
                "last_heartbeat_at <= ?"
            });
            values.push(Value::Integer(ts(now - OFFLINE_AFTER)?));
        }
    }
    // At most 2 × 4 × 2 distinct texts, so the statement cache holds them all.
    let sql = seek.select(AGENT_COLUMNS, "agents", conditions, &mut values);
    Ok((sql, values))
}
