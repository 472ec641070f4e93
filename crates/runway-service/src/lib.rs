//! # runway-service
//!
//! Runway's application rules, in one place that every front end calls: the JSON
//! API (`runway-api`), the agent protocol (also served by `runway-api`), the CLI
//! (`runway admin`, `runway reap`) and the dashboard to come. A handler extracts
//! and authenticates, calls one function here, and shapes the answer; it decides
//! nothing itself.
//!
//! Why a crate of its own rather than a module of `runway-core`: the rules need a
//! runtime (argon2 on a blocking thread, a claim that waits to be woken, a
//! background reaper), and `runway-core` stays free of one so that the domain and
//! the store traits can be read, tested and implemented without Tokio.
//!
//! * [`accounts`] — first-start bootstrap, users and passwords (CLI and API).
//! * [`users`] — users as admins manage them through the API (roles, disabling,
//!   deleting, the last-admin rule).
//! * [`api_tokens`] — personal API tokens: making, listing, revoking, and
//!   authenticating a request by one.
//! * [`sessions`] — sign-in (argon2 behind a bounded number of permits) and
//!   revoking one's own sessions.
//! * [`limits`] — abuse limits: sign-in failures per account and address,
//!   agent registrations and token creations, with exponential backoff, counted
//!   in the store so they hold across Lambda instances.
//! * [`oidc`] — sign-in through an OpenID Connect issuer (code flow, PKCE,
//!   state and nonce), provisioning users on their first sign-in.
//! * [`jobs`] — submitting, inspecting, canceling and retrying jobs as a user.
//! * [`dispatch`] — the agent side: registration, heartbeats, the long-poll claim,
//!   leases, log chunks and finishing an attempt.
//! * [`reaper`] — ends lost, timed-out and expired work; one pass at a time.
//! * [`registration_tokens`] — the rules of a new registration token, creating
//!   and deleting one.
//! * [`audit`] — who is acting ([`audit::Caller`]) and the record of what they did.
//! * [`error`] — the one error type of this boundary, [`ServiceError`].
//!
//! Every function takes the narrow store traits it uses (or the `Store` bundle
//! where it touches many), and time is read once per call and passed down, as the
//! stores expect.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod api_tokens;
pub mod audit;
pub mod dispatch;
pub mod error;
pub mod jobs;
pub mod limits;
pub mod oidc;
pub mod reaper;
pub mod registration_tokens;
pub mod sessions;
pub mod users;

pub use dispatch::{DispatchSettings, Service};
pub use error::{ServiceError, ServiceResult};
