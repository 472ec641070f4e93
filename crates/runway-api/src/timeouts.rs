//! How long a request may take, route by route.
//!
//! Every request must produce its response (the status and headers) within the
//! request timeout (`RUNWAY_REQUEST_TIMEOUT_SECONDS`), or it is answered with 503
//! `request_timeout` and its handler is dropped. Three routes wait on purpose and
//! get their own bound instead:
//!
//! * `POST /agent/v1/jobs/claim?wait=S` — the request timeout **plus** the longest
//!   wait the server grants (`claim_wait_max`, 20 s locally, 0 on Lambda), so a
//!   claim that waited its full term still has the whole ordinary budget to answer;
//! * `POST /agent/v1/jobs/{id}/lease?wait=S` — likewise, plus the longest a lease
//!   may wait (the renewal interval, a third of the lease; 0 where leases do not
//!   wait);
//! * `GET /api/v1/jobs/{id}/log/stream` — its head is bounded like any request, and
//!   its body, the live stream, is not bounded here at all: it ends when the job's
//!   log is complete (so at the latest the job's own timeout, enforced by the agent
//!   and the reaper), or at shutdown, which ends every stream at once.
//!
//! The body has a bound of its own, enforced where bodies are read
//! (`extract::read_body`): all of it must arrive within `RUNWAY_BODY_READ_TIMEOUT_SECONDS`
//! of the handler asking for it, else 408 `body_timeout`. It is a total, not an
//! idle timeout, so a client trickling one byte a second does not hold a request
//! open. The header-read timeout and the connection cap are the server's, not the
//! router's (`runway-server`'s accept loop), because no request exists yet.
//!
//! This is a tower layer of its own rather than `tower_http::timeout`, because the
//! bound depends on the matched route; and rather than an `axum::middleware`
//! function, whose future is boxed, because it runs on every request: its future is
//! `tokio::time::Timeout` mapped by a function pointer, no allocation.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse as _, Response};
use futures_util::FutureExt as _;
use futures_util::future::Map;
use tokio::time::Timeout;
use tokio::time::error::Elapsed;

use crate::error::ApiError;

/// The route template of the long-poll claim.
pub(crate) const CLAIM_ROUTE: &str = "/agent/v1/jobs/claim";
/// The route template of the lease renewal, which may wait for a cancel.
pub(crate) const LEASE_ROUTE: &str = "/agent/v1/jobs/{id}/lease";

/// The bound of each kind of request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// Every request but the long polls.
    pub(crate) request: Duration,
    /// A claim: the request timeout plus the longest claim wait.
    pub(crate) claim: Duration,
    /// A lease renewal: the request timeout plus the longest lease wait.
    pub(crate) lease: Duration,
}

impl Deadlines {
    /// The deadlines for `request`, given the longest waits the service grants.
    pub(crate) fn new(request: Duration, claim_wait: Duration, lease_wait: Duration) -> Self {
        Self {
            request,
            claim: request.saturating_add(claim_wait),
            lease: request.saturating_add(lease_wait),
        }
    }

    fn for_route(&self, route: Option<&MatchedPath>) -> Duration {
        match route.map(MatchedPath::as_str) {
            Some(CLAIM_ROUTE) => self.claim,
            Some(LEASE_ROUTE) => self.lease,
            _ => self.request,
        }
    }
}

/// Applies [`Deadlines`]; use with `Router::layer`, so the matched route is known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestTimeoutLayer(pub(crate) Deadlines);

impl<S> tower::Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            deadlines: self.0,
        }
    }
}

/// See [`RequestTimeoutLayer`].
#[derive(Debug, Clone)]
pub(crate) struct RequestTimeout<S> {
    inner: S,
    deadlines: Deadlines,
}

type Outcome = Result<Result<Response, Infallible>, Elapsed>;

/// The response, or a 503 `request_timeout` when the deadline passed first.
fn answer(outcome: Outcome) -> Result<Response, Infallible> {
    outcome.unwrap_or_else(|_| Ok(ApiError::RequestTimeout.into_response()))
}

impl<S> tower::Service<Request> for RequestTimeout<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Map<Timeout<S::Future>, fn(Outcome) -> Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let limit = self
            .deadlines
            .for_route(req.extensions().get::<MatchedPath>());
        tokio::time::timeout(limit, self.inner.call(req))
            .map(answer as fn(Outcome) -> Result<Response, Infallible>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_polls_get_their_wait_on_top_of_the_request_timeout() {
        let d = Deadlines::new(
            Duration::from_secs(30),
            Duration::from_secs(20),
            Duration::from_secs(40),
        );
        assert_eq!(d.for_route(None), Duration::from_secs(30));
        assert_eq!(d.claim, Duration::from_secs(50));
        assert_eq!(d.lease, Duration::from_secs(70));
    }
}
