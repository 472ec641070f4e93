//! Signing in and managing one's own sessions (devices).
//!
//! Sign-in verifies the argon2id hash on a blocking thread: it takes tens of
//! milliseconds on purpose and would otherwise stall a runtime worker. At most
//! `AppState::password_checks` verifications run at once; a sign-in that waits
//! longer than [`PASSWORD_CHECK_WAIT`] for a turn gets 503 `overloaded` with
//! `Retry-After`, so a flood of guesses costs bounded memory and CPU. An unknown
//! username is verified against a dummy hash, so the response time does not reveal
//! which usernames exist, and both failures are the same 401 `invalid_credentials`.
//!
//! Every other handler here acts only on the caller's own sessions: the store's
//! `revoke_session(user, id)` is scoped by user, so someone else's session id is a 404
//! exactly like an unknown one.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use runway_core::OffsetDateTime;
use runway_core::audit::AuditAction;
use runway_core::id::{SessionId, UserId};
use runway_core::password::{dummy_hash, verify_password};
use runway_core::secret::{IssuedToken, Secret};
use runway_core::session::Session;
use runway_core::store::StoreError;
use runway_core::user::{MAX_USERNAME_LEN, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_text, expose_secret, or_not_found};
use crate::AppState;
use crate::audit::Audit;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, IdPath, OptionalJson};

use runway_service::accounts::MAX_PASSWORD_LEN;
/// How long a sign-in waits for a free argon2 slot before it is shed with a 503.
pub(crate) const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest device name.
pub(crate) const MAX_DEVICE_NAME_LEN: usize = 100;
/// The longest `User-Agent` kept on a session; longer ones are cut.
pub(crate) const MAX_USER_AGENT_LEN: usize = 256;

/// Credentials, and optionally what to call this device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignInRequest {
    /// The login name.
    #[schema(example = "admin")]
    username: String,
    /// The password.
    #[schema(value_type = String, format = Password)]
    password: Secret,
    /// A name for this device, shown in the session list (at most 100 characters).
    #[schema(example = "work laptop")]
    device_name: Option<String>,
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
    ip: Option<String>,
    user_agent: Option<String>,
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
#[utoipa::path(post, path = "/api/v1/auth/sessions", tag = "sessions",
    request_body = SignInRequest,
    responses(
        (status = 201, description = "Signed in", body = SignInResponse),
        (status = 401, description = "Wrong username or password (`invalid_credentials`)", body = ErrorBody),
        (status = 422, description = "A field is missing or too long", body = ErrorBody),
        (status = 503, description = "Too many sign-ins at once (`overloaded`); retry after `Retry-After` seconds", body = ErrorBody)))]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    audit: Audit,
    meta: ClientMeta,
    ApiJson(req): ApiJson<SignInRequest>,
) -> Result<(StatusCode, Json<SignInResponse>), ApiError> {
    if req.username.is_empty() || req.username.len() > MAX_USERNAME_LEN {
        return Err(ApiError::field(
            "username",
            format!("must be 1 to {MAX_USERNAME_LEN} characters"),
        ));
    }
    let password_len = req.password.expose().chars().count();
    if password_len == 0 || password_len > MAX_PASSWORD_LEN {
        return Err(ApiError::field(
            "password",
            format!("must be 1 to {MAX_PASSWORD_LEN} characters"),
        ));
    }
    let device_name = req.device_name.filter(|d| !d.trim().is_empty());
    if let Some(d) = &device_name {
        check_text("device_name", d, MAX_DEVICE_NAME_LEN)?;
    }

    let user = state.store.user_by_username(&req.username).await?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = req.password;
    let permit = tokio::time::timeout(
        PASSWORD_CHECK_WAIT,
        std::sync::Arc::clone(&state.password_checks).acquire_owned(),
    )
    .await
    .map_err(|_elapsed| ApiError::Overloaded)?
    .map_err(|closed| ApiError::Internal(Box::new(closed)))?;
    let verified = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // An unknown user costs the same argon2 work as a known one.
        let hash = stored_hash.as_deref().unwrap_or_else(|| dummy_hash());
        verify_password(&password, hash)
    })
    .await
    .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let Some(user) = user.filter(|_| verified) else {
        return Err(ApiError::InvalidCredentials);
    };

    let now = OffsetDateTime::now_utc();
    let id = SessionId::new();
    let issued = IssuedToken::session(id);
    let session = Session {
        id,
        user_id: user.id,
        username: user.username,
        role: user.role,
        device_name,
        user_agent: meta.user_agent,
        ip: meta.ip,
        created_at: now,
        last_seen_at: now,
        expires_at: now + state.session_ttl,
        idle_timeout_seconds: state.session_idle_timeout.whole_seconds(),
        token_hash: issued.hash,
    };
    state.store.create_session(&session).await?;
    audit
        .record_with(
            (&session).into(),
            AuditAction::SessionCreated,
            session.id,
            session.device_name.as_ref().map(|d| format!("device: {d}")),
        )
        .await;
    let user = SessionUser::of(&session);
    Ok((
        StatusCode::CREATED,
        Json(SignInResponse {
            token: issued.plaintext,
            session,
            user,
        }),
    ))
}

/// Validates the caller's session and returns it with its user.
#[utoipa::path(get, path = "/api/v1/auth/session", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session is valid", body = CurrentSession),
        (status = 401, description = "No valid session", body = ErrorBody)))]
pub(crate) async fn current(CurrentUser { session }: CurrentUser) -> Json<CurrentSession> {
    Json(CurrentSession {
        user: SessionUser::of(&session),
        session,
    })
}

/// Signs this device out: the token stops working immediately.
#[utoipa::path(delete, path = "/api/v1/auth/session", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "No valid session", body = ErrorBody)))]
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    audit: Audit,
    CurrentUser { session }: CurrentUser,
) -> Result<StatusCode, ApiError> {
    match state
        .store
        .revoke_session(session.user_id, session.id)
        .await
    {
        Ok(()) => {
            audit
                .record_with(
                    (&session).into(),
                    AuditAction::SessionRevoked,
                    session.id,
                    Some("signed out".into()),
                )
                .await;
            Ok(StatusCode::NO_CONTENT)
        }
        // A concurrent sign-out already removed it (and recorded it): same outcome.
        Err(StoreError::NotFound) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(e.into()),
    }
}

/// The caller's active sessions, newest first; `current` marks this one.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's sessions", body = SessionList),
        (status = 401, description = "No valid session", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    CurrentUser { session: me }: CurrentUser,
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
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "sessions",
    security(("bearer" = [])),
    params(("id" = SessionId, Path, description = "The session to revoke")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "Not one of the caller's sessions", body = ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    audit: Audit,
    CurrentUser { session: me }: CurrentUser,
    IdPath(id): IdPath<SessionId>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .revoke_session(me.user_id, id)
        .await
        .map_err(or_not_found("session"))?;
    audit
        .record((&me).into(), AuditAction::SessionRevoked, id)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes all the caller's sessions, optionally keeping this one. The body may be
/// left out.
#[utoipa::path(post, path = "/api/v1/auth/sessions/revoke-all", tag = "sessions",
    security(("bearer" = [])),
    request_body(content = Option<RevokeAllRequest>, description = "Optional; defaults to `{\"keep_current\":false}`"),
    responses(
        (status = 200, description = "How many were revoked", body = Revoked),
        (status = 401, description = "No valid session", body = ErrorBody)))]
pub(crate) async fn revoke_all(
    State(state): State<AppState>,
    audit: Audit,
    CurrentUser { session: me }: CurrentUser,
    OptionalJson(req): OptionalJson<RevokeAllRequest>,
) -> Result<Json<Revoked>, ApiError> {
    let keep = req.keep_current.then_some(me.id);
    let revoked = state.store.revoke_user_sessions(me.user_id, keep).await?;
    let kept = if keep.is_some() {
        ", kept the current one"
    } else {
        ""
    };
    audit
        .record_with(
            (&me).into(),
            AuditAction::SessionsRevokedAll,
            me.user_id,
            Some(format!("revoked {revoked}{kept}")),
        )
        .await;
    Ok(Json(Revoked { revoked }))
}
