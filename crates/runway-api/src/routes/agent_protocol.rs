//! The agent protocol (`/agent/v1`): register, heartbeat, config.
//!
//! Registration is authenticated by a registration token, which the store checks
//! and consumes atomically with creating the agent, so there is no window in which a
//! revoked token still admits one. Everything else takes an agent token
//! ([`CurrentAgent`]); session tokens are never accepted here.
//!
//! The timings an agent follows are chosen by the server and sent in `config`, so
//! they can change without redeploying agents. `config` carries a strong `ETag` (a
//! hash of the exact body bytes) so an agent polling it gets a bodiless 304 when
//! nothing changed.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use runway_core::OffsetDateTime;
use runway_core::agent::{Agent, AgentMetrics, AgentStatus, HEARTBEAT_INTERVAL, OFFLINE_AFTER};
use runway_core::audit::AuditAction;
use runway_core::id::{AgentId, JobId, RegistrationTokenId};
use runway_core::job::{DEFAULT_QUEUE, validate_label, validate_labels};
use runway_core::secret::{IssuedToken, Secret, TokenKind};
use runway_core::store::StoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use super::agents::AgentView;
use super::{check_text, expose_secret};
use crate::AppState;
use crate::audit::Audit;
use crate::auth::{CurrentAgent, RegistrationBearer};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, OptionalJson};

/// The longest agent name.
pub(crate) const MAX_AGENT_NAME_LEN: usize = 100;
/// The longest agent version string.
pub(crate) const MAX_VERSION_LEN: usize = 64;
/// The most jobs one agent may run at once.
pub(crate) const MAX_CAPACITY: u32 = 64;

/// Job lease length, in seconds.
pub(crate) const JOB_LEASE_SECONDS: u32 = 120;
/// How often a running job's lease is renewed, in seconds.
pub(crate) const LEASE_RENEW_INTERVAL_SECONDS: u32 = 40;
/// The longest `wait` the claim long poll honours, in seconds.
pub(crate) const CLAIM_WAIT_MAX_SECONDS: u32 = 20;
/// Time between SIGTERM and SIGKILL on cancel, in seconds.
pub(crate) const CANCEL_GRACE_SECONDS: u32 = 10;
/// The largest log chunk, in bytes.
pub(crate) const LOG_CHUNK_MAX_BYTES: u64 = 256 * 1024;
/// The largest log of one attempt, in bytes.
pub(crate) const LOG_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// What an agent says about itself when it registers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    /// Display name, usually the host name (1–100 characters).
    #[schema(example = "builder-1")]
    name: String,
    /// Where it runs (a label, at most 64 characters).
    #[schema(example = "eu-west-1")]
    region: Option<String>,
    /// Capabilities jobs can require.
    #[serde(default)]
    labels: Vec<String>,
    /// The queue to pull from (default `default`).
    queue: Option<String>,
    /// Jobs it runs at once, 1–64 (default 1).
    capacity: Option<u32>,
    /// The agent's version (at most 64 characters).
    version: Option<String>,
}

/// The new agent and its credential. `token` is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RegisterResponse {
    /// The agent as stored.
    agent: AgentView,
    /// Send as `Authorization: Bearer <token>` on every other agent call.
    #[serde(serialize_with = "expose_secret")]
    #[schema(value_type = String, example = "rwa_…")]
    token: Secret,
    /// Heartbeat this often.
    heartbeat_interval_seconds: i64,
}

/// What the server wants the agent to do after a heartbeat.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HeartbeatResponse {
    /// The agent's health as the server now sees it.
    agent_status: AgentStatus,
    /// Heartbeat this often.
    heartbeat_interval_seconds: i64,
    /// Jobs the agent must stop.
    cancel_job_ids: Vec<JobId>,
}

/// The agent's configuration and the protocol's timings.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentConfig {
    /// The agent's id.
    agent_id: AgentId,
    /// The agent's name.
    name: String,
    /// The queue it pulls from.
    queue: String,
    /// Its labels.
    labels: Vec<String>,
    /// Heartbeat this often.
    heartbeat_interval_seconds: i64,
    /// The agent counts as offline after this long without a heartbeat.
    offline_after_seconds: i64,
    /// A claimed job's lease.
    job_lease_seconds: u32,
    /// Renew the lease this often.
    lease_renew_interval_seconds: u32,
    /// The longest `wait` a claim honours.
    claim_wait_max_seconds: u32,
    /// Grace between SIGTERM and SIGKILL on cancel.
    cancel_grace_seconds: u32,
    /// The largest log chunk.
    log_chunk_max_bytes: u64,
    /// The largest log of one attempt.
    log_max_bytes: u64,
}

impl RegisterRequest {
    fn validate(&self) -> Result<(), ApiError> {
        let name = self.name.trim();
        if name.is_empty() || self.name.chars().count() > MAX_AGENT_NAME_LEN {
            return Err(ApiError::field(
                "name",
                format!("must be 1 to {MAX_AGENT_NAME_LEN} characters"),
            ));
        }
        check_text("name", &self.name, MAX_AGENT_NAME_LEN)?;
        if let Some(region) = &self.region {
            validate_label("region", region).map_err(|e| ApiError::Validation(e.to_string()))?;
        }
        validate_labels(&self.labels).map_err(|e| ApiError::Validation(e.to_string()))?;
        if let Some(queue) = &self.queue {
            validate_label("queue", queue).map_err(|e| ApiError::Validation(e.to_string()))?;
        }
        if let Some(capacity) = self.capacity
            && !(1..=MAX_CAPACITY).contains(&capacity)
        {
            return Err(ApiError::field(
                "capacity",
                format!("must be between 1 and {MAX_CAPACITY}, got {capacity}"),
            ));
        }
        if let Some(version) = &self.version {
            if version.is_empty() {
                return Err(ApiError::field("version", "must not be empty"));
            }
            check_text("version", version, MAX_VERSION_LEN)?;
        }
        Ok(())
    }
}

/// Registers a new agent with a registration token.
#[utoipa::path(post, path = "/agent/v1/register", tag = "agent protocol",
    security(("bearer" = [])),
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = RegisterResponse),
        (status = 401, description = "No, or an unknown, expired or revoked, registration token", body = ErrorBody),
        (status = 422, description = "A field is missing or out of range", body = ErrorBody)))]
pub(crate) async fn register(
    State(state): State<AppState>,
    audit: Audit,
    RegistrationBearer(registration): RegistrationBearer,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    req.validate()?;
    let now = OffsetDateTime::now_utc();
    let issued = IssuedToken::new(TokenKind::Agent);
    let agent = Agent {
        id: AgentId::new(),
        name: req.name.trim().to_owned(),
        region: req.region,
        labels: req.labels,
        queue: req.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned()),
        capacity: req.capacity.unwrap_or(1),
        version: req.version,
        created_at: now,
        last_heartbeat_at: None,
        metrics: AgentMetrics::default(),
        // Filled in by the store from the registration token.
        registration_token_id: RegistrationTokenId::new(),
        token_hash: issued.hash,
    };
    let agent = state
        .store
        .register_agent(&registration, agent, now)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                ApiError::Unauthorized("the registration token is unknown, expired or revoked")
            }
            other => other.into(),
        })?;
    audit
        .record_with(
            (&agent).into(),
            AuditAction::AgentRegistered,
            agent.id,
            Some(format!(
                "with registration token {}",
                agent.registration_token_id
            )),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            agent: AgentView::at(agent, now),
            token: issued.plaintext,
            heartbeat_interval_seconds: HEARTBEAT_INTERVAL.whole_seconds(),
        }),
    ))
}

/// Reports the agent's metrics; the answer says what to do next.
#[utoipa::path(post, path = "/agent/v1/heartbeat", tag = "agent protocol",
    security(("bearer" = [])),
    request_body(content = Option<AgentMetrics>,
        description = "Optional: every metric may be left out, and so may the whole body"),
    responses(
        (status = 200, description = "Recorded", body = HeartbeatResponse),
        (status = 401, description = "No valid agent token", body = ErrorBody),
        (status = 422, description = "A metric is out of range", body = ErrorBody)))]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    CurrentAgent(agent): CurrentAgent,
    OptionalJson(metrics): OptionalJson<AgentMetrics>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    metrics.validate().map_err(ApiError::Validation)?;
    let metrics = metrics.rounded();
    let now = OffsetDateTime::now_utc();
    let agent = state
        .store
        .record_heartbeat(agent.id, &metrics, now)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::unauthorized(),
            other => other.into(),
        })?;
    Ok(Json(HeartbeatResponse {
        agent_status: agent.status(now),
        heartbeat_interval_seconds: HEARTBEAT_INTERVAL.whole_seconds(),
        cancel_job_ids: Vec::new(),
    }))
}

/// The agent's configuration, with a strong `ETag`; `If-None-Match` gives a 304.
#[utoipa::path(get, path = "/agent/v1/config", tag = "agent protocol",
    security(("bearer" = [])),
    params(("If-None-Match" = Option<String>, Header, description = "ETags the agent already has")),
    responses(
        (status = 200, description = "The configuration", body = AgentConfig,
            headers(("ETag" = String, description = "Strong validator of the body"))),
        (status = 304, description = "Unchanged since the given ETag"),
        (status = 401, description = "No valid agent token", body = ErrorBody)))]
pub(crate) async fn config(
    CurrentAgent(agent): CurrentAgent,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let config = AgentConfig {
        agent_id: agent.id,
        name: agent.name,
        queue: agent.queue,
        labels: agent.labels,
        heartbeat_interval_seconds: HEARTBEAT_INTERVAL.whole_seconds(),
        offline_after_seconds: OFFLINE_AFTER.whole_seconds(),
        job_lease_seconds: JOB_LEASE_SECONDS,
        lease_renew_interval_seconds: LEASE_RENEW_INTERVAL_SECONDS,
        claim_wait_max_seconds: CLAIM_WAIT_MAX_SECONDS,
        cancel_grace_seconds: CANCEL_GRACE_SECONDS,
        log_chunk_max_bytes: LOG_CHUNK_MAX_BYTES,
        log_max_bytes: LOG_MAX_BYTES,
    };
    let body = serde_json::to_vec(&config).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let etag = etag_of(&body);
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|v| if_none_match_matches(v, &etag)) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, header_value(&etag)?)],
        )
            .into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, header_value(&etag)?),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from(body),
    )
        .into_response())
}

fn header_value(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s).map_err(|e| ApiError::Internal(Box::new(e)))
}

/// A strong ETag: the first 128 bits of the body's SHA-256, quoted hex.
pub(crate) fn etag_of(body: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(body);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for byte in &digest[..16] {
        let _ = write!(tag, "{byte:02x}");
    }
    tag.push('"');
    tag
}

/// Whether an `If-None-Match` value matches `etag` (RFC 9110 §13.1.2): `*`, or a
/// comma-separated list of entity tags compared weakly (a `W/` prefix is ignored).
pub(crate) fn if_none_match_matches(header: &str, etag: &str) -> bool {
    let header = header.trim();
    if header == "*" {
        return true;
    }
    header
        .split(',')
        .map(str::trim)
        .map(|tag| tag.strip_prefix("W/").unwrap_or(tag))
        .any(|tag| tag == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etag_is_a_quoted_hash_that_changes_with_the_body() {
        let a = etag_of(b"{\"a\":1}");
        assert!(a.starts_with('"') && a.ends_with('"'));
        assert_eq!(a.len(), 34);
        assert_eq!(a, etag_of(b"{\"a\":1}"));
        assert_ne!(a, etag_of(b"{\"a\":2}"));
    }

    #[test]
    fn if_none_match_accepts_star_lists_and_weak_tags() {
        let etag = "\"abc\"";
        assert!(if_none_match_matches("\"abc\"", etag));
        assert!(if_none_match_matches("*", etag));
        assert!(if_none_match_matches(" \"x\" , \"abc\"", etag));
        assert!(if_none_match_matches("W/\"abc\"", etag));
        assert!(!if_none_match_matches("\"abcd\"", etag));
        assert!(!if_none_match_matches("abc", etag));
        assert!(!if_none_match_matches("", etag));
    }

    #[test]
    fn registration_fields_are_checked_and_named() {
        let ok: RegisterRequest = serde_json::from_str(r#"{"name":"b1"}"#).unwrap();
        assert!(ok.validate().is_ok());
        for (body, field) in [
            (r#"{"name":" "}"#, "name"),
            (r#"{"name":"b","capacity":0}"#, "capacity"),
            (r#"{"name":"b","capacity":65}"#, "capacity"),
            (r#"{"name":"b","region":"has space"}"#, "region"),
            (r#"{"name":"b","queue":""}"#, "queue"),
            (r#"{"name":"b","labels":["ok","no way"]}"#, "labels[1]"),
        ] {
            let req: RegisterRequest = serde_json::from_str(body).unwrap();
            let Err(ApiError::Validation(m)) = req.validate() else {
                panic!("{body} must fail")
            };
            assert!(m.starts_with(field), "{body}: {m}");
        }
    }
}
