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
//! * a job's sparse index keys are derived from its status and latest attempt by
//!   [`JobItem::index_keys`], never set by hand: `claim_queue`/`claim_rank` while
//!   queued, `lease_pk`/`lease_expires` while queued or held, `lease_agent` while
//!   held (see `schema.rs`); absent otherwise;
//! * a job's `secrets` are a Map of their own, absent when empty, removed by the
//!   write that makes the job final and set again only by a user's retry; their
//!   names are `secret_names`, a List kept for the job's whole life; an agent's
//!   `held` is a String Set of the attempts it holds, absent when empty (DynamoDB
//!   has no empty sets);
//! * no item struct derives `Debug`, so none can print a secret or a token hash.
//!
//! An item that does not decode is corrupt data or a bug, never user input, so it
//! becomes `Internal` with [`BadItem`] naming the table.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use runway_core::agent::{Agent, AgentMetrics, AgentState, RegistrationToken};
use runway_core::api_token::ApiToken;
use runway_core::audit::{Actor, AuditAction, AuditEvent, InvalidActor};
use runway_core::id::{
    AgentId, ApiTokenId, AuditId, JobId, RegistrationTokenId, SessionId, UserId,
};
use runway_core::job::{Attempt, Job, JobDetail, JobSecrets, JobSpec};
use runway_core::lifecycle::{self, JobStatus};
use runway_core::oidc::{OidcIdentity, PendingLogin};
use runway_core::secret::{Secret, TokenHash};
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

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct UserItem {
    user_id: UserId,
    username: String,
    role: Role,
    #[serde(with = "ns")]
    created_at: OffsetDateTime,
    password_hash: String,
    /// Absent on a user written before epochs existed, which reads as 0.
    #[serde(default)]
    credential_epoch: u64,
    /// The user's sessions: id → absolute expiry (unix ns). Absent until the first
    /// sign-in (and on users from before it existed). Written only by the session
    /// calls in `accounts.rs`, never from a `User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sessions: Option<BTreeMap<String, i64>>,
    /// Bumped by every write to `sessions`, so a revocation can be conditional on
    /// the map it read. Absent until the first such write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_version: Option<u64>,
    /// Absent (false) on users from before users could be disabled.
    #[serde(default)]
    disabled: bool,
    /// The user's API tokens: id → absolute expiry (unix ns, 0 for never), like
    /// `sessions`, and bumped with `session_version` too. Written only by
    /// `api_tokens.rs` and `users.rs`, never from a `User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_tokens: Option<BTreeMap<String, i64>>,
    /// The `lookups` keys of the user's issuer identities (`oidc#…`), so deleting
    /// the user can delete them in the same transaction. Absent for password users
    /// and for OIDC users from before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oidc_identities: Option<Vec<String>>,
}

impl UserItem {
    /// The credential epoch.
    pub(crate) const fn credential_epoch(&self) -> u64 {
        self.credential_epoch
    }

    /// The `sessions` map, `None` if the attribute is absent.
    pub(crate) const fn sessions(&self) -> Option<&BTreeMap<String, i64>> {
        self.sessions.as_ref()
    }

    /// `session_version`, `None` if the attribute is absent.
    pub(crate) const fn session_version(&self) -> Option<u64> {
        self.session_version
    }

    /// The `api_tokens` map, `None` if the attribute is absent.
    pub(crate) const fn api_tokens(&self) -> Option<&BTreeMap<String, i64>> {
        self.api_tokens.as_ref()
    }

    /// The `lookups` keys of the user's issuer identities.
    pub(crate) fn oidc_identities(&self) -> &[String] {
        self.oidc_identities.as_deref().unwrap_or_default()
    }

    /// The user item of a user created through an issuer identity.
    pub(crate) fn with_oidc_identity(mut self, lookup_key: String) -> Self {
        self.oidc_identities = Some(vec![lookup_key]);
        self
    }
}

impl From<&User> for UserItem {
    fn from(u: &User) -> Self {
        Self {
            user_id: u.id,
            username: u.username.clone(),
            role: u.role,
            created_at: u.created_at,
            password_hash: u.password_hash.clone(),
            credential_epoch: u.credential_epoch,
            sessions: None,
            session_version: None,
            disabled: u.disabled,
            api_tokens: None,
            oidc_identities: None,
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
            credential_epoch: u.credential_epoch,
            disabled: u.disabled,
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

/// The `lookups` key of a user's identity at an issuer. An issuer identifier is
/// a URL without a fragment, so it holds no `#`, and the first `#` after the
/// prefix ends it: two different pairs never make one key.
pub(crate) fn oidc_identity_key(identity: &OidcIdentity) -> String {
    format!("oidc#{}#{}", identity.issuer, identity.subject)
}

// ---------------------------------------------------------------- OIDC logins

#[derive(Serialize, Deserialize)]
pub(crate) struct PendingLoginItem {
    state_hash: TokenHash,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
    #[serde(with = "ns")]
    created_at: OffsetDateTime,
    #[serde(with = "ns")]
    expires_at: OffsetDateTime,
    /// Epoch seconds of the expiry, for DynamoDB's TTL sweep only.
    ttl: i64,
}

impl From<&PendingLogin> for PendingLoginItem {
    fn from(l: &PendingLogin) -> Self {
        Self {
            state_hash: l.state_hash.clone(),
            nonce: l.nonce.expose().to_owned(),
            pkce_verifier: l.pkce_verifier.expose().to_owned(),
            return_to: l.return_to.clone(),
            created_at: l.created_at,
            expires_at: l.expires_at,
            ttl: ttl_seconds(l.expires_at),
        }
    }
}

impl From<PendingLoginItem> for PendingLogin {
    fn from(l: PendingLoginItem) -> Self {
        Self {
            state_hash: l.state_hash,
            nonce: Secret::new(l.nonce),
            pkce_verifier: Secret::new(l.pkce_verifier),
            return_to: l.return_to,
            created_at: l.created_at,
            expires_at: l.expires_at,
        }
    }
}

// ---------------------------------------------------------------- abuse limits

/// An abuse-limit counter as `limits.rs` reads it back. It is only ever written
/// by update expressions (`ADD attempts`), never put whole, so this is
/// decode-only; `limit_key`, `ttl` and `refused_count` are left unread.
#[derive(Deserialize)]
pub(crate) struct CounterItem {
    attempts: u32,
    #[serde(with = "ns")]
    last_at: OffsetDateTime,
    #[serde(with = "ns")]
    expires_at: OffsetDateTime,
}

impl From<CounterItem> for runway_core::limit::Attempts {
    fn from(c: CounterItem) -> Self {
        Self {
            count: c.attempts,
            last_at: c.last_at,
            expires_at: c.expires_at,
        }
    }
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
    /// Absent only on a session written before epochs existed: such a session is
    /// not in its user's `sessions` map, so no revocation could reach it, and it
    /// reads as no session at all ([`SessionItem::into_session`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credential_epoch: Option<u64>,
    /// Epoch seconds of the effective expiry, for DynamoDB's TTL sweep only.
    ttl: i64,
}

impl SessionItem {
    /// The session, or `None` for one from before credential epochs (see the
    /// field's docs).
    pub(crate) fn into_session(self) -> Option<Session> {
        let credential_epoch = self.credential_epoch?;
        Some(Session {
            id: self.session_id,
            user_id: self.user_id,
            username: self.username,
            role: self.role,
            device_name: self.device_name,
            user_agent: self.user_agent,
            ip: self.ip,
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at,
            idle_timeout_seconds: self.idle_timeout_seconds,
            token_hash: self.token_hash,
            credential_epoch,
        })
    }
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
            credential_epoch: Some(s.credential_epoch),
            ttl: ttl_seconds(s.effective_expiry()),
        }
    }
}

// ---------------------------------------------------------------- API tokens

/// The `sessions` key of an API token: the table holds every credential checked
/// on each request, and a ULID session id never starts with `api_token#`.
pub(crate) fn api_token_key(id: ApiTokenId) -> String {
    format!("api_token#{id}")
}

/// An API token, in the `sessions` table under [`api_token_key`]. No `ttl`: an
/// expired token stays until it is revoked or its user makes another, exactly as
/// in SQLite.
#[derive(Serialize, Deserialize)]
pub(crate) struct ApiTokenItem {
    session_id: String,
    token_id: ApiTokenId,
    user_id: UserId,
    username: String,
    role: Role,
    name: String,
    read_only: bool,
    #[serde(with = "ns")]
    created_at: OffsetDateTime,
    #[serde(default, with = "opt_ns", skip_serializing_if = "Option::is_none")]
    expires_at: Option<OffsetDateTime>,
    token_hash: TokenHash,
    credential_epoch: u64,
}

impl From<&ApiToken> for ApiTokenItem {
    fn from(t: &ApiToken) -> Self {
        Self {
            session_id: api_token_key(t.id),
            token_id: t.id,
            user_id: t.user_id,
            username: t.username.clone(),
            role: t.role,
            name: t.name.clone(),
            read_only: t.read_only,
            created_at: t.created_at,
            expires_at: t.expires_at,
            token_hash: t.token_hash.clone(),
            credential_epoch: t.credential_epoch,
        }
    }
}

impl From<ApiTokenItem> for ApiToken {
    fn from(t: ApiTokenItem) -> Self {
        Self {
            id: t.token_id,
            user_id: t.user_id,
            username: t.username,
            role: t.role,
            name: t.name,
            read_only: t.read_only,
            created_at: t.created_at,
            expires_at: t.expires_at,
            token_hash: t.token_hash,
            credential_epoch: t.credential_epoch,
        }
    }
}

/// The `lookups` item that counts enabled admins (`users.rs`).
pub(crate) const ADMIN_COUNTER_KEY: &str = "counter#enabled_admins";

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
    /// Absent for a token without a limit: `register_agent`'s condition is
    /// `attribute_not_exists(max_uses) OR uses < max_uses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_uses: Option<u32>,
    /// Always present (0 at creation), counted up by `register_agent` in the
    /// transaction that creates the agent.
    #[serde(default)]
    uses: u32,
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
            max_uses: t.max_uses,
            uses: t.uses,
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
            max_uses: t.max_uses,
            uses: t.uses,
            token_hash: t.token_hash,
        }
    }
}

/// An agent. Besides the record it carries `held` (not a field here: it is never
/// written whole), the string set of [`held_member`]s of the attempts it holds,
/// which a claim adds to and `end_attempt` removes from in the same transaction as
/// the job, so that `size(held) < capacity` in the claim's condition is exact (see
/// `dispatch.rs`). DynamoDB has no empty sets: an agent holding nothing has no
/// `held` attribute.
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
    /// `active` when absent (agents registered before states existed); the claim's
    /// condition accepts both.
    #[serde(default)]
    state: AgentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(with = "ns")]
    created_at: OffsetDateTime,
    #[serde(default, with = "opt_ns", skip_serializing_if = "Option::is_none")]
    last_heartbeat_at: Option<OffsetDateTime>,
    metrics: AgentMetrics,
    registration_token_id: RegistrationTokenId,
    pub(crate) token_hash: TokenHash,
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
            state: a.state,
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
            state: a.state,
            version: a.version,
            created_at: a.created_at,
            last_heartbeat_at: a.last_heartbeat_at,
            metrics: a.metrics,
            registration_token_id: a.registration_token_id,
            token_hash: a.token_hash,
        }
    }
}

/// The agent attribute holding the [`held_member`]s of its attempts.
pub(crate) const HELD: &str = "held";

/// An attempt's entry in its agent's `held` set: `<job_id>#<attempt number>`.
pub(crate) fn held_member(job: JobId, attempt: u32) -> String {
    format!("{job}#{attempt}")
}

/// The job and attempt of a `held` entry; `None` if it is not one.
pub(crate) fn parse_held_member(member: &str) -> Option<(JobId, u32)> {
    let (job, attempt) = member.split_once('#')?;
    Some((job.parse().ok()?, attempt.parse().ok()?))
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

/// The `lease_pk` of a held attempt's `by_lease` entry.
pub(crate) const LEASE_PARTITION: &str = "lease";
/// The `lease_pk` of a queued job's `by_lease` entry.
pub(crate) const QUEUE_PARTITION: &str = "queue";

/// A `by_lease` sort key: `at` as 19-digit zero-padded unix nanoseconds, `#`, the
/// job id. Fixed width, so string order is time order (for every instant from 1970
/// to 2262; `nanos` refuses earlier ones here).
pub(crate) fn reaper_key(at: OffsetDateTime, id: JobId) -> StoreResult<String> {
    Ok(format!("{}#{id}", reaper_bound(at)?))
}

/// The prefix of every [`reaper_key`] at `at`: `lease_expires < reaper_bound(t)`
/// is "due before `t`".
pub(crate) fn reaper_bound(at: OffsetDateTime) -> StoreResult<String> {
    let n = nanos(at)?;
    if n < 0 {
        return Err(StoreError::internal(OutOfRange(at)));
    }
    Ok(format!("{n:019}"))
}

/// The sparse index keys a job item carries, all derived from its status and its
/// latest attempt: every write sets the ones that are `Some` and removes the others
/// in the same `UpdateItem`, so no index can disagree with the item for longer than
/// its own replication lag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IndexKeys {
    /// `claim_queue` and `claim_rank`: while `queued`.
    pub(crate) claim: Option<(String, String)>,
    /// `lease_pk` and `lease_expires`: while `queued` (`queue`, when it was queued)
    /// and while an agent holds it (`lease`, when the attempt is due).
    pub(crate) reaper: Option<(&'static str, String)>,
    /// `lease_agent`: the holding agent, projected into `by_lease` for `held_by`
    /// of an agent that has been deleted.
    pub(crate) lease_agent: Option<AgentId>,
}

/// A job with its attempts inside it (see `jobs.rs` for why). `Clone` because every
/// lifecycle write builds the new item from a copy of the one it read; no `Debug`,
/// which would print the secrets.
#[derive(Clone, Serialize, Deserialize)]
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
    pub(crate) status: JobStatus,
    created_by: UserId,
    #[serde(with = "ns")]
    created_at: OffsetDateTime,
    #[serde(with = "ns")]
    pub(crate) updated_at: OffsetDateTime,
    pub(crate) attempt_count: u32,
    /// Oldest first; `attempts[n - 1]` is attempt `n`.
    #[serde(default)]
    pub(crate) attempts: Vec<AttemptItem>,
    /// The job's secret variables, an attribute of their own so the write that
    /// makes the job final can `REMOVE` them. Absent when there are none (and once
    /// the job is final). Only `claim_job` hands them out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    secrets: BTreeMap<String, String>,
    /// The secrets' names, sorted, kept after the values are removed so that a
    /// retry can ask for each again ([`Job::secret_names`]). A List (DynamoDB has
    /// no empty set), absent when there are none; never a value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    secret_names: Vec<String>,
    /// `attempt_count` at the last manual retry ([`Job::retried_at_attempt`]);
    /// absent on items written before retries existed, which is 0.
    #[serde(default)]
    pub(crate) retried_at_attempt: u32,
    /// The job's queue while it is `queued`, absent otherwise: the partition key of
    /// the sparse `claimable` index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim_queue: Option<String>,
    /// [`claim_rank`] while the job is `queued`, absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim_rank: Option<String>,
    /// [`LEASE_PARTITION`] or [`QUEUE_PARTITION`], see [`IndexKeys::reaper`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_pk: Option<String>,
    /// A [`reaper_key`], see [`IndexKeys::reaper`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_expires: Option<String>,
    /// See [`IndexKeys::lease_agent`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_agent: Option<AgentId>,
}

/// One attempt, an element of the job item's `attempts` list. Lifecycle writes set
/// its fields one by one (`attempts[i].lease_expires_at = …`), never the whole map,
/// so they cannot undo a log append's `log_bytes` written meanwhile, and vice versa.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct AttemptItem {
    pub(crate) number: u32,
    pub(crate) agent_id: AgentId,
    pub(crate) status: JobStatus,
    #[serde(with = "ns")]
    pub(crate) claimed_at: OffsetDateTime,
    #[serde(default, with = "opt_ns", skip_serializing_if = "Option::is_none")]
    pub(crate) started_at: Option<OffsetDateTime>,
    #[serde(default, with = "opt_ns", skip_serializing_if = "Option::is_none")]
    pub(crate) finished_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit_code: Option<i32>,
    /// While held: when the lease runs out. Removed when the attempt ends.
    #[serde(default, with = "opt_ns", skip_serializing_if = "Option::is_none")]
    pub(crate) lease_expires_at: Option<OffsetDateTime>,
    /// The log index (`logs.rs`): bytes accepted so far, advanced only by a write
    /// conditional on the value read.
    #[serde(default)]
    pub(crate) log_bytes: u64,
    /// The running CRC-32 of those bytes.
    #[serde(default)]
    pub(crate) log_crc32: u32,
    pub(crate) job_token_hash: TokenHash,
}

impl AttemptItem {
    /// A new attempt at `now`, as a claim writes it.
    pub(crate) fn claimed(
        number: u32,
        agent_id: AgentId,
        job_token_hash: TokenHash,
        lease_expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            number,
            agent_id,
            status: JobStatus::Claimed,
            claimed_at: now,
            started_at: None,
            finished_at: None,
            exit_code: None,
            lease_expires_at: Some(lease_expires_at),
            log_bytes: 0,
            log_crc32: 0,
            job_token_hash,
        }
    }

    pub(crate) fn to_attempt(&self) -> Attempt {
        Attempt {
            number: self.number,
            agent_id: self.agent_id,
            status: self.status,
            claimed_at: self.claimed_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            exit_code: self.exit_code,
            lease_expires_at: self.lease_expires_at,
            log_bytes: self.log_bytes,
            job_token_hash: self.job_token_hash.clone(),
        }
    }
}

impl JobItem {
    /// A new job's item: its attempts are those of the record (none, when created
    /// through the store traits), its secrets the spec's, and its index keys those
    /// its status implies.
    pub(crate) fn new(job: &Job) -> StoreResult<Self> {
        let mut item = Self {
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
            secrets: job
                .spec
                .secrets
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            secret_names: job.secret_names.clone(),
            retried_at_attempt: job.retried_at_attempt,
            claim_queue: None,
            claim_rank: None,
            lease_pk: None,
            lease_expires: None,
            lease_agent: None,
        };
        item.set_index_keys(&item.index_keys()?);
        Ok(item)
    }

    pub(crate) const fn id(&self) -> JobId {
        self.job_id
    }

    pub(crate) fn queue(&self) -> &str {
        &self.queue
    }

    pub(crate) fn labels(&self) -> &[String] {
        &self.labels
    }

    /// What the job has used of its automatic retries.
    pub(crate) const fn retry_budget(&self) -> lifecycle::RetryBudget {
        lifecycle::RetryBudget {
            attempt_count: self.attempt_count,
            retried_at_attempt: self.retried_at_attempt,
            max_retries: self.max_retries,
        }
    }

    pub(crate) fn status(&self) -> JobStatus {
        self.status
    }

    /// When the job's status last changed.
    pub(crate) const fn updated_at(&self) -> OffsetDateTime {
        self.updated_at
    }

    /// The latest attempt, if it is attempt `number`.
    pub(crate) fn current_attempt(&self, number: u32) -> Option<&AttemptItem> {
        self.attempts
            .last()
            .filter(|a| a.number == number && number == self.attempt_count)
    }

    /// Attempt `number`, latest or not.
    pub(crate) fn attempt(&self, number: u32) -> Option<&AttemptItem> {
        let index = usize::try_from(number.checked_sub(1)?).ok()?;
        self.attempts.get(index).filter(|a| a.number == number)
    }

    /// The latest attempt's deadline ([`Attempt::deadline`]).
    pub(crate) fn deadline(&self) -> Option<OffsetDateTime> {
        let attempt = self.attempts.last()?;
        Some(attempt.to_attempt().deadline(self.timeout_seconds))
    }

    /// When the reaper ends the latest attempt if it is still held: its lease's end
    /// or its deadline ([`Attempt::deadline`]), whichever comes first.
    pub(crate) fn due_at(&self) -> Option<OffsetDateTime> {
        let attempt = self.attempts.last()?;
        let lease = attempt.lease_expires_at?;
        Some(lease.min(attempt.to_attempt().deadline(self.timeout_seconds)))
    }

    /// The index keys this item's status and latest attempt call for.
    pub(crate) fn index_keys(&self) -> StoreResult<IndexKeys> {
        if self.status == JobStatus::Queued {
            return Ok(IndexKeys {
                claim: Some((self.queue.clone(), claim_rank(self.priority, self.job_id))),
                reaper: Some((QUEUE_PARTITION, reaper_key(self.updated_at, self.job_id)?)),
                lease_agent: None,
            });
        }
        if lifecycle::is_held(self.status)
            && let Some(due) = self.due_at()
        {
            return Ok(IndexKeys {
                claim: None,
                reaper: Some((LEASE_PARTITION, reaper_key(due, self.job_id)?)),
                lease_agent: self.attempts.last().map(|a| a.agent_id),
            });
        }
        Ok(IndexKeys::default())
    }

    /// Writes `keys` into the item's attributes, as an update would.
    pub(crate) fn set_index_keys(&mut self, keys: &IndexKeys) {
        let (claim_queue, claim_rank) = keys.claim.clone().unzip();
        self.claim_queue = claim_queue;
        self.claim_rank = claim_rank;
        let (lease_pk, lease_expires) = keys
            .reaper
            .clone()
            .map(|(pk, key)| (pk.to_owned(), key))
            .unzip();
        self.lease_pk = lease_pk;
        self.lease_expires = lease_expires;
        self.lease_agent = keys.lease_agent;
    }

    /// Drops the secrets, as the write that makes the job final does.
    pub(crate) fn drop_secrets(&mut self) {
        self.secrets.clear();
    }

    /// Sets the secrets, as a user's retry does.
    pub(crate) fn set_secrets(&mut self, secrets: &JobSecrets) {
        self.secrets = secrets
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    }

    pub(crate) fn into_job(self) -> Job {
        self.into_detail().job
    }

    /// The job with its secrets: only for the agent that claimed it.
    pub(crate) fn into_claimed_job(mut self) -> Job {
        let secrets = std::mem::take(&mut self.secrets);
        let mut job = self.into_job();
        job.spec.secrets = secrets.into_iter().collect();
        job
    }

    /// The job and its attempts, secrets left out (every read but a claim).
    pub(crate) fn into_detail(self) -> JobDetail {
        let attempts = self.attempts.iter().map(AttemptItem::to_attempt).collect();
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
                secrets: JobSecrets::default(),
            },
            status: self.status,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            attempt_count: self.attempt_count,
            secret_names: self.secret_names,
            retried_at_attempt: self.retried_at_attempt,
        };
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
            credential_epoch: 3,
            disabled: false,
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
            credential_epoch: 2,
        };
        let item = to_item("sessions", &SessionItem::from(&session)).unwrap();
        assert_eq!(item["ttl"], AttributeValue::N("1750003601".into()));
        assert!(
            !item.contains_key("device_name"),
            "absent values are absent attributes"
        );
        let back: SessionItem = from_item("sessions", item.clone()).unwrap();
        assert_eq!(back.into_session(), Some(session));

        let mut legacy = item;
        legacy.remove("credential_epoch");
        let legacy: SessionItem = from_item("sessions", legacy).unwrap();
        assert!(
            legacy.into_session().is_none(),
            "a session from before credential epochs reads as none"
        );
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
            state: AgentState::Draining,
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
        assert_eq!(item["state"], AttributeValue::S("draining".into()));
        assert!(!item.contains_key(HELD), "no empty sets in DynamoDB");
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
                secrets: [("API_KEY".to_owned(), "hunter2".to_owned())]
                    .into_iter()
                    .collect(),
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
    fn a_queued_job_carries_its_claim_keys_and_its_queue_clock_and_other_statuses_do_not() {
        let queued = job(5);
        let item = to_item("jobs", &JobItem::new(&queued).unwrap()).unwrap();
        assert_eq!(item["claim_queue"], AttributeValue::S("gpu".into()));
        assert_eq!(
            item["claim_rank"],
            AttributeValue::S(claim_rank(5, queued.id))
        );
        assert_eq!(item["lease_pk"], AttributeValue::S(QUEUE_PARTITION.into()));
        assert_eq!(
            item["lease_expires"],
            AttributeValue::S(format!("1750000000123456789#{}", queued.id))
        );
        assert!(!item.contains_key("lease_agent"));
        let back: JobItem = from_item("jobs", item).unwrap();
        assert_eq!(back.into_job().spec.secrets, JobSecrets::default());

        let mut running = job(5);
        running.status = JobStatus::Running;
        let item = to_item("jobs", &JobItem::new(&running).unwrap()).unwrap();
        for key in ["claim_queue", "claim_rank", "lease_pk", "lease_expires"] {
            assert!(
                !item.contains_key(key),
                "{key}: sparse, absent and not NULL"
            );
        }
    }

    #[test]
    fn secrets_are_an_attribute_of_their_own_read_back_only_for_a_claim() {
        let job = job(0);
        let item = to_item("jobs", &JobItem::new(&job).unwrap()).unwrap();
        let AttributeValue::M(secrets) = &item["secrets"] else {
            panic!("secrets are a map attribute")
        };
        assert_eq!(secrets["API_KEY"], AttributeValue::S("hunter2".into()));
        let decoded: JobItem = from_item("jobs", item.clone()).unwrap();
        assert!(decoded.into_detail().job.spec.secrets.is_empty());
        let decoded: JobItem = from_item("jobs", item).unwrap();
        assert_eq!(decoded.into_claimed_job(), job);

        let mut none = job;
        none.spec.secrets = JobSecrets::default();
        let item = to_item("jobs", &JobItem::new(&none).unwrap()).unwrap();
        assert!(!item.contains_key("secrets"), "no empty map");
    }

    #[test]
    fn a_held_job_is_due_at_the_earlier_of_its_lease_and_its_deadline() {
        let mut item = JobItem::new(&job(0)).unwrap();
        item.status = JobStatus::Running;
        item.attempt_count = 1;
        let agent = AgentId::new();
        let short = t0() + time::Duration::seconds(30);
        item.attempts.push(AttemptItem::claimed(
            1,
            agent,
            TokenHash::of("j"),
            short,
            t0(),
        ));
        let keys = item.index_keys().unwrap();
        assert_eq!(keys.claim, None);
        assert_eq!(
            keys.reaper,
            Some((LEASE_PARTITION, reaper_key(short, item.id()).unwrap()))
        );
        assert_eq!(keys.lease_agent, Some(agent));
        // A lease past the deadline (claim + 60 s timeout + 60 s grace) is cut to it.
        item.attempts[0].lease_expires_at = Some(t0() + time::Duration::hours(1));
        let deadline = t0() + time::Duration::seconds(120);
        assert_eq!(item.due_at(), Some(deadline));
    }

    #[test]
    fn reaper_keys_are_fixed_width_so_they_sort_by_time() {
        let id = JobId::new();
        let early = reaper_key(
            OffsetDateTime::UNIX_EPOCH + time::Duration::nanoseconds(5),
            id,
        );
        let late = reaper_key(t0(), id).unwrap();
        assert_eq!(
            early.as_deref().unwrap(),
            format!("0000000000000000005#{id}")
        );
        assert!(early.unwrap() < late);
        assert!(late < reaper_bound(t0() + time::Duration::nanoseconds(1)).unwrap());
        assert!(reaper_bound(OffsetDateTime::UNIX_EPOCH - time::Duration::seconds(1)).is_err());
    }

    #[test]
    fn a_held_member_names_the_job_and_the_attempt() {
        let id = JobId::new();
        assert_eq!(held_member(id, 3), format!("{id}#3"));
        assert_eq!(parse_held_member(&held_member(id, 3)), Some((id, 3)));
        assert_eq!(parse_held_member("nope"), None);
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
