//! Personal API tokens: the HTTP shape of [`runway_service::api_tokens`].
//!
//! Managed from a signed-in session only (the matrix's `Session` access: an API
//! token cannot mint, list or revoke tokens). The plaintext token is in the
//! creation response and nowhere else; only its SHA-256 is stored. It is used as
//! `Authorization: Bearer rwp_…` on every user route (never as a cookie, never on
//! an agent route); its format, for secret scanners, is in docs/security.md.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use runway_core::OffsetDateTime;
use runway_core::api_token::{ApiToken, MAX_API_TOKEN_DAYS};
use runway_core::id::ApiTokenId;
use runway_core::secret::Secret;
use runway_service::api_tokens::NewToken;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::expose_secret;
use crate::AppState;
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, IdPath};
use crate::middleware::CallId;
use crate::routes::sessions::ClientMeta;

/// A new token's settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiToken {
    /// What the token is for (1–100 characters).
    #[schema(example = "ci deploy", min_length = 1, max_length = 100)]
    name: String,
    /// When it stops working (RFC 3339, in the future, at most 1830 days away).
    /// Give this or `expires_in_days`, not both; neither: it never expires.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<OffsetDateTime>,
    /// Days until it stops working, 1–1830.
    #[schema(minimum = 1, maximum = 1830)]
    expires_in_days: Option<u32>,
    /// Only `GET` and `HEAD` routes (default false).
    #[serde(default)]
    read_only: bool,
}

/// The new token. `token` is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedApiToken {
    /// Send as `Authorization: Bearer <token>`.
    #[serde(serialize_with = "expose_secret")]
    #[schema(value_type = String, example = "rwp_01JDQ5V8ZK4M3X9T2B7N6C1F0R…")]
    token: Secret,
    /// The stored record.
    api_token: ApiToken,
}

/// The caller's tokens, newest first, expired ones included. Never a secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiTokenList {
    /// The tokens.
    items: Vec<ApiToken>,
}

/// Makes a personal API token for the signed-in user.
#[utoipa::path(post, path = "/auth/tokens", tag = "api tokens",
    security(("bearer" = [])),
    request_body = CreateApiToken,
    responses(
        (status = 201, description = "Made; the token is shown only here", body = CreatedApiToken),
        (status = 401, description = "No valid session, or the user's credentials changed since it was made", body = ErrorBody),
        (status = 403, description = "Called with an API token (`session_required`)", body = ErrorBody),
        (status = 409, description = "The user holds the most tokens allowed (`too_many_api_tokens`)", body = ErrorBody),
        (status = 422, description = "A field is missing or out of range", body = ErrorBody),
        (status = 429, description = "Too many token creations by this user or from this address (`rate_limited`); retry after `Retry-After` seconds", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    request_id: CallId,
    meta: ClientMeta,
    UserSession(session): UserSession,
    ApiJson(req): ApiJson<CreateApiToken>,
) -> Result<(StatusCode, Json<CreatedApiToken>), ApiError> {
    let expires_at = match (req.expires_at, req.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "expires_in_days",
                "give `expires_at` or `expires_in_days`, not both",
            ));
        }
        (Some(at), None) => Some(at),
        (None, Some(days)) => {
            let days = i64::from(days);
            if !(1..=MAX_API_TOKEN_DAYS).contains(&days) {
                return Err(ApiError::field(
                    "expires_in_days",
                    format!("must be 1 to {MAX_API_TOKEN_DAYS}"),
                ));
            }
            Some(OffsetDateTime::now_utc() + time::Duration::days(days))
        }
        (None, None) => None,
    };
    let request_id = request_id.into_option();
    // Counted once the request is valid: a typo in a field is not an attempt.
    state
        .service
        .limits()
        .check_token_creation(session.user_id, meta.ip.as_deref(), request_id.as_deref())
        .await?;
    let (api_token, token) = state
        .tokens
        .create(
            &session,
            NewToken {
                name: req.name,
                expires_at,
                read_only: req.read_only,
            },
            request_id,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiToken { token, api_token }),
    ))
}

/// The signed-in user's API tokens, newest first.
#[utoipa::path(get, path = "/auth/tokens", tag = "api tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's tokens", body = ApiTokenList),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Called with an API token (`session_required`)", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    UserSession(session): UserSession,
) -> Result<Json<ApiTokenList>, ApiError> {
    let items = state.tokens.list(session.user_id).await?;
    Ok(Json(ApiTokenList { items }))
}

/// Revokes one of the signed-in user's API tokens; it stops working at once.
#[utoipa::path(delete, path = "/auth/tokens/{id}", tag = "api tokens",
    security(("bearer" = [])),
    params(("id" = ApiTokenId, Path, description = "The token to revoke")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Called with an API token (`session_required`)", body = ErrorBody),
        (status = 404, description = "Not one of the caller's tokens", body = ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    request_id: CallId,
    UserSession(session): UserSession,
    IdPath(id): IdPath<ApiTokenId>,
) -> Result<StatusCode, ApiError> {
    state
        .tokens
        .revoke(&session, id, request_id.into_option())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
