//! The HTTP side of the agent protocol: one method per call of
//! [`runway_protocol`]'s table, retries, and the error envelope.
//!
//! Three types, one per token tier, so a call cannot go out with the wrong
//! credential: [`Client`] (no token yet: `register`), [`AgentApi`] (the agent token:
//! `config`, `heartbeat`, `claim`, `disconnect`) and [`JobApi`] (one job's token:
//! `start`, `lease`, `logs`, `finish`).
//!
//! **Retries live here, once, for every call.** Connection errors, timeouts, 408,
//! 429 and 5xx are retried with [`Backoff`] (a `Retry-After` in seconds wins); the
//! caller sees only answers it has to act on. Most calls retry for as long as it
//! takes ([`Retry::Forever`]): an agent outlives a server restart, its log uploads
//! resume and its finish is eventually accepted. Callers that must stop waiting
//! (shutdown, a job that is canceled meanwhile) drop the future, which cancels the
//! request. Only `disconnect`, on the way out, gives up after a few attempts.
//!
//! **What a status means depends on the token** ([`Tier`]): a 401 on an
//! agent-token call means the agent is gone ([`ClientError::AgentTokenRejected`],
//! fatal to the process), while a 401, 404 or 409 on a job-token call only means
//! that one job is not ours any more ([`ClientError::JobGone`]).
//!
//! Tokens go out with `bearer_auth`, which marks the header sensitive, and are
//! never formatted: [`Token`]'s `Debug` redacts them.

use std::fmt;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode, Url};
use runway_protocol::{
    AgentConfig, ClaimResponse, ErrorEnvelope, FinishPending, FinishRequest, FinishResponse,
    HeartbeatRequest, HeartbeatResponse, LOG_NEXT_OFFSET_HEADER, LeaseResponse, LogAck,
    POLL_INTERVAL_HEADER, RegisterRequest, RegisterResponse, Token, WAIT_PARAM,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::{Backoff, parse_retry_after};

/// Establishing a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole JSON call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// One log chunk (up to 256 KiB) on a slow uplink.
const LOG_TIMEOUT: Duration = Duration::from_secs(60);
/// A claim is held open for `wait` seconds; this much more covers the server's own
/// work and the network before the request counts as timed out.
const CLAIM_SLACK: Duration = Duration::from_secs(15);
/// `disconnect` is best effort on the way out.
const DISCONNECT_ATTEMPTS: u32 = 3;
/// How much of an unexpected (non-envelope) body to quote in a message.
const QUOTE_MAX: usize = 300;

/// How long to keep retrying a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Until it gets an answer (the caller may drop the future).
    Forever,
    /// At most this many attempts in all.
    Attempts(u32),
}

/// Which token a call carries; decides what a 401/404/409 means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Registration,
    Agent,
    Job,
}

/// An answer the agent did not expect, as the server explained it.
#[derive(Debug, Clone)]
pub struct ServerMessage {
    pub(crate) status: StatusCode,
    /// The envelope's `code`, when the body was an envelope.
    pub(crate) code: Option<String>,
    /// The envelope's message, or the start of the body.
    pub(crate) message: String,
    pub(crate) request_id: Option<String>,
}

impl ServerMessage {
    async fn read(response: Response) -> Self {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Self::parse(status, &body)
    }

    fn parse(status: StatusCode, body: &str) -> Self {
        match serde_json::from_str::<ErrorEnvelope>(body) {
            Ok(envelope) => Self {
                status,
                code: Some(envelope.error.code),
                message: envelope.error.message,
                request_id: Some(envelope.error.request_id).filter(|r| !r.is_empty()),
            },
            Err(_) => Self {
                status,
                code: None,
                message: body.trim().chars().take(QUOTE_MAX).collect(),
                request_id: None,
            },
        }
    }
}

impl fmt::Display for ServerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status.as_u16())?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

/// Why one attempt failed; kept for [`ClientError::GaveUp`].
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No answer: connection refused, reset, TLS, DNS or timeout.
    #[error("cannot reach the server")]
    Transport(#[source] reqwest::Error),
    /// A 408, 429 or 5xx.
    #[error("{0}")]
    Status(ServerMessage),
}

/// A call's outcome that the caller must act on (everything retryable was retried).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `register` got a 401 or 403.
    #[error(
        "the server refused the registration token ({0}); it may be unknown, expired, used up \
         or revoked: set RUNWAY_AGENT_REGISTRATION_TOKEN to a new one"
    )]
    RegistrationRejected(ServerMessage),
    /// An agent-token call got a 401: the agent was deleted or its token rotated.
    #[error("the server rejected the agent token ({0})")]
    AgentTokenRejected(ServerMessage),
    /// A job-token call got a 401, 404 or 409: the job is not this agent's any more.
    #[error("the job is no longer this agent's ({0})")]
    JobGone(ServerMessage),
    /// Any other answer outside the contract.
    #[error("{call}: unexpected answer {detail}")]
    Unexpected {
        call: &'static str,
        detail: ServerMessage,
    },
    /// A success whose body is not the protocol's type.
    #[error("{call}: cannot read the answer")]
    Decode {
        call: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// [`Retry::Attempts`] ran out.
    #[error("{call}: giving up after {attempts} attempts")]
    GaveUp {
        call: &'static str,
        attempts: u32,
        #[source]
        last: Failure,
    },
    /// The TLS backend could not be set up.
    #[error("cannot set up the HTTP client")]
    Build(#[source] reqwest::Error),
    /// The request itself is malformed (a token that is not a valid header
    /// value, say): retrying cannot help.
    #[error("{call}: cannot build the request")]
    Request {
        call: &'static str,
        #[source]
        source: reqwest::Error,
    },
}

enum Body {
    Empty,
    Json(Vec<u8>),
    Bytes(Vec<u8>),
}

impl Body {
    fn json(value: &impl Serialize) -> Self {
        // The protocol's request types are plain structs of strings and numbers.
        Self::Json(serde_json::to_vec(value).expect("protocol types always serialize"))
    }
}

/// One call, built again for each attempt.
struct Call<'a> {
    name: &'static str,
    method: Method,
    url: Url,
    token: &'a Token,
    body: Body,
    timeout: Duration,
    retry: Retry,
}

/// What `jobs/claim` said.
#[derive(Debug)]
pub(crate) enum Claim {
    /// A job to run (boxed: it is much larger than the other variant).
    Job(Box<ClaimResponse>),
    /// Nothing to do: claim again after this long (`None`: the header was missing).
    Empty { poll_interval: Option<Duration> },
}

/// What `PUT jobs/{id}/logs` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogPut {
    /// 200: the log now has this many bytes.
    Accepted { next_offset: u64 },
    /// 416: the chunk did not start where the server's log ends; send from here
    /// (`None`: the server sent no `x-log-next-offset`).
    Mismatch { next_offset: Option<u64> },
}

/// What `jobs/{id}/finish` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finish {
    /// 200: the attempt is over.
    Done(FinishResponse),
    /// 202: the server has the log only up to here.
    Pending { next_offset: u64 },
}

/// The server, before the agent has a token.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
}

impl Client {
    /// `base` is the server's URL (http or https; validated by the config).
    pub(crate) fn new(base: Url) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("runway-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self { http, base })
    }

    /// `<base>/agent/v1/<segments…>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("the config accepts only http(s) URLs, which have a path")
            .pop_if_empty()
            .extend(["agent", "v1"])
            .extend(segments);
        url
    }

    /// `POST register`.
    pub(crate) async fn register(
        &self,
        registration_token: &Token,
        request: &RegisterRequest,
    ) -> Result<RegisterResponse, ClientError> {
        let call = "register";
        let response = self
            .send(Call {
                name: call,
                method: Method::POST,
                url: self.url(&["register"]),
                token: registration_token,
                body: Body::json(request),
                timeout: CALL_TIMEOUT,
                retry: Retry::Forever,
            })
            .await?;
        match response.status() {
            StatusCode::OK | StatusCode::CREATED => decode(call, response).await,
            _ => Err(refusal(call, Tier::Registration, response).await),
        }
    }

    /// The calls that carry this agent's token.
    pub(crate) fn agent(&self, token: Token) -> AgentApi {
        AgentApi {
            client: self.clone(),
            token,
        }
    }

    /// Sends `call`, retrying what is worth retrying; returns any other answer.
    async fn send(&self, call: Call<'_>) -> Result<Response, ClientError> {
        let mut backoff = Backoff::new();
        loop {
            let mut request = self
                .http
                .request(call.method.clone(), call.url.clone())
                .bearer_auth(call.token.expose())
                .timeout(call.timeout);
            request = match &call.body {
                Body::Empty => request,
                Body::Json(bytes) => request
                    .header(CONTENT_TYPE, "application/json")
                    .body(bytes.clone()),
                Body::Bytes(bytes) => request
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(bytes.clone()),
            };
            let (failure, retry_after) = match request.send().await {
                Ok(response) if is_retryable(response.status()) => {
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    (
                        Failure::Status(ServerMessage::read(response).await),
                        retry_after,
                    )
                }
                Ok(response) => return Ok(response),
                Err(err) if err.is_builder() => {
                    return Err(ClientError::Request {
                        call: call.name,
                        source: err,
                    });
                }
                Err(err) => (Failure::Transport(err), None),
            };
            let attempts = backoff.attempts() + 1;
            if let Retry::Attempts(max) = call.retry
                && attempts >= max
            {
                return Err(ClientError::GaveUp {
                    call: call.name,
                    attempts,
                    last: failure,
                });
            }
            let delay = match retry_after {
                Some(delay) => {
                    backoff.skip();
                    delay
                }
                None => backoff.next_delay(),
            };
            tracing::warn!(
                call = call.name,
                attempt = attempts,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %crate::Chain(&failure),
                "call failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// Calls made with the agent token.
#[derive(Debug, Clone)]
pub(crate) struct AgentApi {
    client: Client,
    token: Token,
}

impl AgentApi {
    fn call(&self, name: &'static str, method: Method, url: Url, body: Body) -> Call<'_> {
        Call {
            name,
            method,
            url,
            token: &self.token,
            body,
            timeout: CALL_TIMEOUT,
            retry: Retry::Forever,
        }
    }

    /// `GET config`: checks the saved token at start-up and fetches the timings.
    pub(crate) async fn config(&self) -> Result<AgentConfig, ClientError> {
        let name = "config";
        let url = self.client.url(&["config"]);
        let response = self
            .client
            .send(self.call(name, Method::GET, url, Body::Empty))
            .await?;
        match response.status() {
            StatusCode::OK => decode(name, response).await,
            _ => Err(refusal(name, Tier::Agent, response).await),
        }
    }

    /// `POST heartbeat`.
    pub(crate) async fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        let name = "heartbeat";
        let url = self.client.url(&["heartbeat"]);
        let response = self
            .client
            .send(self.call(name, Method::POST, url, Body::json(request)))
            .await?;
        match response.status() {
            StatusCode::OK => decode(name, response).await,
            _ => Err(refusal(name, Tier::Agent, response).await),
        }
    }

    /// `POST jobs/claim?wait=S`, held open up to `wait_seconds` by the server.
    pub(crate) async fn claim(&self, wait_seconds: u32) -> Result<Claim, ClientError> {
        let name = "claim";
        let mut url = self.client.url(&["jobs", "claim"]);
        url.query_pairs_mut()
            .append_pair(WAIT_PARAM, &wait_seconds.to_string());
        let mut call = self.call(name, Method::POST, url, Body::Empty);
        call.timeout = Duration::from_secs(wait_seconds.into()) + CLAIM_SLACK;
        let response = self.client.send(call).await?;
        let poll_interval = response
            .headers()
            .get(POLL_INTERVAL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match response.status() {
            StatusCode::OK => Ok(Claim::Job(Box::new(decode(name, response).await?))),
            StatusCode::NO_CONTENT => Ok(Claim::Empty { poll_interval }),
            _ => Err(refusal(name, Tier::Agent, response).await),
        }
    }

    /// `POST disconnect`: best effort, a few attempts.
    pub(crate) async fn disconnect(&self) -> Result<(), ClientError> {
        let name = "disconnect";
        let url = self.client.url(&["disconnect"]);
        let mut call = self.call(name, Method::POST, url, Body::Empty);
        call.retry = Retry::Attempts(DISCONNECT_ATTEMPTS);
        let response = self.client.send(call).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(refusal(name, Tier::Agent, response).await)
        }
    }

    /// The calls for one claimed job, with its token.
    pub(crate) fn job(&self, job_id: &str, job_token: Token) -> JobApi {
        JobApi {
            client: self.client.clone(),
            job_id: job_id.to_owned(),
            token: job_token,
        }
    }
}

/// Calls made with one job's token.
#[derive(Debug, Clone)]
pub(crate) struct JobApi {
    client: Client,
    job_id: String,
    token: Token,
}

impl JobApi {
    fn call(&self, name: &'static str, method: Method, url: Url, body: Body) -> Call<'_> {
        Call {
            name,
            method,
            url,
            token: &self.token,
            body,
            timeout: CALL_TIMEOUT,
            retry: Retry::Forever,
        }
    }

    fn url(&self, action: &str) -> Url {
        self.client.url(&["jobs", &self.job_id, action])
    }

    /// `POST jobs/{id}/start`.
    pub(crate) async fn start(&self) -> Result<LeaseResponse, ClientError> {
        self.lease_like("start").await
    }

    /// `POST jobs/{id}/lease?wait=S`: extends the lease at once, then the server may
    /// hold the answer up to `wait_seconds` until the job is canceled.
    pub(crate) async fn lease(&self, wait_seconds: u32) -> Result<LeaseResponse, ClientError> {
        let name = "lease";
        let mut url = self.url(name);
        url.query_pairs_mut()
            .append_pair(WAIT_PARAM, &wait_seconds.to_string());
        let mut call = self.call(name, Method::POST, url, Body::Empty);
        call.timeout = CALL_TIMEOUT + Duration::from_secs(wait_seconds.into());
        let response = self.client.send(call).await?;
        match response.status() {
            StatusCode::OK => decode(name, response).await,
            _ => Err(refusal(name, Tier::Job, response).await),
        }
    }

    async fn lease_like(&self, name: &'static str) -> Result<LeaseResponse, ClientError> {
        let call = self.call(name, Method::POST, self.url(name), Body::Empty);
        let response = self.client.send(call).await?;
        match response.status() {
            StatusCode::OK => decode(name, response).await,
            _ => Err(refusal(name, Tier::Job, response).await),
        }
    }

    /// `PUT jobs/{id}/logs?seq=N&offset=B` with the chunk's bytes.
    pub(crate) async fn put_log(
        &self,
        seq: u64,
        offset: u64,
        bytes: &[u8],
    ) -> Result<LogPut, ClientError> {
        let name = "logs";
        let mut url = self.url("logs");
        url.query_pairs_mut()
            .append_pair("seq", &seq.to_string())
            .append_pair("offset", &offset.to_string());
        let mut call = self.call(name, Method::PUT, url, Body::Bytes(bytes.to_vec()));
        call.timeout = LOG_TIMEOUT;
        let response = self.client.send(call).await?;
        match response.status() {
            StatusCode::OK => {
                let ack: LogAck = decode(name, response).await?;
                Ok(LogPut::Accepted {
                    next_offset: ack.next_offset,
                })
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let next_offset = response
                    .headers()
                    .get(LOG_NEXT_OFFSET_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok());
                Ok(LogPut::Mismatch { next_offset })
            }
            _ => Err(refusal(name, Tier::Job, response).await),
        }
    }

    /// `POST jobs/{id}/finish`.
    pub(crate) async fn finish(&self, request: &FinishRequest) -> Result<Finish, ClientError> {
        let name = "finish";
        let call = self.call(name, Method::POST, self.url("finish"), Body::json(request));
        let response = self.client.send(call).await?;
        match response.status() {
            StatusCode::OK => Ok(Finish::Done(decode(name, response).await?)),
            StatusCode::ACCEPTED => {
                let pending: FinishPending = decode(name, response).await?;
                Ok(Finish::Pending {
                    next_offset: pending.next_offset,
                })
            }
            _ => Err(refusal(name, Tier::Job, response).await),
        }
    }
}

/// 408 (the server gave up reading), 429 (slow down) and every 5xx (including the
/// store outages the server reports as 503) are worth another attempt.
fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

async fn decode<T: DeserializeOwned>(
    call: &'static str,
    response: Response,
) -> Result<T, ClientError> {
    response
        .json()
        .await
        .map_err(|source| ClientError::Decode { call, source })
}

/// A non-success answer as an error, by what it means for this token tier.
async fn refusal(call: &'static str, tier: Tier, response: Response) -> ClientError {
    let status = response.status();
    let detail = ServerMessage::read(response).await;
    match (tier, status) {
        (Tier::Registration, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
            ClientError::RegistrationRejected(detail)
        }
        (Tier::Agent, StatusCode::UNAUTHORIZED) => ClientError::AgentTokenRejected(detail),
        (Tier::Job, StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND | StatusCode::CONFLICT) => {
            ClientError::JobGone(detail)
        }
        _ => ClientError::Unexpected { call, detail },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use runway_protocol::AttemptResult;

    use super::*;
    use crate::testutil::{FakeServer, Reply, timings};

    fn agent_api(server: &FakeServer) -> AgentApi {
        Client::new(server.url())
            .unwrap()
            .agent(Token("rwa_agent".into()))
    }

    #[test]
    fn an_envelope_is_quoted_with_its_code_and_request_id() {
        let body = r#"{"error":{"code":"log_offset_mismatch","message":"send from 10","request_id":"r1"}}"#;
        let msg = ServerMessage::parse(StatusCode::RANGE_NOT_SATISFIABLE, body);
        assert_eq!(
            msg.to_string(),
            "HTTP 416 log_offset_mismatch: send from 10 (request id r1)"
        );
        let plain = ServerMessage::parse(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>");
        assert_eq!(plain.to_string(), "HTTP 502: <html>bad gateway</html>");
    }

    #[tokio::test]
    async fn a_503_with_retry_after_is_retried_after_that_long_and_then_succeeds() {
        let server = FakeServer::start(|req| {
            if req.count == 0 {
                Reply::status(503).header("retry-after", "1")
            } else {
                Reply::json(
                    200,
                    &HeartbeatResponse {
                        agent_status: runway_protocol::AgentHealth::Online,
                        action: runway_protocol::AgentAction::None,
                        cancel_job_ids: vec![],
                        timings: timings(),
                    },
                )
            }
        })
        .await;
        let started = Instant::now();
        let answer = agent_api(&server)
            .heartbeat(&HeartbeatRequest::default())
            .await
            .unwrap();
        assert_eq!(answer.timings, timings());
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_connection_refused_is_retried_until_the_server_is_up() {
        // Bind, learn the port, close: the first attempts are refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let api = Client::new(format!("http://{addr}").parse().unwrap())
            .unwrap()
            .agent(Token("rwa_agent".into()));
        let call = tokio::spawn(async move { api.claim(0).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let server = FakeServer::start_on(addr, |_| {
            Reply::status(204).header(POLL_INTERVAL_HEADER, "3")
        })
        .await;
        let claim = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("the claim is retried within the backoff")
            .unwrap()
            .unwrap();
        assert!(matches!(
            claim,
            Claim::Empty { poll_interval: Some(d) } if d == Duration::from_secs(3)
        ));
        assert_eq!(server.requests()[0].path, "/agent/v1/jobs/claim?wait=0");
    }

    #[tokio::test]
    async fn a_401_on_an_agent_call_means_the_agent_token_was_rejected() {
        let server = FakeServer::start(|_| {
            Reply::raw(
                401,
                r#"{"error":{"code":"unauthorized","message":"no","request_id":"x"}}"#,
            )
        })
        .await;
        let err = agent_api(&server).config().await.unwrap_err();
        assert!(matches!(err, ClientError::AgentTokenRejected(_)), "{err:?}");
        let req = &server.requests()[0];
        assert_eq!(req.header("authorization"), Some("Bearer rwa_agent"));
    }

    #[tokio::test]
    async fn a_401_404_or_409_on_a_job_call_means_the_job_is_gone() {
        for status in [401, 404, 409] {
            let server = FakeServer::start(move |_| Reply::status(status)).await;
            let job = agent_api(&server).job("01JOB", Token("rwj_job".into()));
            let err = job.lease(0).await.unwrap_err();
            assert!(matches!(err, ClientError::JobGone(_)), "{status}: {err:?}");
            assert_eq!(
                server.requests()[0].header("authorization"),
                Some("Bearer rwj_job")
            );
        }
    }

    #[tokio::test]
    async fn a_log_chunk_is_raw_bytes_with_seq_and_offset_and_a_416_names_the_next_offset() {
        let server = FakeServer::start(|req| {
            if req.count == 0 {
                Reply::json(200, &LogAck { next_offset: 9 })
            } else {
                Reply::status(416).header(LOG_NEXT_OFFSET_HEADER, "4")
            }
        })
        .await;
        let job = agent_api(&server).job("01JOB", Token("rwj_job".into()));
        assert_eq!(
            job.put_log(0, 4, b"hello").await.unwrap(),
            LogPut::Accepted { next_offset: 9 }
        );
        assert_eq!(
            job.put_log(1, 9, b"x").await.unwrap(),
            LogPut::Mismatch {
                next_offset: Some(4)
            }
        );
        let req = &server.requests()[0];
        assert_eq!(req.method, "PUT");
        assert_eq!(req.path, "/agent/v1/jobs/01JOB/logs?seq=0&offset=4");
        assert_eq!(req.header("content-type"), Some("application/octet-stream"));
        assert_eq!(req.body, b"hello");
    }

    #[tokio::test]
    async fn a_finish_202_reports_where_the_log_is_missing_from() {
        let server = FakeServer::start(|req| {
            if req.count == 0 {
                Reply::json(202, &FinishPending { next_offset: 12 })
            } else {
                Reply::json(
                    200,
                    &FinishResponse {
                        status: "succeeded".into(),
                    },
                )
            }
        })
        .await;
        let job = agent_api(&server).job("01JOB", Token("rwj_job".into()));
        let request = FinishRequest {
            result: AttemptResult::Succeeded,
            exit_code: Some(0),
            log_bytes: 20,
            log_crc32: 7,
        };
        assert_eq!(
            job.finish(&request).await.unwrap(),
            Finish::Pending { next_offset: 12 }
        );
        assert!(matches!(
            job.finish(&request).await.unwrap(),
            Finish::Done(_)
        ));
        let sent: serde_json::Value = serde_json::from_slice(&server.requests()[0].body).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"result":"succeeded","exit_code":0,"log_bytes":20,"log_crc32":7})
        );
    }

    #[tokio::test]
    async fn a_refused_registration_token_says_what_to_set() {
        let server = FakeServer::start(|_| Reply::status(401)).await;
        let err = Client::new(server.url())
            .unwrap()
            .register(
                &Token("rwr_x".into()),
                &RegisterRequest {
                    name: "a".into(),
                    region: None,
                    labels: vec![],
                    queue: None,
                    capacity: Some(1),
                    version: None,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::RegistrationRejected(_)));
        assert!(err.to_string().contains("RUNWAY_AGENT_REGISTRATION_TOKEN"));
    }

    #[tokio::test]
    async fn disconnect_gives_up_after_a_few_attempts() {
        let server = FakeServer::start(|_| Reply::status(503).header("retry-after", "0")).await;
        let err = agent_api(&server).disconnect().await.unwrap_err();
        assert!(
            matches!(err, ClientError::GaveUp { attempts: 3, .. }),
            "{err:?}"
        );
        assert_eq!(server.requests().len(), 3);
    }

    #[test]
    fn job_ids_are_percent_encoded_into_one_path_segment() {
        let client = Client::new("http://h/base".parse().unwrap()).unwrap();
        assert_eq!(
            client.url(&["jobs", "a/../b", "start"]).as_str(),
            "http://h/base/agent/v1/jobs/a%2F..%2Fb/start"
        );
    }
}
