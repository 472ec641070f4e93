//! Integration tests of the DynamoDB store, in one binary (it links once), against
//! `moto_server` (DynamoDB and S3 at one endpoint). `RUNWAY_TEST_DYNAMODB_ENDPOINT`
//! names the emulator; without it every test fails with instructions, never skips:
//! see `support.rs`, which also has the fixtures. DynamoDB calls go through the
//! `runway-moto-proxy` relay in front of moto (one request at a time, so that each
//! is atomic as on DynamoDB; it can also lose a response).
//!
//! * `conformance` runs the backend-agnostic suite from `runway-conformance`, each
//!   case on its own fresh tables (a unique prefix) and log bucket;
//! * `dynamodb` covers what only this backend has: table creation and layout, TTL,
//!   the raw item shapes, and how an unreachable endpoint is reported;
//! * `claims` reads the claim, lease and capacity keys raw: the sparse indexes,
//!   the due-time sort key, the agents' `held` sets, a deleted agent's jobs, and
//!   eight agents racing for fifty jobs;
//! * `logs` checks the S3 layout of logs and that an object whose index update
//!   lost a race is never read;
//! * `retries` loses the response of a write (the proxy) so that the SDK retries a
//!   write that landed, and checks the store recognises its own work.

mod claims;
mod conformance;
mod dynamodb;
mod logs;
mod retries;
mod support;
