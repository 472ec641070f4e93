//! # runway-moto-proxy
//!
//! Test support: [`Proxy`], a loopback HTTP/1.1 relay in front of `moto_server`
//! for DynamoDB requests. The store's own tests (`runway-store-dynamodb`) and the
//! end-to-end stories (`runway-server`'s `tests/cli`) point the SDK at it instead
//! of at moto, for three reasons:
//!
//! * **DynamoDB's atomicity.** On DynamoDB every request is atomic, a transaction
//!   included. moto's are not, across its server threads: a `TransactWriteItems`
//!   deep-copies every table it touches before it begins and, if it is canceled,
//!   puts that copy back, so a concurrent request's committed write can vanish
//!   (a claim or a finish undone, an attempt reaped as lost). The relay passes one
//!   request at a time to moto, which makes each atomic, as DynamoDB's are, while
//!   the store's calls (a read, a transaction, a re-read, …) still interleave
//!   freely between concurrent callers: the races the tests are about. moto runs
//!   Python under one interpreter lock, so it did little in parallel anyway.
//! * **Timeouts as on DynamoDB.** One at a time means a queue, and a request can
//!   wait longer for its turn than the SDK's attempt timeout (2 s in Runway). A
//!   request whose client gives up while it waits is dropped, never sent: on
//!   DynamoDB a request that timed out before it arrived does not happen, whereas
//!   here it would land seconds later, after the store had reported a failure and
//!   moved on (a claim nobody hears of, holding the agent's capacity until the
//!   lease runs out). A request that reached moto runs to the end, as on DynamoDB.
//! * **Lost responses.** [`Proxy::lose_next`] lets a request reach moto and then
//!   answers the client with a 500 instead of moto's response, once: the SDK
//!   retries a write that already landed, which is how the store's "recognise our
//!   own write" paths get exercised.
//! * **IAM.** Every request is checked against the Lambda function's IAM policy
//!   in `deploy/terraform/modules/runway/iam.tf` and refused as IAM would refuse it
//!   when the policy does not grant it ([`iam`] module docs), so a change that needs
//!   a new permission fails its tests, not a deployment. [`Proxy::denied`] lists
//!   the refusals, for tests whose caller may hide one (a real server that retries,
//!   or only logs a background task's failure).
//! * **Counting.** [`Proxy::traffic`] says how many requests of each operation
//!   went through, how many moto refused (a canceled transaction, a failed
//!   condition), how many were dropped after their client gave up, and how long
//!   moto spent on them, which is where a slow story's time goes.
//!
//! S3 requests are not relayed (their bodies may be streamed without a
//! `Content-Length`, and moto's S3 is not affected by the transactions' copies):
//! point the S3 endpoint at moto itself.
//!
//! The relay reads one request with a `Content-Length` body (every DynamoDB request
//! has one), opens a fresh connection to moto for it, and relays one response; the
//! client's connection is kept alive between requests.

#![forbid(unsafe_code)]

mod iam;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Decides which request a [`Proxy`] loses the response of: `(X-Amz-Target, body)`.
type Matcher = Box<dyn Fn(&str, &[u8]) -> bool + Send + Sync>;

/// A loopback relay to moto: one request at a time, optionally one response lost,
/// every request counted (see the crate docs). It serves until dropped.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`: the endpoint to give the SDK.
    pub endpoint: String,
    state: Arc<State>,
    /// Aborted on drop, unless [`Proxy::detach`]ed.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

struct State {
    /// `host:port` of moto.
    upstream: String,
    /// Held while one request is at moto.
    one_at_a_time: tokio::sync::Mutex<()>,
    /// What to lose, and how many more times.
    lose: Mutex<Option<(Matcher, usize)>>,
    lost: AtomicUsize,
    traffic: Mutex<Traffic>,
    /// Every refusal the relay answered in IAM's place, as its message.
    denied: Mutex<Vec<String>>,
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
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the moto proxy");
        let endpoint = format!(
            "http://{}",
            listener.local_addr().expect("the proxy's address")
        );
        let state = Arc::new(State {
            upstream: upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            one_at_a_time: tokio::sync::Mutex::new(()),
            lose: Mutex::new(None),
            lost: AtomicUsize::new(0),
            traffic: Mutex::new(Traffic::default()),
            denied: Mutex::new(Vec::new()),
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
        self.lose_next_n(operation, marker, 1);
    }

    /// [`Proxy::lose_next`] for the next `times` such requests: with as many as
    /// the SDK makes attempts, the call fails although its first attempt landed.
    pub fn lose_next_n(&self, operation: &'static str, marker: &'static str, times: usize) {
        *self
            .state
            .lose
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((
            Box::new(move |target, body| {
                target.ends_with(&format!(".{operation}"))
                    && body.windows(marker.len()).any(|w| w == marker.as_bytes())
            }),
            times,
        ));
    }

    /// How many responses have been lost so far.
    #[must_use]
    pub fn lost(&self) -> usize {
        self.state.lost.load(Ordering::SeqCst)
    }

    /// Every request refused so far because `iam.tf` does not grant it, each as
    /// the action and table it needed. A caller that retries or only logs a
    /// failure (a server's background task, an agent's retry loop) hides the
    /// refusal from the test; this does not.
    #[must_use]
    pub fn denied(&self) -> Vec<String> {
        self.state
            .denied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What went through so far.
    #[must_use]
    pub fn traffic(&self) -> Traffic {
        self.state
            .traffic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The requests of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Operation {
    /// How many went through to moto.
    pub requests: u64,
    /// How many moto answered with an error (a canceled transaction, a failed
    /// condition, a conflict).
    pub refused: u64,
    /// Time spent at moto, in total.
    pub at_moto: Duration,
    /// The longest one took at moto.
    pub slowest: Duration,
    /// How many were never sent to moto: their client gave up waiting for their
    /// turn (the SDK's attempt timeout), and retried or reported a failure.
    pub abandoned: u64,
}

/// Every request that went through a [`Proxy`], by operation (`GetItem`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// By the operation named in `X-Amz-Target`.
    pub operations: BTreeMap<String, Operation>,
    /// Time requests spent waiting for their turn, in total.
    pub queued: Duration,
}

impl Traffic {
    /// Every request, all operations together.
    #[must_use]
    pub fn total(&self) -> Operation {
        self.operations
            .values()
            .fold(Operation::default(), |sum, op| Operation {
                requests: sum.requests + op.requests,
                refused: sum.refused + op.refused,
                at_moto: sum.at_moto + op.at_moto,
                slowest: sum.slowest.max(op.slowest),
                abandoned: sum.abandoned + op.abandoned,
            })
    }

    fn record(&mut self, operation: &str, refused: bool, at_moto: Duration, queued: Duration) {
        let op = self.operations.entry(operation.to_owned()).or_default();
        op.requests += 1;
        op.refused += u64::from(refused);
        op.at_moto += at_moto;
        op.slowest = op.slowest.max(at_moto);
        self.queued += queued;
    }

    fn abandoned(&mut self, operation: &str) {
        self.operations
            .entry(operation.to_owned())
            .or_default()
            .abandoned += 1;
    }
}

/// A table: one line per operation, then the total.
impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = |f: &mut fmt::Formatter<'_>, name: &str, op: &Operation| {
            let mean_ms = if op.requests == 0 {
                0.0
            } else {
                op.at_moto.as_secs_f64() * 1000.0 / op.requests as f64
            };
            writeln!(
                f,
                "{name:<20} {:>7} {:>7} {:>9} {:>9.1} {:>7.2} {:>8.1}",
                op.requests,
                op.refused,
                op.abandoned,
                op.at_moto.as_secs_f64(),
                mean_ms,
                op.slowest.as_secs_f64() * 1000.0,
            )
        };
        writeln!(
            f,
            "{:<20} {:>7} {:>7} {:>9} {:>9} {:>7} {:>8}",
            "operation", "calls", "refused", "abandoned", "moto_s", "mean_ms", "max_ms"
        )?;
        for (name, op) in &self.operations {
            line(f, name, op)?;
        }
        line(f, "total", &self.total())?;
        write!(
            f,
            "waiting for a turn: {:.1} s in total",
            self.queued.as_secs_f64()
        )
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

    /// The status code of a response.
    fn status(&self) -> Option<u16> {
        self.head.split_whitespace().nth(1)?.parse().ok()
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

/// Resolves once the client has closed its connection (EOF or an error); stays
/// pending if it sends anything.
async fn closed<R: tokio::io::AsyncRead + Unpin>(client: &mut BufReader<R>) {
    match client.fill_buf().await {
        Ok([]) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// What became of a request.
enum Outcome {
    /// moto's response, how long moto took, how long the request waited.
    Answered(Message, Duration, Duration),
    /// The client gave up (its SDK's attempt timeout) before the request's turn.
    Abandoned,
    /// moto could not be reached, or answered nothing.
    Failed,
}

/// One request at moto, in its turn. A request whose client gives up while it
/// waits is never sent: on DynamoDB a request that timed out before it arrived
/// does not happen either, whereas here it would land seconds later, after the
/// SDK had reported a failure and the store had moved on (a claim nobody knows
/// about, say). Once at moto, a request runs to the end like any other.
async fn at_moto<R: tokio::io::AsyncRead + Unpin>(
    state: &State,
    request: &Message,
    client: &mut BufReader<R>,
) -> Outcome {
    let asked = Instant::now();
    let _turn = tokio::select! {
        turn = state.one_at_a_time.lock() => turn,
        () = closed(client) => return Outcome::Abandoned,
    };
    let began = Instant::now();
    let Ok(upstream) = TcpStream::connect(&state.upstream).await else {
        return Outcome::Failed;
    };
    let (up_read, mut up_write) = upstream.into_split();
    if up_write.write_all(&request.bytes()).await.is_err() {
        return Outcome::Failed;
    }
    match read_message(&mut BufReader::new(up_read), false).await {
        Ok(Some(response)) => Outcome::Answered(response, began.elapsed(), began - asked),
        _ => Outcome::Failed,
    }
}

async fn relay(client: TcpStream, state: Arc<State>) {
    let (read, mut write) = client.into_split();
    let mut reader = BufReader::new(read);
    while let Ok(Some(request)) = read_message(&mut reader, true).await {
        let target = request
            .header("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        let operation = target.rsplit('.').next().unwrap_or_default();
        if let Some(need) = iam::refused(&target, &request.body) {
            state
                .denied
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(iam::describe(&need));
            if write
                .write_all(iam::denial(&need).as_bytes())
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        let (response, took, queued) = match at_moto(&state, &request, &mut reader).await {
            Outcome::Answered(response, took, queued) => (response, took, queued),
            Outcome::Abandoned => {
                state
                    .traffic
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .abandoned(operation);
                return;
            }
            Outcome::Failed => return,
        };
        let refused = response.status().is_none_or(|s| s >= 300);
        state
            .traffic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(operation, refused, took, queued);
        let lose = {
            let mut lose = state.lose.lock().unwrap_or_else(PoisonError::into_inner);
            let hit = lose
                .as_ref()
                .is_some_and(|(matches, _)| matches(&target, &request.body));
            if hit && let Some((_, times)) = lose.as_mut() {
                *times -= 1;
                if *times == 0 {
                    *lose = None;
                }
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
