//! Signing in and managing one's own sessions (devices): the HTTP shape of
//! [`runway_service::sessions`], where the rules live (argon2 behind a bounded
//! number of permits, the dummy hash for unknown users, revocation scoped to the
//! caller). A shed sign-in is 503 `overloaded` with `Retry-After`; one refused by
//! the abuse limits (too many recent failures for the account or the address) is
//! 429 `rate_limited` with `Retry-After`; both kinds of wrong credentials are the
//! same 401 `invalid_credentials`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use runway_core::OffsetDateTime;
use runway_core::id::{SessionId, UserId};
use runway_core::secret::Secret;
use runway_core::session::Session;
use runway_core::user::Role;
use runway_service::sessions::Device;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::expose_secret;
use crate::AppState;
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, IdPath, OptionalJson};
use crate::middleware::CallId;

/// The longest `User-Agent` kept on a session; longer ones are cut.
pub(crate) const MAX_USER_AGENT_LEN: usize = 256;

/// Credentials, and optionally what to call this device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignInRequest {
    /// The login name (1 to 64 characters).
    #[schema(example = "admin", min_length = 1, max_length = 64)]
    username: String,
    /// The password (1 to 1024 characters).
    #[schema(value_type = String, format = Password, min_length = 1, max_length = 1024)]
    password: Secret,
    /// A name for this device, shown in the session list (at most 100 characters,
    /// no control characters; blank means none).
    #[schema(
        example = "work laptop",
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
    )]
    device_name: Option<String>,
    /// Also set the `runway_session` and `runway_csrf` cookies, for a browser
    /// (default false). See docs/http-api.md for the CSRF rule that then applies.
    #[serde(default)]
    set_cookie: bool,
}

/// Who a session belongs to, as copied into the session at sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionUser {
    /// The user's id.
    id: UserId,
    /// The login name.
    username: String,
    /// What the user may do.
    role: Role,
}

impl SessionUser {
    fn of(session: &Session) -> Self {
        Self {
            id: session.user_id,
            username: session.username.clone(),
            role: session.role,
        }
    }
}

/// A new session and its token. The token is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SignInResponse {
    /// Send as `Authorization: Bearer <token>`.
    #[serde(serialize_with = "expose_secret")]
    #[schema(value_type = String, example = "rws_01JDQ5V8ZK4M3X9T2B7N6C1F0R_…")]
    token: Secret,
    /// The session just created.
    session: Session,
    /// Who signed in.
    user: SessionUser,
}

/// The caller's user and session.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CurrentSession {
    /// Who is signed in.
    user: SessionUser,
    /// The session the request came with.
    session: Session,
}

/// One of the caller's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionItem {
    #[serde(flatten)]
    session: Session,
    /// Whether this is the session the request came with.
    current: bool,
}

/// The caller's active sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionList {
    /// The sessions.
    items: Vec<SessionItem>,
}

/// Which sessions to keep when revoking all.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeAllRequest {
    /// Keep the session this request came with (default false: sign out everywhere).
    #[serde(default)]
    keep_current: bool,
}

/// How many sessions were revoked.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Revoked {
    /// The number of sessions deleted.
    revoked: u64,
}

/// Where a request came from: the peer address (when served with `ConnectInfo`) and
/// the `User-Agent`, cut to 256 characters.
#[derive(Debug)]
pub(crate) struct ClientMeta {
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT_LEN).collect());
        Ok(Self { ip, user_agent })
    }
}

/// Signs in with a username and password and creates a session for this device.
#[utoipa::path(post, path = "/auth/sessions", tag = "sessions",
    request_body = SignInRequest,
    responses(
        (status = 201, description = "Signed in (with `set_cookie`, also `Set-Cookie` `runway_session` and `runway_csrf`)", body = SignInResponse),
        (status = 401, description = "Wrong username or password (`invalid_credentials`)", body = ErrorBody),
        (status = 422, description = "A field is missing or too long", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins for this account or from this address (`rate_limited`); retry after `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "Too many sign-ins at once (`overloaded`); retry after `Retry-After` seconds", body = ErrorBody)))]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    request_id: CallId,
    meta: ClientMeta,
    ApiJson(req): ApiJson<SignInRequest>,
) -> Result<(StatusCode, HeaderMap, Json<SignInResponse>), ApiError> {
    let set_cookie = req.set_cookie;
    let device = Device {
        name: req.device_name,
        user_agent: meta.user_agent,
        ip: meta.ip,
    };
    let (session, token) = state
        .sessions
        .sign_in(
            &req.username,
            req.password,
            device,
            request_id.into_option(),
        )
        .await?;
    let user = SessionUser::of(&session);
    let mut headers = HeaderMap::new();
    if set_cookie {
        for cookie in state.cookies.sign_in(token.expose()) {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(SignInResponse {
            token,
            session,
            user,
        }),
    ))
}

/// Validates the caller's session and returns it with its user.
#[utoipa::path(get, path = "/auth/session", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session is valid", body = CurrentSession),
        (status = 401, description = "No valid session", body = ErrorBody)))]
pub(crate) async fn current(UserSession(session): UserSession) -> Json<CurrentSession> {
    Json(CurrentSession {
        user: SessionUser::of(&session),
        session,
    })
}

/// Signs this device out: the token stops working immediately, and the session
/// cookies are cleared.
#[utoipa::path(delete, path = "/auth/session", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out; `Set-Cookie` clears `runway_session` and `runway_csrf`"),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Authenticated by the cookie without `x-csrf-token` (`csrf_failed`)", body = ErrorBody)))]
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    request_id: CallId,
    UserSession(session): UserSession,
) -> Result<(StatusCode, HeaderMap), ApiError> {
    state
        .sessions
        .sign_out(&session, request_id.into_option())
        .await?;
    let mut headers = HeaderMap::new();
    for cookie in state.cookies.sign_out() {
        headers.append(header::SET_COOKIE, cookie);
    }
    Ok((StatusCode::NO_CONTENT, headers))
}

/// The caller's active sessions, newest first; `current` marks this one.
#[utoipa::path(get, path = "/auth/sessions", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's sessions", body = SessionList),
        (status = 401, description = "No valid session", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    UserSession(me): UserSession,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = state
        .store
        .list_user_sessions(me.user_id, OffsetDateTime::now_utc())
        .await?;
    let items = sessions
        .into_iter()
        .map(|session| SessionItem {
            current: session.id == me.id,
            session,
        })
        .collect();
    Ok(Json(SessionList { items }))
}

/// Revokes one of the caller's sessions (signs that device out).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "sessions",
    security(("bearer" = [])),
    params(("id" = SessionId, Path, description = "The session to revoke")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "Not one of the caller's sessions", body = ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    request_id: CallId,
    UserSession(me): UserSession,
    IdPath(id): IdPath<SessionId>,
) -> Result<StatusCode, ApiError> {
    state
        .sessions
        .revoke(&me, id, request_id.into_option())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes all the caller's sessions, optionally keeping this one. The body may be
/// left out.
#[utoipa::path(post, path = "/auth/sessions/revoke-all", tag = "sessions",
    security(("bearer" = [])),
    request_body(content = Option<RevokeAllRequest>, description = "Optional; defaults to `{\"keep_current\":false}`"),
    responses(
        (status = 200, description = "How many were revoked", body = Revoked),
        (status = 401, description = "No valid session", body = ErrorBody)))]
pub(crate) async fn revoke_all(
    State(state): State<AppState>,
    request_id: CallId,
    UserSession(me): UserSession,
    OptionalJson(req): OptionalJson<RevokeAllRequest>,
) -> Result<Json<Revoked>, ApiError> {
    let revoked = state
        .sessions
        .revoke_all(&me, req.keep_current, request_id.into_option())
        .await?;
    Ok(Json(Revoked { revoked }))
}
