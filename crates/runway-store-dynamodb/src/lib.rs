//! # runway-store-dynamodb
//!
//! The production store: every `runway_core::store` trait on Amazon DynamoDB, and
//! the `LogStore` on S3, with exactly the SQLite backend's semantics (the shared
//! conformance suite proves it, against `moto_server` in the tests). The table
//! design, item shapes and the cost of every call are written up in
//! `docs/dynamodb.md`; [`schema()`] is the machine-readable form that the Terraform
//! test compares with.
//!
//! ## Design in one screen
//!
//! * **Nine tables**, one per aggregate (the append-only `audit` log, the
//!   pending OpenID Connect logins and the abuse-limit counters among them) plus
//!   `lookups`, a strongly
//!   consistent secondary key: `username#…`, `agent_token#…`,
//!   `registration_token#…` and `oidc#<issuer>#<subject>` items point at the
//!   record they name. A GSI would be eventually consistent, so a freshly registered agent
//!   could fail to authenticate; a lookup item written in the same
//!   `TransactWriteItems` as its record cannot.
//! * **Invariants are conditions**, never read-then-write: unique usernames
//!   (`attribute_not_exists` on the `username#` item, in one transaction with the
//!   user), registration (the token's use counted with `uses < max_uses`, unexpired
//!   at `now`, in the transaction that creates the agent), job transitions and
//!   a user's retry of a final job (`#status = :read AND #attempt_count = :read`),
//!   revoking a session (`user_id = :user`).
//! * **Claims are one transaction**: the job's `queued → claimed` update and the
//!   agent's `ADD held :attempt`, conditional on the agent being active and holding
//!   fewer than its capacity, so "exactly once" and "never over capacity" are both
//!   conditions of one write (`dispatch.rs`).
//! * **Logs are S3 objects**, one per accepted chunk and named so that a chunk
//!   whose index update lost a race is never read; DynamoDB holds only each
//!   attempt's size and CRC-32, advanced by a write conditional on the size read
//!   (`logs.rs`).
//! * **A user's sessions are kept on the user item** (id → expiry, beside a
//!   credential epoch), so creating one is a transaction conditional on the epoch
//!   the sign-in read, at most 50 are held, and signing out everywhere or a
//!   password change is one transaction of at most 51 actions (`accounts.rs`).
//!   The user's personal API tokens are kept the same way (`api_tokens.rs`: items
//!   `api_token#<id>` in the `sessions` table, read by the id the token embeds),
//!   so disabling, demoting or deleting a user deletes every session and token in
//!   one transaction (at most 93 actions), with a counter of enabled admins in
//!   `lookups` as a condition so the last admin stays (`users.rs`).
//! * **New writes carry their audit event**: the user-admin and API-token calls
//!   add a `Put` of the event (`DynamoStore::put_event`) to their `TransactWriteItems`.
//! * **Listings** query a `KEYS_ONLY` GSI newest first (`ScanIndexForward=false`,
//!   ids are ULIDs), then fetch the items with a strongly consistent `BatchGetItem`
//!   and apply every filter in code to those fresh items. A GSI lags its table, so a
//!   stale index entry can only cost a wasted read, never a wrong answer; and
//!   heartbeats, which change no index key, write no index at all.
//! * **Expiry is decided in code** from the caller's `now`. Sessions carry a `ttl`
//!   attribute (epoch seconds, never before their effective expiry) so DynamoDB
//!   deletes them eventually, but TTL deletion is lazy (typically within two
//!   days), so it is garbage collection, never the rule.
//! * **A retried write finds itself.** The SDK retries a write whose response was
//!   lost; the calls where that would show (a claim moving on to a second job, an
//!   end reported as `NotHeld`, a log chunk as a duplicate) recognise their own
//!   write on the retry's failed condition, and every `TransactWriteItems` carries
//!   the SDK's idempotency token.
//! * **Errors** go through one module (`error.rs`): throttling, outages and timeouts
//!   (every call is bounded: 1 s to connect, 2 s an attempt, 5 s in all) become
//!   `Unavailable` (after the SDK's own retries with backoff), condition failures
//!   become domain errors, the rest `Internal` with the SDK error as its source.
//!
//! ## Configuration
//!
//! [`DynamoConfig`]: the table prefix, the region, the log bucket
//! (`RUNWAY_LOG_BUCKET` in the server's configuration; without one every log call
//! fails with [`NoLogBucket`]) and key prefix, and endpoint overrides for DynamoDB
//! and S3 (moto), each applied to its own service only.
//!
//! ## Layout
//!
//! `schema.rs` tables, [`schema()`] and [`DynamoStore::create_tables`] ·
//! `error.rs` the mapping to `StoreError` · `items.rs` item shapes · `expr.rs`
//! update and condition expressions · `page.rs` cursors and the
//! GSI-then-`BatchGetItem` listing · `accounts.rs` users and sessions ·
//! `users.rs` users as admins manage them and the admin counter · `api_tokens.rs`
//! personal API tokens ·
//! `agents.rs` registration tokens and agents · `jobs.rs` jobs and the lifecycle
//! write they share · `dispatch.rs` claims, leases, attempt ends and the reaper's
//! queries · `logs.rs` job logs on S3 · `audit.rs` the audit log · `oidc.rs` pending OIDC
//! logins and issuer identities · `limits.rs` abuse-limit counters.

#![forbid(unsafe_code)]

mod accounts;
mod agents;
mod api_tokens;
mod audit;
mod dispatch;
mod error;
mod expr;
mod items;
mod jobs;
mod limits;
mod logs;
mod oidc;
mod page;
mod schema;
mod users;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use runway_core::store::{StoreError, StoreHealth, StoreResult};

pub use logs::NoLogBucket;
pub use schema::{
    AttributeKind, IndexSpec, KeyAttribute, NotActive, Projection, TableSpec, schema,
};

use crate::error::sdk_error;
use crate::items::Item;

/// Where the tables and the log bucket are and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoConfig {
    /// Prepended to every table name, e.g. `runway-prod-` gives `runway-prod-jobs`.
    pub table_prefix: String,
    /// Overrides the DynamoDB endpoint (moto, DynamoDB Local). `None` uses AWS, or
    /// `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` if set.
    pub endpoint_url: Option<String>,
    /// Overrides the region; `None` uses the default chain (`AWS_REGION`, profile,
    /// instance metadata).
    pub region: Option<String>,
    /// The S3 bucket of job logs (`RUNWAY_LOG_BUCKET`). `None`: every log call
    /// fails with [`NoLogBucket`], everything else works.
    pub log_bucket: Option<String>,
    /// Prepended to every log object's key, e.g. `logs/` gives
    /// `logs/<job>/<attempt>/…`; the function's IAM policy is scoped to it.
    pub log_prefix: String,
    /// Overrides the S3 endpoint (moto), with path-style addressing
    /// (`http://host/bucket/key`), which an emulator needs. `None` uses AWS, or
    /// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` if set.
    pub s3_endpoint: Option<String>,
}

impl Default for DynamoConfig {
    fn default() -> Self {
        Self {
            table_prefix: "runway_".into(),
            endpoint_url: None,
            region: None,
            log_bucket: None,
            log_prefix: "logs/".into(),
            s3_endpoint: None,
        }
    }
}

/// No region was configured anywhere in the default chain.
#[derive(Debug, thiserror::Error)]
#[error(
    "no AWS region is configured: set AWS_REGION (or the store's `region` setting) to the \
     region of the DynamoDB tables"
)]
pub struct MissingRegion;

/// The full table names for one prefix, built once.
#[derive(Debug)]
pub(crate) struct Tables {
    pub(crate) prefix: String,
    pub(crate) users: String,
    pub(crate) lookups: String,
    pub(crate) sessions: String,
    pub(crate) registration_tokens: String,
    pub(crate) agents: String,
    pub(crate) jobs: String,
    pub(crate) audit: String,
    pub(crate) oidc_logins: String,
    pub(crate) abuse_counters: String,
}

impl Tables {
    fn new(prefix: &str) -> Self {
        let name = |suffix: &str| format!("{prefix}{suffix}");
        Self {
            prefix: prefix.to_owned(),
            users: name(schema::USERS),
            lookups: name(schema::LOOKUPS),
            sessions: name(schema::SESSIONS),
            registration_tokens: name(schema::REGISTRATION_TOKENS),
            agents: name(schema::AGENTS),
            jobs: name(schema::JOBS),
            audit: name(schema::AUDIT),
            oidc_logins: name(schema::OIDC_LOGINS),
            abuse_counters: name(schema::ABUSE_COUNTERS),
        }
    }
}

/// The DynamoDB implementation of every store trait. Cheap to clone: clones share
/// one SDK client (and so its connection pool and credentials cache). Build it once,
/// at start-up (on Lambda: at cold start).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Arc<Tables>,
    /// Job logs' bytes (`logs.rs`); the same HTTP client, credentials, timeouts and
    /// retry policy as DynamoDB.
    s3: aws_sdk_s3::Client,
    /// `None` when no bucket is configured: log calls fail with [`NoLogBucket`].
    logs: Option<Arc<logs::LogBucket>>,
    /// The claims in flight per queue, which spread contending claims over the
    /// head of the queue (`dispatch.rs`).
    claims_in_flight: Arc<dispatch::ClaimsInFlight>,
}

/// What a `PutItem` of a new item, conditional on its key being free, came to.
#[derive(Debug)]
pub(crate) enum PutNew {
    /// Written (or written before by this same call, see [`DynamoStore::put_if_absent`]).
    Written,
    /// The key holds a different item.
    Taken,
}

impl DynamoStore {
    /// Puts `item` into `table` if no item has its `key` yet.
    ///
    /// The SDK retries a write whose response was lost (a timeout, a 500 after the
    /// write landed), and the retry then finds its own item and fails the
    /// condition. Reporting that as a conflict would turn a successful write into a
    /// 409 or 500. So the put asks for the item it collided with
    /// (`ReturnValuesOnConditionCheckFailure=ALL_OLD`, no extra read or cost) and
    /// counts a collision with an identical item as written. Every item written
    /// this way has a fresh ULID key, so an identical item can only be this write.
    pub(crate) async fn put_if_absent(
        &self,
        table: &str,
        item: Item,
        key: &str,
    ) -> StoreResult<PutNew> {
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
        let result = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", key)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutNew::Written),
            Err(err) if error::is_condition_failure(&err) => {
                let existing = match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(e)) => e.item(),
                    _ => None,
                };
                Ok(if existing == Some(&item) {
                    PutNew::Written
                } else {
                    PutNew::Taken
                })
            }
            Err(err) => Err(sdk_error(err)),
        }
    }
}

/// The HTTPS client: rustls on `ring` with the platform's root certificates. It
/// speaks plain HTTP too, for an `http://` endpoint override (moto). DynamoDB and S3
/// share it (and so its connection pool), through the one `SdkConfig`.
fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// How long one call may take, retries and backoff included. Without a bound a
/// stalled connection hangs the request until the Lambda's own timeout kills it,
/// and the client gets a gateway error instead of a 503 with `Retry-After`. A
/// DynamoDB data-plane call takes ~10 ms, so 5 s is far past any healthy answer
/// yet well inside API Gateway's 29 s and a typical function timeout.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt: short enough that a stalled connection still leaves time for a
/// retry on a fresh one (the retry strategy reconnects after a transient error).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Establishing a TCP (and TLS) connection to a regional endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The first retry's backoff ceiling (then doubling, with full jitter). The SDK's
/// default of 1 s is sized for slow control-plane calls; here it would spend most
/// of [`OPERATION_TIMEOUT`] asleep and leave no room for the third attempt.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Timeouts for every call; see the constants for why these values.
fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Standard mode, three attempts: throttling, 5xx, timeouts and broken
/// connections are retried with exponential backoff and jitter, and the retry
/// quota stops retrying when most calls fail (an outage, not a blip), so Runway
/// answers 503 quickly instead of piling retries onto DynamoDB. Not adaptive mode:
/// its client-side rate limiter learns a rate per client, and on Lambda every
/// instance has its own short-lived client, so it mostly adds delay to requests
/// that would have succeeded; the caller, told `Retry-After`, is the better place
/// to back off.
fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(INITIAL_BACKOFF)
}

impl DynamoStore {
    /// Builds the client from aws-config's default chain (environment, profile,
    /// web identity, container and instance credentials), honouring the config's
    /// endpoint and region overrides. Makes no request: call [`Self::create_tables`]
    /// or `ping` to check the tables are reachable.
    ///
    /// # Errors
    /// `Internal` with [`MissingRegion`] if no region is configured anywhere.
    pub async fn connect(config: &DynamoConfig) -> StoreResult<Self> {
        Self::connect_with(config, aws_config::defaults(BehaviorVersion::latest())).await
    }

    /// As [`Self::connect`], starting from the caller's loader, e.g. one with static
    /// credentials for an emulator. The endpoint and region overrides of `config`
    /// are applied on top, and the HTTP client, timeouts and retry policy are
    /// always Runway's.
    ///
    /// # Errors
    /// As [`Self::connect`].
    pub async fn connect_with(config: &DynamoConfig, loader: ConfigLoader) -> StoreResult<Self> {
        let mut loader = loader
            .http_client(http_client())
            .timeout_config(timeout_config())
            .retry_config(retry_config());
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(StoreError::internal(MissingRegion));
        }
        // Each endpoint override applies to its own service only: the DynamoDB
        // endpoint must not become S3's.
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk);
        if let Some(endpoint) = &config.endpoint_url {
            dynamodb = dynamodb.endpoint_url(endpoint);
        }
        let mut s3 = aws_sdk_s3::config::Builder::from(&sdk);
        if let Some(endpoint) = &config.s3_endpoint {
            s3 = s3.endpoint_url(endpoint).force_path_style(true);
        }
        Ok(Self {
            client: Client::from_conf(dynamodb.build()),
            tables: Arc::new(Tables::new(&config.table_prefix)),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            logs: config.log_bucket.as_ref().map(|bucket| {
                Arc::new(logs::LogBucket {
                    bucket: bucket.clone(),
                    prefix: config.log_prefix.clone(),
                })
            }),
            claims_in_flight: Arc::default(),
        })
    }

    /// Creates the log bucket if it does not exist yet, for tests and `runway dev`
    /// against moto (Terraform owns the production bucket, with its encryption,
    /// public access block and lifecycle rule). Idempotent.
    ///
    /// # Errors
    /// `Internal` with [`NoLogBucket`] if no bucket is configured; `Unavailable` or
    /// `Internal` from S3.
    pub async fn create_log_bucket(&self) -> StoreResult<()> {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let logs = self
            .logs
            .as_ref()
            .ok_or_else(|| StoreError::internal(NoLogBucket))?;
        let mut request = self.s3.create_bucket().bucket(&logs.bucket);
        // us-east-1 is the one region that refuses an explicit location constraint.
        if let Some(region) = self.s3.config().region().map(ToString::to_string)
            && region != "us-east-1"
        {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            // Some endpoints say this for a bucket of one's own too: ours if we
            // may use it.
            Err(err) if err.code() == Some("BucketAlreadyExists") => {
                match self.s3.head_bucket().bucket(&logs.bucket).send().await {
                    Ok(_) => Ok(()),
                    Err(_) => Err(sdk_error(err)),
                }
            }
            Err(err) => Err(sdk_error(err)),
        }
    }

    /// The S3 client, for tests that inspect log objects.
    #[must_use]
    pub fn s3_client(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    /// The log bucket and key prefix, if a bucket is configured.
    #[must_use]
    pub fn log_location(&self) -> Option<(&str, &str)> {
        self.logs
            .as_ref()
            .map(|logs| (logs.bucket.as_str(), logs.prefix.as_str()))
    }

    /// The SDK client, for operations tooling and tests that inspect the tables
    /// (`DescribeTable`, raw items). Application code goes through the store traits.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table prefix this store was configured with.
    #[must_use]
    pub fn table_prefix(&self) -> &str {
        &self.tables.prefix
    }
}

#[async_trait]
impl StoreHealth for DynamoStore {
    fn backend(&self) -> &'static str {
        "dynamodb"
    }

    /// An eventually consistent `GetItem` of a key that never exists: a data-plane
    /// round trip (0.5 RCU) that proves the endpoint, the credentials, the IAM
    /// policy and the table, without the control plane's low rate limits.
    async fn ping(&self) -> StoreResult<()> {
        self.client
            .get_item()
            .table_name(&self.tables.lookups)
            .key(schema::LOOKUP_KEY, AttributeValue::S("ping#".into()))
            .projection_expression(schema::LOOKUP_KEY)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }
}
