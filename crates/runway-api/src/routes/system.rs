//! Liveness, readiness, server info, and the fallbacks for unknown routes and methods.
//!
//! `/health` answers without touching the store, so a load balancer can tell "the
//! process is up" apart from `/ready`, "the process can serve", which pings the store.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use runway_core::store::StoreError;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// `{"status":"ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// `{"status":"ready","store":"sqlite"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// The store backend.
    #[schema(example = "sqlite")]
    store: &'static str,
}

/// What this server is.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Info {
    /// Always `runway`.
    #[schema(example = "runway")]
    name: &'static str,
    /// The server's version.
    #[schema(example = "0.1.0")]
    version: &'static str,
    /// The store backend: `sqlite` or `dynamodb`.
    #[schema(example = "sqlite")]
    store: &'static str,
    /// How users can sign in: `password`, and `oidc` when an OpenID Connect
    /// issuer is configured.
    #[schema(example = json!(["password", "oidc"]))]
    auth_methods: Vec<&'static str>,
}

/// Liveness: the process is up. Never calls the store.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "The process is up", body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/ready", tag = "system", responses(
    (status = 200, description = "Ready to serve", body = Ready),
    (status = 503, description = "The store does not answer", body = ErrorBody)))]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    // Whatever the reason the store does not answer (down, throttled, tables
    // missing, access denied), the instance is not ready: 503, never 500.
    state.store.ping().await.map_err(|err| match err {
        StoreError::Unavailable { .. } => ApiError::from(err),
        other => ApiError::from(StoreError::unavailable(other, None)),
    })?;
    Ok(Json(Ready {
        status: "ready",
        store: state.store.backend(),
    }))
}

/// The server's name, version, store and sign-in methods.
#[utoipa::path(get, path = "/info", tag = "system",
    responses((status = 200, description = "Server info", body = Info)))]
pub(crate) async fn info(State(state): State<AppState>) -> Json<Info> {
    Json(Info {
        name: "runway",
        version: env!("CARGO_PKG_VERSION"),
        store: state.store.backend(),
        auth_methods: if state.oidc.is_some() {
            vec!["password", "oidc"]
        } else {
            vec!["password"]
        },
    })
}

/// Any path no route matches.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see /openapi.json for the API".into())
}

/// A known path with a method it does not accept.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
