//! Authentication extractors and the authorization matrix.
//!
//! Who may call a route is its row of the one matrix, [`policy::ROUTES`]; a
//! handler takes the extractor of that kind of caller, and the user extractors
//! look the row up (by the matched route and method) and enforce it:
//!
//! | extractor | accepts | else |
//! |---|---|---|
//! | [`CurrentUser`] | `Bearer rws_…` or the `runway_session` cookie (with `x-csrf-token` on writes), an active session; or `Bearer rwp_…`, a live API token (never as a cookie); then the row: an admin route needs an admin, a session-only route refuses an API token, a read-only token only reads | 401; 403 `csrf_failed`, `forbidden`, `session_required`, `read_only_token` |
//! | [`UserSession`] | a [`CurrentUser`] by a session | 403 `session_required` |
//! | [`AdminUser`] | a [`CurrentUser`] whose role is admin | 403 |
//! | [`CurrentAgent`] | `Bearer rwa_…`, a registered agent | 401 |
//! | [`RegistrationBearer`] | the shape `Bearer rwr_…` (the store checks it when registering) | 401 |
//! | [`CurrentJob`] | `Bearer rwj_…`, the token of an attempt of the job in the path | 401; 404 no such job |
//!
//! Validating a session (or an API token, the same way) is the hot path of the
//! whole API, so it is exactly one store read: the token embeds its id ([`session_id_of`]), the session carries the
//! user's name and role, and `last_seen_at` is written at most once a minute
//! ([`Session::needs_touch`]). The token's hash is compared in constant time. Token
//! kinds never cross: an agent token on a user route fails the `rws_` shape check and
//! a session token on an agent route fails the `rwa_` one, both as a plain 401.
//!
//! A browser sends the session token in the `runway_session` cookie instead
//! (`crate::cookies`). [`CurrentUser`] is the only extractor that reads it, and
//! the only place the CSRF rule is applied: a request that authenticates by the
//! cookie and is not GET, HEAD or OPTIONS must carry `x-csrf-token` equal to the
//! token's CSRF value, else 403 `csrf_failed`. An `Authorization` header wins
//! over the cookie and needs no CSRF token.

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::header;
use axum::http::request::Parts;
use runway_core::OffsetDateTime;
use runway_core::agent::Agent;
use runway_core::secret::{TokenHash, TokenKind, session_id_of};
use runway_core::session::Session;
use runway_core::store::StoreError;
use runway_core::user::{Credential, Principal};
use runway_service::api_tokens::TokenAuthError;

use runway_core::id::JobId;
use runway_service::dispatch::{HeldJob, JobTokenError};

use crate::AppState;
use crate::cookies;
use crate::error::ApiError;
use crate::extract::IdPath;
use crate::middleware::RequestId;
use crate::policy::{self, Access};

/// The bearer token of a request, if it has the `Authorization: Bearer <token>` shape.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares two byte strings in time that depends only on their lengths.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A signed-in user, authenticated by an active session or a personal API token,
/// as the route's row of the matrix ([`policy::ROUTES`]) allows.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// Who is calling, with their role and the credential used.
    pub user: Principal,
    /// The session, when the request came with one (never with an API token).
    pub session: Option<Session>,
}

/// The route's row of the matrix. A route the router serves but the table lacks
/// is a bug: 500, never a guess.
fn rule_of(parts: &Parts) -> Result<&'static policy::Rule, ApiError> {
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or_default();
    policy::lookup(&parts.method, path).ok_or_else(|| {
        ApiError::Internal(
            format!("{} {path} is missing from the policy table", parts.method).into(),
        )
    })
}

impl CurrentUser {
    /// Authenticates a session token (bearer or cookie).
    async fn by_session(parts: &Parts, state: &AppState, token: &str) -> Result<Self, ApiError> {
        let id = session_id_of(token).ok_or_else(ApiError::unauthorized)?;
        let session = state
            .store
            .get_session(id)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if !session.token_hash.matches(&TokenHash::of(token)) {
            return Err(ApiError::unauthorized());
        }
        let now = OffsetDateTime::now_utc();
        if !session.is_active(now) {
            return Err(ApiError::Unauthorized(
                "the session has expired; sign in again",
            ));
        }
        let mut session = session;
        if session.needs_touch(now) {
            match state.store.touch_session(session.id, now).await {
                Ok(()) => session.last_seen_at = now,
                // `last_seen_at` is bookkeeping (the device list, the idle clock): a
                // store that cannot take the write right now must not fail a request
                // whose session was just read and checked. The next request retries.
                Err(StoreError::Unavailable { .. }) => tracing::warn!(
                    session.id = %session.id,
                    request_id = RequestId::of(parts),
                    "could not record last_seen_at; the store is unavailable"
                ),
                Err(err) => return Err(err.into()),
            }
        }
        Ok(Self {
            user: Principal::from(&session),
            session: Some(session),
        })
    }

    /// Authenticates a personal API token (bearer only).
    async fn by_api_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let token = state
            .tokens
            .authenticate(token, OffsetDateTime::now_utc())
            .await
            .map_err(|err| match err {
                TokenAuthError::Unknown => {
                    ApiError::Unauthorized("the API token is unknown or revoked")
                }
                TokenAuthError::Expired => ApiError::Unauthorized("the API token has expired"),
                TokenAuthError::Service(err) => err.into(),
            })?;
        Ok(Self {
            user: Principal::from(&token),
            session: None,
        })
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let rule = rule_of(parts)?;
        if !rule.access.is_for_users() {
            return Err(ApiError::Internal(
                format!("{} {} is not a user route", rule.method, rule.path).into(),
            ));
        }
        let caller = match bearer(parts) {
            Some(token) if token.starts_with(TokenKind::ApiToken.prefix()) => {
                Self::by_api_token(state, token).await?
            }
            Some(token) => Self::by_session(parts, state, token).await?,
            None => {
                let token = cookies::cookie(&parts.headers, cookies::SESSION_COOKIE)
                    .ok_or_else(ApiError::unauthorized)?;
                if !parts.method.is_safe() {
                    let sent = parts
                        .headers
                        .get(cookies::CSRF_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    let expected = cookies::csrf_token(token);
                    let same: bool = subtle_eq(sent.as_bytes(), expected.as_bytes());
                    if !same {
                        return Err(ApiError::CsrfFailed);
                    }
                }
                Self::by_session(parts, state, token).await?
            }
        };
        if let Credential::ApiToken { read_only, .. } = caller.user.credential {
            if rule.access == Access::Session {
                return Err(ApiError::SessionRequired);
            }
            if read_only && !rule.read_only_token_ok() {
                return Err(ApiError::ReadOnlyToken);
            }
        }
        if rule.access == Access::Admin && !caller.user.is_admin() {
            return Err(ApiError::Forbidden("only admins may do this"));
        }
        Ok(caller)
    }
}

/// A signed-in user by a session (the routes that manage sessions and tokens).
#[derive(Debug, Clone)]
pub struct UserSession(pub Session);

impl FromRequestParts<AppState> for UserSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        CurrentUser::from_request_parts(parts, state)
            .await?
            .session
            .map(Self)
            .ok_or(ApiError::SessionRequired)
    }
}

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct AdminUser(pub CurrentUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        // The matrix said so already for an admin route; this keeps the type
        // honest if a handler takes `AdminUser` on another.
        if user.user.is_admin() {
            Ok(Self(user))
        } else {
            Err(ApiError::Forbidden("only admins may do this"))
        }
    }
}

/// A registered agent, authenticated by its agent token.
#[derive(Debug, Clone)]
pub struct CurrentAgent(pub Agent);

impl FromRequestParts<AppState> for CurrentAgent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .filter(|t| t.starts_with(TokenKind::Agent.prefix()))
            .ok_or_else(ApiError::unauthorized)?;
        state
            .store
            .agent_by_token_hash(&TokenHash::of(token))
            .await?
            .map(Self)
            .ok_or_else(ApiError::unauthorized)
    }
}

/// An attempt of the job named by the route's `{id}`, authenticated by the job
/// token its claim returned. Whether the attempt is still held is for the call
/// itself to find out (409 `job_not_held`), so a superseded agent is told to stop,
/// not that its credentials are bad.
#[derive(Debug, Clone)]
pub struct CurrentJob(pub HeldJob);

impl FromRequestParts<AppState> for CurrentJob {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .filter(|t| t.starts_with(TokenKind::Job.prefix()))
            .ok_or_else(ApiError::unauthorized)?
            .to_owned();
        let IdPath(id) = IdPath::<JobId>::from_request_parts(parts, state).await?;
        state
            .service
            .authenticate_job(id, &token)
            .await
            .map(Self)
            .map_err(|err| match err {
                JobTokenError::Unauthorized => {
                    ApiError::Unauthorized("the job token is unknown, expired, or not this job's")
                }
                JobTokenError::NoSuchJob => ApiError::not_found("job"),
                JobTokenError::Service(err) => err.into(),
            })
    }
}

/// The hash of a presented registration token. Whether it is usable is decided by the
/// store, atomically with creating the agent.
#[derive(Clone)]
pub struct RegistrationBearer(pub TokenHash);

impl std::fmt::Debug for RegistrationBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RegistrationBearer").field(&self.0).finish()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RegistrationBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        bearer(parts)
            .filter(|t| t.starts_with(TokenKind::Registration.prefix()))
            .map(|t| Self(TokenHash::of(t)))
            .ok_or_else(ApiError::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(auth: Option<&str>) -> Parts {
        let mut b = Request::builder();
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_ignored() {
        assert_eq!(bearer(&parts(Some("Bearer abc"))), Some("abc"));
        assert_eq!(bearer(&parts(Some("bearer abc"))), Some("abc"));
        assert_eq!(bearer(&parts(Some("Basic abc"))), None);
        assert_eq!(bearer(&parts(Some("Bearer "))), None);
        assert_eq!(bearer(&parts(Some("Bearer"))), None);
        assert_eq!(bearer(&parts(None)), None);
    }
}
