//! The service's one error type.
//!
//! It says what went wrong in the domain's words (no HTTP status in sight); the API
//! maps each variant to a status and a client message once, in
//! `runway-api/src/error.rs`, and the CLI to a line of text.

use runway_core::job::FieldError;
use runway_core::lifecycle::IllegalTransition;
use runway_core::store::{Conflict, StoreError};

/// Everything a service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such record (the kind is named: `job`, `agent`, …).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// Wrong username or password (never saying which).
    #[error("the username or password is wrong")]
    InvalidCredentials,
    /// The right credentials, but the user is disabled. Said only after the
    /// password (or the issuer) vouched for them, so it reveals nothing to a
    /// guesser.
    #[error("the account is disabled")]
    AccountDisabled,
    /// Too many expensive checks (argon2) are under way; try again in a moment.
    #[error("the server is busy; retry in a moment")]
    Overloaded,
    /// An abuse limit ([`crate::limits`]) refuses the request until its backoff
    /// ends.
    #[error("too many {what}; retry in {} s", retry_after.as_secs())]
    RateLimited {
        /// What was counted, e.g. `failed sign-ins for this account`.
        what: &'static str,
        /// When the lockout ends, in whole seconds (at least 1).
        retry_after: std::time::Duration,
    },
    /// The caller may not do this; the text says why.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A field is out of bounds.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The job lifecycle does not allow the change.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The record's current state forbids the change.
    #[error(transparent)]
    Conflict(Conflict),
    /// A finish whose byte count or checksum disagrees with the log the server has.
    #[error(
        "the log has {server_bytes} bytes with CRC-32 {server_crc32:08x}; the agent reported {agent_bytes} bytes with {agent_crc32:08x}"
    )]
    LogMismatch {
        /// What the server holds.
        server_bytes: u64,
        /// Its checksum.
        server_crc32: u32,
        /// What the agent said it sent.
        agent_bytes: u64,
        /// Its checksum.
        agent_crc32: u32,
    },
    /// An OpenID Connect sign-in failed; the variant says how.
    #[error(transparent)]
    Oidc(#[from] crate::oidc::OidcError),
    /// The store failed (down, throttled, or a bug).
    #[error("store error")]
    Store(#[source] StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound("record"),
            StoreError::Conflict(conflict) => Self::Conflict(conflict),
            StoreError::IllegalTransition(t) => Self::IllegalTransition(t),
            other => Self::Store(other),
        }
    }
}

impl ServiceError {
    /// `NotFound(kind)` for a store's `NotFound`, everything else as usual.
    pub(crate) fn or_not_found(kind: &'static str) -> impl FnOnce(StoreError) -> Self {
        move |err| match err {
            StoreError::NotFound => Self::NotFound(kind),
            other => other.into(),
        }
    }
}

/// Shorthand for service results.
pub type ServiceResult<T> = Result<T, ServiceError>;
