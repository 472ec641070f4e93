//! Cross-cutting layers: request ids, the error envelope and the access log (CORS
//! and the security headers are in `security`).
//!
//! [`observe`] is one middleware rather than three (request id, envelope, log) because
//! each of those needs the same two facts — the request id and the final response —
//! and because the session-validation route must stay cheap: one `Instant`, one
//! header value and one log event per request, no boxing of bodies, no span.
//!
//! It runs after routing (`Router::layer`), so the matched path template is known
//! (`/api/v1/jobs/{id}`, never the raw path with ids and never a query string) and is
//! logged as `http.route`; it also wraps the fallback and the CORS layer, so unknown
//! routes and preflights get a request id too. Headers and bodies are never logged:
//! they carry tokens.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{ErrorInfo, envelope_bytes, info_for_status};

/// The request-id header, in and out.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-supplied request id that is kept.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a caller-supplied request id is safe to echo and log: 1–64 characters of
/// `[A-Za-z0-9._-]`, so it cannot forge log fields or smuggle header syntax.
#[must_use]
pub fn is_acceptable_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The request's id, in the request's extensions for any handler or extractor that
/// logs something of its own (the access line carries it already).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) HeaderValue);

impl RequestId {
    /// The id of `parts`' request, or `""` outside [`observe`] (unit tests).
    pub(crate) fn of(parts: &axum::http::request::Parts) -> &str {
        parts
            .extensions
            .get::<Self>()
            .and_then(|id| id.0.to_str().ok())
            .unwrap_or_default()
    }
}

/// This request's id as an extractor, for the service's audit records.
#[derive(Debug, Clone)]
pub(crate) struct CallId(Option<String>);

impl CallId {
    /// The id, or `None` outside [`observe`] (unit tests).
    pub(crate) fn into_option(self) -> Option<String> {
        self.0
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for CallId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let id = RequestId::of(parts);
        Ok(Self((!id.is_empty()).then(|| id.to_owned())))
    }
}

/// The caller's request id if acceptable, else a new ULID.
fn request_id(req: &Request) -> HeaderValue {
    match req.headers().get(&X_REQUEST_ID) {
        Some(v) if is_acceptable_request_id(v.as_bytes()) => v.clone(),
        _ => new_request_id(),
    }
}

fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; ulid::ULID_LEN];
    let text = ulid::Ulid::new().array_to_str(&mut buf);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Assigns the request id, renders error envelopes and logs the request once.
pub(crate) async fn observe(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();

    let mut response = next.run(req).await;

    let status = response.status();
    let mut error = response.extensions_mut().remove::<ErrorInfo>();
    if error.is_none() && (status.is_client_error() || status.is_server_error()) {
        // A rejection that did not go through `ApiError`: give it the envelope too.
        error = Some(info_for_status(status));
    }
    let id_text = id.to_str().unwrap_or_default();
    if let Some(info) = &error {
        let body = envelope_bytes(info.code, &info.message, id_text);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(body);
    }

    let route = route.as_ref().map_or("<unmatched>", MatchedPath::as_str);
    // Whole microseconds divided by 1000 print as short decimals (`2.931`), not as
    // the float noise of `as_secs_f64() * 1000.0` (`2.9306419999999997`).
    let duration_ms = start.elapsed().as_micros() as f64 / 1000.0;
    let code = error.as_ref().map(|e| e.code);
    let cause = error.as_ref().and_then(|e| e.cause.as_deref());
    if status.is_server_error() {
        tracing::error!(
            http.method = method.as_str(),
            http.route = route,
            http.status = status.as_u16(),
            duration_ms,
            request_id = id_text,
            error.code = code,
            error.cause = cause,
            "request failed"
        );
    } else {
        tracing::info!(
            http.method = method.as_str(),
            http.route = route,
            http.status = status.as_u16(),
            duration_ms,
            request_id = id_text,
            error.code = code,
            "request"
        );
    }

    response.headers_mut().insert(X_REQUEST_ID, id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_caller_request_ids_are_kept() {
        assert!(is_acceptable_request_id(b"abc-123_X.y"));
        assert!(is_acceptable_request_id(&[b'a'; 64]));
    }

    #[test]
    fn unsafe_or_long_caller_request_ids_are_replaced() {
        assert!(!is_acceptable_request_id(b""));
        assert!(!is_acceptable_request_id(&[b'a'; 65]));
        assert!(!is_acceptable_request_id(b"has space"));
        assert!(!is_acceptable_request_id(b"new\nline"));
        assert!(!is_acceptable_request_id(b"quote\"d"));
        assert!(!is_acceptable_request_id("caf\u{e9}".as_bytes()));
    }

    #[test]
    fn a_generated_request_id_is_a_ulid() {
        let id = new_request_id();
        assert!(id.to_str().unwrap().parse::<ulid::Ulid>().is_ok());
        assert!(is_acceptable_request_id(id.as_bytes()));
    }
}
