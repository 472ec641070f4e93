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
//! * an audited mutation takes its event(s) as its last parameter, `audit:
//!   &AuditEvent` (or `&[AuditEvent]`), and writes them in the same transaction
//!   as the change: both commit or neither does. An event whose id is taken is
//!   [`Conflict::Exists`] with [`RecordKind::AuditEvent`], and then the change is
//!   not made either. [`AuditStore::append_audit`] is only for events with no
//!   change of their own (a refused sign-in);
//! * listings are newest first (ids are ULIDs) and paginate with an opaque cursor.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::agent::{Agent, AgentMetrics, AgentState, AgentStatus, RegistrationToken};
use crate::api_token::ApiToken;
use crate::audit::{AuditEvent, AuditFilter};
use crate::id::{AgentId, ApiTokenId, JobId, RegistrationTokenId, SessionId, UserId};
use crate::job::{Attempt, Job, JobDetail, JobSecrets};
use crate::lifecycle::{AttemptEnd, IllegalTransition, JobStatus};
use crate::limit::{Attempts, LimitKey};
use crate::log::{LogAppend, LogChunk, LogSlice, LogSummary};
use crate::oidc::{OidcIdentity, PendingLogin};
use crate::page::{Page, PageRequest};
use crate::secret::TokenHash;
use crate::session::Session;
use crate::user::{User, UserChange};

/// Boxed error source, so backends keep their cause chain without naming its type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist (or is not visible to the caller).
    #[error("not found")]
    NotFound,
    /// A rule about the current state of a record was broken: what, in
    /// [`Conflict`]. The client's wording is the API's, not the store's.
    #[error("conflict: {0}")]
    Conflict(#[from] Conflict),
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

/// Which kind of record a [`Conflict::Exists`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A user.
    User,
    /// A session.
    Session,
    /// A registration token.
    RegistrationToken,
    /// An agent.
    Agent,
    /// A job.
    Job,
    /// An audit event.
    AuditEvent,
    /// A pending OpenID Connect login.
    OidcLogin,
    /// A link from an issuer's subject to a user.
    OidcIdentity,
    /// A personal API token.
    ApiToken,
}

impl RecordKind {
    /// A short name, for messages: `registration token`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Session => "session",
            Self::RegistrationToken => "registration token",
            Self::Agent => "agent",
            Self::Job => "job",
            Self::AuditEvent => "audit event",
            Self::OidcLogin => "pending sign-in",
            Self::OidcIdentity => "identity at this issuer",
            Self::ApiToken => "API token",
        }
    }
}

/// What a [`StoreError::Conflict`] conflicted with. `Display` is for logs; the API
/// writes the client's message from the variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The username is taken.
    #[error("username `{0}` is taken")]
    UsernameTaken(String),
    /// A record with this id already exists.
    #[error("a {} with this id exists", .0.as_str())]
    Exists(RecordKind),
    /// The attempt named is not the job's current one, or no agent holds the job
    /// any more (it finished, was lost, or was given to another agent).
    #[error("the attempt is not held")]
    NotHeld,
    /// A log chunk does not start at or before the end of the log.
    #[error("the log continues at byte {expected}")]
    LogOffset {
        /// The log's size: where the next chunk must start.
        expected: u64,
    },
    /// The log is at its cap and takes no more bytes.
    #[error("the log is full")]
    LogFull,
    /// The user's credentials changed (a password reset, signing out everywhere)
    /// after the sign-in read them: the session it was about to create is refused.
    #[error("the user's credentials changed during the sign-in")]
    CredentialsChanged,
    /// A user's retry could take the job past
    /// [`ATTEMPTS_MAX`](crate::job::limits::ATTEMPTS_MAX) attempts.
    #[error("the job has had {attempts} attempts; a retry could take it past the limit")]
    AttemptsExhausted {
        /// The attempts it has had.
        attempts: u32,
    },
    /// The user already holds
    /// [`MAX_API_TOKENS_PER_USER`](crate::api_token::MAX_API_TOKENS_PER_USER)
    /// live API tokens.
    #[error("the user holds the most API tokens allowed")]
    TooManyApiTokens,
    /// The change would leave no enabled admin.
    #[error("the change would leave no enabled admin")]
    LastAdmin,
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Users and their credentials.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user without an audit event: for seeding a store in tests and
    /// tools. Runway itself creates users with
    /// [`UserAdminStore::create_user_audited`] or
    /// [`OidcIdentityStore::create_oidc_user`], which write the event with the
    /// user. [`StoreError::Conflict`] if the username is taken.
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    /// Looks a user up by login name, including the password hash.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// Looks a user up by id.
    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>>;
    /// Replaces a user's password hash, bumps their
    /// [`credential_epoch`](User::credential_epoch) and deletes every one of their
    /// sessions, as one atomic write: a crash or a store error leaves the old
    /// password with all the sessions, or the new one with none, never the new
    /// password beside sessions opened with the old one; and a sign-in that read
    /// the old hash (and epoch) can no longer create its session afterwards.
    /// [`StoreError::NotFound`] if there is no such user, and then nothing is
    /// written. `audit` is written in the same write.
    ///
    /// Sessions carry a copy of the user's name and role and must not outlive a
    /// credential change, which is why the two cannot be separate calls.
    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Whether any user exists (first-start bootstrap).
    async fn has_users(&self) -> StoreResult<bool>;
}

/// Users as admins manage them. Every method that changes something takes the
/// audit event of the change and writes it in the same transaction: the change
/// and its record happen together or not at all ([`Conflict::Exists`] with
/// [`RecordKind::AuditEvent`] if the event's id is taken, and then nothing is
/// written).
///
/// At least one enabled admin always remains: a write that would leave none is
/// [`Conflict::LastAdmin`], decided atomically with the write itself, so two
/// admins demoting each other at once leave exactly one.
#[async_trait]
pub trait UserAdminStore: Send + Sync {
    /// Creates `user` with `audit`. [`Conflict::UsernameTaken`] if the name is taken.
    async fn create_user_audited(&self, user: &User, audit: &AuditEvent) -> StoreResult<()>;
    /// Users, newest first, with the opaque cursor of every listing.
    async fn list_users(&self, page: &PageRequest) -> StoreResult<Page<User>>;
    /// Applies `change` and returns the user as now stored. A change that
    /// [revokes credentials](UserChange::revokes_credentials) (a new role, or
    /// disabling) bumps the credential epoch and deletes every session and API
    /// token of the user in the same write, so neither a copy of the old role nor
    /// a sign-in in flight survives it. [`StoreError::NotFound`];
    /// [`Conflict::LastAdmin`].
    async fn update_user(
        &self,
        id: UserId,
        change: UserChange,
        audit: &AuditEvent,
    ) -> StoreResult<User>;
    /// Deletes the user, their username, their issuer identities, sessions and
    /// API tokens, in one write. [`StoreError::NotFound`]; [`Conflict::LastAdmin`].
    async fn delete_user(&self, id: UserId, audit: &AuditEvent) -> StoreResult<()>;
}

/// Personal API tokens ([`crate::api_token`]). Like [`UserAdminStore`], every
/// change carries its audit event and writes it in the same transaction.
#[async_trait]
pub trait ApiTokenStore: Send + Sync {
    /// Stores `token` if its user exists and is still at the token's
    /// [`credential_epoch`](ApiToken::credential_epoch) (a disable, role change
    /// or sign-out everywhere won the race otherwise:
    /// [`Conflict::CredentialsChanged`]; [`StoreError::NotFound`] for no such
    /// user). In the same write, the user's tokens expired at the token's
    /// `created_at` are deleted; if the user would then hold more than
    /// [`MAX_API_TOKENS_PER_USER`](crate::api_token::MAX_API_TOKENS_PER_USER),
    /// nothing is written and it is [`Conflict::TooManyApiTokens`].
    async fn create_api_token(&self, token: &ApiToken, audit: &AuditEvent) -> StoreResult<()>;
    /// One strongly consistent read by id; expired ones included (the caller
    /// applies [`ApiToken::is_active`]).
    async fn get_api_token(&self, id: ApiTokenId) -> StoreResult<Option<ApiToken>>;
    /// The user's tokens, expired ones included, newest first.
    async fn list_api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiToken>>;
    /// Deletes one of `user`'s tokens. [`StoreError::NotFound`] if it is not
    /// theirs (and then nothing is written, the event included).
    async fn revoke_api_token(
        &self,
        user: UserId,
        id: ApiTokenId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
}

/// Signed-in devices.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session, if its user exists and is still at the session's
    /// [`credential_epoch`](Session::credential_epoch), atomically with that check:
    /// [`Conflict::CredentialsChanged`] otherwise (a password reset or a sign-out
    /// everywhere won the race), [`StoreError::NotFound`] if there is no such user.
    ///
    /// In the same write, the user's sessions whose absolute expiry is at or before
    /// the new session's `created_at` are deleted, and if the user would then hold
    /// more than [`MAX_SESSIONS_PER_USER`](crate::session::MAX_SESSIONS_PER_USER),
    /// the oldest (by id) are deleted until they do not. Returns the ids of those
    /// evicted for the bound (not the expired ones), oldest first.
    ///
    /// `audit` (the `session.created` event) is written in the same write, and
    /// with it one [`AuditEvent::of_eviction`] of `audit` for each evicted
    /// session.
    async fn create_session(
        &self,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<Vec<SessionId>>;
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
    /// Deletes one of `user`'s sessions, with `audit` in the same write.
    /// [`StoreError::NotFound`] if it is not theirs (and then nothing is written).
    async fn revoke_session(
        &self,
        user: UserId,
        id: SessionId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Deletes all of `user`'s sessions except `keep` and bumps the user's
    /// [`credential_epoch`](User::credential_epoch), in one atomic write, so a
    /// sign-in already past its password check cannot add a session afterwards;
    /// returns how many were deleted (expired ones still stored included).
    /// `audit` is a template: the write records
    /// [`AuditEvent::of_revoked_all`] of it, with that count. For an unknown
    /// user it is 0, and nothing is written, the event included.
    async fn revoke_user_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        audit: &AuditEvent,
    ) -> StoreResult<u64>;
    /// Deletes up to `limit` sessions (of anyone) that are expired at `now`, by
    /// either expiry ([`Session::is_active`]); returns how many. A backend whose
    /// database deletes expired items by itself (DynamoDB's TTL) does nothing and
    /// returns 0: expiry is decided on every read anyway.
    async fn purge_expired_sessions(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}

/// OpenID Connect logins between the redirect to the issuer and its callback
/// ([`crate::oidc`]). Kept in the store, because on Lambda the callback may reach
/// another instance than the one that started the login.
#[async_trait]
pub trait OidcLoginStore: Send + Sync {
    /// Stores a login. [`Conflict::Exists`] if one with its `state_hash` exists.
    async fn create_oidc_login(&self, login: &PendingLogin) -> StoreResult<()>;
    /// Deletes the login whose state hashes to `state_hash` and returns it, if it is
    /// still live at `now` ([`PendingLogin::is_live`]); `None` if there is none or
    /// it has expired (an expired one is deleted all the same). The delete is
    /// conditional, so of two racing callbacks with one state exactly one gets the
    /// login: a replayed callback finds nothing.
    async fn take_oidc_login(
        &self,
        state_hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<PendingLogin>>;
}

/// Users who sign in through an OpenID Connect issuer, found by who the issuer
/// says they are ([`OidcIdentity`]), never by email.
#[async_trait]
pub trait OidcIdentityStore: Send + Sync {
    /// The user linked to `identity`, if any.
    async fn user_by_oidc_identity(&self, identity: &OidcIdentity) -> StoreResult<Option<User>>;
    /// Creates `user` linked to `identity`, in one atomic write: nothing is
    /// written if [`Conflict::UsernameTaken`], or [`Conflict::Exists`] with
    /// [`RecordKind::OidcIdentity`] (a concurrent first sign-in of the same
    /// person won; read the user by identity again). `audit` is written in the
    /// same write.
    async fn create_oidc_user(
        &self,
        user: &User,
        identity: &OidcIdentity,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
}

/// Registration tokens, created by admins.
#[async_trait]
pub trait RegistrationTokenStore: Send + Sync {
    /// Stores a new token, with `audit` in the same transaction.
    /// [`Conflict::Exists`] if its id or hash is taken.
    async fn create_registration_token(
        &self,
        token: &RegistrationToken,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Every token, newest first (expired ones included, so admins can clean up).
    async fn list_registration_tokens(&self) -> StoreResult<Vec<RegistrationToken>>;
    /// Deletes a token, with `audit` in the same transaction.
    /// [`StoreError::NotFound`] if there is none (and then nothing is written).
    async fn delete_registration_token(
        &self,
        id: RegistrationTokenId,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
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
    /// and is usable at `now` ([`RegistrationToken::is_usable`]: unexpired, with a
    /// use left), and counts one use of the token, atomically: a token with one use
    /// left admits exactly one of two racing registrations. [`StoreError::NotFound`]
    /// otherwise. The agent's `registration_token_id` is filled in from the token,
    /// and so is `audit`'s detail ([`AuditEvent::of_registration`]); the event is
    /// written with the agent.
    async fn register_agent(
        &self,
        registration: &TokenHash,
        agent: Agent,
        now: OffsetDateTime,
        audit: &AuditEvent,
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
    /// Sets what an admin asks of the agent; returns the updated agent.
    /// [`StoreError::NotFound`] if it is gone. `audit` is written with the change.
    async fn set_agent_state(
        &self,
        id: AgentId,
        state: AgentState,
        audit: &AuditEvent,
    ) -> StoreResult<Agent>;
    /// Replaces the agent's token hash, so the old token stops working in the same
    /// write. [`StoreError::NotFound`] if it is gone. `audit` is written with the
    /// change.
    async fn rotate_agent_token(
        &self,
        id: AgentId,
        token_hash: &TokenHash,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Deletes the agent and its token (which stops working at once). The jobs it
    /// held are left as they are: the caller ends them as abandoned.
    /// [`StoreError::NotFound`] if there is none. `audit` is written with the
    /// deletion.
    async fn delete_agent(&self, id: AgentId, audit: &AuditEvent) -> StoreResult<()>;
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
    /// Stores a new job (status `queued`, no attempts), its secrets and their
    /// names (`secret_names`, kept after the values are deleted) included, with
    /// its `audit` event.
    async fn create_job(&self, job: &Job, audit: &AuditEvent) -> StoreResult<()>;
    /// A job and its attempts. Its `secrets` are always empty here: only
    /// [`DispatchStore::claim_job`] hands them out.
    async fn get_job(&self, id: JobId) -> StoreResult<Option<JobDetail>>;
    /// Jobs, newest first, with empty `secrets`.
    async fn list_jobs(&self, query: &JobQuery) -> StoreResult<Page<Job>>;
    /// Moves a job to `to` if the lifecycle allows it from the status it has now,
    /// with a write conditional on that status (retrying if another writer won).
    /// [`StoreError::NotFound`] or [`StoreError::IllegalTransition`] otherwise.
    /// The latest attempt, if any, takes the same status; if `to` is final the
    /// job's secrets are deleted in the same write, and if the job leaves a held
    /// status the attempt's lease goes with it. Used for users' cancels
    /// (`queued → canceled`, `claimed | running → canceling`) and the queue TTL
    /// (`queued → expired`); attempts end through [`DispatchStore::end_attempt`].
    /// `audit` is written with the change.
    async fn transition_job(
        &self,
        id: JobId,
        to: JobStatus,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job>;
    /// A user's retry ([`lifecycle::check_retry`](crate::lifecycle::check_retry)):
    /// a job in a final status goes back to `queued`, claimable at once, with
    /// `updated_at = now` (the queue TTL counts from the retry),
    /// `retried_at_attempt = attempt_count` (a fresh budget of automatic retries)
    /// and `secrets` as its secrets, all in one write conditional on the final
    /// status read, so of two racing retries exactly one wins. Its attempts and
    /// `secret_names` are left as they are; the next claim is attempt
    /// `attempt_count + 1`. [`StoreError::NotFound`];
    /// [`StoreError::IllegalTransition`] `{ from, to: queued }` for a job that is
    /// not final (the loser of a race sees the winner's `queued`);
    /// [`Conflict::AttemptsExhausted`] for one without
    /// [room for the retry](crate::lifecycle::RetryBudget::has_room_for_a_retry).
    ///
    /// The caller has checked `secrets` against the job's `secret_names`
    /// ([`Job::check_retry_secrets`]); names never change, so that check cannot be
    /// raced. `audit` is written with the change.
    async fn retry_job(
        &self,
        id: JobId,
        secrets: &JobSecrets,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job>;
}

/// What an agent asks for when it claims.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The claiming agent as authenticated (its queue, labels and capacity). The
    /// store re-checks its state and capacity in the claim's own write.
    pub agent: Agent,
    /// The hash of the job token minted for this claim, kept with the attempt.
    pub job_token: TokenHash,
    /// When the new attempt's lease runs out unless renewed.
    pub lease_expires_at: OffsetDateTime,
}

/// A successful claim: the job, secrets included, and the attempt just begun.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The job, now `claimed`, with its `secrets` (the only read that has them).
    pub job: Job,
    /// The new attempt (the job's latest).
    pub attempt: Attempt,
}

/// An attempt that an agent holds, as the reaper and agent deletion see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldAttempt {
    /// The job.
    pub job: JobId,
    /// The attempt's number.
    pub attempt: u32,
    /// The job's status: `claimed`, `running` or `canceling`.
    pub status: JobStatus,
}

/// What the reaper found due about a held attempt at its `now`, and so what its
/// end ([`DispatchStore::reap_attempt`]) is conditional on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The lease ran out at or before `now`: the attempt is
    /// [`AttemptEnd::Abandoned`], unless its agent renews the lease first.
    LeaseExpired,
    /// The deadline ([`Attempt::deadline`]) passed at or before `now`: the
    /// attempt is [`AttemptEnd::Overdue`]. The deadline is fixed at the claim, so
    /// no renewal moves it.
    PastDeadline,
}

impl Due {
    /// How an attempt that is due this way ends.
    #[must_use]
    pub const fn end(self) -> AttemptEnd {
        match self {
            Self::LeaseExpired => AttemptEnd::Abandoned,
            Self::PastDeadline => AttemptEnd::Overdue,
        }
    }
}

/// Claiming and running jobs: what the agent protocol and the reaper need.
///
/// Every write here is conditional on the job's current attempt being the one
/// named and still held ([`lifecycle::is_held`](crate::lifecycle::is_held)), so a
/// call from an agent that lost its job (lease expired, job retried elsewhere,
/// canceled) is [`Conflict::NotHeld`] and changes nothing.
#[async_trait]
pub trait DispatchStore: Send + Sync {
    /// Claims, exactly once, the best queued job the agent may run: in its queue,
    /// every label the job asks for among the agent's
    /// ([`labels_satisfy`](crate::agent::labels_satisfy)), highest priority first,
    /// then oldest. The job becomes `claimed` with a new attempt (number
    /// `attempt_count + 1`, the agent, `claimed_at = now`, the lease and the job
    /// token hash). `Ok(None)` if there is no such job, if the agent is not
    /// `active`, if it already holds `capacity` jobs, or if it is gone. A race lost
    /// to another agent is never an error: the store moves on to the next
    /// candidate. State and capacity are conditions of the claim's own write.
    ///
    /// `audit` is a template: the claim writes it, with the claimed job as its
    /// subject and the attempt as its detail ([`AuditEvent::of_claim`]), in the
    /// claim's own write; no claim, no event.
    async fn claim_job(
        &self,
        request: &ClaimRequest,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Option<Claim>>;
    /// The agent started the script: `claimed → running` with `started_at = now`
    /// and the lease extended to `lease_expires_at`. A job already `running` (a
    /// retried call) or `canceling` keeps its status and only has its lease
    /// extended. [`Conflict::NotHeld`] otherwise; [`StoreError::NotFound`] if there
    /// is no such job. `audit` is written with a `claimed → running` move, and
    /// only then: a start that only extends the lease records nothing.
    async fn start_attempt(
        &self,
        job: JobId,
        attempt: u32,
        lease_expires_at: OffsetDateTime,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job>;
    /// Extends a held attempt's lease to `lease_expires_at`; returns the job, whose
    /// status tells the agent whether to cancel. [`Conflict::NotHeld`] or
    /// [`StoreError::NotFound`] otherwise.
    async fn renew_lease(
        &self,
        job: JobId,
        attempt: u32,
        lease_expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<Job>;
    /// Ends a held attempt as [`lifecycle::settle`](crate::lifecycle::settle)
    /// decides from the job's status, `end` and its [`Job::retry_budget`] (its
    /// attempt count since the last manual retry, against `max_retries`):
    /// the attempt takes its final status, `finished_at = now`, `exit_code`, and
    /// loses its lease; the job takes its new status (`queued` again for a retry,
    /// claimable at once). A job that becomes final loses its secrets in the same
    /// write. [`Conflict::NotHeld`], [`StoreError::IllegalTransition`] or
    /// [`StoreError::NotFound`] otherwise. `audit` is written with the end.
    async fn end_attempt(
        &self,
        job: JobId,
        attempt: u32,
        end: AttemptEnd,
        exit_code: Option<i32>,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job>;
    /// The reaper's end of an attempt it found `due` at `now`: as
    /// [`Self::end_attempt`] with [`Due::end`] and no exit code, in a write that is
    /// also conditional on the attempt still being due at `now` (its lease ran
    /// out by then, or its deadline passed). The reaper decides from a read, and
    /// an agent may renew the lease between that read and this write: then the
    /// renewal wins, this is [`Conflict::NotHeld`], and nothing changes (nor is
    /// `audit` written; it is written with the end).
    async fn reap_attempt(
        &self,
        job: JobId,
        attempt: u32,
        due: Due,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> StoreResult<Job>;
    /// Held attempts that are due for the reaper at `now`: their lease ran out,
    /// or their deadline ([`Attempt::deadline`]) passed. At most `limit`, soonest
    /// due first.
    async fn due_attempts(&self, now: OffsetDateTime, limit: u32) -> StoreResult<Vec<HeldAttempt>>;
    /// Queued jobs whose status last changed before `cutoff` (the queue TTL's
    /// horizon), oldest first, at most `limit`.
    async fn stale_queued_jobs(
        &self,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<JobId>>;
    /// The attempts `agent` holds now.
    async fn held_by(&self, agent: AgentId) -> StoreResult<Vec<HeldAttempt>>;
}

/// Where logs live: SQLite locally, S3 (with the size and checksum in DynamoDB)
/// on AWS. Deliberately narrow: append by offset, read by offset, summarize.
///
/// An attempt's log exists once the attempt does; appends need not check that the
/// attempt is held (the API does that with the job token before appending).
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Places `chunk` as [`crate::log::placement`] says, atomically with the log's
    /// size and running CRC-32, conditional on the size it read (two racing
    /// appends cannot both write at one offset). [`Conflict::LogOffset`] for a gap,
    /// [`Conflict::LogFull`] for bytes past [`crate::log::LOG_MAX_BYTES`] plus
    /// [`crate::log::LOG_MARKER_ALLOWANCE`], [`StoreError::NotFound`] if there is no
    /// such attempt.
    async fn append_log(
        &self,
        job: JobId,
        attempt: u32,
        chunk: &LogChunk,
    ) -> StoreResult<LogAppend>;
    /// Up to `max_bytes` of the log from `offset` (nothing if `offset` is at or past
    /// the end). [`StoreError::NotFound`] if there is no such attempt.
    async fn read_log(
        &self,
        job: JobId,
        attempt: u32,
        offset: u64,
        max_bytes: usize,
    ) -> StoreResult<LogSlice>;
    /// The log's size and CRC-32 so far. [`StoreError::NotFound`] if there is no
    /// such attempt.
    async fn log_summary(&self, job: JobId, attempt: u32) -> StoreResult<LogSummary>;
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// The page.
    pub page: PageRequest,
    /// What the events must match; the default matches every event.
    pub filter: AuditFilter,
}

/// The append-only audit log. There is deliberately no method that changes or
/// deletes an event. Events of a change are written by the change's own method
/// (see the module docs); [`Self::append_audit`] is for the events that have no
/// change of their own.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `event` after checking it with [`AuditEvent::validate`] (an event
    /// out of bounds is a bug: `Internal`). [`StoreError::Conflict`] if an event
    /// with its id exists; the stored one is left as it was.
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Events, newest first (by id, so by the time they were made).
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent>>;
}

/// The counters behind the abuse limits (`runway_service::limits`). In the store,
/// not in memory, because on Lambda every instance serves one request at a time
/// and shares no memory with the others ([`crate::limit`]).
///
/// A counter counts attempts under one [`LimitKey`] and is forgotten a `window`
/// after the latest one (`expires_at`); expiry is decided from the `now` passed
/// in, as everywhere, so a backend whose TTL deletes expired counters lazily
/// (DynamoDB) answers exactly like one that purges them.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// The counter under `key`, if there is one live at `now`
    /// ([`Attempts::is_live`]); one strongly consistent read.
    async fn attempts(&self, key: &LimitKey, now: OffsetDateTime) -> StoreResult<Option<Attempts>>;
    /// Counts one attempt under `key` at `now` and returns the counter after it,
    /// in one atomic write: a counter absent or expired at `now` starts again at
    /// 1, a live one goes up by 1; either way `last_at = now` and
    /// `expires_at = now + window`. Concurrent calls count exactly: `n` calls on a
    /// live counter add `n`, and of racing calls on an expired one exactly one
    /// starts it again.
    async fn record_attempt(
        &self,
        key: &LimitKey,
        now: OffsetDateTime,
        window: Duration,
    ) -> StoreResult<Attempts>;
    /// Deletes the counter under `key` (after a success that vouches for the
    /// caller). A counter that is gone is not an error.
    async fn clear_attempts(&self, key: &LimitKey) -> StoreResult<()>;
    /// Claims the right to report the lockout of the counter under `key` at
    /// `count` (audit it once): `true` for exactly one caller per counter and
    /// count, `false` for every other, for a counter that is not live at `now`,
    /// or whose count is no longer `count`. Atomic, so racing refusals on many
    /// instances report once.
    async fn note_refusal(
        &self,
        key: &LimitKey,
        count: u32,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Deletes up to `limit` counters expired at `now`; returns how many. A
    /// backend whose database deletes expired items by itself (DynamoDB's TTL)
    /// does nothing and returns 0.
    async fn purge_expired_attempts(&self, now: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}

/// Health of the store itself.
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// A short name for `/api/v1/info`: `sqlite` or `dynamodb`.
    fn backend(&self) -> &'static str;
    /// A cheap round trip to the database, for `/ready`.
    async fn ping(&self) -> StoreResult<()>;
}

/// Every record capability, for wiring a server. Handlers should take the narrow
/// traits. Logs are a [`LogStore`] of their own, because on AWS they live
/// elsewhere (S3).
pub trait Store:
    UserStore
    + UserAdminStore
    + ApiTokenStore
    + SessionStore
    + OidcLoginStore
    + OidcIdentityStore
    + RegistrationTokenStore
    + AgentStore
    + JobStore
    + DispatchStore
    + AuditStore
    + LimitStore
    + StoreHealth
{
}

impl<T> Store for T where
    T: UserStore
        + UserAdminStore
        + ApiTokenStore
        + SessionStore
        + OidcLoginStore
        + OidcIdentityStore
        + RegistrationTokenStore
        + AgentStore
        + JobStore
        + DispatchStore
        + AuditStore
        + LimitStore
        + StoreHealth
{
}
