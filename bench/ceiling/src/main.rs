//! `runway-bench-ceiling`: the throughput ceiling `make bench` measures Runway against.
//!
//! This is the least an HTTP server built on the same stack as Runway (axum 0.8 on a
//! multi-threaded tokio runtime, HTTP/1.1) can do for `GET /api/v1/auth/session`:
//! route the request and write a constant JSON body of about the size of Runway's real
//! session response. There is no token parsing, no hashing, no store read, no
//! middleware and no logging. Whatever req/s it reaches on a machine is the ceiling for
//! that machine and load generator; Runway's session validation is reported as a
//! fraction of it, which cancels out most of the noise of a shared 2-core box.
//!
//! Usage: `runway-bench-ceiling [ADDR]` (default `127.0.0.1:0`). It prints
//! `listening on http://ADDR` on stdout once the socket is bound, so a script can use
//! port 0 and read back the real port, and runs until killed.

use std::io::Write as _;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// A session response shaped like Runway's `GET /api/v1/auth/session` (≈480 bytes):
/// user and session objects with ULIDs, RFC 3339 timestamps and the device fields.
const SESSION_BODY: &str = concat!(
    r#"{"user":{"id":"01K0BENCH0CE1L1NG0USER00001","username":"admin","role":"admin","#,
    r#""created_at":"2025-01-01T00:00:00.000000000Z"},"session":{"id":"01K0BENCH0CE1L1NG0SESS00001","#,
    r#""user_id":"01K0BENCH0CE1L1NG0USER00001","username":"admin","role":"admin","#,
    r#""device_name":"bench","user_agent":"curl/7.88.1","ip":"127.0.0.1","#,
    r#""created_at":"2025-01-01T00:00:00.000000000Z","last_seen_at":"2025-01-01T00:00:00.000000000Z","#,
    r#""expires_at":"2025-01-08T00:00:00.000000000Z","idle_timeout_seconds":86400}}"#,
);

/// The `/health` body, identical to Runway's.
const HEALTH_BODY: &str = r#"{"status":"ok"}"#;

async fn session() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], SESSION_BODY)
}

async fn health() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], HEALTH_BODY)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;

    // Written through a locked handle and flushed, so a parent reading our stdout
    // through a pipe sees the line at once.
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{local}")?;
    out.flush()?;
    drop(out);

    let app = Router::new()
        .route("/api/v1/auth/session", get(session))
        .route("/health", get(health));
    axum::serve(listener, app).await
}
