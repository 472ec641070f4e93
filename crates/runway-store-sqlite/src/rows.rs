//! How domain values are written to and read from columns.
//!
//! * Timestamps are INTEGER unix nanoseconds: lossless for every instant from 1677
//!   to 2262, so a record read back is `==` to the one written (the conformance
//!   suite compares whole records).
//! * Ids are their 26-character ULID text, which sorts like the ULID itself.
//! * Labels, env, secrets and secret names are JSON text: they are only ever read
//!   whole.
//! * Secrets are written by [`secrets_json`] and read back only by the claim
//!   ([`get_secrets`]); [`JOB_COLUMNS`] leaves them out, so no other read can
//!   return them by accident.
//! * Enums are their `as_str()` form, readable in the `sqlite3` shell.
//!
//! A value that does not decode (a bad enum, id or JSON) is corrupt data, so it
//! becomes a rusqlite `FromSqlConversionFailure` and, through
//! [`crate::error::store_error`], an internal error naming the column.
//!
//! Each `SELECT` lists its columns in the order of the `*_COLUMNS` constant next to
//! the function that decodes it, so the two cannot drift apart silently.

use std::collections::BTreeMap;
use std::str::FromStr;

use runway_core::agent::{Agent, AgentMetrics, AgentState, RegistrationToken};
use runway_core::api_token::ApiToken;
use runway_core::audit::{Actor, AuditAction, AuditEvent};
use runway_core::job::{Attempt, Job, JobSecrets, JobSpec};
use runway_core::lifecycle::JobStatus;
use runway_core::oidc::PendingLogin;
use runway_core::secret::{Secret, TokenHash};
use runway_core::session::Session;
use runway_core::store::{StoreError, StoreResult};
use runway_core::user::{Role, User};
use rusqlite::Row;
use rusqlite::types::Type;
use time::OffsetDateTime;

use crate::error::BadColumn;

/// Encodes a timestamp. Instants outside i64 nanoseconds (before 1677, after 2262)
/// are refused rather than wrapped.
pub(crate) fn ts(at: OffsetDateTime) -> StoreResult<i64> {
    i64::try_from(at.unix_timestamp_nanos()).map_err(|_| {
        StoreError::internal(BadColumn {
            column: "timestamp",
            reason: format!("{at} is outside the storable range (1677–2262)"),
        })
    })
}

/// Encodes an optional timestamp.
pub(crate) fn opt_ts(at: Option<OffsetDateTime>) -> StoreResult<Option<i64>> {
    at.map(ts).transpose()
}

/// Encodes a list or map as JSON text.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(StoreError::internal)
}

/// Encodes a job's secrets as a JSON object, or NULL when there are none.
pub(crate) fn secrets_json(secrets: &JobSecrets) -> StoreResult<Option<String>> {
    if secrets.is_empty() {
        return Ok(None);
    }
    json(&secrets.iter().collect::<BTreeMap<&str, &str>>()).map(Some)
}

/// A `u64` count (a log size) as an INTEGER. Logs are capped far below `i64::MAX`.
pub(crate) fn int(n: u64) -> StoreResult<i64> {
    i64::try_from(n).map_err(|e| {
        StoreError::internal(BadColumn {
            column: "integer",
            reason: e.to_string(),
        })
    })
}

pub(crate) fn bad(idx: usize, column: &'static str, reason: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        Type::Text,
        Box::new(BadColumn {
            column,
            reason: reason.into(),
        }),
    )
}

fn get_ts(row: &Row<'_>, idx: usize, column: &'static str) -> rusqlite::Result<OffsetDateTime> {
    let nanos: i64 = row.get(idx)?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .map_err(|e| bad(idx, column, e.to_string()))
}

fn get_opt_ts(
    row: &Row<'_>,
    idx: usize,
    column: &'static str,
) -> rusqlite::Result<Option<OffsetDateTime>> {
    let nanos: Option<i64> = row.get(idx)?;
    nanos
        .map(|n| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(n))
                .map_err(|e| bad(idx, column, e.to_string()))
        })
        .transpose()
}

/// The columns [`attempts`] decodes, in order.
pub(crate) const ATTEMPTS_COLUMNS: &str = "attempts, last_at, expires_at";

/// An abuse-limit counter from [`ATTEMPTS_COLUMNS`].
pub(crate) fn attempts(row: &Row<'_>) -> rusqlite::Result<runway_core::limit::Attempts> {
    let count: i64 = row.get(0)?;
    Ok(runway_core::limit::Attempts {
        count: u32::try_from(count).map_err(|e| bad(0, "attempts", e.to_string()))?,
        last_at: get_ts(row, 1, "last_at")?,
        expires_at: get_ts(row, 2, "expires_at")?,
    })
}

pub(crate) fn get_parsed<T>(row: &Row<'_>, idx: usize, column: &'static str) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text = row.get_ref(idx)?.as_str()?;
    text.parse()
        .map_err(|e: T::Err| bad(idx, column, e.to_string()))
}

fn get_json<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    idx: usize,
    column: &'static str,
) -> rusqlite::Result<T> {
    let text = row.get_ref(idx)?.as_str()?;
    serde_json::from_str(text).map_err(|e| bad(idx, column, e.to_string()))
}

pub(crate) fn get_u32(row: &Row<'_>, idx: usize, column: &'static str) -> rusqlite::Result<u32> {
    let n: i64 = row.get(idx)?;
    u32::try_from(n).map_err(|e| bad(idx, column, e.to_string()))
}

pub(crate) fn get_u64(row: &Row<'_>, idx: usize, column: &'static str) -> rusqlite::Result<u64> {
    let n: i64 = row.get(idx)?;
    u64::try_from(n).map_err(|e| bad(idx, column, e.to_string()))
}

/// A job's secrets, NULL being none.
pub(crate) fn get_secrets(row: &Row<'_>, idx: usize) -> rusqlite::Result<JobSecrets> {
    if row.get_ref(idx)?.data_type() == Type::Null {
        return Ok(JobSecrets::default());
    }
    let map: BTreeMap<String, String> = get_json(row, idx, "jobs.secrets")?;
    Ok(map.into_iter().collect())
}

/// A list of strings stored as JSON: labels (e.g. read from the `jobs_claimable`
/// index) or a job's secret names.
pub(crate) fn get_labels(
    row: &Row<'_>,
    idx: usize,
    column: &'static str,
) -> rusqlite::Result<Vec<String>> {
    // Most jobs ask for no label and have no secret: skip the JSON parser for them.
    if row.get_ref(idx)?.as_str()? == "[]" {
        return Ok(Vec::new());
    }
    get_json(row, idx, column)
}

pub(crate) fn get_agent_state(row: &Row<'_>, idx: usize) -> rusqlite::Result<AgentState> {
    let text = row.get_ref(idx)?.as_str()?;
    AgentState::parse(text)
        .ok_or_else(|| bad(idx, "agents.state", format!("unknown agent state `{text}`")))
}

fn get_role(row: &Row<'_>, idx: usize) -> rusqlite::Result<Role> {
    let text = row.get_ref(idx)?.as_str()?;
    Role::parse(text).ok_or_else(|| bad(idx, "role", format!("unknown role `{text}`")))
}

pub(crate) fn get_status(row: &Row<'_>, idx: usize) -> rusqlite::Result<JobStatus> {
    let text = row.get_ref(idx)?.as_str()?;
    JobStatus::parse(text).ok_or_else(|| bad(idx, "status", format!("unknown status `{text}`")))
}

fn get_hash(row: &Row<'_>, idx: usize) -> rusqlite::Result<TokenHash> {
    row.get(idx).map(TokenHash::from_stored)
}

/// The columns [`user`] decodes, in order.
pub(crate) const USER_COLUMNS: &str =
    "id, username, role, created_at, password_hash, credential_epoch, disabled";

pub(crate) fn user(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: get_parsed(row, 0, "users.id")?,
        username: row.get(1)?,
        role: get_role(row, 2)?,
        created_at: get_ts(row, 3, "users.created_at")?,
        password_hash: row.get(4)?,
        credential_epoch: get_u64(row, 5, "users.credential_epoch")?,
        disabled: row.get(6)?,
    })
}

/// The columns [`api_token`] decodes, in order.
pub(crate) const API_TOKEN_COLUMNS: &str = "id, user_id, username, role, name, read_only, \
     created_at, expires_at, token_hash, credential_epoch";

pub(crate) fn api_token(row: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: get_parsed(row, 0, "api_tokens.id")?,
        user_id: get_parsed(row, 1, "api_tokens.user_id")?,
        username: row.get(2)?,
        role: get_role(row, 3)?,
        name: row.get(4)?,
        read_only: row.get(5)?,
        created_at: get_ts(row, 6, "api_tokens.created_at")?,
        expires_at: get_opt_ts(row, 7, "api_tokens.expires_at")?,
        token_hash: TokenHash::from_stored(row.get(8)?),
        credential_epoch: get_u64(row, 9, "api_tokens.credential_epoch")?,
    })
}

/// The columns [`pending_login`] decodes, in order.
pub(crate) const OIDC_LOGIN_COLUMNS: &str =
    "state_hash, nonce, pkce_verifier, return_to, created_at, expires_at";

pub(crate) fn pending_login(row: &Row<'_>) -> rusqlite::Result<PendingLogin> {
    Ok(PendingLogin {
        state_hash: TokenHash::from_stored(row.get(0)?),
        nonce: Secret::new(row.get::<_, String>(1)?),
        pkce_verifier: Secret::new(row.get::<_, String>(2)?),
        return_to: row.get(3)?,
        created_at: get_ts(row, 4, "oidc_logins.created_at")?,
        expires_at: get_ts(row, 5, "oidc_logins.expires_at")?,
    })
}

/// The columns [`session`] decodes, in order.
pub(crate) const SESSION_COLUMNS: &str = "id, user_id, username, role, device_name, user_agent, \
     ip, created_at, last_seen_at, expires_at, idle_timeout_seconds, token_hash, credential_epoch";

pub(crate) fn session(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: get_parsed(row, 0, "sessions.id")?,
        user_id: get_parsed(row, 1, "sessions.user_id")?,
        username: row.get(2)?,
        role: get_role(row, 3)?,
        device_name: row.get(4)?,
        user_agent: row.get(5)?,
        ip: row.get(6)?,
        created_at: get_ts(row, 7, "sessions.created_at")?,
        last_seen_at: get_ts(row, 8, "sessions.last_seen_at")?,
        expires_at: get_ts(row, 9, "sessions.expires_at")?,
        idle_timeout_seconds: row.get(10)?,
        token_hash: get_hash(row, 11)?,
        credential_epoch: get_u64(row, 12, "sessions.credential_epoch")?,
    })
}

/// The columns [`registration_token`] decodes, in order.
pub(crate) const REGISTRATION_TOKEN_COLUMNS: &str =
    "id, description, created_by, created_at, expires_at, max_uses, uses, token_hash";

pub(crate) fn registration_token(row: &Row<'_>) -> rusqlite::Result<RegistrationToken> {
    Ok(RegistrationToken {
        id: get_parsed(row, 0, "registration_tokens.id")?,
        description: row.get(1)?,
        created_by: get_parsed(row, 2, "registration_tokens.created_by")?,
        created_at: get_ts(row, 3, "registration_tokens.created_at")?,
        expires_at: get_opt_ts(row, 4, "registration_tokens.expires_at")?,
        max_uses: row
            .get::<_, Option<i64>>(5)?
            .map(|n| {
                u32::try_from(n).map_err(|e| bad(5, "registration_tokens.max_uses", e.to_string()))
            })
            .transpose()?,
        uses: get_u32(row, 6, "registration_tokens.uses")?,
        token_hash: get_hash(row, 7)?,
    })
}

/// The columns [`agent`] decodes, in order.
pub(crate) const AGENT_COLUMNS: &str = "id, name, region, labels, queue, capacity, version, \
     created_at, last_heartbeat_at, cpu_percent, memory_percent, disk_percent, load_average, \
     running_jobs, registration_token_id, token_hash, state";

pub(crate) fn agent(row: &Row<'_>) -> rusqlite::Result<Agent> {
    let running_jobs: Option<i64> = row.get(13)?;
    Ok(Agent {
        id: get_parsed(row, 0, "agents.id")?,
        name: row.get(1)?,
        region: row.get(2)?,
        labels: get_json(row, 3, "agents.labels")?,
        queue: row.get(4)?,
        capacity: get_u32(row, 5, "agents.capacity")?,
        version: row.get(6)?,
        created_at: get_ts(row, 7, "agents.created_at")?,
        last_heartbeat_at: get_opt_ts(row, 8, "agents.last_heartbeat_at")?,
        metrics: AgentMetrics {
            cpu_percent: row.get(9)?,
            memory_percent: row.get(10)?,
            disk_percent: row.get(11)?,
            load_average: row.get(12)?,
            running_jobs: running_jobs
                .map(|n| {
                    u32::try_from(n).map_err(|e| bad(13, "agents.running_jobs", e.to_string()))
                })
                .transpose()?,
        },
        registration_token_id: get_parsed(row, 14, "agents.registration_token_id")?,
        token_hash: get_hash(row, 15)?,
        state: get_agent_state(row, 16)?,
    })
}

/// The columns [`job`] decodes, in order.
pub(crate) const JOB_COLUMNS: &str = "id, name, script, env, labels, queue, priority, \
     timeout_seconds, max_retries, status, created_by, created_at, updated_at, attempt_count, \
     secret_names, retried_at_attempt";
/// How many columns [`JOB_COLUMNS`] names: where a column selected after them
/// (the claim's `secrets`) is found.
pub(crate) const JOB_COLUMN_COUNT: usize = 16;

pub(crate) fn job(row: &Row<'_>) -> rusqlite::Result<Job> {
    let env: BTreeMap<String, String> = get_json(row, 3, "jobs.env")?;
    Ok(Job {
        id: get_parsed(row, 0, "jobs.id")?,
        spec: JobSpec {
            name: row.get(1)?,
            script: row.get(2)?,
            env,
            labels: get_json(row, 4, "jobs.labels")?,
            queue: row.get(5)?,
            priority: row.get(6)?,
            timeout_seconds: get_u32(row, 7, "jobs.timeout_seconds")?,
            max_retries: get_u32(row, 8, "jobs.max_retries")?,
            // Never selected here: see `get_secrets`.
            secrets: JobSecrets::default(),
        },
        status: get_status(row, 9)?,
        created_by: get_parsed(row, 10, "jobs.created_by")?,
        created_at: get_ts(row, 11, "jobs.created_at")?,
        updated_at: get_ts(row, 12, "jobs.updated_at")?,
        attempt_count: get_u32(row, 13, "jobs.attempt_count")?,
        secret_names: get_labels(row, 14, "jobs.secret_names")?,
        retried_at_attempt: get_u32(row, 15, "jobs.retried_at_attempt")?,
    })
}

/// The columns [`audit_event`] decodes, in order.
pub(crate) const AUDIT_COLUMNS: &str =
    "id, at, actor_kind, actor_id, actor_name, action, subject, request_id, detail";

pub(crate) fn audit_event(row: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    let kind: String = row.get(2)?;
    let (id, name): (Option<String>, Option<String>) = (row.get(3)?, row.get(4)?);
    let actor = Actor::from_parts(&kind, id.as_deref(), name.as_deref())
        .map_err(|e| bad(2, "audit_events.actor_kind", e.to_string()))?;
    let action = row.get_ref(5)?.as_str()?;
    let action = AuditAction::parse(action).ok_or_else(|| {
        bad(
            5,
            "audit_events.action",
            format!("unknown action `{action}`"),
        )
    })?;
    Ok(AuditEvent {
        id: get_parsed(row, 0, "audit_events.id")?,
        at: get_ts(row, 1, "audit_events.at")?,
        actor,
        action,
        subject: row.get(6)?,
        request_id: row.get(7)?,
        detail: row.get(8)?,
    })
}

/// The columns [`attempt`] decodes, in order.
pub(crate) const ATTEMPT_COLUMNS: &str = "number, agent_id, status, claimed_at, started_at, \
     finished_at, exit_code, lease_expires_at, log_bytes, job_token_hash";

pub(crate) fn attempt(row: &Row<'_>) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        number: get_u32(row, 0, "job_attempts.number")?,
        agent_id: get_parsed(row, 1, "job_attempts.agent_id")?,
        status: get_status(row, 2)?,
        claimed_at: get_ts(row, 3, "job_attempts.claimed_at")?,
        started_at: get_opt_ts(row, 4, "job_attempts.started_at")?,
        finished_at: get_opt_ts(row, 5, "job_attempts.finished_at")?,
        exit_code: row.get(6)?,
        lease_expires_at: get_opt_ts(row, 7, "job_attempts.lease_expires_at")?,
        log_bytes: get_u64(row, 8, "job_attempts.log_bytes")?,
        job_token_hash: get_hash(row, 9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_column_count_counts_the_job_columns() {
        assert_eq!(JOB_COLUMNS.split(',').count(), JOB_COLUMN_COUNT);
    }

    #[test]
    fn a_timestamp_keeps_its_nanoseconds() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(ts(at).unwrap(), 1_700_000_000_123_456_789);
    }

    #[test]
    fn a_timestamp_beyond_2262_is_refused_rather_than_wrapped() {
        let far = OffsetDateTime::from_unix_timestamp(10_000_000_000).unwrap();
        assert!(matches!(ts(far), Err(StoreError::Internal(_))));
    }
}
