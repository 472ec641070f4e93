//! The backend-agnostic conformance suite, on DynamoDB and S3 (moto). Every case
//! gets a fresh table prefix, `create_tables()`, a bucket of its own and its own
//! proxy (`support.rs`: one request at a time to moto, as atomic as DynamoDB's),
//! so cases run in parallel in isolation.

runway_conformance::conformance_suite!(crate::support::fixture(), |fixture| fixture.store.clone());
