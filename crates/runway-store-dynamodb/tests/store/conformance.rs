//! The backend-agnostic conformance suite, on DynamoDB (moto). Every case gets a
//! fresh table prefix and `create_tables()`, so cases run in parallel in isolation.

runway_conformance::conformance_suite!(crate::support::fresh_store());
