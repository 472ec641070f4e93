//! # runway-core
//!
//! The domain of Runway, free of any HTTP framework or storage engine.
//!
//! * [`id`] — typed ULID identifiers (`JobId`, `AgentId`, …) that sort by creation time.
//! * [`secret`] — token generation, hashing and the redacting `Secret` wrapper.
//! * [`password`] — argon2id password hashing.
//! * [`user`], [`session`], [`api_token`], [`agent`], [`job`] — the records the stores keep.
//! * [`lifecycle`] — the one job-state transition table, and how an attempt's end
//!   settles a job (the retry rule).
//! * [`log`] — job logs: chunks placed by byte offset, sizes and checksums.
//! * [`oidc`] — OpenID Connect sign-in: pending logins and issuer identities.
//! * [`limit`] — abuse-limit counters, keyed by a hash of what they limit.
//! * [`audit`] — the append-only audit log's events: who did what to which object.
//! * [`store`] — narrow, domain-shaped store traits and the single [`store::StoreError`],
//!   whose conflicts are typed ([`store::Conflict`]).
//!
//! Time is always passed in (`now: OffsetDateTime`) rather than read from a clock
//! inside the stores, so that expiry rules are deterministic and testable, and so
//! that every backend applies exactly the same rule.

#![forbid(unsafe_code)]

pub mod agent;
pub mod api_token;
pub mod audit;
pub mod id;
pub mod job;
pub mod lifecycle;
pub mod limit;
pub mod log;
pub mod oidc;
pub mod page;
pub mod password;
pub mod secret;
pub mod session;
pub mod store;
pub mod user;

pub use time::OffsetDateTime;
