//! Integration tests of the whole router, in one binary to save link time.
//!
//! Each test builds its own router over a fresh in-memory SQLite store ([`TestApp`])
//! and calls it in-process with `oneshot`; `socket` also serves it on a real port.

mod agent_protocol;
mod agents;
mod api_tokens;
mod app;
mod audit;
mod dispatch;
mod errors;
mod jobs;
mod limits;
mod listing;
mod matrix;
mod oidc;
mod openapi;
mod registration_tokens;
mod retry;
mod security;
mod sessions;
mod socket;
mod system;
mod timeouts;
mod users;
