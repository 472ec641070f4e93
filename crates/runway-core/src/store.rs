//! The store traits: what Runway needs from a database, shaped like the domain.
//!
//! Each trait is one capability ("validate a session", "claim a job"), never a
//! table or a query, so that SQLite and DynamoDB can both honour it with their own
//! idioms: a transaction in one, a condition expression in the other. Handlers take
//! only the trait they use. [`Store`] bundles them for wiring.
//!
//! Rules every implementation follows, and the conformance suite
//! (`runway-conformance`) checks:
//!
//! * no backend type (rusqlite, AWS SDK) appears in a signature: failures become
//!   [`StoreError`];
//! * every invariant — unique usernames, legal job transitions, a registration token
//!   being usable — is enforced by a conditional write or a transaction, never by a
//!   read followed by an unconditional write;
//! * expiry is decided from the `now` the caller passes in, never by a TTL sweep;
//! * listings are newest first (ids are ULIDs) and paginate with an opaque cursor.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::agent::{Agent, AgentMetrics, AgentStatus, RegistrationToken};
use crate::audit::AuditEvent;
use crate::id::{AgentId, JobId, RegistrationTokenId, SessionId, UserId};
use crate::job::{Job, JobDetail};
use crate::lifecycle::{IllegalTransition, JobStatus};
use crate::page::{Page, PageRequest};
use crate::secret::TokenHash;
use crate::session::Session;
use crate::user::User;

/// Boxed error source, so backends keep their cause chain without naming its type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist (or is not visible to the caller).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken, e.g. a username already taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The job lifecycle does not allow the change.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// A cursor the backend did not produce.
    #[error("invalid cursor")]
    InvalidCursor,
    /// The database is down, busy or throttling; the caller may retry later.
    #[error("store unavailable")]
    Unavailable {
        /// When to try again, if the backend knows.
        retry_after: Option<Duration>,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },
    /// Anything else: a bug or corrupt data. Logged with its cause, shown as a 500.
    #[error("store failure")]
    Internal(#[source] BoxError),
}

impl StoreError {
    /// Wraps an unexpected backend failure.
    pub fn internal(err: impl Into<BoxError>) -> Self {
        Self::Internal(err.into())
    }

    /// Wraps a transient backend failure.
    pub fn unavailable(err: impl Into<BoxError>, retry_after: Option<Duration>) -> Self {
        Self::Unavailable {
            retry_after,
            source: err.into(),
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Users and their credentials.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user. [`StoreError::Conflict`] if the username is taken.
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    /// Looks a user up by login name, including the password hash.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// Looks a user up by id.
    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>>;
    /// Replaces a user's password hash and deletes every one of their sessions, as
    /// one atomic write: a crash or a store error can leave the old password (with
    /// some sessions already gone, where a backend must split a very large delete),
    /// or the new one with none, never the new password beside sessions opened
    /// with the old one. [`StoreError::NotFound`] if there is no
    /// such user, and then no session is deleted.
    ///
    /// Sessions carry a copy of the user's name and role and must not outlive a
    /// credential change, which is why the two cannot be separate calls.
    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> StoreResult<()>;
    /// Whether any user exists (first-start bootstrap).
    async fn has_users(&self) -> StoreResult<bool>;
}

/// Signed-in devices.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    /// One strongly consistent read by id. Returns the record even if expired: the
    /// caller applies [`Session::is_active`].
    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>>;
    /// Sets `last_seen_at` to `now`, unless it is already at or after `now`:
    /// concurrent requests touch in any order, and the record must keep the latest
    /// time, never move back. A session that is gone (or already touched later) is
    /// not an error.
    async fn touch_session(&self, id: SessionId, now: OffsetDateTime) -> StoreResult<()>;
    /// The user's sessions that are active at `now`, newest first.
    async fn list_user_sessions(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>>;
    /// Deletes one of `user`'s sessions. [`StoreError::NotFound`] if it is not theirs.
    async fn revoke_session(&self, user: UserId, id: SessionId) -> StoreResult<()>;
    /// Deletes all of `user`'s sessions except `keep`; returns how many were deleted.
    async fn revoke_user_sessions(&self, user: UserId, keep: Option<SessionId>)
    -> StoreResult<u64>;
}

/// Registration tokens, created by admins.
#[async_trait]
pub trait RegistrationTokenStore: Send + Sync {
    /// Stores a new token.
    async fn create_registration_token(&self, token: &RegistrationToken) -> StoreResult<()>;
    /// Every token, newest first (expired ones included, so admins can clean up).
    async fn list_registration_tokens(&self) -> StoreResult<Vec<RegistrationToken>>;
    /// Deletes a token. [`StoreError::NotFound`] if there is none.
    async fn delete_registration_token(&self, id: RegistrationTokenId) -> StoreResult<()>;
}

/// Which agents to list.
#[derive(Debug, Clone, Default)]
pub struct AgentQuery {
    /// Only agents in this region.
    pub region: Option<String>,
    /// Only agents with this health at `now`.
    pub status: Option<AgentStatus>,
    /// The page.
    pub page: PageRequest,
}

/// Build agents.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates `agent` if the registration token whose hash is `registration` exists
    /// and is usable at `now`, atomically. [`StoreError::NotFound`] otherwise. The
    /// agent's `registration_token_id` is filled in from the token.
    async fn register_agent(
        &self,
        registration: &TokenHash,
        agent: Agent,
        now: OffsetDateTime,
    ) -> StoreResult<Agent>;
    /// Resolves an agent by the hash of its token.
    async fn agent_by_token_hash(&self, hash: &TokenHash) -> StoreResult<Option<Agent>>;
    /// Looks an agent up by id.
    async fn get_agent(&self, id: AgentId) -> StoreResult<Option<Agent>>;
    /// Records a heartbeat and its metrics; returns the updated agent.
    /// [`StoreError::NotFound`] if the agent is gone.
    async fn record_heartbeat(
        &self,
        id: AgentId,
        metrics: &AgentMetrics,
        now: OffsetDateTime,
    ) -> StoreResult<Agent>;
    /// Agents, newest first, filtered; health is judged at `now`.
    async fn list_agents(
        &self,
        query: &AgentQuery,
        now: OffsetDateTime,
    ) -> StoreResult<Page<Agent>>;
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// The page.
    pub page: PageRequest,
}

/// Jobs and their attempts.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new job (status `queued`, no attempts).
    async fn create_job(&self, job: &Job) -> StoreResult<()>;
    /// A job and its attempts.
    async fn get_job(&self, id: JobId) -> StoreResult<Option<JobDetail>>;
    /// Jobs, newest first.
    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<Page<Job>>;
    /// Moves a job to `to` if the lifecycle allows it from the status it has now,
    /// with a write conditional on that status (retrying if another writer won).
    /// [`StoreError::NotFound`] or [`StoreError::IllegalTransition`] otherwise.
    /// The latest attempt, if any, takes the same status.
    async fn transition_job(
        &self,
        id: JobId,
        to: JobStatus,
        now: OffsetDateTime,
    ) -> StoreResult<Job>;
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// The page.
    pub page: PageRequest,
}

/// The append-only audit log. There is deliberately no method that changes or
/// deletes an event.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `event` after checking it with [`AuditEvent::validate`] (an event
    /// out of bounds is a bug: `Internal`). [`StoreError::Conflict`] if an event
    /// with its id exists; the stored one is left as it was.
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Events, newest first (by id, so by the time they were made).
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent>>;
}

/// Health of the store itself.
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// A short name for `/api/v1/info`: `sqlite` or `dynamodb`.
    fn backend(&self) -> &'static str;
    /// A cheap round trip to the database, for `/ready`.
    async fn ping(&self) -> StoreResult<()>;
}

/// Every capability, for wiring a server. Handlers should take the narrow traits.
pub trait Store:
    UserStore + SessionStore + RegistrationTokenStore + AgentStore + JobStore + AuditStore + StoreHealth
{
}

impl<T> Store for T where
    T: UserStore
        + SessionStore
        + RegistrationTokenStore
        + AgentStore
        + JobStore
        + AuditStore
        + StoreHealth
{
}
