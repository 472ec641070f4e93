//! `runway serve`'s accept loop: hyper's HTTP/1.1 server with a timer, a
//! header-read timeout and a cap on open connections, drained gracefully.
//!
//! Why not `axum::serve`: it builds hyper's connection without a timer, and hyper
//! ignores its header-read timeout without one, so a client that opens a
//! connection and sends half a request line (slowloris) holds it forever, and
//! enough of them hold every file descriptor. Here:
//!
//! * **Header-read timeout** (`RUNWAY_HEADER_READ_TIMEOUT_SECONDS`): a request's
//!   line and headers must all arrive within it, or hyper answers 408 and closes the
//!   connection. hyper starts the clock whenever the connection waits for a request
//!   head, so it is also the keep-alive idle timeout: a client that keeps a
//!   connection open between requests for longer gets it closed and opens a new one
//!   (HTTP clients, the agent's included, do that by themselves).
//! * **Connection cap** (`RUNWAY_MAX_CONNECTIONS`): a semaphore permit per open
//!   connection, taken *before* `accept`. At the cap the loop stops accepting, so
//!   further connections wait in the kernel's listen backlog (and, past it, are
//!   refused by the kernel) until one closes; none is accepted only to be dropped.
//!   The choice is to wait rather than to close: a client at the cap sees a slow
//!   connect, which every HTTP client retries or times out on its own, instead of a
//!   reset it may report as an error. A warning says the cap was reached (at most
//!   once a minute, so a flood does not flood the log).
//! * **Request, body and long-poll bounds** are the router's (`runway_api`'s
//!   `timeouts`), so they hold on Lambda too.
//!
//! Graceful shutdown: when `shutdown` resolves the loop stops, the listener is
//! closed (new connections are refused), idle keep-alive connections are closed at
//! once and in-flight requests run to completion; the caller bounds that with the
//! grace period. HTTP/1.1 only, as `axum` was built here: agents and API clients
//! speak it, and a TLS proxy in front may speak HTTP/2 to browsers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// How often the "connection cap reached" warning may repeat.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// How long the loop pauses after an accept error that is not one connection's
/// (out of file descriptors, say), so it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// What bounds connections before a request exists.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time for a request's line and headers to arrive, and for an idle keep-alive
    /// connection to send its next request.
    pub header_read_timeout: Duration,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown`, then waits for the open
/// connections to finish. Each request carries `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut warned_at: Option<Instant> = None;
    tokio::pin!(shutdown);

    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if warned_at.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY) {
                    warned_at = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection cap reached (RUNWAY_MAX_CONNECTIONS): new connections \
                         wait until one closes"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        // The semaphore is never closed.
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "cannot accept connections; retrying in 1 s");
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        // Responses are written whole; Nagle would only delay the last segment.
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = graceful
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // A client that went away, or one hyper gave up on (the header
                // timeout): routine, so not above debug.
                tracing::debug!(client.addr = %peer, error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one connection, which say nothing about the listener.
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
