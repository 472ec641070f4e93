//! # runway-protocol
//!
//! The wire types of the agent protocol (`/agent/v1`), the one contract between the
//! Runway server and `runway-agent`. The server serializes exactly these types and
//! the agent deserializes them, so the two cannot drift; the agent depends on this
//! crate and on no store or server crate.
//!
//! ## Calls
//!
//! Every call is JSON over HTTP with `Authorization: Bearer <token>`. Errors come in
//! the API's one envelope, [`ErrorEnvelope`].
//!
//! | call | token | success | other answers the agent acts on |
//! |---|---|---|---|
//! | `POST register` [`RegisterRequest`] | registration `rwr_` | 201 [`RegisterResponse`] | 401: the token is unknown, expired, used up or revoked |
//! | `POST heartbeat` [`HeartbeatRequest`] | agent `rwa_` | 200 [`HeartbeatResponse`] | 401: the agent was deleted or its token rotated |
//! | `GET config` | agent | 200 [`AgentConfig`] with `ETag`, 304 | |
//! | `POST jobs/claim?wait=S` | agent | 200 [`ClaimResponse`], 204 nothing to do | both carry [`POLL_INTERVAL_HEADER`] |
//! | `POST jobs/{id}/start` | job `rwj_` | 200 [`LeaseResponse`] | 404/409: not this agent's job any more |
//! | `POST jobs/{id}/lease?wait=S` | job | 200 [`LeaseResponse`], at once if canceled, else after up to `S` s | 404/409: stop the job |
//! | `PUT jobs/{id}/logs?seq=N&offset=B` raw bytes | job | 200 [`LogAck`] | 416 with [`LOG_NEXT_OFFSET_HEADER`]: resend from there |
//! | `POST jobs/{id}/finish` [`FinishRequest`] | job | 200 [`FinishResponse`], 202 [`FinishPending`] | 202: resend the log from `next_offset`, then finish again |
//! | `POST token/rotate` | agent | 200 [`RotateResponse`] | the old token stops working at once |
//! | `POST disconnect` | agent | 204 | |
//!
//! ## Three token tiers
//!
//! A registration token (made by an admin) only registers. The agent token that
//! `register` returns makes every agent-level call. The job token that a claim
//! returns is good for that one job's `start`, `lease`, `logs` and `finish`, and
//! expires at the job's timeout plus ten minutes. Tokens are [`Token`]s here, whose
//! `Debug` never shows them.
//!
//! ## Timings belong to the server
//!
//! [`Timings`] comes back from `register`, `config` and every heartbeat; an agent
//! follows the latest it has seen, so intervals change without redeploying agents.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Response header of `jobs/claim` (200 and 204): seconds to wait before the next
/// claim when the last one came back empty. 0 means "claim again at once" (the
/// server long-polls); on Lambda, where waiting is billed, it is a few seconds.
pub const POLL_INTERVAL_HEADER: &str = "x-poll-interval-seconds";
/// Response header of `jobs/{id}/logs` (200 and 416) and of the users' log reads:
/// the byte offset the next chunk must start at.
pub const LOG_NEXT_OFFSET_HEADER: &str = "x-log-next-offset";
/// Query parameter of `jobs/claim` and `jobs/{id}/lease`: how long the server may
/// hold the request open, in seconds. A lease renewal is extended at once and then
/// waits for a cancel; the agent calls again as soon as one returns (after the
/// rest of `lease_renew_interval_seconds` if it came back early without a cancel).
pub const WAIT_PARAM: &str = "wait";

/// A bearer token. Shown in JSON (it is sent once, on purpose), never by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Token(pub String);

impl Token {
    /// The token itself, for an `Authorization` header or a 0600 state file.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.0.get(..4).filter(|p| p.ends_with('_')).unwrap_or("");
        write!(f, "Token({kind}[redacted])")
    }
}

/// A job secret's value: in JSON as a plain string, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct SecretValue(pub String);

impl SecretValue {
    /// The value, for the job's environment and for masking.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The intervals and limits an agent follows, chosen by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timings {
    /// Heartbeat this often.
    pub heartbeat_interval_seconds: u32,
    /// The agent counts as offline after this long without a heartbeat.
    pub offline_after_seconds: u32,
    /// A claimed job's lease.
    pub job_lease_seconds: u32,
    /// Renew each running job's lease this often (a third of the lease).
    pub lease_renew_interval_seconds: u32,
    /// The longest `wait` a claim is held open for; a larger one is cut to this.
    pub claim_wait_max_seconds: u32,
    /// After an empty claim, wait this long before the next one (0: at once).
    pub poll_interval_seconds: u32,
    /// Between SIGTERM and SIGKILL when a job is canceled.
    pub cancel_grace_seconds: u32,
    /// Send buffered log output at least this often, in milliseconds.
    pub log_flush_interval_ms: u32,
    /// The largest log chunk.
    pub log_chunk_max_bytes: u64,
    /// The largest log of one attempt; past it the agent writes a marker and stops
    /// sending, and the job keeps running.
    pub log_max_bytes: u64,
}

/// The schema of an agent's labels: what the server's registration check accepts.
#[cfg(feature = "openapi")]
fn agent_labels() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(64))
                .pattern(Some(r"^(\*|[A-Za-z0-9._:/=-]+)$")),
        )
        .max_items(Some(32))
        .into()
}

/// The schema of a heartbeat's job ids: what the server parses as a job id (a
/// ULID, see `runway_core::id::ULID_PATTERN`), at most twice the largest capacity.
#[cfg(feature = "openapi")]
fn job_ids() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
        )
        .max_items(Some(128))
        .into()
}

/// What an agent says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Display name, usually the host name (1–100 characters, not all
    /// whitespace, no control characters).
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "builder-1",
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
        )
    )]
    pub name: String,
    /// Where it runs (a label: 1 to 64 of letters, digits and `. _ - : / =`).
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "eu-west-1",
            min_length = 1,
            max_length = 64,
            pattern = r"^[A-Za-z0-9._:/=-]+$"
        )
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Capabilities jobs can require (at most 32 labels, as `region`); `*` runs
    /// jobs with any labels.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = agent_labels))]
    pub labels: Vec<String>,
    /// The queue to pull from (default `default`; a label, as `region`).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._:/=-]+$")
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Jobs it runs at once, 1–64 (default 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 64))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// The agent's version (1 to 64 characters, no control characters).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The agent as the server registered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisteredAgent {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The queue it pulls from.
    pub queue: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// How many jobs it may hold at once.
    pub capacity: u32,
}

/// The new agent and its credential. `token` is shown only here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterResponse {
    /// The agent as stored.
    pub agent: RegisteredAgent,
    /// Send as `Authorization: Bearer <token>` on every other agent call.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "rwa_…"))]
    pub token: Token,
    /// The intervals to follow.
    pub timings: Timings,
}

/// What an agent reports in a heartbeat. Every field is optional, and so is the body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// CPU use, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub cpu_percent: Option<f64>,
    /// Memory use, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub memory_percent: Option<f64>,
    /// Disk use of the work directory, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub disk_percent: Option<f64>,
    /// One-minute load average, 0 to 1000000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1_000_000))]
    pub load_average: Option<f64>,
    /// How many jobs the agent is running now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_jobs: Option<u32>,
    /// The ids of the jobs it is running (at most 128); the answer says which to
    /// cancel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = job_ids))]
    pub running_job_ids: Vec<String>,
}

/// What the server wants the agent as a whole to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentAction {
    /// Carry on.
    #[default]
    None,
    /// Claim nothing new until told otherwise; keep running what it has.
    Pause,
    /// Claim nothing new, finish what it has, then disconnect and exit.
    Drain,
    /// Stop now: disconnect and exit.
    Disconnect,
}

/// The agent's health as the server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentHealth {
    /// Heartbeat within the offline window.
    Online,
    /// No heartbeat for the offline window.
    Offline,
    /// Registered but never heartbeated.
    NeverConnected,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatResponse {
    /// The agent's health after this heartbeat.
    pub agent_status: AgentHealth,
    /// What to do as a whole.
    pub action: AgentAction,
    /// Of the jobs it reported, those it must stop (canceled, or no longer its own).
    pub cancel_job_ids: Vec<String>,
    /// The intervals to follow.
    pub timings: Timings,
}

/// The agent's configuration (`GET config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentConfig {
    /// The agent's id.
    pub agent_id: String,
    /// Its name.
    pub name: String,
    /// The queue it pulls from.
    pub queue: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// How many jobs it may hold at once.
    pub capacity: u32,
    /// What to do as a whole.
    pub action: AgentAction,
    /// The intervals to follow.
    pub timings: Timings,
}

/// A job as the agent that claimed it sees it: everything needed to run it.
/// `Debug` shows the script's length and the variables' names only, as
/// `runway_core::job::JobSpec` does: either may hold a credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedJob {
    /// The job's id (`RUNWAY_JOB_ID`).
    pub id: String,
    /// The attempt this claim started, 1 for the first (`RUNWAY_ATTEMPT`).
    pub attempt: u32,
    /// The job's name (`RUNWAY_JOB_NAME`).
    pub name: String,
    /// The bash script to run with `bash -eo pipefail`.
    pub script: String,
    /// Environment variables for the script.
    pub env: BTreeMap<String, String>,
    /// Secret environment variables: exported like `env`, and every value of four
    /// characters or more is masked as `***` in the log.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub secrets: BTreeMap<String, SecretValue>,
    /// Wall-clock limit of the attempt, from the script's start.
    pub timeout_seconds: u32,
}

impl fmt::Debug for ClaimedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Length(usize);
        impl fmt::Debug for Length {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "[redacted: {} bytes]", self.0)
            }
        }
        struct Names<'a, V>(&'a BTreeMap<String, V>);
        impl<V> fmt::Debug for Names<'_, V> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.keys().map(|k| (k, format_args!("[redacted]"))))
                    .finish()
            }
        }
        f.debug_struct("ClaimedJob")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("name", &self.name)
            .field("script", &Length(self.script.len()))
            .field("env", &Names(&self.env))
            .field("secrets", &Names(&self.secrets))
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

/// A claimed job and its credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimResponse {
    /// The job.
    pub job: ClaimedJob,
    /// Bearer token for this job's `start`, `lease`, `logs` and `finish`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "rwj_…"))]
    pub job_token: Token,
    /// When the lease runs out unless renewed.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub lease_expires_at: OffsetDateTime,
    /// The intervals to follow.
    pub timings: Timings,
}

/// The answer to `start` and `lease`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseResponse {
    /// When the lease now runs out.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub lease_expires_at: OffsetDateTime,
    /// A user asked to cancel the job: stop it (SIGTERM, grace, SIGKILL) and finish
    /// with `canceled`.
    pub cancel: bool,
}

/// The answer to an accepted log chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogAck {
    /// The offset the next chunk must start at (the log's size so far).
    pub next_offset: u64,
}

/// How an attempt ended, as the agent saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// The script exited 0.
    Succeeded,
    /// The script exited non-zero, or could not be started.
    Failed,
    /// The agent stopped it because it was asked to cancel.
    Canceled,
    /// The agent stopped it at its timeout.
    TimedOut,
}

/// The end of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FinishRequest {
    /// How it ended.
    pub result: AttemptResult,
    /// The script's exit code, if it exited (not when killed by a signal).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Every byte of log the agent sent, in all.
    pub log_bytes: u64,
    /// CRC-32 (IEEE) of those bytes.
    pub log_crc32: u32,
}

/// The job after an accepted finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FinishResponse {
    /// The job's final status (`succeeded`, `failed`, `canceled`, `timed_out`).
    pub status: String,
}

/// A finish that came before all of its log: nothing was finished yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FinishPending {
    /// The log has this many bytes; send the rest from here, then finish again.
    pub next_offset: u64,
}

/// A new agent token; the old one stopped working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotateResponse {
    /// The new token.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "rwa_…"))]
    pub token: Token,
}

/// The API's error envelope, as far as an agent reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorEnvelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `log_offset_mismatch`.
    pub code: String,
    /// For humans.
    pub message: String,
    /// Quote it when reporting a problem.
    #[serde(default)]
    pub request_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_secret_values_never_show_in_debug() {
        let t = Token("rwj_supersecret".into());
        assert_eq!(format!("{t:?}"), "Token(rwj_[redacted])");
        let s = SecretValue("hunter2hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        let job = ClaimedJob {
            id: "j".into(),
            attempt: 1,
            name: "n".into(),
            script: "echo hunter2-script".into(),
            env: BTreeMap::from([("E".into(), "hunter2-env".into())]),
            secrets: BTreeMap::from([("K".into(), s)]),
            timeout_seconds: 1,
        };
        let debug = format!("{job:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("\"E\"") && debug.contains("\"K\""),
            "{debug}"
        );
    }

    #[test]
    fn a_heartbeat_body_with_an_unknown_field_is_refused_by_name() {
        let err = serde_json::from_str::<HeartbeatRequest>(r#"{"cpu":1}"#).unwrap_err();
        assert!(err.to_string().contains("cpu"), "{err}");
        let ok: HeartbeatRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(ok, HeartbeatRequest::default());
    }

    #[test]
    fn results_and_actions_use_snake_case_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&AttemptResult::TimedOut).unwrap(),
            "\"timed_out\""
        );
        assert_eq!(
            serde_json::to_string(&AgentAction::Disconnect).unwrap(),
            "\"disconnect\""
        );
    }
}
