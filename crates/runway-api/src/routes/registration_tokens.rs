//! Registration tokens: the HTTP shape of [`runway_service::registration_tokens`],
//! which holds the rules and writes each change with its audit event.
//!
//! Admin only (the [`AdminUser`] extractor). The plaintext token appears in the
//! creation response and nowhere else; the store keeps its SHA-256.
//!
//! A token expires after 7 days unless the request says otherwise: a leaked token
//! that nobody remembers is the commonest way into a build fleet, so "never"
//! must be asked for explicitly (`"expires_at": null`). `max_uses` bounds how many
//! agents it admits; the store counts a use in the same write as the registration,
//! so two agents racing for the last use cannot both get in.
//!
//! Creating one counts against the token-creation limit, per admin and per
//! address (`runway_service::limits`): 429 `rate_limited` past it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use runway_core::OffsetDateTime;
use runway_core::agent::RegistrationToken;
use runway_core::id::RegistrationTokenId;
use runway_core::page::Cursor;
use runway_core::secret::Secret;
use runway_service::registration_tokens::{self, NewRegistrationToken};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Listing, expose_secret};

use crate::AppState;
use crate::audit::Audit;
use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, IdPath, OptionalJson};
use crate::listing::capped_items;
use crate::middleware::CallId;
use crate::routes::sessions::ClientMeta;

/// A new registration token's settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRegistrationToken {
    /// What the token is for (at most 200 characters, no control characters;
    /// blank means none).
    #[schema(
        example = "build hosts in eu-west-1",
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
    )]
    description: Option<String>,
    /// When the token stops working (RFC 3339, in the future). Absent: in 7 days.
    /// `null`: never.
    #[serde(default, deserialize_with = "explicit_expiry")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Option<OffsetDateTime>>,
    /// How many agents the token may register, 1–10000; absent for no limit.
    #[schema(minimum = 1, maximum = 10_000)]
    max_uses: Option<u32>,
}

/// `expires_at` told apart: absent (`None`, from `default`), `null` (`Some(None)`)
/// or a time (`Some(Some(t))`).
fn explicit_expiry<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
    time::serde::rfc3339::option::deserialize(d).map(Some)
}

/// The new token. `token` is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedRegistrationToken {
    /// Give this to agents as `Authorization: Bearer <token>` on `register`.
    #[serde(serialize_with = "expose_secret")]
    #[schema(value_type = String, example = "rwr_…")]
    token: Secret,
    /// The stored record.
    registration_token: RegistrationToken,
}

/// Registration tokens, newest first, expired ones included: all of them, unless
/// they would pass the listing's byte cap, and then `next_cursor` continues.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RegistrationTokenList {
    /// The tokens.
    items: Vec<RegistrationToken>,
    /// Pass this back as `cursor` for the rest; absent when nothing is left.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    next_cursor: Option<Cursor>,
}

/// Where to continue the token list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RegistrationTokenListQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Creates a registration token.
#[utoipa::path(post, path = "/registration-tokens", tag = "registration tokens",
    security(("bearer" = [])),
    request_body(content = Option<CreateRegistrationToken>,
        description = "Optional: with no body the token has no description, no use limit, and expires in 7 days"),
    responses(
        (status = 201, description = "Created", body = CreatedRegistrationToken),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "A field is out of range", body = ErrorBody),
        (status = 429, description = "Too many token creations by this user or from this address (`rate_limited`); retry after `Retry-After` seconds", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    audit: Audit,
    request_id: CallId,
    meta: ClientMeta,
    AdminUser(admin): AdminUser,
    OptionalJson(req): OptionalJson<CreateRegistrationToken>,
) -> Result<(StatusCode, Json<CreatedRegistrationToken>), ApiError> {
    let checked = registration_tokens::check(
        NewRegistrationToken {
            description: req.description,
            expires_at: req.expires_at,
            max_uses: req.max_uses,
        },
        OffsetDateTime::now_utc(),
    )?;
    // Counted once the request is valid: a typo in a field is not an attempt.
    state
        .service
        .limits()
        .check_token_creation(
            admin.user.user_id,
            meta.ip.as_deref(),
            request_id.into_option().as_deref(),
        )
        .await?;
    let caller = audit.caller((&admin.user).into());
    let (record, token) =
        registration_tokens::create(state.store.as_ref(), &caller, admin.user.user_id, checked)
            .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedRegistrationToken {
            token,
            registration_token: record,
        }),
    ))
}

/// Lists registration tokens, newest first.
#[utoipa::path(get, path = "/registration-tokens", tag = "registration tokens",
    security(("bearer" = [])),
    params(RegistrationTokenListQuery),
    responses(
        (status = 200, description = "The tokens", body = RegistrationTokenList),
        (status = 400, description = "A cursor this listing did not issue (`invalid_cursor`)", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<RegistrationTokenListQuery>,
) -> Result<Json<RegistrationTokenList>, ApiError> {
    // The store lists every token at once; the API pages that list by id (ids
    // are ULIDs, newest first), so the cursor is the last id sent.
    let after = match q.cursor {
        None => None,
        Some(sealed) => {
            let Cursor(id) = Listing::RegistrationTokens.open(&sealed)?;
            Some(
                id.parse::<RegistrationTokenId>()
                    .map_err(|_| ApiError::InvalidCursor)?,
            )
        }
    };
    let mut items = state.store.list_registration_tokens().await?;
    if let Some(after) = after {
        items.retain(|token| token.id < after);
    }
    let page = capped_items(items, state.listing_max_bytes, |token| {
        Cursor(token.id.to_string())
    })?;
    Ok(Json(RegistrationTokenList {
        items: page.items,
        next_cursor: Listing::RegistrationTokens.seal(page.next_cursor),
    }))
}

/// Revokes a registration token; agents it admitted keep working.
#[utoipa::path(delete, path = "/registration-tokens/{id}", tag = "registration tokens",
    security(("bearer" = [])),
    params(("id" = RegistrationTokenId, Path, description = "The token to delete")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such token", body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    audit: Audit,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath<RegistrationTokenId>,
) -> Result<StatusCode, ApiError> {
    let caller = audit.caller((&admin.user).into());
    registration_tokens::delete(state.store.as_ref(), &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
