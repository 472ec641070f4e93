//! The route matrix: every route the router serves, with who may call it and what
//! body it takes, and the failures that follow from those two facts alone, asserted
//! for every route at once. A new route must be added to [`ROUTES`] (the OpenAPI
//! test checks the table against the document), and then gets these checks for free.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use runway_api::ApiConfig;
use serde_json::json;

use crate::app::{TestApp, TestResponse};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Anyone.
    Anyone,
    /// A signed-in user (`rws_` session token).
    User,
    /// A signed-in admin.
    Admin,
    /// An agent (`rwa_` agent token).
    Agent,
    /// A registration token (`rwr_`).
    Registration,
    /// The job token (`rwj_`) of an attempt of the job in the path.
    Job,
}

/// What body a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// No body; anything sent is ignored.
    Nothing,
    /// A JSON body, required.
    Json,
    /// A JSON body that may be left out.
    OptionalJson,
    /// Raw bytes, `application/octet-stream` (log chunks).
    Octets,
}

/// One route: method, path template, caller, body.
pub type Route = (&'static str, &'static str, Caller, Takes);

/// Every route the router serves, besides the documents themselves.
pub const ROUTES: &[Route] = &[
    ("get", "/health", Caller::Anyone, Takes::Nothing),
    ("get", "/ready", Caller::Anyone, Takes::Nothing),
    ("get", "/api/v1/info", Caller::Anyone, Takes::Nothing),
    ("post", "/api/v1/auth/sessions", Caller::Anyone, Takes::Json),
    (
        "get",
        "/api/v1/auth/oidc/login",
        Caller::Anyone,
        Takes::Nothing,
    ),
    (
        "get",
        "/api/v1/auth/oidc/callback",
        Caller::Anyone,
        Takes::Nothing,
    ),
    ("get", "/api/v1/auth/sessions", Caller::User, Takes::Nothing),
    ("get", "/api/v1/auth/session", Caller::User, Takes::Nothing),
    (
        "delete",
        "/api/v1/auth/session",
        Caller::User,
        Takes::Nothing,
    ),
    (
        "delete",
        "/api/v1/auth/sessions/{id}",
        Caller::User,
        Takes::Nothing,
    ),
    (
        "post",
        "/api/v1/auth/sessions/revoke-all",
        Caller::User,
        Takes::OptionalJson,
    ),
    (
        "post",
        "/api/v1/registration-tokens",
        Caller::Admin,
        Takes::OptionalJson,
    ),
    (
        "get",
        "/api/v1/registration-tokens",
        Caller::Admin,
        Takes::Nothing,
    ),
    (
        "delete",
        "/api/v1/registration-tokens/{id}",
        Caller::Admin,
        Takes::Nothing,
    ),
    ("get", "/api/v1/agents", Caller::User, Takes::Nothing),
    ("get", "/api/v1/agents/{id}", Caller::User, Takes::Nothing),
    (
        "delete",
        "/api/v1/agents/{id}",
        Caller::Admin,
        Takes::Nothing,
    ),
    (
        "post",
        "/api/v1/agents/{id}/pause",
        Caller::Admin,
        Takes::Nothing,
    ),
    (
        "post",
        "/api/v1/agents/{id}/resume",
        Caller::Admin,
        Takes::Nothing,
    ),
    (
        "post",
        "/api/v1/agents/{id}/drain",
        Caller::Admin,
        Takes::Nothing,
    ),
    ("post", "/api/v1/jobs", Caller::User, Takes::Json),
    ("get", "/api/v1/jobs", Caller::User, Takes::Nothing),
    ("get", "/api/v1/jobs/{id}", Caller::User, Takes::Nothing),
    (
        "post",
        "/api/v1/jobs/{id}/cancel",
        Caller::User,
        Takes::Nothing,
    ),
    (
        "post",
        "/api/v1/jobs/{id}/retry",
        Caller::User,
        Takes::OptionalJson,
    ),
    ("get", "/api/v1/jobs/{id}/log", Caller::User, Takes::Nothing),
    (
        "get",
        "/api/v1/jobs/{id}/log/stream",
        Caller::User,
        Takes::Nothing,
    ),
    (
        "post",
        "/agent/v1/register",
        Caller::Registration,
        Takes::Json,
    ),
    (
        "post",
        "/agent/v1/heartbeat",
        Caller::Agent,
        Takes::OptionalJson,
    ),
    ("get", "/agent/v1/config", Caller::Agent, Takes::Nothing),
    (
        "post",
        "/agent/v1/jobs/claim",
        Caller::Agent,
        Takes::Nothing,
    ),
    (
        "post",
        "/agent/v1/jobs/{id}/start",
        Caller::Job,
        Takes::Nothing,
    ),
    (
        "post",
        "/agent/v1/jobs/{id}/lease",
        Caller::Job,
        Takes::Nothing,
    ),
    (
        "put",
        "/agent/v1/jobs/{id}/logs",
        Caller::Job,
        Takes::Octets,
    ),
    (
        "post",
        "/agent/v1/jobs/{id}/finish",
        Caller::Job,
        Takes::Json,
    ),
    (
        "post",
        "/agent/v1/token/rotate",
        Caller::Agent,
        Takes::Nothing,
    ),
    (
        "post",
        "/agent/v1/disconnect",
        Caller::Agent,
        Takes::Nothing,
    ),
    ("get", "/api/v1/audit", Caller::Admin, Takes::Nothing),
];

/// Routes whose `{id}` must be a finished job for a call with no body to succeed.
const ON_A_FINISHED_JOB: &[&str] = &["/api/v1/jobs/{id}/retry"];

/// The tokens of every kind, minted once per app, the job the job token is for,
/// and a finished job (canceled while queued) for the routes that act on one.
struct Tokens {
    admin: String,
    member: String,
    agent: String,
    registration: String,
    job: String,
    job_id: String,
    finished_job_id: String,
}

impl Tokens {
    async fn mint(app: &TestApp) -> Self {
        let admin = app.admin_token().await;
        let member = app.member_token().await;
        let (_, agent) = app.agent(&admin, "matrix-agent").await;
        let registration = app.registration_token(&admin).await;
        let (job_id, job) = app.claimed_job(&admin, &agent).await;
        let finished = app.submit_job(&admin, "finished").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = app
            .post_raw(
                &format!("/api/v1/jobs/{finished}/cancel"),
                Some(&admin),
                None,
                "",
            )
            .await;
        assert_eq!(r.json()["status"], "canceled");
        Self {
            admin,
            member,
            agent,
            registration,
            job,
            job_id,
            finished_job_id: finished,
        }
    }

    /// A token that is allowed to call a route of `caller`.
    fn allowed(&self, caller: Caller) -> Option<&str> {
        match caller {
            Caller::Anyone => None,
            Caller::User | Caller::Admin => Some(&self.admin),
            Caller::Agent => Some(&self.agent),
            Caller::Registration => Some(&self.registration),
            Caller::Job => Some(&self.job),
        }
    }

    /// Tokens of the wrong kind for `caller`: each must be refused with a 401.
    fn wrong_kinds(&self, caller: Caller) -> Vec<&str> {
        match caller {
            Caller::Anyone => Vec::new(),
            Caller::User | Caller::Admin => vec![&self.agent, &self.registration, &self.job],
            Caller::Agent => vec![&self.admin, &self.registration, &self.job],
            Caller::Registration => vec![&self.admin, &self.agent, &self.job],
            Caller::Job => vec![&self.admin, &self.agent, &self.registration],
        }
    }

    /// `path` with its `{id}`: the claimed job's for job-token routes (a job token
    /// is only ever good for its own job), the finished job's for
    /// [`ON_A_FINISHED_JOB`], a fresh id otherwise; log chunks get their query.
    fn path(&self, route: &Route) -> String {
        let &(_, path, caller, takes) = route;
        let path = if caller == Caller::Job {
            path.replace("{id}", &self.job_id)
        } else if ON_A_FINISHED_JOB.contains(&path) {
            path.replace("{id}", &self.finished_job_id)
        } else {
            concrete(path)
        };
        if takes == Takes::Octets {
            format!("{path}?seq=0&offset=0")
        } else {
            path
        }
    }
}

fn concrete(path: &str) -> String {
    path.replace("{id}", &ulid::Ulid::new().to_string())
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> TestResponse {
    let mut b = TestApp::request(
        method.to_uppercase().parse::<Method>().unwrap(),
        path,
        token,
    );
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    app.send(b.body(body.into()).unwrap()).await
}

#[tokio::test]
async fn every_protected_route_is_a_401_with_www_authenticate_without_a_token() {
    let app = TestApp::new().await;
    for &(method, path, caller, _) in ROUTES.iter().filter(|r| r.2 != Caller::Anyone) {
        for token in [
            None,
            Some("not-a-token"),
            Some("rws_AAAAAAAAAAAAAAAAAAAAAAAAAA_x"),
        ] {
            let r = send(&app, method, &concrete(path), token, None, Body::empty()).await;
            r.assert_error(401, "unauthorized");
            assert_eq!(
                r.header("www-authenticate"),
                "Bearer",
                "{method} {path} ({caller:?}) with {token:?}"
            );
        }
    }
}

#[tokio::test]
async fn every_protected_route_refuses_a_token_of_another_kind() {
    let app = TestApp::new().await;
    let tokens = Tokens::mint(&app).await;
    for route @ &(method, path, caller, _) in ROUTES.iter().filter(|r| r.2 != Caller::Anyone) {
        for token in tokens.wrong_kinds(caller) {
            let r = send(
                &app,
                method,
                &tokens.path(route),
                Some(token),
                None,
                Body::empty(),
            )
            .await;
            let prefix = &token[..4];
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} accepted a {prefix} token: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
}

#[tokio::test]
async fn every_admin_route_is_a_403_for_a_member() {
    let app = TestApp::new().await;
    let tokens = Tokens::mint(&app).await;
    let admin_routes: Vec<_> = ROUTES.iter().filter(|r| r.2 == Caller::Admin).collect();
    assert!(!admin_routes.is_empty());
    for &&(method, path, _, body) in &admin_routes {
        let (ct, payload) = match body {
            Takes::Nothing => (None, String::new()),
            _ => (Some("application/json"), "{}".to_owned()),
        };
        send(
            &app,
            method,
            &concrete(path),
            Some(&tokens.member),
            ct,
            payload,
        )
        .await
        .assert_error(403, "forbidden");
    }
}

#[tokio::test]
async fn every_route_that_takes_a_body_is_a_415_for_a_body_that_is_not_declared_json() {
    let app = TestApp::new().await;
    let tokens = Tokens::mint(&app).await;
    for route @ &(method, path, caller, takes) in ROUTES.iter().filter(|r| r.3 != Takes::Nothing) {
        let token = tokens.allowed(caller);
        let (wanted, wrong) = match takes {
            Takes::Octets => ("application/octet-stream", "application/json"),
            _ => ("application/json", "application/x-www-form-urlencoded"),
        };
        for ct in [None, Some("text/plain"), Some(wrong)] {
            let r = send(&app, method, &tokens.path(route), token, ct, r#"{"a":1}"#).await;
            let message = r.assert_error(415, "unsupported_media_type");
            assert!(message.contains(wanted), "{method} {path}: {message}");
        }
    }
}

#[tokio::test]
async fn every_route_that_takes_a_body_is_a_413_over_the_limit() {
    let limit = 512;
    let app = TestApp::with_config(ApiConfig {
        max_body_bytes: limit,
        ..ApiConfig::default()
    })
    .await;
    let tokens = Tokens::mint(&app).await;
    let big = json!({"name": "x".repeat(limit * 2)}).to_string();
    for route @ &(method, path, caller, takes) in ROUTES.iter().filter(|r| r.3 != Takes::Nothing) {
        let token = tokens.allowed(caller);
        let ct = match takes {
            Takes::Octets => "application/octet-stream",
            _ => "application/json",
        };
        let r = send(
            &app,
            method,
            &tokens.path(route),
            token,
            Some(ct),
            big.clone(),
        )
        .await;
        let message = r.assert_error(413, "payload_too_large");
        assert!(
            message.contains(&limit.to_string()),
            "{method} {path}: {message}"
        );
    }
}

#[tokio::test]
async fn every_route_with_an_optional_body_accepts_none_at_all() {
    let app = TestApp::new().await;
    let tokens = Tokens::mint(&app).await;
    for route @ &(method, path, caller, _) in ROUTES.iter().filter(|r| r.3 == Takes::OptionalJson) {
        // A fresh session each time: revoke-all signs the caller out everywhere.
        let fresh;
        let token = if matches!(caller, Caller::User | Caller::Admin) {
            fresh = app.admin_token().await;
            Some(fresh.as_str())
        } else {
            tokens.allowed(caller)
        };
        let r = send(
            &app,
            method,
            &tokens.path(route),
            token,
            None,
            Body::empty(),
        )
        .await;
        assert!(
            r.status.is_success(),
            "{method} {path} without a body: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
}

#[tokio::test]
async fn every_route_that_requires_a_body_is_a_422_for_an_empty_object() {
    let app = TestApp::new().await;
    let tokens = Tokens::mint(&app).await;
    for route @ &(method, path, caller, _) in ROUTES.iter().filter(|r| r.3 == Takes::Json) {
        let r = send(
            &app,
            method,
            &tokens.path(route),
            tokens.allowed(caller),
            Some("application/json"),
            "{}",
        )
        .await;
        let message = r.assert_error(422, "validation_failed");
        assert!(
            message.contains("missing field"),
            "{method} {path}: {message}"
        );
    }
}

#[tokio::test]
async fn every_route_that_takes_json_refuses_a_body_that_is_not_an_object() {
    let app = TestApp::new().await;
    let tokens = Tokens::mint(&app).await;
    let json_routes = ROUTES
        .iter()
        .filter(|r| matches!(r.3, Takes::Json | Takes::OptionalJson));
    for route @ &(method, path, caller, takes) in json_routes {
        // An array of the fields in order is what serde alone would accept.
        let mut bodies = vec![
            (r#"["admin", "x"]"#, "an array"),
            ("[]", "an array"),
            (r#""text""#, "a string"),
            ("7", "a number"),
            ("true", "a boolean"),
        ];
        if takes == Takes::Json {
            bodies.push(("null", "null"));
        }
        for (body, kind) in bodies {
            let r = send(
                &app,
                method,
                &tokens.path(route),
                tokens.allowed(caller),
                Some("application/json"),
                body,
            )
            .await;
            let message = r.assert_error(422, "validation_failed");
            assert_eq!(
                message,
                format!("the body must be a JSON object, not {kind}"),
                "{method} {path} with {body}"
            );
        }
    }
}

#[tokio::test]
async fn every_route_with_an_optional_body_takes_null_as_none() {
    let app = TestApp::new().await;
    let tokens = Tokens::mint(&app).await;
    for route @ &(method, path, caller, _) in ROUTES.iter().filter(|r| r.3 == Takes::OptionalJson) {
        // A fresh session each time: revoke-all signs the caller out everywhere.
        let fresh;
        let token = if matches!(caller, Caller::User | Caller::Admin) {
            fresh = app.admin_token().await;
            Some(fresh.as_str())
        } else {
            tokens.allowed(caller)
        };
        let r = send(
            &app,
            method,
            &tokens.path(route),
            token,
            Some("application/json"),
            " null ",
        )
        .await;
        assert!(
            r.status.is_success(),
            "{method} {path} with null: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
}
