//! The test fixture: a store on fresh tables and a fresh log bucket in the emulator.
//!
//! The endpoint comes from `RUNWAY_TEST_DYNAMODB_ENDPOINT`. When it is not set the
//! tests fail loudly with the command that starts moto: a DynamoDB backend whose
//! tests silently skipped would be a backend nobody tested. Credentials are static
//! dummies given to the loader, so the developer's AWS profile is never read for
//! them, and nothing here can reach a real AWS account. The same `moto_server`
//! serves S3 at the same endpoint; each store gets a bucket of its own.
//!
//! ## The proxy in front of moto
//!
//! DynamoDB calls go through [`Proxy`] (the `runway-moto-proxy` crate, shared with
//! the end-to-end stories), which passes one request at a time to moto: moto's
//! transactions are not atomic across its threads (a canceled one puts back a copy
//! of every table it touched, undoing concurrent writes), DynamoDB's are. The
//! store's calls still interleave freely between concurrent callers, which is what
//! the concurrency tests race. [`Proxy::lose_next`] loses one response, so that the
//! SDK retries a write that landed and the store's "recognise our own write" paths
//! get exercised.

use runway_conformance::audit_event;
use std::collections::HashMap;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use runway_core::agent::{Agent, AgentMetrics, AgentState, RegistrationToken};
use runway_core::id::{AgentId, JobId, RegistrationTokenId, UserId};
use runway_core::job::{Job, JobSecrets, JobSpec};
use runway_core::secret::TokenHash;
use runway_core::store::{AgentStore, Claim, ClaimRequest, DispatchStore, RegistrationTokenStore};
use runway_store_dynamodb::{DynamoConfig, DynamoStore};
use time::{Duration, OffsetDateTime};

pub use runway_moto_proxy::Proxy;

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

/// A bucket name no other test uses: `runway-test-<ulid>` (lower case, as S3 wants).
pub fn unique_bucket() -> String {
    format!(
        "runway-test-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    )
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

/// The store's config: DynamoDB at `endpoint` under `prefix`, logs in a fresh
/// bucket on the emulator itself.
pub fn config(endpoint: String, prefix: String) -> DynamoConfig {
    DynamoConfig {
        table_prefix: prefix,
        endpoint_url: Some(endpoint),
        region: Some("us-east-1".into()),
        log_bucket: Some(unique_bucket()),
        log_prefix: "logs/".into(),
        s3_endpoint: Some(self::endpoint()),
    }
}

/// A store and the proxy its DynamoDB calls go through.
#[derive(Debug)]
pub struct Fixture {
    pub store: DynamoStore,
    pub proxy: Proxy,
}

/// A store on its own, freshly created tables and bucket, behind its own [`Proxy`].
pub async fn fixture() -> Fixture {
    let proxy = Proxy::start(&endpoint()).await;
    let store =
        DynamoStore::connect_with(&config(proxy.endpoint.clone(), unique_prefix()), loader())
            .await
            .expect("connect to the emulator");
    store.create_tables().await.expect("create the tables");
    store.create_log_bucket().await.expect("create the bucket");
    Fixture { store, proxy }
}

/// A store on its own, freshly created tables and bucket. Its proxy serves until
/// the test's runtime ends.
pub async fn fresh_store() -> DynamoStore {
    let Fixture { store, proxy } = fixture().await;
    proxy.detach();
    store
}

// ---------------------------------------------------------------- records

/// A fixed instant with nanoseconds, so truncation shows up.
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_750_000_000_123_456_789).expect("in range")
}

/// `t0` plus `seconds`.
pub fn at(seconds: i64) -> OffsetDateTime {
    t0() + Duration::seconds(seconds)
}

/// How long the claims here lease a job for.
pub const LEASE: Duration = Duration::seconds(120);

/// A queued job in `queue` at `priority` asking for `labels`, submitted at [`t0`].
pub fn job(queue: &str, priority: i32, labels: &[&str]) -> Job {
    Job::new(
        JobSpec {
            name: format!("{queue} p{priority}"),
            script: "make".into(),
            env: Default::default(),
            labels: labels.iter().map(|&l| l.to_owned()).collect(),
            queue: queue.into(),
            priority,
            timeout_seconds: 60,
            max_retries: 2,
            secrets: JobSecrets::default(),
        },
        UserId::new(),
        t0(),
    )
}

/// A registration token that never expires, with `max_uses`.
pub fn registration_token(max_uses: Option<u32>) -> RegistrationToken {
    let id = RegistrationTokenId::new();
    RegistrationToken {
        id,
        description: None,
        created_by: UserId::new(),
        created_at: t0(),
        expires_at: None,
        max_uses,
        uses: 0,
        token_hash: TokenHash::of(&format!("rwr_{id}")),
    }
}

/// An agent to register (its registration token id is filled in by the store).
pub fn agent(queue: &str, labels: &[&str], capacity: u32) -> Agent {
    let id = AgentId::new();
    Agent {
        id,
        name: format!("runner on {queue}"),
        region: None,
        labels: labels.iter().map(|&l| l.to_owned()).collect(),
        queue: queue.into(),
        capacity,
        state: AgentState::Active,
        version: None,
        created_at: t0(),
        last_heartbeat_at: None,
        metrics: AgentMetrics::default(),
        registration_token_id: RegistrationTokenId::new(),
        token_hash: TokenHash::of(&format!("rwa_{id}")),
    }
}

/// Registers an agent pulling from `queue` with `labels` and `capacity`.
pub async fn runner(store: &DynamoStore, queue: &str, labels: &[&str], capacity: u32) -> Agent {
    let token = registration_token(None);
    store
        .create_registration_token(&token, &audit_event())
        .await
        .expect("create a token");
    store
        .register_agent(
            &token.token_hash,
            agent(queue, labels, capacity),
            t0(),
            &audit_event(),
        )
        .await
        .expect("register")
}

/// A claim request of `agent` at `now`, with a fresh job token.
pub fn claim_request(agent: &Agent, now: OffsetDateTime) -> ClaimRequest {
    ClaimRequest {
        agent: agent.clone(),
        job_token: TokenHash::of(&format!("rwj_{}", JobId::new())),
        lease_expires_at: now + LEASE,
    }
}

/// What `agent` claims at `now`.
pub async fn claim(store: &DynamoStore, agent: &Agent, now: OffsetDateTime) -> Option<Claim> {
    store
        .claim_job(&claim_request(agent, now), now, &audit_event())
        .await
        .expect("claim")
}

// ---------------------------------------------------------------- raw items

/// An item as the SDK returns it.
pub type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// The raw item of `table` (a suffix, e.g. `jobs`) keyed `key = id`, read consistently.
pub async fn raw_item(store: &DynamoStore, table: &str, key: &str, id: String) -> Option<Item> {
    store
        .client()
        .get_item()
        .table_name(format!("{}{table}", store.table_prefix()))
        .key(key, AttributeValue::S(id))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
}

/// The raw item of a job.
pub async fn raw_job(store: &DynamoStore, id: JobId) -> Item {
    raw_item(store, "jobs", "job_id", id.to_string())
        .await
        .expect("the job item")
}

/// The members of an agent's `held` set (empty when it has none, or is gone).
pub async fn held_set(store: &DynamoStore, agent: AgentId) -> Vec<String> {
    let item = raw_item(store, "agents", "agent_id", agent.to_string()).await;
    match item.as_ref().and_then(|i| i.get("held")) {
        Some(AttributeValue::Ss(members)) => {
            let mut members = members.clone();
            members.sort();
            members
        }
        None => Vec::new(),
        Some(other) => panic!("held is not a string set: {other:?}"),
    }
}

/// Every entry of one partition of a jobs index, in ascending sort-key order.
pub async fn index_entries(store: &DynamoStore, index: &str, partition: (&str, &str)) -> Vec<Item> {
    store
        .client()
        .query()
        .table_name(format!("{}jobs", store.table_prefix()))
        .index_name(index)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", partition.0)
        .expression_attribute_values(":pk", s(partition.1))
        .scan_index_forward(true)
        .send()
        .await
        .expect("query the index")
        .items
        .unwrap_or_default()
}

/// The `job_id`s of index entries.
pub fn job_ids(entries: &[Item]) -> Vec<String> {
    entries
        .iter()
        .map(|item| match item.get("job_id") {
            Some(AttributeValue::S(id)) => id.clone(),
            other => panic!("an index entry without a job id: {other:?}"),
        })
        .collect()
}
