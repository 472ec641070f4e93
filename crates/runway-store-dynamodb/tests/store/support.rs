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
//! DynamoDB calls go through [`Proxy`], a few dozen lines of HTTP/1.1 relay on a
//! loopback port, for three reasons:
//!
//! * **DynamoDB's atomicity.** On DynamoDB every request is atomic, a transaction
//!   included. moto's are not, across its server threads: a transaction that is
//!   canceled restores a deep copy of every table it touched, taken before it began,
//!   so a concurrent request's committed write can vanish. The proxy passes one
//!   request at a time to moto, which makes each atomic, as DynamoDB's are, while
//!   the store's calls (a read, a transaction, a re-read, …) still interleave freely
//!   between concurrent callers: the races the concurrency tests are about.
//! * **IAM.** Every request is checked against the function's IAM policy in
//!   `iam.tf` and refused as IAM would refuse it if the policy does not grant it
//!   (`iam.rs`), so a store change that needs a new permission fails here, not in
//!   a deployment.
//! * **Lost responses.** [`Proxy::lose_next`] lets a request reach moto and then
//!   answers the client with a 500 instead of moto's response, once: the SDK
//!   retries a write that already landed, which is how the store's "recognise our
//!   own write" paths get exercised.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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
    let proxy = Proxy::start(endpoint()).await;
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

/// Which request a [`Proxy`] loses the response of.
type Matcher = Box<dyn Fn(&str, &[u8]) -> bool + Send + Sync>;

/// A loopback HTTP/1.1 relay to moto: one request at a time, and optionally one
/// response lost (see the module docs). It serves until dropped.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    state: Arc<ProxyState>,
    /// Aborted on drop, unless [`Proxy::detach`]ed.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

struct ProxyState {
    /// `host:port` of moto.
    upstream: String,
    /// Held while one request is at moto.
    one_at_a_time: tokio::sync::Mutex<()>,
    lose: Mutex<Option<Matcher>>,
    lost: AtomicUsize,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Proxy {
    /// Starts a relay to `upstream` (`http://host:port`) on a free loopback port.
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(ProxyState {
            upstream: upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            one_at_a_time: tokio::sync::Mutex::new(()),
            lose: Mutex::new(None),
            lost: AtomicUsize::new(0),
        });
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, Arc::clone(&shared)));
            }
        });
        Self {
            endpoint,
            state,
            task: Some(task),
        }
    }

    /// Lets the relay serve until the runtime ends, without this handle.
    pub fn detach(mut self) {
        self.task = None;
    }

    /// Loses the response of the next request whose `X-Amz-Target` ends with
    /// `operation` (`TransactWriteItems`, `UpdateItem`, …) and whose body contains
    /// `marker`: moto applies it, the client gets a 500 and retries.
    pub fn lose_next(&self, operation: &'static str, marker: &'static str) {
        *self.state.lose.lock().expect("lock") = Some(Box::new(move |target, body| {
            target.ends_with(&format!(".{operation}"))
                && body.windows(marker.len()).any(|w| w == marker.as_bytes())
        }));
    }

    /// How many responses have been lost so far.
    pub fn lost(&self) -> usize {
        self.state.lost.load(Ordering::SeqCst)
    }
}

/// One HTTP/1.1 message: the head (request or status line and headers) and body.
struct Message {
    head: String,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.head.clone().into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Reads one message with a `Content-Length` body (every DynamoDB request and
/// response has one); without one, a request has no body and a response runs to
/// EOF. `None` at EOF before a message.
async fn read_message<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    request: bool,
) -> std::io::Result<Option<Message>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut message = Message {
        head,
        body: Vec::new(),
    };
    match message.header("content-length").map(str::parse::<usize>) {
        Some(Ok(length)) => {
            message.body = vec![0; length];
            reader.read_exact(&mut message.body).await?;
        }
        _ if request => {}
        _ => {
            reader.read_to_end(&mut message.body).await?;
        }
    }
    Ok(Some(message))
}

async fn relay(client: TcpStream, state: Arc<ProxyState>) {
    let (read, mut write) = client.into_split();
    let mut reader = BufReader::new(read);
    while let Ok(Some(request)) = read_message(&mut reader, true).await {
        let target = request
            .header("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        if let Some(need) = crate::iam::refused(&target, &request.body) {
            if write
                .write_all(crate::iam::denial(&need).as_bytes())
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        let response = {
            let _one = state.one_at_a_time.lock().await;
            let Ok(upstream) = TcpStream::connect(&state.upstream).await else {
                return;
            };
            let (up_read, mut up_write) = upstream.into_split();
            if up_write.write_all(&request.bytes()).await.is_err() {
                return;
            }
            match read_message(&mut BufReader::new(up_read), false).await {
                Ok(Some(response)) => response,
                _ => return,
            }
        };
        let lose = {
            let mut matcher = state.lose.lock().expect("lock");
            let hit = matcher.as_ref().is_some_and(|m| m(&target, &request.body));
            if hit {
                *matcher = None;
            }
            hit
        };
        if lose {
            state.lost.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"the test proxy lost the response"}"#;
            let lost = format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/x-amz-json-1.0\r\n\
                 x-amzn-ErrorType: InternalServerError\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = write.write_all(lost.as_bytes()).await;
            return;
        }
        let framed = response.header("content-length").is_some();
        if write.write_all(&response.bytes()).await.is_err() || !framed {
            return;
        }
    }
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
        .create_registration_token(&token)
        .await
        .expect("create a token");
    store
        .register_agent(&token.token_hash, agent(queue, labels, capacity), t0())
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
        .claim_job(&claim_request(agent, now), now)
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
