//! # runway-api
//!
//! Runway's HTTP API as an axum [`Router`], independent of how it is served: the
//! `runway` binary serves it on a socket, the Lambda adapter feeds it API Gateway
//! events, and the tests call it in-process with `oneshot`. The contract is
//! `docs/http-api.md`; the machine-readable one is [`openapi()`], generated from the
//! handlers themselves so the two cannot drift.
//!
//! Code tour:
//!
//! * [`router`] — assembles the routes and layers (this file);
//! * `error` — the one `ApiError` enum and its status/code table;
//! * `extract` — JSON, query and path extractors whose rejections are `ApiError`s;
//! * [`policy`] — the authorization matrix: who may call each route, in one
//!   table that the extractors enforce and docs/http-api.md repeats;
//! * `auth` — the extractors that authenticate the caller and apply the matrix
//!   (and the CSRF rule for cookie-authenticated writes);
//! * `cookies` — the `runway_session` and `runway_csrf` cookies;
//! * `middleware` — request ids, the error envelope, the access log;
//! * `security` — the security headers on every response, and CORS;
//! * `listing` — the byte cap every listing's page stops at, with the cursor to
//!   continue from;
//! * `routes::*` — one module per group of endpoints: `/api/v1` for people and
//!   `/agent/v1` (`routes::agent_protocol`) for agents;
//! * `audit` — who the caller is for the audit log, and `GET /api/v1/audit`;
//! * `openapi` — the OpenAPI 3.1 document; `docs` — the `/docs` page (Swagger UI
//!   from the `utoipa-swagger-ui` crate, served from the binary).
//!
//! Handlers extract (authenticate, validate), call one function of
//! [`runway_service::Service`] (or one read of the store), and shape the answer;
//! the rules themselves live in `runway-service`. Everything is behind
//! `Arc<dyn Store>` and `Arc<dyn LogStore>`, so the same router runs on SQLite and
//! on DynamoDB + S3, and no backend type appears here.

#![forbid(unsafe_code)]

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use runway_core::store::Store;
use runway_service::Service;

mod audit;
mod auth;
mod cookies;
mod docs;
mod error;
mod extract;
mod listing;
mod middleware;
mod openapi;
pub mod policy;
mod routes;
mod security;
mod timeouts;

pub use openapi::openapi;

/// Settings of the API that the server chooses.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Absolute lifetime of a session, fixed at sign-in.
    pub session_ttl: time::Duration,
    /// A session lapses after this long without use.
    pub session_idle_timeout: time::Duration,
    /// Origins allowed to call the API from a browser, with credentials. Empty: no
    /// CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// The server's external URL (`RUNWAY_PUBLIC_URL`), if known. An `https://` one
    /// turns on `Strict-Transport-Security`.
    pub public_url: Option<String>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a handler may take to answer; the long polls get their wait on top
    /// (see `timeouts`). A request that runs out gets 503 `request_timeout`.
    pub request_timeout: std::time::Duration,
    /// How long the whole request body may take to arrive once a handler reads it;
    /// then 408 `body_timeout`.
    pub body_read_timeout: std::time::Duration,
    /// How many sign-in password verifications (argon2id) may run at once; more wait
    /// up to 5 s for a turn, then get 503 `overloaded`. Default: two per core.
    pub concurrent_password_checks: usize,
    /// Whether `GET /api/v1/jobs/{id}/log/stream` holds the response open and
    /// follows the log. False on Lambda, where an HTTP API cannot stream a
    /// response: the endpoint then sends what there is and a `retry:` hint, and the
    /// browser's `EventSource` reconnects from the last event id.
    pub live_log_streams: bool,
    /// Sign-in through an OpenID Connect issuer, if configured. Its redirect URL
    /// is the public URL's `/api/v1/auth/oidc/callback`.
    pub oidc: Option<runway_service::oidc::OidcSettings>,
    /// The most bytes a listing's response body may take; a page stops before the
    /// item that would pass it and carries the cursor to continue (`listing`).
    /// Default 1 MiB, far under Lambda's 6 MB response limit.
    pub listing_max_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            session_ttl: time::Duration::days(7),
            session_idle_timeout: time::Duration::hours(24),
            cors_allowed_origins: Vec::new(),
            public_url: None,
            max_body_bytes: 1024 * 1024,
            request_timeout: std::time::Duration::from_secs(30),
            body_read_timeout: std::time::Duration::from_secs(20),
            concurrent_password_checks: std::thread::available_parallelism()
                .map_or(2, |n| n.get() * 2),
            live_log_streams: true,
            oidc: None,
            listing_max_bytes: listing::LISTING_MAX_BYTES,
        }
    }
}

/// What every handler can reach: the store and the few settings it needs.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The application rules; every mutation goes through it.
    pub(crate) service: Service,
    /// The same store the service uses, for plain reads.
    pub(crate) store: Arc<dyn Store>,
    /// See [`ApiConfig::live_log_streams`].
    pub(crate) live_log_streams: bool,
    /// Sign-in and session management.
    pub(crate) sessions: runway_service::sessions::Sessions,
    /// Personal API tokens, and authenticating by one.
    pub(crate) tokens: runway_service::api_tokens::Tokens,
    /// User administration.
    pub(crate) users: runway_service::users::Users,
    pub(crate) max_body_bytes: usize,
    /// See [`ApiConfig::body_read_timeout`].
    pub(crate) body_read_timeout: std::time::Duration,
    /// OIDC sign-in, when configured.
    pub(crate) oidc: Option<runway_service::oidc::Oidc>,
    /// How the session and CSRF cookies are set.
    pub(crate) cookies: cookies::CookiePolicy,
    /// See [`ApiConfig::listing_max_bytes`].
    pub(crate) listing_max_bytes: usize,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.backend())
            .field("live_log_streams", &self.live_log_streams)
            .field("sessions", &self.sessions)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("oidc", &self.oidc)
            .field("cookies", &self.cookies)
            .field("listing_max_bytes", &self.listing_max_bytes)
            .finish()
    }
}

/// The whole API, with its layers, ready to serve.
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so sessions
/// record the client address; without `ConnectInfo` everything works and `ip` is
/// simply absent.
///
/// # Panics
/// With OIDC configured, if its HTTP client cannot be built (TLS cannot be
/// initialised): a start-up failure, never one of a request.
pub fn router(service: Service, config: ApiConfig) -> Router {
    use routes::system;

    let ApiConfig {
        session_ttl,
        session_idle_timeout,
        cors_allowed_origins,
        public_url,
        max_body_bytes,
        request_timeout,
        body_read_timeout,
        concurrent_password_checks,
        live_log_streams,
        oidc,
        listing_max_bytes,
    } = config;
    let timings = service.timings();
    let lease_wait = if service.settings().lease_waits {
        std::time::Duration::from_secs(timings.lease_renew_interval_seconds.into())
    } else {
        std::time::Duration::ZERO
    };
    let deadlines = timeouts::Deadlines::new(
        request_timeout,
        service.settings().claim_wait_max,
        lease_wait,
    );
    let sessions = runway_service::sessions::Sessions::new(
        Arc::clone(service.store()),
        session_ttl,
        session_idle_timeout,
        concurrent_password_checks,
        service.limits().clone(),
    );
    let oidc = oidc.map(|settings| {
        runway_service::oidc::Oidc::new(settings, Arc::clone(service.store()), sessions.clone())
            .expect("the OpenID Connect HTTP client builds")
    });
    let state = AppState {
        cookies: cookies::CookiePolicy::for_public_url(
            public_url.as_deref(),
            session_ttl.whole_seconds(),
        ),
        oidc,
        sessions,
        tokens: runway_service::api_tokens::Tokens::new(Arc::clone(service.store())),
        users: runway_service::users::Users::new(Arc::clone(service.store())),
        store: Arc::clone(service.store()),
        service,
        live_log_streams,
        max_body_bytes,
        body_read_timeout,
        listing_max_bytes,
    };

    let api = routes::all()
        .0
        .merge(openapi::routes())
        .fallback(system::not_found)
        // Applies to the routes registered above, so it comes after them.
        .method_not_allowed_fallback(system::method_not_allowed)
        .with_state(state);

    let api = api
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Inside the panic catcher's and the envelope's reach, so a timeout is
        // rendered and logged like any error.
        .layer(timeouts::RequestTimeoutLayer(deadlines))
        // A panic is a bug in one request, not a reason to drop the others.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panic_response,
        ));
    let api = match security::cors(cors_allowed_origins) {
        Some(cors) => api.layer(cors),
        None => api,
    };
    // Around everything else, so every response — preflights and fallbacks
    // included — gets an id.
    let api = api.layer(axum::middleware::from_fn(middleware::observe));
    // Outermost: the headers go on the final response, envelopes included.
    security::with_headers(api, security::serves_https(public_url.as_deref()))
}
