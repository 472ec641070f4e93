//! Signing in through an OpenID Connect issuer: the HTTP shape of
//! [`runway_service::oidc`], where the flow and its checks live.
//!
//! * `GET /api/v1/auth/oidc/login?return_to=/path` answers 303 with the issuer's
//!   authorization URL in `Location`. A `return_to` that is not a path on this
//!   server is 400 `invalid_return_to` (never silently replaced: the link that
//!   carried it is wrong).
//! * `GET /api/v1/auth/oidc/callback?code&state` is where the issuer sends the
//!   browser back. Success is 303 to the login's `return_to`, with the
//!   `runway_session` and `runway_csrf` cookies set. Every failure is a JSON
//!   error envelope (4xx, or 502 when the issuer cannot be reached), shown by the
//!   browser as it is, and logged with its code by the request log like any
//!   failed sign-in; nothing is redirected on failure, so no error text ever
//!   travels in a URL.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use runway_service::oidc::OidcError;
use runway_service::sessions::Device;
use serde::Deserialize;

use super::sessions::ClientMeta;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::middleware::CallId;

/// Where to come back to.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LoginQuery {
    /// A path on this server, starting with a single `/` (default `/`).
    #[param(example = "/jobs")]
    return_to: Option<String>,
}

/// What the issuer sends back.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The state the login sent.
    state: Option<String>,
    /// An OAuth error code, when the issuer did not sign the user in.
    error: Option<String>,
    /// The issuer's description of the error (ignored: it is not ours to show).
    #[serde(rename = "error_description")]
    _error_description: Option<String>,
    /// The issuer, when it says (RFC 9207; checked by the ID token instead).
    #[serde(rename = "iss")]
    _iss: Option<String>,
    /// Sent by some issuers; unused.
    #[serde(rename = "session_state")]
    _session_state: Option<String>,
    /// Sent by some issuers; unused.
    #[serde(rename = "scope")]
    _scope: Option<String>,
}

fn see_other(location: &str) -> Result<HeaderMap, ApiError> {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::try_from(location)
        .map_err(|e| ApiError::Internal(format!("a redirect that is not a header: {e}").into()))?;
    headers.insert(header::LOCATION, value);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(headers)
}

/// Starts a sign-in at the OpenID Connect issuer: redirects the browser there.
#[utoipa::path(get, path = "/auth/oidc/login", tag = "sessions",
    params(LoginQuery),
    responses(
        (status = 303, description = "To the issuer's authorization endpoint (`Location`)"),
        (status = 400, description = "`return_to` is not a path on this server (`invalid_return_to`), or a bad query (`invalid_query`)", body = ErrorBody),
        (status = 404, description = "No issuer is configured (`oidc_not_configured`)", body = ErrorBody),
        (status = 502, description = "The issuer cannot be reached or is not OpenID Connect (`oidc_issuer_unavailable`)", body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<LoginQuery>,
) -> Result<(StatusCode, HeaderMap), ApiError> {
    let oidc = state
        .oidc
        .as_ref()
        .ok_or(ApiError::Oidc(OidcError::NotConfigured))?;
    let url = oidc.begin(query.return_to.as_deref()).await?;
    Ok((StatusCode::SEE_OTHER, see_other(&url)?))
}

/// The issuer's redirect back: creates the session, sets the cookies and sends
/// the browser to where the sign-in started.
#[utoipa::path(get, path = "/auth/oidc/callback", tag = "sessions",
    params(CallbackQuery),
    responses(
        (status = 303, description = "Signed in: `Set-Cookie` `runway_session` and `runway_csrf`, `Location` the login's `return_to`"),
        (status = 400, description = "Unknown, expired or used state (`oidc_state_invalid`), the issuer refused the code (`oidc_code_rejected`) or sent an error (`oidc_denied`), or `code`/`state` is missing (`invalid_query`)", body = ErrorBody),
        (status = 401, description = "The ID token failed a check: signature, issuer, audience, expiry or nonce (`oidc_id_token_invalid`)", body = ErrorBody),
        (status = 403, description = "The email is not allowed here (`oidc_not_allowed`)", body = ErrorBody),
        (status = 404, description = "No issuer is configured (`oidc_not_configured`)", body = ErrorBody),
        (status = 409, description = "A new user's name (their email) belongs to another account (`conflict`)", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins from this address (`rate_limited`); retry after `Retry-After` seconds", body = ErrorBody),
        (status = 502, description = "The issuer cannot be reached (`oidc_issuer_unavailable`)", body = ErrorBody)))]
pub(crate) async fn callback(
    State(state): State<AppState>,
    request_id: CallId,
    meta: ClientMeta,
    ApiQuery(query): ApiQuery<CallbackQuery>,
) -> Result<(StatusCode, HeaderMap), ApiError> {
    let oidc = state
        .oidc
        .as_ref()
        .ok_or(ApiError::Oidc(OidcError::NotConfigured))?;
    if let Some(error) = query.error {
        // The issuer's text is not echoed beyond a short code of safe characters.
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_lowercase() || *c == '_')
            .take(64)
            .collect();
        return Err(ApiError::Oidc(OidcError::Denied(code)));
    }
    let (Some(code), Some(login_state)) = (query.code, query.state) else {
        return Err(ApiError::InvalidQuery(
            "the callback needs both `code` and `state`".into(),
        ));
    };
    let device = Device {
        name: None,
        user_agent: meta.user_agent,
        ip: meta.ip,
    };
    let signed_in = oidc
        .finish(&login_state, &code, device, request_id.into_option())
        .await?;
    let mut headers = see_other(&signed_in.return_to)?;
    for cookie in state.cookies.sign_in(signed_in.token.expose()) {
        headers.append(header::SET_COOKIE, cookie);
    }
    Ok((StatusCode::SEE_OTHER, headers))
}
