//! The endpoints, one module per group, plus the small helpers they share.
//!
//! Handlers are thin: extract (which authenticates and validates), call the service
//! (`runway-service`) for anything that changes state or the narrow store
//! capability for a plain read, shape the response. Response types live next to their handler
//! and derive `ToSchema`, so the OpenAPI document describes exactly what is sent.
//!
//! **Every route is registered once**, in [`all`]: `utoipa_axum::routes!` adds a
//! handler to the router at the method and path of its `#[utoipa::path]` and the same
//! operation to the OpenAPI document, so the two cannot disagree. The API is two
//! nested routers, `/api/v1` (people and API clients) and `/agent/v1` (build agents),
//! each with its own JSON error envelope for unknown paths and methods; a handler's
//! `#[utoipa::path]` therefore names its path *inside* its group (`/jobs/{id}`
//! under `/api/v1`). Only `/health`, `/ready` and the documents live at the top, so
//! HTML pages can be added there without inheriting the API's envelope.

use runway_core::page::{Cursor, MAX_LIMIT, PageRequest};
use runway_core::secret::Secret;
use serde::Serializer;

use crate::AppState;
use crate::error::ApiError;

pub(crate) mod agent_protocol;
pub(crate) mod agents;
pub(crate) mod api_tokens;
pub(crate) mod jobs;
pub(crate) mod logs;
pub(crate) mod oidc;
pub(crate) mod registration_tokens;
pub(crate) mod sessions;
pub(crate) mod system;
pub(crate) mod users;

/// Every route, and the OpenAPI operations of the same handlers: the `/api/v1` and
/// `/agent/v1` routers nested under the top one. One `routes!` per path, listing
/// that path's handlers.
pub(crate) fn all() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;

    let (api, api_doc) = OpenApiRouter::new()
        .routes(routes!(system::info))
        .routes(routes!(sessions::sign_in, sessions::list))
        .routes(routes!(sessions::current, sessions::sign_out))
        .routes(routes!(sessions::revoke_all))
        .routes(routes!(sessions::revoke))
        .routes(routes!(api_tokens::create, api_tokens::list))
        .routes(routes!(api_tokens::revoke))
        .routes(routes!(users::create, users::list))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(users::sessions))
        .routes(routes!(users::revoke_session))
        .routes(routes!(oidc::login))
        .routes(routes!(oidc::callback))
        .routes(routes!(
            registration_tokens::create,
            registration_tokens::list
        ))
        .routes(routes!(registration_tokens::delete))
        .routes(routes!(agents::list))
        .routes(routes!(agents::get, agents::delete))
        .routes(routes!(agents::pause))
        .routes(routes!(agents::resume))
        .routes(routes!(agents::drain))
        .routes(routes!(jobs::create, jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
        .routes(routes!(logs::read))
        .routes(routes!(logs::stream))
        .routes(routes!(crate::audit::list))
        .split_for_parts();
    let (agent, agent_doc) = OpenApiRouter::new()
        .routes(routes!(agent_protocol::register))
        .routes(routes!(agent_protocol::heartbeat))
        .routes(routes!(agent_protocol::config))
        .routes(routes!(agent_protocol::claim))
        .routes(routes!(agent_protocol::start))
        .routes(routes!(agent_protocol::lease))
        .routes(routes!(agent_protocol::logs))
        .routes(routes!(agent_protocol::finish))
        .routes(routes!(agent_protocol::rotate_token))
        .routes(routes!(agent_protocol::disconnect))
        .split_for_parts();
    let (top, top_doc) = OpenApiRouter::new()
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
        .split_for_parts();

    // Each group answers its own unknown paths and methods with the envelope; the
    // fallbacks apply to the routes registered before them, so they come last.
    let envelope = |router: axum::Router<AppState>| {
        router
            .fallback(system::not_found)
            .method_not_allowed_fallback(system::method_not_allowed)
    };
    let router = top
        .nest(API_PREFIX, envelope(api))
        .nest(AGENT_PREFIX, envelope(agent));
    let doc = top_doc
        .nest(API_PREFIX, api_doc)
        .nest(AGENT_PREFIX, agent_doc);
    (router, doc)
}

/// Where the JSON API for people and API clients is nested.
pub(crate) const API_PREFIX: &str = "/api/v1";
/// Where the agent protocol is nested.
pub(crate) const AGENT_PREFIX: &str = "/agent/v1";

/// Writes a freshly issued token into the one response that shows it. Keeping it a
/// [`Secret`] until then means `Debug` of the response never prints it.
pub(crate) fn expose_secret<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// Which listing a cursor belongs to.
///
/// The stores' cursors are positions (SQLite: the last id; DynamoDB: the last key),
/// which would be accepted by any other listing over the same kind of key and invite
/// clients to build their own. So the API seals each one on the way out as
/// base64url(`tag` `.` position) and opens it on the way in, refusing with 400
/// `invalid_cursor` one that is malformed or was issued by another listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    Jobs,
    Agents,
    Audit,
    Users,
    /// Paged by the API itself (`listing::capped_items`), by token id.
    RegistrationTokens,
}

impl Listing {
    const fn tag(self) -> &'static str {
        match self {
            Self::Jobs => "jobs",
            Self::Agents => "agents",
            Self::Audit => "audit",
            Self::Users => "users",
            Self::RegistrationTokens => "registration_tokens",
        }
    }

    /// The client's form of a store's cursor.
    pub(crate) fn seal(self, cursor: Option<Cursor>) -> Option<Cursor> {
        use base64::Engine as _;
        cursor.map(|Cursor(position)| {
            let text = format!("{}.{position}", self.tag());
            Cursor(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text))
        })
    }

    /// The store's cursor inside a client's, if this listing issued it.
    pub(crate) fn open(self, sealed: &str) -> Result<Cursor, ApiError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| ApiError::InvalidCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| ApiError::InvalidCursor)?;
        text.strip_prefix(self.tag())
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|position| !position.is_empty())
            .map(|position| Cursor(position.to_owned()))
            .ok_or(ApiError::InvalidCursor)
    }
}

/// Builds a page request from query parameters; `limit` outside 1–100 is a 400
/// `invalid_query` like any other bad query value, and a cursor that `listing` did
/// not issue is a 400 `invalid_cursor`.
pub(crate) fn page_request(
    listing: Listing,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<PageRequest, ApiError> {
    let mut page = PageRequest::default();
    if let Some(limit) = limit {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::InvalidQuery(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {limit}"
            )));
        }
        page.limit = limit;
    }
    page.after = cursor.map(|c| listing.open(&c)).transpose()?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_outside_1_to_100_is_an_invalid_query() {
        assert!(matches!(
            page_request(Listing::Jobs, Some(0), None),
            Err(ApiError::InvalidQuery(_))
        ));
        assert!(matches!(
            page_request(Listing::Jobs, Some(101), None),
            Err(ApiError::InvalidQuery(_))
        ));
        assert_eq!(
            page_request(Listing::Jobs, Some(100), None).unwrap().limit,
            100
        );
        assert_eq!(page_request(Listing::Jobs, None, None).unwrap().limit, 50);
    }

    #[test]
    fn a_sealed_cursor_opens_only_in_the_listing_that_issued_it() {
        let sealed = Listing::Jobs
            .seal(Some(Cursor("01JDQ5V8ZK4M3X9T2B7N6C1F0R".into())))
            .unwrap();
        assert!(!sealed.0.contains("01JDQ5V8ZK4M3X9T2B7N6C1F0R"));
        let page = page_request(Listing::Jobs, None, Some(sealed.0.clone())).unwrap();
        assert_eq!(
            page.after,
            Some(Cursor("01JDQ5V8ZK4M3X9T2B7N6C1F0R".into()))
        );
        assert!(matches!(
            page_request(Listing::Agents, None, Some(sealed.0)),
            Err(ApiError::InvalidCursor)
        ));
        for bad in ["", "!!!", "01JDQ5V8ZK4M3X9T2B7N6C1F0R", "am9icy4"] {
            assert!(
                matches!(
                    page_request(Listing::Jobs, None, Some(bad.into())),
                    Err(ApiError::InvalidCursor)
                ),
                "{bad:?}"
            );
        }
        assert_eq!(Listing::Jobs.seal(None), None);
    }
}
