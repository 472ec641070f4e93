//! The API's one error type and the JSON envelope every error is rendered in.
//!
//! Handlers and extractors return [`ApiError`]; `?` on a [`StoreError`] maps it once,
//! here, instead of a `match` in every handler. [`ApiError::status`] and
//! [`ApiError::code`] are the single table from failure to HTTP.
//!
//! Why the body is written by the middleware and not here: the envelope must carry
//! the request id, which only the request-id middleware knows. `into_response`
//! therefore leaves an [`ErrorInfo`] in the response's extensions (code, message and,
//! for 5xx, the cause chain to log) and [`crate::middleware`] turns it into
//! `{"error":{"code","message","request_id"}}` and logs the cause once, in the same
//! event as the request, with the request id. Responses that carry no `ErrorInfo`
//! but have an error status (a framework rejection that slipped through) are given
//! the envelope there too, so no error ever leaves in another shape.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use runway_core::store::{Conflict, StoreError};
use runway_service::ServiceError;
use runway_service::oidc::OidcError;
use serde::Serialize;
use utoipa::ToSchema;

/// Every way a request can fail, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("{0}")]
    InvalidJson(String),
    /// A query parameter has the wrong type or value.
    #[error("{0}")]
    InvalidQuery(String),
    /// A cursor the server did not issue.
    #[error("the cursor is not one this server issued; start again without `cursor`")]
    InvalidCursor,
    /// No usable token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Wrong username or password.
    #[error("the username or password is wrong")]
    InvalidCredentials,
    /// A cookie-authenticated write without the matching `x-csrf-token`.
    #[error(
        "a request authenticated by the session cookie that changes anything must send the \
         `runway_csrf` cookie's value in the `x-csrf-token` header"
    )]
    CsrfFailed,
    /// An OpenID Connect sign-in failed; its status and code depend on how.
    #[error(transparent)]
    Oidc(OidcError),
    /// Authenticated, but the role does not allow it.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A read-only API token on a route that changes something.
    #[error("this API token is read-only: it may call only GET and HEAD routes")]
    ReadOnlyToken,
    /// An API token on a route that manages credentials (sessions, tokens).
    #[error(
        "sessions and API tokens are managed only from a signed-in session, not with an API token"
    )]
    SessionRequired,
    /// The user is disabled.
    #[error("this account is disabled; ask an admin")]
    AccountDisabled,
    /// The change would leave no enabled admin.
    #[error("the change would leave no enabled admin; make another user an admin first")]
    LastAdmin,
    /// The user holds the most API tokens allowed.
    #[error(
        "you hold {} API tokens, the most allowed; revoke one first",
        runway_core::api_token::MAX_API_TOKENS_PER_USER
    )]
    TooManyApiTokens,
    /// No such record or route.
    #[error("{0}")]
    NotFound(Cow<'static, str>),
    /// The route exists but not with this method.
    #[error("this route does not accept the method")]
    MethodNotAllowed,
    /// A unique name is taken, or a record exists.
    #[error("{0}")]
    Conflict(String),
    /// An agent called about an attempt that is no longer its own.
    #[error(
        "this attempt is no longer held by the agent (it ended, was lost, or was retried elsewhere); stop the job"
    )]
    NotHeld,
    /// A log chunk that would leave a gap.
    #[error("the log continues at byte {expected}; send the chunk that starts there")]
    LogOffset {
        /// Where the next chunk must start.
        expected: u64,
    },
    /// The log is at its size cap.
    #[error(
        "the log is full (at most {} bytes per attempt); send no more",
        runway_core::log::LOG_MAX_BYTES
    )]
    LogFull,
    /// A finish whose log count or checksum disagrees with the server's.
    #[error("{0}")]
    LogMismatch(String),
    /// The job lifecycle forbids the change.
    #[error("{0}")]
    IllegalTransition(String),
    /// The body is over the limit.
    #[error("the request body is larger than the {0}-byte limit")]
    PayloadTooLarge(usize),
    /// The body did not arrive in time (`RUNWAY_BODY_READ_TIMEOUT_SECONDS`).
    #[error("the request body did not arrive within {0} s; send it faster, or in smaller parts")]
    BodyTimeout(u64),
    /// The body is not declared with the media type the route takes (named).
    #[error("the request body must be sent with `Content-Type: {0}`")]
    UnsupportedMediaType(&'static str),
    /// A field is missing, unknown, of the wrong type or out of range.
    #[error("{0}")]
    Validation(String),
    /// An abuse limit refuses the request until its backoff ends (`Retry-After`).
    #[error("too many {what}; retry after {} s", retry_after.as_secs())]
    RateLimited {
        /// What was counted.
        what: &'static str,
        /// When to retry, in whole seconds.
        retry_after: Duration,
    },
    /// Too much password hashing is already under way; sign-in sheds load instead
    /// of queueing without bound.
    #[error("the server is busy verifying other sign-ins; retry in a moment")]
    Overloaded,
    /// The handler did not answer within its deadline (`crate::timeouts`).
    #[error("the server did not answer in time; retry later")]
    RequestTimeout,
    /// The store is down or throttling.
    #[error("the store is unavailable; retry later")]
    Unavailable {
        /// When to retry.
        retry_after: Option<Duration>,
        /// The cause, logged, never shown.
        #[source]
        source: StoreError,
    },
    /// A bug. The message is fixed; the cause is logged.
    #[error("internal error; the cause is logged with this request id")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 401 with the reason; every 401 carries `WWW-Authenticate: Bearer`.
    pub(crate) const fn unauthorized() -> Self {
        Self::Unauthorized("a valid bearer token is required")
    }

    /// A 404 for a record of `kind`.
    pub(crate) fn not_found(kind: &'static str) -> Self {
        Self::NotFound(Cow::Owned(format!("no such {kind}")))
    }

    /// A 422 naming `field`.
    pub(crate) fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::Validation(format!("{field}: {message}"))
    }

    pub(crate) const fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) | Self::InvalidQuery(_) | Self::InvalidCursor => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized(_) | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_)
            | Self::CsrfFailed
            | Self::ReadOnlyToken
            | Self::SessionRequired
            | Self::AccountDisabled => StatusCode::FORBIDDEN,
            Self::Oidc(err) => match err {
                OidcError::NotConfigured => StatusCode::NOT_FOUND,
                OidcError::BadReturnTo
                | OidcError::UnknownState
                | OidcError::Denied(_)
                | OidcError::CodeRejected => StatusCode::BAD_REQUEST,
                OidcError::InvalidIdToken(_) => StatusCode::UNAUTHORIZED,
                OidcError::NotAllowed(_) => StatusCode::FORBIDDEN,
                OidcError::IssuerUnavailable(_) => StatusCode::BAD_GATEWAY,
            },
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_)
            | Self::IllegalTransition(_)
            | Self::NotHeld
            | Self::LastAdmin
            | Self::TooManyApiTokens => StatusCode::CONFLICT,
            Self::LogOffset { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::PayloadTooLarge(_) | Self::LogFull => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::LogMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded | Self::RequestTimeout | Self::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) const fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::InvalidQuery(_) => "invalid_query",
            Self::InvalidCursor => "invalid_cursor",
            Self::Unauthorized(_) => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden(_) => "forbidden",
            Self::CsrfFailed => "csrf_failed",
            Self::ReadOnlyToken => "read_only_token",
            Self::SessionRequired => "session_required",
            Self::AccountDisabled => "account_disabled",
            Self::LastAdmin => "last_admin",
            Self::TooManyApiTokens => "too_many_api_tokens",
            Self::Oidc(err) => match err {
                OidcError::NotConfigured => "oidc_not_configured",
                OidcError::BadReturnTo => "invalid_return_to",
                OidcError::UnknownState => "oidc_state_invalid",
                OidcError::Denied(_) => "oidc_denied",
                OidcError::CodeRejected => "oidc_code_rejected",
                OidcError::InvalidIdToken(_) => "oidc_id_token_invalid",
                OidcError::NotAllowed(_) => "oidc_not_allowed",
                OidcError::IssuerUnavailable(_) => "oidc_issuer_unavailable",
            },
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::NotHeld => "job_not_held",
            Self::LogOffset { .. } => "log_offset_mismatch",
            Self::LogFull => "log_full",
            Self::LogMismatch(_) => "log_mismatch",
            Self::IllegalTransition(_) => "illegal_transition",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::BodyTimeout(_) => "body_timeout",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Validation(_) => "validation_failed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::RequestTimeout => "request_timeout",
            Self::Unavailable { .. } => "store_unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<Conflict> for ApiError {
    /// The one place a conflict's client message is written.
    fn from(conflict: Conflict) -> Self {
        match conflict {
            Conflict::UsernameTaken(name) => {
                Self::Conflict(format!("the username `{name}` is taken"))
            }
            Conflict::Exists(kind) => {
                Self::Conflict(format!("a {} with this id already exists", kind.as_str()))
            }
            Conflict::NotHeld => Self::NotHeld,
            // The service answers a sign-in that lost this race as wrong
            // credentials; this is for any other caller.
            Conflict::CredentialsChanged => Self::Conflict(
                "the user's credentials changed while this request ran; sign in again".into(),
            ),
            Conflict::LogOffset { expected } => Self::LogOffset { expected },
            Conflict::LogFull => Self::LogFull,
            Conflict::AttemptsExhausted { attempts } => Self::Conflict(format!(
                "the job has had {attempts} attempts, and a retry could take it past the {} \
                 one job keeps; submit it again as a new job",
                runway_core::job::limits::ATTEMPTS_MAX
            )),
            Conflict::TooManyApiTokens => Self::TooManyApiTokens,
            Conflict::LastAdmin => Self::LastAdmin,
        }
    }
}

impl From<runway_core::job::FieldError> for ApiError {
    fn from(err: runway_core::job::FieldError) -> Self {
        Self::Validation(err.to_string())
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound(kind) => Self::not_found(kind),
            ServiceError::InvalidCredentials => Self::InvalidCredentials,
            ServiceError::AccountDisabled => Self::AccountDisabled,
            ServiceError::Overloaded => Self::Overloaded,
            ServiceError::RateLimited { what, retry_after } => {
                Self::RateLimited { what, retry_after }
            }
            ServiceError::Forbidden(why) => Self::Forbidden(why),
            ServiceError::Invalid(field) => Self::Validation(field.to_string()),
            ServiceError::IllegalTransition(t) => Self::IllegalTransition(t.to_string()),
            ServiceError::Conflict(conflict) => conflict.into(),
            err @ ServiceError::LogMismatch { .. } => {
                Self::LogMismatch(format!("{err}; the agent must resend the log from byte 0"))
            }
            ServiceError::Oidc(err) => Self::Oidc(err),
            ServiceError::Store(store) => store.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound(Cow::Borrowed("no such record")),
            StoreError::Conflict(conflict) => conflict.into(),
            StoreError::IllegalTransition(t) => Self::IllegalTransition(t.to_string()),
            StoreError::InvalidCursor => Self::InvalidCursor,
            StoreError::Unavailable { retry_after, .. } => Self::Unavailable {
                retry_after,
                source: err,
            },
            StoreError::Internal(_) => Self::Internal(Box::new(err)),
        }
    }
}

/// What the middleware needs to render and log an error. Left in the response's
/// extensions by [`ApiError::into_response`].
#[derive(Debug, Clone)]
pub(crate) struct ErrorInfo {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// The cause chain of a 5xx, for the log only.
    pub(crate) cause: Option<String>,
}

/// `a: b: c` from an error and its sources.
fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let cause = match &self {
            Self::Internal(e) => Some(cause_chain(e.as_ref())),
            Self::Unavailable { source, .. } => Some(cause_chain(source)),
            Self::Oidc(err @ OidcError::IssuerUnavailable(_)) => Some(cause_chain(err)),
            _ => None,
        };
        let mut response = status.into_response();
        let headers = response.headers_mut();
        match &self {
            // RFC 9110 §15.5.2: every 401 names the scheme it wants.
            Self::Unauthorized(_)
            | Self::InvalidCredentials
            | Self::Oidc(OidcError::InvalidIdToken(_)) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Overloaded | Self::RequestTimeout => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            Self::RateLimited { retry_after, .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_secs().max(1)),
                );
            }
            // The rest of the body is never read: the connection cannot carry
            // another request.
            Self::BodyTimeout(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::Unavailable { retry_after, .. } => {
                let seconds = retry_after.map_or(1, |d| d.as_secs().max(1));
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            Self::LogOffset { expected } => {
                headers.insert(
                    runway_protocol::LOG_NEXT_OFFSET_HEADER,
                    HeaderValue::from(*expected),
                );
            }
            _ => {}
        }
        response.extensions_mut().insert(ErrorInfo {
            code: self.code(),
            message: self.to_string(),
            cause,
        });
        response
    }
}

/// The response to a handler that panicked: a 500 like any other bug, its message
/// logged as the cause (with the request id) and never shown. Installed with
/// `CatchPanicLayer`, inside the middleware that renders envelopes.
#[expect(
    clippy::needless_pass_by_value,
    reason = "the signature CatchPanicLayer calls: it hands the payload over by value"
)]
pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a payload that is not a string");
    ApiError::Internal(format!("a handler panicked: {what}").into()).into_response()
}

/// The error envelope, as documented in the OpenAPI schema.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of the envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, snake_case code to branch on, e.g. `validation_failed`.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// What went wrong and how to fix it, for humans.
    #[schema(example = "name: must be 1 to 200 characters")]
    pub message: String,
    /// Also in the `x-request-id` header; quote it when reporting a problem.
    #[schema(example = "01JDQ5V8ZK4M3X9T2B7N6C1F0R")]
    pub request_id: String,
}

/// Renders the envelope without allocating intermediate structures.
pub(crate) fn envelope_bytes(code: &str, message: &str, request_id: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Detail<'a> {
        code: &'a str,
        message: &'a str,
        request_id: &'a str,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        error: Detail<'a>,
    }
    serde_json::to_vec(&Body {
        error: Detail {
            code,
            message,
            request_id,
        },
    })
    .unwrap_or_default()
}

/// The code and message for an error status that did not come from an [`ApiError`].
pub(crate) fn info_for_status(status: StatusCode) -> ErrorInfo {
    let (code, message) = match status {
        StatusCode::BAD_REQUEST => ("invalid_request", "the request is malformed"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "a valid bearer token is required"),
        StatusCode::FORBIDDEN => ("forbidden", "the role does not allow this"),
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not accept the method",
        ),
        StatusCode::REQUEST_TIMEOUT => ("body_timeout", "the request did not arrive in time"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the request body must be sent with `Content-Type: application/json`",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ("validation_failed", "the request is invalid"),
        StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests; retry later"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("error", "the request failed"),
    };
    ErrorInfo {
        code,
        message: message.to_owned(),
        cause: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runway_core::lifecycle::{IllegalTransition, JobStatus};

    fn info(err: ApiError) -> (StatusCode, ErrorInfo, Response) {
        let mut response = err.into_response();
        let info = response.extensions_mut().remove::<ErrorInfo>().unwrap();
        (response.status(), info, response)
    }

    #[test]
    fn store_errors_map_to_their_documented_status_and_code() {
        let cases = [
            (StoreError::NotFound, 404, "not_found"),
            (
                StoreError::Conflict(Conflict::UsernameTaken("ada".into())),
                409,
                "conflict",
            ),
            (StoreError::Conflict(Conflict::NotHeld), 409, "job_not_held"),
            (
                StoreError::Conflict(Conflict::LogOffset { expected: 7 }),
                416,
                "log_offset_mismatch",
            ),
            (StoreError::Conflict(Conflict::LogFull), 413, "log_full"),
            (
                StoreError::Conflict(Conflict::AttemptsExhausted { attempts: 45 }),
                409,
                "conflict",
            ),
            (StoreError::InvalidCursor, 400, "invalid_cursor"),
            (
                StoreError::unavailable(std::io::Error::other("busy"), None),
                503,
                "store_unavailable",
            ),
            (
                StoreError::internal(std::io::Error::other("disk on fire")),
                500,
                "internal",
            ),
        ];
        for (err, status, code) in cases {
            let (s, i, _) = info(err.into());
            assert_eq!(s.as_u16(), status);
            assert_eq!(i.code, code);
        }
    }

    #[test]
    fn a_log_gap_names_the_offset_to_resend_from_in_a_header() {
        let (status, info, response) =
            info(StoreError::Conflict(Conflict::LogOffset { expected: 4096 }).into());
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert!(info.message.contains("4096"), "{}", info.message);
        assert_eq!(response.headers()["x-log-next-offset"], "4096");
    }

    #[test]
    fn an_illegal_transition_names_both_states() {
        let err = StoreError::IllegalTransition(IllegalTransition {
            from: JobStatus::Succeeded,
            to: JobStatus::Canceled,
        });
        let (status, info, _) = info(err.into());
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(info.code, "illegal_transition");
        assert!(info.message.contains("succeeded") && info.message.contains("canceled"));
    }

    #[test]
    fn an_internal_error_hides_its_cause_from_the_client_but_keeps_it_for_the_log() {
        let err = StoreError::internal(std::io::Error::other("disk on fire"));
        let (_, info, _) = info(err.into());
        assert!(!info.message.contains("disk on fire"));
        assert!(info.cause.unwrap().contains("disk on fire"));
    }

    #[test]
    fn an_unavailable_store_says_when_to_retry() {
        let (_, _, default) =
            info(StoreError::unavailable(std::io::Error::other("x"), None).into());
        assert_eq!(default.headers()[header::RETRY_AFTER], "1");
        let (_, _, given) = info(
            StoreError::unavailable(std::io::Error::other("x"), Some(Duration::from_secs(7)))
                .into(),
        );
        assert_eq!(given.headers()[header::RETRY_AFTER], "7");
    }

    #[test]
    fn a_rate_limited_request_is_a_429_that_says_when_to_retry() {
        let (status, info, response) = info(
            ServiceError::RateLimited {
                what: "failed sign-ins for this account",
                retry_after: Duration::from_secs(8),
            }
            .into(),
        );
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(info.code, "rate_limited");
        assert!(info.message.contains("8 s"), "{}", info.message);
        assert_eq!(response.headers()[header::RETRY_AFTER], "8");
    }

    #[test]
    fn every_unauthorized_response_asks_for_a_bearer_token() {
        let (_, _, response) = info(ApiError::unauthorized());
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn the_envelope_has_code_message_and_request_id() {
        let bytes = envelope_bytes("not_found", "no \"such\" route", "abc");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"]["code"], "not_found");
        assert_eq!(v["error"]["message"], "no \"such\" route");
        assert_eq!(v["error"]["request_id"], "abc");
    }
}
