//! Integration tests of the DynamoDB store, in one binary (it links once), against
//! `moto_server`. `RUNWAY_TEST_DYNAMODB_ENDPOINT` names the emulator; without it
//! every test fails with instructions, never skips: see `support.rs`.
//!
//! * `conformance` runs the backend-agnostic suite from `runway-conformance`, each
//!   case on its own fresh set of tables (a unique table prefix);
//! * `dynamodb` covers what only this backend has: table creation and layout, TTL,
//!   the raw item shapes, and how an unreachable endpoint is reported;
//! * `claims` reads the claim and lease keys of jobs, and queries their sparse
//!   indexes, raw: no store trait claims jobs yet.

mod claims;
mod conformance;
mod dynamodb;
mod support;
