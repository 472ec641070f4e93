//! Item shapes: how each record is laid out as a DynamoDB item.
//!
//! Each record has a private `*Item` struct that derives serde, and `serde_dynamo`
//! turns it into an attribute map. The conventions match the SQLite backend so both
//! read back `==` records:
//!
//! * timestamps are Numbers holding unix **nanoseconds** (lossless from 1677 to
//!   2262); a session also has `ttl`, its effective expiry in epoch **seconds**,
//!   which is what DynamoDB's TTL reads;
//! * ids are their 26-character ULID strings, which sort like the ULIDs;
//! * an absent optional value is an absent attribute, never `NULL`: conditions test
//!   `attribute_not_exists(expires_at)`, and a GSI key (`region`) must be absent,
//!   not `NULL`, for the item to stay out of a sparse index. Agent metrics are the
//!   exception: they are one map attribute, replaced whole by a heartbeat, in which
//!   an unreported metric is `NULL`;
//! * labels and env are a List and a Map: they are only ever read whole;
//! * a queued job also carries `claim_queue` and `claim_rank`, the keys of the
//!   sparse `claimable` index (see [`claim_rank`] and `schema.rs`); they are absent
//!   in every other status.
//!
//! An item that does not decode is corrupt data or a bug, never user input, so it
//! becomes `Internal` with [`BadItem`] naming the table.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use runway_core::agent::{Agent, AgentMetrics, RegistrationToken};
use runway_core::audit::{Actor, AuditAction, AuditEvent, InvalidActor};
use runway_core::id::{AgentId, AuditId, JobId, RegistrationTokenId, SessionId, UserId};
use runway_core::job::{Attempt, Job, JobDetail, JobSpec};
use runway_core::lifecycle::JobStatus;
use runway_core::secret::TokenHash;
use runway_core::session::Session;
use runway_core::store::{StoreError, StoreResult};
use runway_core::user::{Role, User};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// An item as the SDK sees it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The `list_pk` of every agent: the one partition of the `by_created` index.
pub(crate) const AGENT_LIST_PK: &str = "agent";
/// The `list_pk` of every job.
pub(crate) const JOB_LIST_PK: &str = "job";
/// The `list_pk` of every audit event.
pub(crate) const AUDIT_LIST_PK: &str = "audit";

/// An item that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("an item of `{table}` could not be {action}")]
pub(crate) struct BadItem {
    table: &'static str,
    action: &'static str,
    #[source]
    source: serde_dynamo::Error,
}

/// Encodes a record.
pub(crate) fn to_item<T: Serialize>(table: &'static str, value: &T) -> StoreResult<Item> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(value).map_err(|source| {
        StoreError::internal(BadItem {
            table,
            action: "encoded",
            source,
        })
    })
}

/// Decodes a record.
pub(crate) fn from_item<T: DeserializeOwned>(table: &'static str, item: Item) -> StoreResult<T> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(|source| {
        StoreError::internal(BadItem {
            table,
            action: "decoded",
            source,
        })
    })
}

/// Encodes one value as an attribute (a metrics map, a timestamp).
pub(crate) fn to_value<T: Serialize>(
    table: &'static str,
    value: &T,
) -> StoreResult<AttributeValue> {
    serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(value).map_err(|source| {
        StoreError::internal(BadItem {
            table,
            action: "encoded",
            source,
        })
    })
}

/// A timestamp outside the storable range.
#[derive(Debug, thiserror::Error)]
#[error("{0} is outside the storable range (1677–2262)")]
pub(crate) struct OutOfRange(OffsetDateTime);

/// Unix nanoseconds of `at`, refused rather than wrapped outside i64.
pub(crate) fn nanos(at: OffsetDateTime) -> StoreResult<i64> {
    i64::try_from(at.unix_timestamp_nanos()).map_err(|_| StoreError::internal(OutOfRange(at)))
}

/// A Number attribute.
pub(crate) fn number(n: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// A String attribute.
pub(crate) fn string(s: impl Into<String>) -> AttributeValue {
    AttributeValue::S(s.into())
}

/// Epoch seconds for a TTL attribute, rounded up so DynamoDB never deletes an item
/// before the instant it stands for.
pub(crate) fn ttl_seconds(at: OffsetDateTime) -> i64 {
    let seconds = at.unix_timestamp();
    if at.nanosecond() > 0 {
        seconds.saturating_add(1)
    } else {
        seconds
    }
}

/// `OffsetDateTime` as a Number of unix nanoseconds.
mod ns {
    use serde::{Deserialize, Deserializer, Serializer, de, ser};
    use time::OffsetDateTime;

    pub(crate) fn serialize<S: Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let n = i64::try_from(at.unix_timestamp_nanos())
            .map_err(|_| ser::Error::custom(super::OutOfRange(*at)))?;
        s.serialize_i64(n)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let n = i64::deserialize(d)?;
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).map_err(de::Error::custom)
    }
}

/// `Option<OffsetDateTime>`; `None` is skipped when writing and absent when read.
mod opt_ns {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub(crate) fn serialize<S: Serializer>(
        at: &Option<OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::ns::serialize(at, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::ns")] OffsetDateTime);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(at)| at))
    }
}

// ---------------------------------------------------------------- users

#[derive(Serialize, Deserialize)]
pub(crate) struct UserItem {
    user_id: UserId,
    username: String,
    role: Role,
    #[serde(with = "ns")]
    created_at: OffsetDateTime,
    password_hash: String,
}

impl From<&User> for UserItem {
    fn from(u: &User) -> Self {
        Self {
            user_id: u.id,
            username: u.username.clone(),
            role: u.role,
            created_at: u.created_at,
            password_hash: u.password_hash.clone(),
        }
    }
}

impl From<UserItem> for User {
    fn from(u: UserItem) -> Self {
        Self {
            id: u.user_id,
            username: u.username,
            role: u.role,
            created_at: u.created_at,
            password_hash: u.password_hash,
        }
    }
}

/// A `lookups` item: a secondary key (`username#ada`, `agent_token#<hash>`, …)
/// pointing at the id of the record it names.
#[derive(Serialize, Deserialize)]
pub(crate) struct LookupItem {
    pub(crate) lookup_key: String,
    pub(crate) target_id: String,
}

/// The kinds of lookup key.
pub(crate) fn username_key(username: &str) -> String {
    format!("username#{username}")
}
pub(crate) fn agent_token_key(hash: &TokenHash) -> String {
    format!("agent_token#{}", hash.as_str())
}
pub(crate) fn registration_token_key(hash: &TokenHash) -> String {
    format!("registration_token#{}", hash.as_str())
}

// ---------------------------------------------------------------- sessions

#[derive(Serialize, Deserialize)]
pub(crate) struct SessionItem {
    session_id: SessionId,
    user_id: UserId,
    username: String,
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(with = "ns")]
    created_at: OffsetDateTime,
    #[serde(with = "ns")]
    last_seen_at: OffsetDateTime,
    #[serde(with = "ns")]
    expires_at: OffsetDateTime,
    idle_timeout_seconds: i64,
    token_hash: TokenHash,
    /// Epoch seconds of the effective expiry, for DynamoDB's TTL sweep only.
    ttl: i64,
}

impl From<&Session> for SessionItem {
    fn from(s: &Session) -> Self {
        Self {
            session_id: s.id,
            user_id: s.user_id,
            username: s.username.clone(),
            role: s.role,
            device_name: s.device_name.clone(),
            user_agent: s.user_agent.clone(),
            ip: s.ip.clone(),
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            idle_timeout_seconds: s.idle_timeout_seconds,
            token_hash: s.token_hash.clone(),
            ttl: ttl_seconds(s.effective_expiry()),
        }
    }
}

impl From<SessionItem> for Session {
    fn from(s: SessionItem) -> Self {
        Self {
            id: s.session_id,
            user_id: s.user_id,
            username: s.username,
            role: s.role,
            device_name: s.device_name,
            user_agent: s.user_agent,
            ip: s.ip,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            idle_timeout_seconds: s.idle_timeout_seconds,
            token_hash: s.token_hash,
        }
    }
}

// ---------------------------------------------------------------- agents

#[derive(Serialize, Deserialize)]
pub(crate) struct RegistrationTokenItem {
    token_id: RegistrationTokenId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    created_by: UserId,
    #[serde(with = "ns")]
    created_at: OffsetDateTime,
    #[serde(default, with = "opt_ns", skip_serializing_if = "Option::is_none")]
    expires_at: Option<OffsetDateTime>,
    pub(crate) token_hash: TokenHash,
}

impl From<&RegistrationToken> for RegistrationTokenItem {
    fn from(t: &RegistrationToken) -> Self {
        Self {
            token_id: t.id,
            description: t.description.clone(),
            created_by: t.created_by,
            created_at: t.created_at,
            expires_at: t.expires_at,
            token_hash: t.token_hash.clone(),
        }
    }
}

impl From<RegistrationTokenItem> for RegistrationToken {
    fn from(t: RegistrationTokenItem) -> Self {
        Self {
            id: t.token_id,
            description: t.description,
            created_by: t.created_by,
            created_at: t.created_at,
            expires_at: t.expires_at,
            token_hash: t.token_hash,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct AgentItem {
    agent_id: AgentId,
    /// Always [`AGENT_LIST_PK`]: puts every agent in the `by_created` index.
    list_pk: String,
    name: String,
    /// Absent when `None`, so the agent stays out of the sparse `by_region` index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    labels: Vec<String>,
    queue: String,
    capacity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(with = "ns")]
    created_at: OffsetDateTime,
    #[serde(default, with = "opt_ns", skip_serializing_if = "Option::is_none")]
    last_heartbeat_at: Option<OffsetDateTime>,
    metrics: AgentMetrics,
    registration_token_id: RegistrationTokenId,
    token_hash: TokenHash,
}

impl From<&Agent> for AgentItem {
    fn from(a: &Agent) -> Self {
        Self {
            agent_id: a.id,
            list_pk: AGENT_LIST_PK.into(),
            name: a.name.clone(),
            region: a.region.clone(),
            labels: a.labels.clone(),
            queue: a.queue.clone(),
            capacity: a.capacity,
            version: a.version.clone(),
            created_at: a.created_at,
            last_heartbeat_at: a.last_heartbeat_at,
            metrics: a.metrics.clone(),
            registration_token_id: a.registration_token_id,
            token_hash: a.token_hash.clone(),
        }
    }
}

impl From<AgentItem> for Agent {
    fn from(a: AgentItem) -> Self {
        Self {
            id: a.agent_id,
            name: a.name,
            region: a.region,
            labels: a.labels,
            queue: a.queue,
            capacity: a.capacity,
            version: a.version,
            created_at: a.created_at,
            last_heartbeat_at: a.last_heartbeat_at,
            metrics: a.metrics,
            registration_token_id: a.registration_token_id,
            token_hash: a.token_hash,
        }
    }
}

// ---------------------------------------------------------------- jobs

/// The `claimable` sort key of a queued job: its priority inverted and zero-padded
/// to ten digits, then `#` and the job id.
///
/// Ascending order of this string is the claim order: a higher priority first (the
/// inversion), then the oldest job (ULIDs sort by creation time). The inversion is
/// taken from `i32::MAX`, so every `i32` maps to 0..=4,294,967,295 and fits ten
/// digits: the order holds for any stored priority, not only for the validated
/// −1000..=1000. A job that goes back to `queued` (a lost attempt with retries
/// left) gets the same rank again, so a retry keeps its place in the queue.
pub(crate) fn claim_rank(priority: i32, id: JobId) -> String {
    let inverted = i64::from(i32::MAX) - i64::from(priority);
    format!("{inverted:010}#{id}")
}

/// A job with its attempts inside it (see `jobs.rs` for why).
#[derive(Serialize, Deserialize)]
pub(crate) struct JobItem {
    job_id: JobId,
    /// Always [`JOB_LIST_PK`]: puts every job in the `by_created` index.
    list_pk: String,
    name: String,
    script: String,
    env: BTreeMap<String, String>,
    labels: Vec<String>,
    queue: String,
    priority: i32,
    timeout_seconds: u32,
    max_retries: u32,
    status: JobStatus,
    created_by: UserId,
    #[serde(with = "ns")]
    created_at: OffsetDateTime,
    #[serde(with = "ns")]
    updated_at: OffsetDateTime,
    attempt_count: u32,
    /// Oldest first.
    #[serde(default)]
    attempts: Vec<AttemptItem>,
    /// The job's queue while it is `queued`, absent otherwise: the partition key of
    /// the sparse `claimable` index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim_queue: Option<String>,
    /// [`claim_rank`] while the job is `queued`, absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim_rank: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct AttemptItem {
    number: u32,
    agent_id: AgentId,
    status: JobStatus,
    #[serde(with = "ns")]
    claimed_at: OffsetDateTime,
    #[serde(default, with = "opt_ns", skip_serializing_if = "Option::is_none")]
    started_at: Option<OffsetDateTime>,
    #[serde(default, with = "opt_ns", skip_serializing_if = "Option::is_none")]
    finished_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
}

impl JobItem {
    /// A new job's item: its attempts are those of the record (none, when created
    /// through the store traits).
    pub(crate) fn new(job: &Job) -> Self {
        let queued = job.status == JobStatus::Queued;
        Self {
            job_id: job.id,
            list_pk: JOB_LIST_PK.into(),
            name: job.spec.name.clone(),
            script: job.spec.script.clone(),
            env: job.spec.env.clone(),
            labels: job.spec.labels.clone(),
            queue: job.spec.queue.clone(),
            priority: job.spec.priority,
            timeout_seconds: job.spec.timeout_seconds,
            max_retries: job.spec.max_retries,
            status: job.status,
            created_by: job.created_by,
            created_at: job.created_at,
            updated_at: job.updated_at,
            attempt_count: job.attempt_count,
            attempts: Vec::new(),
            claim_queue: queued.then(|| job.spec.queue.clone()),
            claim_rank: queued.then(|| claim_rank(job.spec.priority, job.id)),
        }
    }

    /// The job's queue, which is its `claim_queue` whenever it is queued.
    pub(crate) fn queue(&self) -> &str {
        &self.queue
    }

    /// The job's [`claim_rank`], whatever its status.
    pub(crate) fn rank(&self) -> String {
        claim_rank(self.priority, self.job_id)
    }

    pub(crate) fn status(&self) -> JobStatus {
        self.status
    }

    /// How many attempts the item holds (the index after the latest one).
    /// When the job's status last changed.
    pub(crate) const fn updated_at(&self) -> OffsetDateTime {
        self.updated_at
    }

    pub(crate) fn attempts_len(&self) -> usize {
        self.attempts.len()
    }

    pub(crate) fn into_job(self) -> Job {
        self.into_detail().job
    }

    pub(crate) fn into_detail(self) -> JobDetail {
        let job = Job {
            id: self.job_id,
            spec: JobSpec {
                name: self.name,
                script: self.script,
                env: self.env,
                labels: self.labels,
                queue: self.queue,
                priority: self.priority,
                timeout_seconds: self.timeout_seconds,
                max_retries: self.max_retries,
            },
            status: self.status,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            attempt_count: self.attempt_count,
        };
        let attempts = self
            .attempts
            .into_iter()
            .map(|a| Attempt {
                number: a.number,
                agent_id: a.agent_id,
                status: a.status,
                claimed_at: a.claimed_at,
                started_at: a.started_at,
                finished_at: a.finished_at,
                exit_code: a.exit_code,
            })
            .collect();
        JobDetail { job, attempts }
    }
}

// ---------------------------------------------------------------- audit

/// An audit event. The actor is flat (`actor_kind`, `actor_id`?, `actor_name`?),
/// as in SQLite, through [`Actor::kind`] and [`Actor::from_parts`].
#[derive(Serialize, Deserialize)]
pub(crate) struct AuditItem {
    audit_id: AuditId,
    /// Always [`AUDIT_LIST_PK`]: puts every event in the `by_created` index.
    list_pk: String,
    #[serde(with = "ns")]
    at: OffsetDateTime,
    actor_kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor_name: Option<String>,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// A stored audit action this build does not know.
#[derive(Debug, thiserror::Error)]
#[error("an item of `audit` has the unknown action `{0}`")]
pub(crate) struct UnknownAction(String);

/// A stored actor that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("an item of `audit` has a bad actor")]
pub(crate) struct BadActor(#[source] InvalidActor);

impl From<&AuditEvent> for AuditItem {
    fn from(e: &AuditEvent) -> Self {
        Self {
            audit_id: e.id,
            list_pk: AUDIT_LIST_PK.into(),
            at: e.at,
            actor_kind: e.actor.kind().into(),
            actor_id: e.actor.id(),
            actor_name: e.actor.name().map(Into::into),
            action: e.action.as_str().into(),
            subject: e.subject.clone(),
            request_id: e.request_id.clone(),
            detail: e.detail.clone(),
        }
    }
}

impl AuditItem {
    /// The event, or `Internal` if the stored actor or action does not decode.
    pub(crate) fn into_event(self) -> StoreResult<AuditEvent> {
        let actor = Actor::from_parts(
            &self.actor_kind,
            self.actor_id.as_deref(),
            self.actor_name.as_deref(),
        )
        .map_err(|e| StoreError::internal(BadActor(e)))?;
        let action = AuditAction::parse(&self.action)
            .ok_or_else(|| StoreError::internal(UnknownAction(self.action.clone())))?;
        Ok(AuditEvent {
            id: self.audit_id,
            at: self.at,
            actor,
            action,
            subject: self.subject,
            request_id: self.request_id,
            detail: self.detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use runway_core::agent::AgentMetrics;

    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(1_750_000_000_123_456_789).unwrap()
    }

    #[test]
    fn a_timestamp_is_stored_as_a_number_of_nanoseconds() {
        let user = User {
            id: UserId::new(),
            username: "ada".into(),
            role: Role::Admin,
            created_at: t0(),
            password_hash: "h".into(),
        };
        let item = to_item("users", &UserItem::from(&user)).unwrap();
        assert_eq!(
            item["created_at"],
            AttributeValue::N("1750000000123456789".into())
        );
        let back: UserItem = from_item("users", item).unwrap();
        assert_eq!(User::from(back), user);
    }

    #[test]
    fn a_session_ttl_is_its_effective_expiry_in_seconds_rounded_up() {
        let session = Session {
            id: SessionId::new(),
            user_id: UserId::new(),
            username: "ada".into(),
            role: Role::Member,
            device_name: None,
            user_agent: None,
            ip: None,
            created_at: t0(),
            last_seen_at: t0(),
            expires_at: t0() + time::Duration::days(7),
            idle_timeout_seconds: 3600,
            token_hash: TokenHash::of("t"),
        };
        let item = to_item("sessions", &SessionItem::from(&session)).unwrap();
        assert_eq!(item["ttl"], AttributeValue::N("1750003601".into()));
        assert!(
            !item.contains_key("device_name"),
            "absent values are absent attributes"
        );
        let back: SessionItem = from_item("sessions", item).unwrap();
        assert_eq!(Session::from(back), session);
    }

    #[test]
    fn an_agent_without_a_region_has_no_region_attribute_and_metrics_round_trip() {
        let agent = Agent {
            id: AgentId::new(),
            name: "b".into(),
            region: None,
            labels: vec![],
            queue: "default".into(),
            capacity: 1,
            version: None,
            created_at: t0(),
            last_heartbeat_at: Some(t0()),
            metrics: AgentMetrics {
                cpu_percent: Some(55.5),
                load_average: Some(0.1),
                ..AgentMetrics::default()
            },
            registration_token_id: RegistrationTokenId::new(),
            token_hash: TokenHash::of("a"),
        };
        let item = to_item("agents", &AgentItem::from(&agent)).unwrap();
        assert!(!item.contains_key("region"));
        assert_eq!(item["list_pk"], AttributeValue::S(AGENT_LIST_PK.into()));
        let back: AgentItem = from_item("agents", item).unwrap();
        assert_eq!(Agent::from(back), agent);
    }

    fn job(priority: i32) -> Job {
        Job::new(
            JobSpec {
                name: "build".into(),
                script: "make".into(),
                env: BTreeMap::new(),
                labels: vec!["linux".into()],
                queue: "gpu".into(),
                priority,
                timeout_seconds: 60,
                max_retries: 0,
            },
            UserId::new(),
            t0(),
        )
    }

    #[test]
    fn the_claim_rank_orders_higher_priority_first_then_older_jobs_first() {
        let ulid = |ms: u64| JobId::from_ulid(ulid::Ulid::from_parts(ms, 0));
        let (older, newer) = (ulid(1_000), ulid(2_000));
        // The expected claim order, first to last.
        let expected = [
            claim_rank(i32::MAX, newer),
            claim_rank(1000, older),
            claim_rank(1000, newer),
            claim_rank(1, older),
            claim_rank(0, older),
            claim_rank(0, newer),
            claim_rank(-1, older),
            claim_rank(-999, newer),
            claim_rank(-1000, older),
            claim_rank(i32::MIN, older),
        ];
        let mut sorted = expected.clone();
        sorted.sort();
        assert_eq!(sorted, expected);
    }

    #[test]
    fn the_claim_rank_is_ten_padded_digits_a_hash_and_the_job_id() {
        let id = JobId::new();
        assert_eq!(claim_rank(0, id), format!("2147483647#{id}"));
        assert_eq!(claim_rank(1000, id), format!("2147482647#{id}"));
        assert_eq!(claim_rank(i32::MAX, id), format!("0000000000#{id}"));
        assert_eq!(claim_rank(i32::MIN, id), format!("4294967295#{id}"));
    }

    #[test]
    fn a_queued_job_carries_its_claim_keys_and_other_statuses_do_not() {
        let queued = job(5);
        let item = to_item("jobs", &JobItem::new(&queued)).unwrap();
        assert_eq!(item["claim_queue"], AttributeValue::S("gpu".into()));
        assert_eq!(
            item["claim_rank"],
            AttributeValue::S(claim_rank(5, queued.id))
        );
        let back: JobItem = from_item("jobs", item).unwrap();
        assert_eq!(back.into_job(), queued);

        let mut running = job(5);
        running.status = JobStatus::Running;
        let item = to_item("jobs", &JobItem::new(&running)).unwrap();
        assert!(
            !item.contains_key("claim_queue"),
            "sparse: absent, not NULL"
        );
        assert!(!item.contains_key("claim_rank"));
    }

    #[test]
    fn an_audit_event_is_stored_with_a_flat_actor_and_a_dotted_action() {
        let user = UserId::new();
        let event = AuditEvent::new(
            Actor::User {
                id: user,
                username: "ada".into(),
            },
            AuditAction::SessionsRevokedAll,
            Some(user.to_string()),
            t0(),
        );
        let item = to_item("audit", &AuditItem::from(&event)).unwrap();
        assert_eq!(item["actor_kind"], AttributeValue::S("user".into()));
        assert_eq!(item["actor_id"], AttributeValue::S(user.to_string()));
        assert_eq!(
            item["action"],
            AttributeValue::S("sessions.revoked_all".into())
        );
        assert_eq!(item["list_pk"], AttributeValue::S(AUDIT_LIST_PK.into()));
        assert!(!item.contains_key("detail"));
        let back: AuditItem = from_item("audit", item).unwrap();
        assert_eq!(back.into_event().unwrap(), event);
    }

    #[test]
    fn an_audit_item_with_an_unknown_action_is_an_internal_error() {
        let event = AuditEvent::new(Actor::System, AuditAction::JobCreated, None, t0());
        let mut item = to_item("audit", &AuditItem::from(&event)).unwrap();
        item.insert("action".into(), AttributeValue::S("job.exploded".into()));
        let back: AuditItem = from_item("audit", item).unwrap();
        let Err(StoreError::Internal(source)) = back.into_event() else {
            panic!("an unknown action decoded")
        };
        assert!(source.to_string().contains("job.exploded"), "{source}");
    }

    #[test]
    fn a_corrupt_item_is_an_internal_error_naming_its_table() {
        let mut item = Item::new();
        item.insert("user_id".into(), AttributeValue::S("not a ulid".into()));
        // No `unwrap_err`: item structs have no Debug, which would print secrets.
        let Err(err) = from_item::<UserItem>("users", item) else {
            panic!("a corrupt item decoded")
        };
        let StoreError::Internal(source) = err else {
            panic!("expected internal")
        };
        assert!(source.to_string().contains("users"), "{source}");
    }
}
