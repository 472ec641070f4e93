//! The audit log: one append-only record per mutation.
//!
//! `DESIGN.md` asks for "an append-only audit log of every mutation", read newest
//! first. An [`AuditEvent`] says who ([`Actor`]) did what ([`AuditAction`]) to which
//! object (`subject`, its id), when, and under which request; the stores append it
//! ([`crate::store::AuditStore::append_audit`]) and never change or delete it.
//!
//! ## Writing one
//!
//! The service builds the event before its mutation, from what it already has in
//! hand, and passes it to the store method that makes the change, which writes
//! both in one transaction (see `crate::store`):
//!
//! ```
//! # use runway_core::audit::{Actor, AuditAction, AuditEvent};
//! # use runway_core::id::{JobId, UserId};
//! # let (user_id, job_id, now) = (UserId::new(), JobId::new(), time::OffsetDateTime::now_utc());
//! let event = AuditEvent::new(
//!     Actor::User { id: user_id, username: "ada".into() },
//!     AuditAction::JobCanceled,
//!     Some(job_id.to_string()),
//!     now,
//! )
//! .with_request_id("req-42")
//! .with_detail("was running")?;
//! # Ok::<(), runway_core::job::FieldError>(())
//! ```
//!
//! ## Limits
//!
//! Every field is bounded ([`limits`]) so that every backend can store and list
//! events identically; [`AuditEvent::validate`] checks them and the stores call it
//! before writing. `detail` is a short, human note written by server code (never a
//! secret, never a request body), so an over-long one is a bug, refused by
//! [`AuditEvent::with_detail`]. The request id usually echoes a client header, so
//! [`AuditEvent::with_request_id`] cuts it to its limit instead: metadata must not
//! make the audit write of a mutation that already happened fail.
//!
//! ## Reading it back
//!
//! Listings are newest first and can be narrowed by an [`AuditFilter`]: the
//! actor, the action, the subject and a time range. Each store narrows with what
//! it has indexed and then checks [`AuditFilter::matches`] on every event, so both
//! stores return the same events; a page of a filtered listing examines at most
//! [`crate::page::EXAMINE_MAX`] events, so it may hold fewer items than asked for
//! (even none) and still carry a cursor to go on.
//!
//! ## Storage form
//!
//! An actor is stored flat, as [`Actor::kind`], [`Actor::id`] and [`Actor::name`],
//! and read back with [`Actor::from_parts`]; an action as [`AuditAction::as_str`]
//! and [`AuditAction::parse`]. Both stores use these, so they agree by construction.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ulid::Ulid;
use utoipa::ToSchema;

use crate::agent::Agent;
use crate::id::{AgentId, AuditId, JobId, RegistrationTokenId, SessionId, UserId};
use crate::job::FieldError;
use crate::session::Session;
use crate::user::User;

/// Bounds on an audit event's fields.
pub mod limits {
    /// Longest `detail`, in characters.
    pub const DETAIL_MAX: usize = 500;
    /// Longest `subject`, in characters (ids are 26).
    pub const SUBJECT_MAX: usize = 128;
    /// Longest `request_id`, in characters; longer ones are cut.
    pub const REQUEST_ID_MAX: usize = 128;
    /// Longest actor name (a username or an agent name), in characters.
    pub const ACTOR_NAME_MAX: usize = 200;
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A signed-in user (a session or, later, an API token).
    User {
        /// The user's id.
        id: UserId,
        /// Their name at the time, kept so the log reads well after a rename.
        username: String,
    },
    /// A build agent, through the agent protocol.
    Agent {
        /// The agent's id.
        id: AgentId,
        /// Its name at the time.
        name: String,
    },
    /// Runway itself: the reaper, first-start bootstrap, `runway admin`.
    System,
}

/// A stored actor that does not decode: corrupt data or a bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored actor (kind `{kind}`) is not a valid actor")]
pub struct InvalidActor {
    /// The stored kind.
    pub kind: String,
}

impl Actor {
    /// The stored and wire form of the kind: `user`, `agent` or `system`.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::User { .. } => "user",
            Self::Agent { .. } => "agent",
            Self::System => "system",
        }
    }

    /// The user's or agent's id as text; `None` for the system.
    #[must_use]
    pub fn id(&self) -> Option<String> {
        match self {
            Self::User { id, .. } => Some(id.to_string()),
            Self::Agent { id, .. } => Some(id.to_string()),
            Self::System => None,
        }
    }

    /// The username or agent name; `None` for the system.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::User { username, .. } => Some(username),
            Self::Agent { name, .. } => Some(name),
            Self::System => None,
        }
    }

    /// Rebuilds an actor from its stored [`kind`](Self::kind), [`id`](Self::id)
    /// and [`name`](Self::name).
    ///
    /// # Errors
    /// [`InvalidActor`] for an unknown kind, a malformed id, or a missing or
    /// superfluous id or name.
    pub fn from_parts(
        kind: &str,
        id: Option<&str>,
        name: Option<&str>,
    ) -> Result<Self, InvalidActor> {
        let invalid = || InvalidActor { kind: kind.into() };
        match (kind, id, name) {
            ("user", Some(id), Some(name)) => Ok(Self::User {
                id: id.parse().map_err(|_| invalid())?,
                username: name.to_owned(),
            }),
            ("agent", Some(id), Some(name)) => Ok(Self::Agent {
                id: id.parse().map_err(|_| invalid())?,
                name: name.to_owned(),
            }),
            ("system", None, None) => Ok(Self::System),
            _ => Err(invalid()),
        }
    }
}

impl From<&User> for Actor {
    fn from(user: &User) -> Self {
        Self::User {
            id: user.id,
            username: user.username.clone(),
        }
    }
}

/// The user a session belongs to (the usual actor of a request).
impl From<&Session> for Actor {
    fn from(session: &Session) -> Self {
        Self::User {
            id: session.user_id,
            username: session.username.clone(),
        }
    }
}

/// The user behind a session or an API token.
impl From<&crate::user::Principal> for Actor {
    fn from(principal: &crate::user::Principal) -> Self {
        Self::User {
            id: principal.user_id,
            username: principal.username.clone(),
        }
    }
}

impl From<&Agent> for Actor {
    fn from(agent: &Agent) -> Self {
        Self::Agent {
            id: agent.id,
            name: agent.name.clone(),
        }
    }
}

/// What was done: `<object>.<verb in the past tense>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AuditAction {
    /// A user signed in (subject: the session id).
    #[serde(rename = "session.created")]
    SessionCreated,
    /// A session was signed out or revoked (subject: the session id).
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    /// A user signed out everywhere (subject: the user id; detail: how many).
    #[serde(rename = "sessions.revoked_all")]
    SessionsRevokedAll,
    /// A user was created (subject: the new user's id).
    #[serde(rename = "user.created")]
    UserCreated,
    /// A user's password was reset or changed (subject: the user id).
    #[serde(rename = "user.password_reset")]
    UserPasswordReset,
    /// A registration token was created (subject: the token id).
    #[serde(rename = "registration_token.created")]
    RegistrationTokenCreated,
    /// A registration token was deleted (subject: the token id).
    #[serde(rename = "registration_token.deleted")]
    RegistrationTokenDeleted,
    /// An agent registered (subject: the agent id).
    #[serde(rename = "agent.registered")]
    AgentRegistered,
    /// A job was submitted (subject: the job id).
    #[serde(rename = "job.created")]
    JobCreated,
    /// A cancel was asked for (subject: the job id).
    #[serde(rename = "job.canceled")]
    JobCanceled,
    /// An admin paused, resumed or drained an agent (subject: the agent id; detail: the new state).
    #[serde(rename = "agent.state_changed")]
    AgentStateChanged,
    /// An agent replaced its own token (subject: the agent id).
    #[serde(rename = "agent.token_rotated")]
    AgentTokenRotated,
    /// An admin deleted an agent; its token stopped working (subject: the agent id).
    #[serde(rename = "agent.deleted")]
    AgentDeleted,
    /// An agent said it is leaving (subject: the agent id).
    #[serde(rename = "agent.disconnected")]
    AgentDisconnected,
    /// An agent claimed a job (subject: the job id; detail: the attempt).
    #[serde(rename = "job.claimed")]
    JobClaimed,
    /// An agent started a job's script (subject: the job id).
    #[serde(rename = "job.started")]
    JobStarted,
    /// An agent reported a job's result (subject: the job id; detail: the status).
    #[serde(rename = "job.finished")]
    JobFinished,
    /// The reaper ended an attempt: lost (and perhaps re-queued), timed out, expired or canceled (subject: the job id; detail: what).
    #[serde(rename = "job.reaped")]
    JobReaped,
    /// A user asked for a finished job to run again (subject: the job id).
    #[serde(rename = "job.retried")]
    JobRetried,
    /// A password sign-in was refused (actor: the system; subject: the user's id
    /// when the name is known, none otherwise; detail: why, and from where). An
    /// unknown name is never recorded: people type passwords into name fields.
    #[serde(rename = "session.sign_in_failed")]
    SignInFailed,
    /// A user made a personal API token (subject: the token id; detail: its name).
    #[serde(rename = "api_token.created")]
    ApiTokenCreated,
    /// A user revoked one of their API tokens (subject: the token id).
    #[serde(rename = "api_token.revoked")]
    ApiTokenRevoked,
    /// An admin changed a user's role (subject: the user id; detail: from and to).
    #[serde(rename = "user.role_changed")]
    UserRoleChanged,
    /// An admin disabled a user; their sessions and API tokens went with it
    /// (subject: the user id).
    #[serde(rename = "user.disabled")]
    UserDisabled,
    /// An admin enabled a disabled user again (subject: the user id).
    #[serde(rename = "user.enabled")]
    UserEnabled,
    /// An admin deleted a user and their credentials (subject: the user id).
    #[serde(rename = "user.deleted")]
    UserDeleted,
    /// An abuse limit refused a request: a sign-in, an OIDC callback, an agent
    /// registration or a token creation (actor: the system; no subject; detail:
    /// which limit, the backoff and the client's address). Recorded once per
    /// lockout, not per refused request, so a flood cannot flood the log.
    #[serde(rename = "rate_limit.refused")]
    RateLimitRefused,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [Self; 27] = [
        Self::SessionCreated,
        Self::SessionRevoked,
        Self::SessionsRevokedAll,
        Self::UserCreated,
        Self::UserPasswordReset,
        Self::RegistrationTokenCreated,
        Self::RegistrationTokenDeleted,
        Self::AgentRegistered,
        Self::JobCreated,
        Self::JobCanceled,
        Self::AgentStateChanged,
        Self::AgentTokenRotated,
        Self::AgentDeleted,
        Self::AgentDisconnected,
        Self::JobClaimed,
        Self::JobStarted,
        Self::JobFinished,
        Self::JobReaped,
        Self::JobRetried,
        Self::SignInFailed,
        Self::ApiTokenCreated,
        Self::ApiTokenRevoked,
        Self::UserRoleChanged,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
        Self::RateLimitRefused,
    ];

    /// The wire and storage form, e.g. `job.canceled`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SessionCreated => "session.created",
            Self::SessionRevoked => "session.revoked",
            Self::SessionsRevokedAll => "sessions.revoked_all",
            Self::UserCreated => "user.created",
            Self::UserPasswordReset => "user.password_reset",
            Self::RegistrationTokenCreated => "registration_token.created",
            Self::RegistrationTokenDeleted => "registration_token.deleted",
            Self::AgentRegistered => "agent.registered",
            Self::JobCreated => "job.created",
            Self::JobCanceled => "job.canceled",
            Self::AgentStateChanged => "agent.state_changed",
            Self::AgentTokenRotated => "agent.token_rotated",
            Self::AgentDeleted => "agent.deleted",
            Self::AgentDisconnected => "agent.disconnected",
            Self::JobClaimed => "job.claimed",
            Self::JobStarted => "job.started",
            Self::JobFinished => "job.finished",
            Self::JobReaped => "job.reaped",
            Self::JobRetried => "job.retried",
            Self::SignInFailed => "session.sign_in_failed",
            Self::ApiTokenCreated => "api_token.created",
            Self::ApiTokenRevoked => "api_token.revoked",
            Self::UserRoleChanged => "user.role_changed",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserDeleted => "user.deleted",
            Self::RateLimitRefused => "rate_limit.refused",
        }
    }

    /// Parses the wire and storage form.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == s)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditEvent {
    /// Stable id; sorts by the time the event was made.
    pub id: AuditId,
    /// When the change happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who made it.
    pub actor: Actor,
    /// What it was.
    pub action: AuditAction,
    /// The id of the object changed, if there is one.
    pub subject: Option<String>,
    /// The request that made it, to find its log lines.
    pub request_id: Option<String>,
    /// A short note (never a secret), e.g. how many sessions were revoked.
    pub detail: Option<String>,
}

fn check(field: &str, value: Option<&str>, max: usize) -> Result<(), FieldError> {
    let Some(value) = value else {
        return Ok(());
    };
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl AuditEvent {
    /// A new event with a fresh id, no request id and no detail.
    #[must_use]
    pub fn new(
        actor: Actor,
        action: AuditAction,
        subject: Option<String>,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: AuditId::new(),
            at: now,
            actor,
            action,
            subject,
            request_id: None,
            detail: None,
        }
    }

    /// Sets the request id, cut to [`limits::REQUEST_ID_MAX`] characters with
    /// control characters dropped: it often echoes a client's header, and must not
    /// make the audit write fail.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        let request_id: String = request_id
            .into()
            .chars()
            .filter(|c| !c.is_control())
            .take(limits::REQUEST_ID_MAX)
            .collect();
        self.request_id = (!request_id.is_empty()).then_some(request_id);
        self
    }

    /// Sets the detail.
    ///
    /// # Errors
    /// A [`FieldError`] for `detail` if it is longer than [`limits::DETAIL_MAX`]
    /// characters or contains control characters.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Result<Self, FieldError> {
        let detail = detail.into();
        check("detail", Some(&detail), limits::DETAIL_MAX)?;
        self.detail = Some(detail);
        Ok(self)
    }

    /// A claim's event from its `template`: the claimed job as the subject,
    /// `attempt N` as the detail. The stores call this, because only the claim's
    /// write knows which job it got ([`crate::store::DispatchStore::claim_job`]).
    #[must_use]
    pub fn of_claim(&self, job: JobId, attempt: u32) -> Self {
        let mut event = self.clone();
        event.subject = Some(job.to_string());
        event.detail = Some(format!("attempt {attempt}"));
        event
    }

    /// A registration's event from its `template`: the registration token that
    /// admitted the agent as the detail, which only the store's write knows
    /// ([`crate::store::AgentStore::register_agent`]).
    #[must_use]
    pub fn of_registration(&self, token: RegistrationTokenId) -> Self {
        let mut event = self.clone();
        event.detail = Some(format!("with registration token {token}"));
        event
    }

    /// The event of a session that a sign-in evicted to stay within
    /// [`MAX_SESSIONS_PER_USER`](crate::session::MAX_SESSIONS_PER_USER), from the
    /// sign-in's `template` (its `session.created` event): a fresh id,
    /// `session.revoked` of `session`, by the same actor under the same request.
    /// The stores call this, because only the write knows which sessions it evicts
    /// ([`crate::store::SessionStore::create_session`]).
    #[must_use]
    pub fn of_eviction(&self, session: SessionId) -> Self {
        let mut event = self.clone();
        event.id = AuditId::new();
        event.action = AuditAction::SessionRevoked;
        event.subject = Some(session.to_string());
        event.detail = Some(format!(
            "evicted: a user holds at most {} sessions",
            crate::session::MAX_SESSIONS_PER_USER
        ));
        event
    }

    /// A sign-out everywhere's event from its `template`: how many sessions went
    /// as the detail (`revoked 3`, and `, kept the current one` if one was kept),
    /// which only the write knows
    /// ([`crate::store::SessionStore::revoke_user_sessions`]).
    #[must_use]
    pub fn of_revoked_all(&self, revoked: u64, kept_one: bool) -> Self {
        let mut event = self.clone();
        let kept = if kept_one {
            ", kept the current one"
        } else {
            ""
        };
        event.detail = Some(format!("revoked {revoked}{kept}"));
        event
    }

    /// Checks every field against [`limits`]; the stores call this before writing.
    ///
    /// # Errors
    /// The first field out of bounds.
    pub fn validate(&self) -> Result<(), FieldError> {
        check("subject", self.subject.as_deref(), limits::SUBJECT_MAX)?;
        check(
            "request_id",
            self.request_id.as_deref(),
            limits::REQUEST_ID_MAX,
        )?;
        check("detail", self.detail.as_deref(), limits::DETAIL_MAX)?;
        check("actor.name", self.actor.name(), limits::ACTOR_NAME_MAX)
    }
}

/// Whose events to list: one user or agent by id, or Runway itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorFilter {
    /// The user or agent with this id (both are ULIDs, so one id names one actor).
    Id(Ulid),
    /// [`Actor::System`]: the reaper, bootstrap, `runway admin`.
    System,
}

impl ActorFilter {
    /// Parses the query form: an id, or `system`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        if s == "system" {
            return Some(Self::System);
        }
        Ulid::from_string(s).ok().map(Self::Id)
    }

    /// Whether `actor` is this one.
    #[must_use]
    pub fn matches(self, actor: &Actor) -> bool {
        match (self, actor) {
            (Self::System, Actor::System) => true,
            (Self::Id(id), Actor::User { id: user, .. }) => user.ulid() == id,
            (Self::Id(id), Actor::Agent { id: agent, .. }) => agent.ulid() == id,
            _ => false,
        }
    }
}

/// Which events a listing returns: every field that is set must match.
///
/// The stores narrow with an index where they have one (the subject, the actor
/// and the time range on both) and check the whole filter again on each event
/// with [`AuditFilter::matches`], so both return exactly the same events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Made by this actor.
    pub actor: Option<ActorFilter>,
    /// Of this action.
    pub action: Option<AuditAction>,
    /// About this object (its id, exactly).
    pub subject: Option<String>,
    /// At or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Strictly before this instant.
    pub until: Option<OffsetDateTime>,
}

impl AuditFilter {
    /// Whether the filter narrows anything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `event` passes every condition.
    #[must_use]
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.actor.is_none_or(|actor| actor.matches(&event.actor))
            && self.action.is_none_or(|action| action == event.action)
            && self
                .subject
                .as_deref()
                .is_none_or(|subject| event.subject.as_deref() == Some(subject))
            && self.since.is_none_or(|since| event.at >= since)
            && self.until.is_none_or(|until| event.at < until)
    }

    /// Bounds on event ids that every matching event lies within, from the time
    /// range: `(lowest, below)`, inclusive and exclusive. An event's id is made
    /// from the clock when the event is built, a moment after `at` is read, so
    /// the bounds are widened by [`ID_CLOCK_SLACK`] and [`AuditFilter::matches`]
    /// decides exactly.
    #[must_use]
    pub fn id_range(&self) -> (Option<Ulid>, Option<Ulid>) {
        let at_ms = |at: OffsetDateTime| {
            let ms = at.unix_timestamp_nanos() / 1_000_000;
            u64::try_from(ms).unwrap_or(0)
        };
        let slack = u64::try_from(ID_CLOCK_SLACK.whole_milliseconds()).unwrap_or(0);
        let lowest = self
            .since
            .map(|since| Ulid::from_parts(at_ms(since).saturating_sub(slack), 0));
        let below = self
            .until
            .map(|until| Ulid::from_parts(at_ms(until).saturating_add(slack), 0));
        (lowest, below)
    }
}

/// How far an event's id time may lie from its `at`: ids are made from the clock
/// when the event is built, just after the change read `now`.
pub const ID_CLOCK_SLACK: time::Duration = time::Duration::minutes(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        AuditEvent::new(
            Actor::System,
            AuditAction::JobCreated,
            Some("01JDQ5V8ZK4M3X9T2B7N6C1F0R".into()),
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn actions_round_trip_through_their_dotted_wire_form() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
            assert_eq!(
                serde_json::to_string(&action).unwrap(),
                format!("\"{action}\"")
            );
            let (object, verb) = action.as_str().split_once('.').expect("dotted");
            assert!(!object.is_empty() && !verb.is_empty(), "{action}");
        }
        assert_eq!(AuditAction::parse("job.deleted"), None);
        assert_eq!(AuditAction::JobCanceled.as_str(), "job.canceled");
    }

    #[test]
    fn every_actor_rebuilds_from_its_stored_parts() {
        let actors = [
            Actor::User {
                id: UserId::new(),
                username: "ada".into(),
            },
            Actor::Agent {
                id: AgentId::new(),
                name: "builder-1".into(),
            },
            Actor::System,
        ];
        for actor in actors {
            let id = actor.id();
            let back = Actor::from_parts(actor.kind(), id.as_deref(), actor.name());
            assert_eq!(back, Ok(actor));
        }
    }

    #[test]
    fn stored_actor_parts_that_do_not_fit_together_are_refused() {
        let id = UserId::new().to_string();
        for (kind, id, name) in [
            ("user", Some(id.as_str()), None),
            ("user", None, Some("ada")),
            ("user", Some("not-an-id"), Some("ada")),
            ("system", Some(id.as_str()), None),
            ("robot", None, None),
        ] {
            assert!(
                Actor::from_parts(kind, id, name).is_err(),
                "{kind} {id:?} {name:?}"
            );
        }
    }

    #[test]
    fn an_actor_serializes_with_its_kind_as_a_tag() {
        let id = UserId::new();
        let json = serde_json::to_value(Actor::User {
            id,
            username: "ada".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "user", "id": id.to_string(), "username": "ada"})
        );
        assert_eq!(
            serde_json::to_value(Actor::System).unwrap(),
            serde_json::json!({"kind": "system"})
        );
    }

    #[test]
    fn an_event_serializes_its_time_as_rfc3339_and_its_action_dotted() {
        let json = serde_json::to_value(event()).unwrap();
        assert_eq!(json["at"], "1970-01-01T00:00:00Z");
        assert_eq!(json["action"], "job.created");
        assert_eq!(json["actor"]["kind"], "system");
    }

    #[test]
    fn a_detail_past_its_limit_or_with_control_characters_is_refused() {
        let long = "é".repeat(limits::DETAIL_MAX + 1);
        assert_eq!(event().with_detail(long).unwrap_err().field, "detail");
        assert_eq!(
            event().with_detail("two\nlines").unwrap_err().field,
            "detail"
        );
        let at_limit = "é".repeat(limits::DETAIL_MAX);
        let ok = event().with_detail(at_limit.clone()).unwrap();
        assert_eq!(ok.detail, Some(at_limit));
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn a_request_id_is_cut_to_its_limit_rather_than_refused() {
        let e = event().with_request_id(format!("a\u{7}{}", "x".repeat(500)));
        let id = e.request_id.as_deref().unwrap();
        assert_eq!(id.chars().count(), limits::REQUEST_ID_MAX);
        assert!(id.starts_with("ax"));
        assert!(e.validate().is_ok());
        assert_eq!(event().with_request_id("\n").request_id, None);
    }

    #[test]
    fn validate_names_the_first_field_out_of_bounds() {
        let mut e = event();
        e.subject = Some("s".repeat(limits::SUBJECT_MAX + 1));
        assert_eq!(e.validate().unwrap_err().field, "subject");
        let mut e = event();
        e.detail = Some("d".repeat(limits::DETAIL_MAX + 1));
        assert_eq!(e.validate().unwrap_err().field, "detail");
        let mut e = event();
        e.actor = Actor::Agent {
            id: AgentId::new(),
            name: "n".repeat(limits::ACTOR_NAME_MAX + 1),
        };
        assert_eq!(e.validate().unwrap_err().field, "actor.name");
    }
}
