//! Users as admins manage them: the HTTP shape of [`runway_service::users`].
//!
//! Admin only (the matrix's `Admin` access, and the [`AdminUser`] extractor).
//! Disabling a user or changing their role signs them out everywhere and revokes
//! their API tokens in the same write; the last enabled admin cannot be demoted,
//! disabled or deleted (409 `last_admin`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use runway_core::id::{SessionId, UserId};
use runway_core::page::Cursor;
use runway_core::secret::Secret;
use runway_core::session::Session;
use runway_core::user::{Role, User, UserChange};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Listing, page_request};
use crate::AppState;
use crate::audit::Audit;
use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, IdPath};

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    /// The login name: 1–64 letters, digits, `.`, `_`, `-` or `@`.
    #[schema(
        example = "ada",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9._@-]{1,64}$"
    )]
    username: String,
    /// What they may do.
    role: Role,
    /// At least 12 characters. Absent: the user can sign in only through the
    /// OpenID Connect issuer.
    #[schema(value_type = Option<String>, format = Password, min_length = 12, max_length = 1024)]
    password: Option<Secret>,
}

/// What to change. An empty object changes nothing and returns the user as
/// they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUser {
    /// The new role (revokes the user's sessions and API tokens).
    role: Option<Role>,
    /// `true` disables (revoking every session and API token), `false` enables.
    disabled: Option<bool>,
}

/// A page of users, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserPage {
    /// The users.
    items: Vec<User>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[schema(value_type = Option<String>)]
    next_cursor: Option<Cursor>,
}

/// A user's active sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserSessions {
    /// The sessions.
    items: Vec<Session>,
}

/// Query parameters of the user listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserListQuery {
    /// Page size, 1–100 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Creates a user.
#[utoipa::path(post, path = "/users", tag = "users",
    security(("bearer" = [])),
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = User,
            headers(("Location" = String, description = "The user's URL"))),
        (status = 401, description = "No valid session or token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "A bad username, role or password", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    audit: Audit,
    AdminUser(admin): AdminUser,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    let user = state
        .users
        .create(
            &audit.caller((&admin.user).into()),
            &req.username,
            req.role,
            req.password,
        )
        .await?;
    let location = HeaderValue::try_from(format!("/api/v1/users/{}", user.id))
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(user),
    )
        .into_response())
}

/// Lists users, newest first.
#[utoipa::path(get, path = "/users", tag = "users",
    security(("bearer" = [])),
    params(UserListQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "A bad query parameter or cursor", body = ErrorBody),
        (status = 401, description = "No valid session or token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<UserListQuery>,
) -> Result<Json<UserPage>, ApiError> {
    let page = state
        .users
        .list(&page_request(Listing::Users, q.limit, q.cursor)?)
        .await?;
    Ok(Json(UserPage {
        items: page.items,
        next_cursor: Listing::Users.seal(page.next_cursor),
    }))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The user")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 401, description = "No valid session or token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    _admin: AdminUser,
    IdPath(id): IdPath<UserId>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.users.get(id).await?))
}

/// Changes a user's role, or disables or enables them. A new role or a disable
/// revokes every session and API token of the user in the same write.
#[utoipa::path(patch, path = "/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The user")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The user as now stored", body = User),
        (status = 401, description = "No valid session or token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "It would leave no enabled admin (`last_admin`)", body = ErrorBody),
        (status = 422, description = "Neither field given, or a bad value", body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    audit: Audit,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath<UserId>,
    ApiJson(req): ApiJson<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    if req.role.is_none() && req.disabled.is_none() {
        // Nothing to change: nothing written, nothing audited.
        return Ok(Json(state.users.get(id).await?));
    }
    let change = UserChange {
        role: req.role,
        disabled: req.disabled,
    };
    let user = state
        .users
        .update(&audit.caller((&admin.user).into()), id, change)
        .await?;
    Ok(Json(user))
}

/// Deletes a user with their sessions, API tokens and issuer identities. Their
/// jobs stay.
#[utoipa::path(delete, path = "/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The user")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid session or token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "It would leave no enabled admin (`last_admin`)", body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    audit: Audit,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath<UserId>,
) -> Result<StatusCode, ApiError> {
    state
        .users
        .delete(&audit.caller((&admin.user).into()), id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's active sessions, newest first.
#[utoipa::path(get, path = "/users/{id}/sessions", tag = "users",
    security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The user")),
    responses(
        (status = 200, description = "The user's sessions", body = UserSessions),
        (status = 401, description = "No valid session or token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody)))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    _admin: AdminUser,
    IdPath(id): IdPath<UserId>,
) -> Result<Json<UserSessions>, ApiError> {
    Ok(Json(UserSessions {
        items: state.users.sessions(id).await?,
    }))
}

/// Revokes one of a user's sessions (signs that device out).
#[utoipa::path(delete, path = "/users/{id}/sessions/{session_id}", tag = "users",
    security(("bearer" = [])),
    params(
        ("id" = UserId, Path, description = "The user"),
        ("session_id" = SessionId, Path, description = "One of their sessions")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid session or token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "Not one of this user's sessions", body = ErrorBody)))]
pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    audit: Audit,
    AdminUser(admin): AdminUser,
    Path((user, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let user: UserId = user
        .parse()
        .map_err(|_| ApiError::not_found("user (the id is not a valid ULID)"))?;
    let session: SessionId = session
        .parse()
        .map_err(|_| ApiError::not_found("session (the id is not a valid ULID)"))?;
    state
        .users
        .revoke_session(&audit.caller((&admin.user).into()), user, session)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
