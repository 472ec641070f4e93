//! The agent protocol (`/agent/v1`): register, heartbeat, config, claim, start,
//! lease, logs, finish, token rotation and disconnect.
//!
//! The wire types are `runway-protocol`'s, shared with `runway-agent`; the rules
//! are `runway-service`'s ([`runway_service::dispatch`]). Each handler here
//! authenticates with the token tier its call takes (registration → agent → job:
//! [`RegistrationBearer`], [`CurrentAgent`], [`CurrentJob`]; a session token is
//! never accepted), calls the service once, and shapes the answer.
//!
//! `config` carries a strong `ETag` (a hash of the exact body bytes) so an agent
//! polling it gets a bodiless 304 when nothing changed. Log chunks are raw bytes
//! (`application/octet-stream`) placed by the `offset` query parameter: no base64
//! inflation, and a resend is idempotent.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use runway_core::OffsetDateTime;
use runway_core::agent::{Agent, AgentStatus};
use runway_core::log::LogChunk;
use runway_core::store::Claim;
use runway_protocol::{
    AgentConfig, AgentHealth, ClaimResponse, ClaimedJob, FinishPending, FinishRequest,
    FinishResponse, HeartbeatRequest, HeartbeatResponse, LeaseResponse, LogAck, RegisterRequest,
    RegisterResponse, RegisteredAgent, RotateResponse, SecretValue, Token,
};
use runway_service::dispatch::{Finish, Lease, Registration, Service};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::AppState;
use crate::auth::{CurrentAgent, CurrentJob, RegistrationBearer};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Octets, OptionalJson};
use crate::middleware::CallId;
use crate::routes::sessions::ClientMeta;

fn registered(agent: &Agent) -> RegisteredAgent {
    RegisteredAgent {
        id: agent.id.to_string(),
        name: agent.name.clone(),
        queue: agent.queue.clone(),
        labels: agent.labels.clone(),
        capacity: agent.capacity,
    }
}

const fn health(status: AgentStatus) -> AgentHealth {
    match status {
        AgentStatus::Online => AgentHealth::Online,
        AgentStatus::Offline => AgentHealth::Offline,
        AgentStatus::NeverConnected => AgentHealth::NeverConnected,
    }
}

/// Registers a new agent with a registration token.
#[utoipa::path(post, path = "/register", tag = "agent protocol",
    security(("bearer" = [])),
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = RegisterResponse),
        (status = 401, description = "No, or an unknown, expired, used-up or revoked, registration token", body = ErrorBody),
        (status = 422, description = "A field is missing or out of range", body = ErrorBody),
        (status = 429, description = "Too many registrations from this address or with this token (`rate_limited`); retry after `Retry-After` seconds", body = ErrorBody)))]
pub(crate) async fn register(
    State(state): State<AppState>,
    request_id: CallId,
    meta: ClientMeta,
    RegistrationBearer(registration): RegistrationBearer,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    let registration_request = Registration::from_request(req)?;
    let (agent, token) = state
        .service
        .register_agent(
            &registration,
            registration_request,
            meta.ip.as_deref(),
            request_id.into_option(),
        )
        .await
        .map_err(|e| match e {
            runway_service::ServiceError::NotFound(_) => ApiError::Unauthorized(
                "the registration token is unknown, expired, used up or revoked",
            ),
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            agent: registered(&agent),
            token: Token(token.expose().to_owned()),
            timings: state.service.timings(),
        }),
    ))
}

/// Reports the agent's metrics and running jobs; the answer says what to do next.
#[utoipa::path(post, path = "/heartbeat", tag = "agent protocol",
    security(("bearer" = [])),
    request_body(content = Option<HeartbeatRequest>,
        description = "Optional: every field may be left out, and so may the whole body"),
    responses(
        (status = 200, description = "Recorded", body = HeartbeatResponse),
        (status = 401, description = "No valid agent token", body = ErrorBody),
        (status = 422, description = "A metric is out of range", body = ErrorBody)))]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    CurrentAgent(agent): CurrentAgent,
    OptionalJson(report): OptionalJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let outcome = state
        .service
        .heartbeat(&agent, report)
        .await
        .map_err(|e| match e {
            // Deleted between authentication and the write.
            runway_service::ServiceError::NotFound("agent") => ApiError::unauthorized(),
            other => other.into(),
        })?;
    Ok(Json(HeartbeatResponse {
        agent_status: health(outcome.agent.status(OffsetDateTime::now_utc())),
        action: outcome.action,
        cancel_job_ids: outcome
            .cancel_job_ids
            .iter()
            .map(ToString::to_string)
            .collect(),
        timings: state.service.timings(),
    }))
}

/// The agent's configuration, with a strong `ETag`; `If-None-Match` gives a 304.
#[utoipa::path(get, path = "/config", tag = "agent protocol",
    security(("bearer" = [])),
    params(("If-None-Match" = Option<String>, Header, description = "ETags the agent already has")),
    responses(
        (status = 200, description = "The configuration", body = AgentConfig,
            headers(("ETag" = String, description = "Strong validator of the body"))),
        (status = 304, description = "Unchanged since the given ETag"),
        (status = 401, description = "No valid agent token", body = ErrorBody)))]
pub(crate) async fn config(
    State(state): State<AppState>,
    CurrentAgent(agent): CurrentAgent,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let config = AgentConfig {
        agent_id: agent.id.to_string(),
        name: agent.name,
        queue: agent.queue,
        labels: agent.labels,
        capacity: agent.capacity,
        action: Service::action_for(agent.state),
        timings: state.service.timings(),
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

/// The long poll's parameter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ClaimQuery {
    /// Seconds to wait for a job (default 0; the server cuts it to its
    /// `claim_wait_max_seconds`: 20 locally, 0 on Lambda).
    wait: Option<u32>,
}

fn claim_response(
    state: &AppState,
    claim: Claim,
    token: &runway_core::secret::Secret,
) -> ClaimResponse {
    let Claim { job, attempt } = claim;
    ClaimResponse {
        job: ClaimedJob {
            id: job.id.to_string(),
            attempt: attempt.number,
            name: job.spec.name,
            script: job.spec.script,
            env: job.spec.env,
            secrets: job
                .spec
                .secrets
                .iter()
                .map(|(k, v)| (k.to_owned(), SecretValue(v.to_owned())))
                .collect(),
            timeout_seconds: job.spec.timeout_seconds,
        },
        job_token: Token(token.expose().to_owned()),
        lease_expires_at: attempt
            .lease_expires_at
            .unwrap_or_else(|| OffsetDateTime::now_utc() + state.service.settings().lease),
        timings: state.service.timings(),
    }
}

/// Claims a job, waiting up to `wait` seconds for one (a long poll).
#[utoipa::path(post, path = "/jobs/claim", tag = "agent protocol",
    security(("bearer" = [])),
    params(ClaimQuery),
    responses(
        (status = 200, description = "A job, its job token and lease", body = ClaimResponse,
            headers(("x-poll-interval-seconds" = u32, description = "Wait this long after an empty claim"))),
        (status = 204, description = "No job came within the wait",
            headers(("x-poll-interval-seconds" = u32, description = "Wait this long before claiming again"))),
        (status = 401, description = "No valid agent token", body = ErrorBody)))]
pub(crate) async fn claim(
    State(state): State<AppState>,
    request_id: CallId,
    CurrentAgent(agent): CurrentAgent,
    ApiQuery(q): ApiQuery<ClaimQuery>,
) -> Result<Response, ApiError> {
    let wait = Duration::from_secs(u64::from(q.wait.unwrap_or(0)));
    let claimed = state
        .service
        .claim(&agent, wait, request_id.into_option())
        .await?;
    let poll = HeaderValue::from(state.service.timings().poll_interval_seconds);
    Ok(match claimed {
        Some((claim, token)) => (
            [(runway_protocol::POLL_INTERVAL_HEADER, poll)],
            Json(claim_response(&state, claim, &token)),
        )
            .into_response(),
        None => (
            StatusCode::NO_CONTENT,
            [(runway_protocol::POLL_INTERVAL_HEADER, poll)],
        )
            .into_response(),
    })
}

fn lease_response(lease: Lease) -> Json<LeaseResponse> {
    Json(LeaseResponse {
        lease_expires_at: lease.expires_at,
        cancel: lease.cancel,
    })
}

/// Marks the job running: the agent has started its script.
#[utoipa::path(post, path = "/jobs/{id}/start", tag = "agent protocol",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The job")),
    responses(
        (status = 200, description = "Running; the lease and whether to cancel", body = LeaseResponse),
        (status = 401, description = "No valid job token for this job", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The attempt is no longer this agent's (`job_not_held`): stop it", body = ErrorBody)))]
pub(crate) async fn start(
    State(state): State<AppState>,
    CurrentJob(held): CurrentJob,
) -> Result<Json<LeaseResponse>, ApiError> {
    let agent = holder(&state, &held).await?;
    Ok(lease_response(
        state.service.start(&held, agent.as_ref()).await?,
    ))
}

/// How long a lease renewal may wait for a cancel.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LeaseQuery {
    /// Seconds to wait for a cancel before answering (default 0; cut to the renewal
    /// interval locally, to 0 on Lambda). The lease is extended at once either way.
    wait: Option<u32>,
}

/// Extends the job's lease; the answer says whether to cancel. With `wait`, a long
/// poll that answers at once when the job is canceled.
#[utoipa::path(post, path = "/jobs/{id}/lease", tag = "agent protocol",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The job"), LeaseQuery),
    responses(
        (status = 200, description = "Extended", body = LeaseResponse),
        (status = 401, description = "No valid job token for this job", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The attempt is no longer this agent's (`job_not_held`): stop it", body = ErrorBody)))]
pub(crate) async fn lease(
    State(state): State<AppState>,
    CurrentJob(held): CurrentJob,
    ApiQuery(q): ApiQuery<LeaseQuery>,
) -> Result<Json<LeaseResponse>, ApiError> {
    let wait = Duration::from_secs(u64::from(q.wait.unwrap_or(0)));
    Ok(lease_response(
        state.service.renew_waiting(&held, wait).await?,
    ))
}

/// Where a log chunk goes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogChunkQuery {
    /// The chunk's sequence number, from 0.
    seq: u64,
    /// Byte offset of the chunk's first byte in the whole log.
    offset: u64,
}

/// Appends one chunk (at most 256 KiB of raw bytes) of the job's log.
#[utoipa::path(put, path = "/jobs/{id}/logs", tag = "agent protocol",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The job"), LogChunkQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The chunk's bytes"),
    responses(
        (status = 200, description = "Stored, or already there (a resend)", body = LogAck,
            headers(("x-log-next-offset" = u64, description = "Where the next chunk starts"))),
        (status = 401, description = "No valid job token for this job", body = ErrorBody),
        (status = 409, description = "The attempt has ended (`job_not_held`)", body = ErrorBody),
        (status = 413, description = "Over 256 KiB, or past the 64 MiB log cap (`log_full`)", body = ErrorBody),
        (status = 415, description = "Not `application/octet-stream`", body = ErrorBody),
        (status = 416, description = "A gap: the log continues at `x-log-next-offset` (`log_offset_mismatch`)", body = ErrorBody)))]
pub(crate) async fn logs(
    State(state): State<AppState>,
    CurrentJob(held): CurrentJob,
    ApiQuery(q): ApiQuery<LogChunkQuery>,
    Octets(body): Octets,
) -> Result<Response, ApiError> {
    if body.len() > runway_core::log::CHUNK_MAX_BYTES {
        return Err(ApiError::PayloadTooLarge(runway_core::log::CHUNK_MAX_BYTES));
    }
    let chunk = LogChunk {
        seq: q.seq,
        offset: q.offset,
        data: body.to_vec(),
    };
    let appended = state.service.append_log(&held, chunk).await?;
    let next = appended.size();
    Ok((
        [(
            runway_protocol::LOG_NEXT_OFFSET_HEADER,
            HeaderValue::from(next),
        )],
        Json(LogAck { next_offset: next }),
    )
        .into_response())
}

/// Reports the attempt's result, with the byte count and CRC-32 of its log.
#[utoipa::path(post, path = "/jobs/{id}/finish", tag = "agent protocol",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The job")),
    request_body = FinishRequest,
    responses(
        (status = 200, description = "Finished", body = FinishResponse),
        (status = 202, description = "Log bytes are missing: send from `next_offset`, then finish again", body = FinishPending),
        (status = 401, description = "No valid job token for this job", body = ErrorBody),
        (status = 409, description = "Not held any more, or a result the lifecycle forbids", body = ErrorBody),
        (status = 422, description = "The log's size or checksum disagrees (`log_mismatch`)", body = ErrorBody)))]
pub(crate) async fn finish(
    State(state): State<AppState>,
    CurrentJob(held): CurrentJob,
    ApiJson(report): ApiJson<FinishRequest>,
) -> Result<Response, ApiError> {
    let agent = holder(&state, &held).await?;
    Ok(
        match state.service.finish(&held, agent.as_ref(), report).await? {
            Finish::Done(status) => Json(FinishResponse {
                status: status.as_str().to_owned(),
            })
            .into_response(),
            Finish::Pending { next_offset } => (
                StatusCode::ACCEPTED,
                [(
                    runway_protocol::LOG_NEXT_OFFSET_HEADER,
                    HeaderValue::from(next_offset),
                )],
                Json(FinishPending { next_offset }),
            )
                .into_response(),
        },
    )
}

/// The agent holding the attempt, for the audit log's actor (gone: `None`).
async fn holder(
    state: &AppState,
    held: &runway_service::dispatch::HeldJob,
) -> Result<Option<Agent>, ApiError> {
    let Some(attempt) = held
        .detail
        .attempts
        .iter()
        .find(|a| a.number == held.attempt)
    else {
        return Ok(None);
    };
    Ok(state.store.get_agent(attempt.agent_id).await?)
}

/// Replaces the agent's token; the old one stops working at once.
#[utoipa::path(post, path = "/token/rotate", tag = "agent protocol",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new token (shown only here)", body = RotateResponse),
        (status = 401, description = "No valid agent token", body = ErrorBody)))]
pub(crate) async fn rotate_token(
    State(state): State<AppState>,
    request_id: CallId,
    CurrentAgent(agent): CurrentAgent,
) -> Result<Json<RotateResponse>, ApiError> {
    let token = state
        .service
        .rotate_agent_token(&agent, request_id.into_option())
        .await?;
    Ok(Json(RotateResponse {
        token: Token(token.expose().to_owned()),
    }))
}

/// The agent is leaving; jobs it still holds are abandoned and retried at once.
#[utoipa::path(post, path = "/disconnect", tag = "agent protocol",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Disconnected"),
        (status = 401, description = "No valid agent token", body = ErrorBody)))]
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    request_id: CallId,
    CurrentAgent(agent): CurrentAgent,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .disconnect(&agent, request_id.into_option())
        .await?;
    Ok(StatusCode::NO_CONTENT)
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
        let ok: RegisterRequest = serde_json::from_str(r#"{"name":"b1","labels":["*"]}"#).unwrap();
        assert!(Registration::from_request(ok).is_ok());
        for (body, field) in [
            (r#"{"name":" "}"#, "name"),
            (r#"{"name":"b","capacity":0}"#, "capacity"),
            (r#"{"name":"b","capacity":65}"#, "capacity"),
            (r#"{"name":"b","region":"has space"}"#, "region"),
            (r#"{"name":"b","queue":""}"#, "queue"),
            (r#"{"name":"b","labels":["ok","no way"]}"#, "labels[1]"),
        ] {
            let req: RegisterRequest = serde_json::from_str(body).unwrap();
            let err = Registration::from_request(req).unwrap_err();
            assert_eq!(err.field, field, "{body}");
        }
    }
}
