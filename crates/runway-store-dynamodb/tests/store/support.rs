//! The test fixture: a store on fresh tables in the emulator.
//!
//! The endpoint comes from `RUNWAY_TEST_DYNAMODB_ENDPOINT`. When it is not set the
//! tests fail loudly with the command that starts moto: a DynamoDB backend whose
//! tests silently skipped would be a backend nobody tested. Credentials are static
//! dummies given to the loader, so the developer's AWS profile is never read for
//! them, and nothing here can reach a real AWS account.

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::Credentials;
use runway_store_dynamodb::{DynamoConfig, DynamoStore};

/// The variable naming the emulator.
pub const ENDPOINT_VAR: &str = "RUNWAY_TEST_DYNAMODB_ENDPOINT";

/// The emulator's endpoint, or a panic saying how to start it.
pub fn endpoint() -> String {
    match std::env::var(ENDPOINT_VAR) {
        Ok(endpoint) if !endpoint.trim().is_empty() => endpoint,
        _ => panic!(
            "{ENDPOINT_VAR} is not set: the DynamoDB store is tested against moto_server.\n\
             Start it and run the tests with:\n\n    \
             scripts/moto.sh install && scripts/moto.sh run cargo test -p runway-store-dynamodb\n\n\
             or by hand:\n\n    \
             scripts/moto.sh install && eval \"$(scripts/moto.sh start)\"\n    \
             {ENDPOINT_VAR}=$MOTO_ENDPOINT cargo test -p runway-store-dynamodb\n    \
             scripts/moto.sh stop\n"
        ),
    }
}

/// A table prefix no other test uses: `t<ulid>_`.
pub fn unique_prefix() -> String {
    format!("t{}_", ulid::Ulid::new().to_string().to_lowercase())
}

/// Dummy credentials: moto accepts any.
pub fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).credentials_provider(Credentials::new(
        "test",
        "test",
        None,
        None,
        "runway-tests",
    ))
}

/// The store's config for `endpoint` and `prefix`.
pub fn config(endpoint: String, prefix: String) -> DynamoConfig {
    DynamoConfig {
        table_prefix: prefix,
        endpoint_url: Some(endpoint),
        region: Some("us-east-1".into()),
    }
}

/// A store on its own, freshly created tables.
pub async fn fresh_store() -> DynamoStore {
    let store = DynamoStore::connect_with(&config(endpoint(), unique_prefix()), loader())
        .await
        .expect("connect to the emulator");
    store.create_tables().await.expect("create the tables");
    store
}
