//! Test helpers: a small real HTTP/1.1 server whose answers a test scripts.
//!
//! The agent's client talks to it over a loopback socket exactly as it talks to
//! Runway (reqwest, keep-alive, timeouts), so retries, status mapping and headers
//! are tested for real without depending on the server crate, which the agent must
//! not. It understands only what reqwest sends: a request line, headers and a
//! `content-length` body.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use reqwest::Url;
use runway_protocol::Timings;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// One request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    /// Its position among all requests, from 0.
    pub(crate) count: usize,
    pub(crate) method: String,
    /// Path and query, e.g. `/agent/v1/jobs/claim?wait=20`.
    pub(crate) path: String,
    /// Lower-cased names.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of one query parameter.
    pub(crate) fn query(&self, name: &str) -> Option<String> {
        let url: Url = format!("http://x{}", self.path).parse().ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(crate) fn raw(status: u16, body: &str) -> Self {
        Self {
            body: body.as_bytes().to_vec(),
            ..Self::status(status)
        }
        .header("content-type", "application/json")
    }

    pub(crate) fn json(status: u16, body: &impl Serialize) -> Self {
        Self::raw(status, &serde_json::to_string(body).unwrap())
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// The server; it stops when the test's runtime ends.
#[derive(Debug)]
pub(crate) struct FakeServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeServer {
    pub(crate) async fn start(
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), handler).await
    }

    pub(crate) async fn start_on(
        addr: SocketAddr,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept_log = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&accept_log), Arc::clone(&handler)));
            }
        });
        Self { addr, log }
    }

    pub(crate) fn url(&self) -> Url {
        format!("http://{}", self.addr).parse().unwrap()
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

async fn serve(mut stream: TcpStream, log: Arc<Mutex<Vec<Recorded>>>, handler: Arc<Handler>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let path = request_line.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let recorded = {
            let mut log = log.lock().unwrap();
            let recorded = Recorded {
                count: log.len(),
                method,
                path,
                headers,
                body,
            };
            log.push(recorded.clone());
            recorded
        };
        let reply = handler(&recorded);
        let mut out = format!("HTTP/1.1 {} Scripted\r\n", reply.status);
        // A 204 has no body and must not say it has one.
        if reply.status != 204 {
            out.push_str(&format!("content-length: {}\r\n", reply.body.len()));
        }
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&reply.body);
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// Timings for tests: short intervals, the protocol's chunk and log caps.
pub(crate) fn timings() -> Timings {
    Timings {
        heartbeat_interval_seconds: 30,
        offline_after_seconds: 90,
        job_lease_seconds: 120,
        lease_renew_interval_seconds: 40,
        claim_wait_max_seconds: 20,
        poll_interval_seconds: 0,
        cancel_grace_seconds: 10,
        log_flush_interval_ms: 50,
        log_chunk_max_bytes: 256 * 1024,
        log_max_bytes: 64 * 1024 * 1024,
    }
}
