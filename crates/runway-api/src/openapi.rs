//! The OpenAPI 3.1 document; the interactive docs that read it are in `docs`.
//!
//! The document is derived from the handlers' `#[utoipa::path]` attributes and the
//! response types' `ToSchema`, collected by the same registration that builds the
//! router (`crate::routes::all`), so it cannot drift from the code: a route exists in
//! both or in neither. It is built and serialized once per
//! process and served from memory.

use std::sync::LazyLock;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Runway",
        description = "The control plane of the Runway CI/CD service. Every error has the shape \
            `{\"error\":{\"code\",\"message\",\"request_id\"}}`; see docs/http-api.md."
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    tags(
        (name = "system", description = "Health, readiness and server info"),
        (name = "sessions", description = "Signing in and managing one's devices"),
        (name = "api tokens", description = "Personal API tokens for scripts and CI"),
        (name = "users", description = "Managing users and their sessions (admins)"),
        (name = "registration tokens", description = "Admin-created tokens that admit agents"),
        (name = "agents", description = "Build agents as users see them"),
        (name = "jobs", description = "Submitting and following jobs"),
        (name = "agent protocol", description = "The calls build agents make"),
        (name = "audit", description = "Who changed what, newest first (admins)"),
    )
)]
struct ApiDoc;

/// Adds the `bearer` security scheme the paths refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token (`rws_…`) or a personal API token (`rwp_…`) on \
                         /api/v1; on /agent/v1 a registration \
                         token (`rwr_…`) for register, a job token (`rwj_…`) for a job's \
                         start, lease, logs and finish, and the agent token (`rwa_…`) for \
                         everything else",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3.1 document of the whole API.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi().merge_from(crate::routes::all().1);
    BearerAuth.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    Bytes::from(serde_json::to_vec(&openapi()).unwrap_or_else(|_| b"{}".to_vec()))
});

/// `/openapi.json` and `/docs`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    DOCUMENT.clone(),
                )
                    .into_response()
            }),
        )
        .merge(crate::docs::routes())
}
