//! The route matrix: every route the router serves, with who may call it and what
//! body it takes, and the failures that follow from those two facts alone, asserted
//! for every route at once. A new route must be added to [`ROUTES`] (the OpenAPI
//! test checks the table against the document), and then gets these checks for free.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use runway_api::ApiConfig;
use serde_json::json;

use runway_core::secret::Secret;
use runway_core::user::Role;
use runway_service::accounts;

use crate::app::{MEMBER_PASSWORD, TestApp, TestResponse};

/// Who may call a route: the crate's own matrix type, so this table and
/// `runway_api::policy::ROUTES` can be compared entry by entry.
pub use runway_api::policy::Access as Caller;

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
    (
        "get",
        "/api/v1/auth/sessions",
        Caller::Session,
        Takes::Nothing,
    ),
    (
        "get",
        "/api/v1/auth/session",
        Caller::Session,
        Takes::Nothing,
    ),
    (
        "delete",
        "/api/v1/auth/session",
        Caller::Session,
        Takes::Nothing,
    ),
    (
        "delete",
        "/api/v1/auth/sessions/{id}",
        Caller::Session,
        Takes::Nothing,
    ),
    (
        "post",
        "/api/v1/auth/sessions/revoke-all",
        Caller::Session,
        Takes::OptionalJson,
    ),
    ("post", "/api/v1/auth/tokens", Caller::Session, Takes::Json),
    (
        "get",
        "/api/v1/auth/tokens",
        Caller::Session,
        Takes::Nothing,
    ),
    (
        "delete",
        "/api/v1/auth/tokens/{id}",
        Caller::Session,
        Takes::Nothing,
    ),
    ("post", "/api/v1/users", Caller::Admin, Takes::Json),
    ("get", "/api/v1/users", Caller::Admin, Takes::Nothing),
    ("get", "/api/v1/users/{id}", Caller::Admin, Takes::Nothing),
    ("patch", "/api/v1/users/{id}", Caller::Admin, Takes::Json),
    (
        "delete",
        "/api/v1/users/{id}",
        Caller::Admin,
        Takes::Nothing,
    ),
    (
        "get",
        "/api/v1/users/{id}/sessions",
        Caller::Admin,
        Takes::Nothing,
    ),
    (
        "delete",
        "/api/v1/users/{id}/sessions/{session_id}",
        Caller::Admin,
        Takes::Nothing,
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
        Caller::OwnerOrAdmin,
        Takes::Nothing,
    ),
    (
        "post",
        "/api/v1/jobs/{id}/retry",
        Caller::OwnerOrAdmin,
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
            c if c.is_for_users() => Some(&self.admin),
            Caller::Agent => Some(&self.agent),
            Caller::Registration => Some(&self.registration),
            Caller::Job => Some(&self.job),
            _ => unreachable!("every user kind is matched above"),
        }
    }

    /// Tokens of the wrong kind for `caller`: each must be refused with a 401.
    fn wrong_kinds(&self, caller: Caller) -> Vec<&str> {
        match caller {
            Caller::Anyone => Vec::new(),
            c if c.is_for_users() => vec![&self.agent, &self.registration, &self.job],
            Caller::Agent => vec![&self.admin, &self.registration, &self.job],
            Caller::Registration => vec![&self.admin, &self.agent, &self.job],
            Caller::Job => vec![&self.admin, &self.agent, &self.registration],
            _ => unreachable!("every user kind is matched above"),
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
        .replace("{session_id}", &ulid::Ulid::new().to_string())
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
        let token = if caller.is_for_users() {
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
    // Bodies whose fields are all optional, so `{}` is a valid request (a PATCH
    // that changes nothing; `users.rs` tests it).
    const ALL_OPTIONAL: &[(&str, &str)] = &[("patch", "/api/v1/users/{id}")];
    let app = TestApp::new().await;
    let tokens = Tokens::mint(&app).await;
    let required = ROUTES
        .iter()
        .filter(|r| r.3 == Takes::Json && !ALL_OPTIONAL.contains(&(r.0, r.1)));
    for route @ &(method, path, caller, _) in required {
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

#[test]
fn this_table_is_the_servers_matrix_route_for_route() {
    let mut ours: Vec<_> = ROUTES.iter().map(|&(m, p, c, _)| (m, p, c)).collect();
    let mut theirs: Vec<_> = runway_api::policy::ROUTES
        .iter()
        .map(|r| (r.method, r.path, r.access))
        .collect();
    ours.sort_by_key(|&(m, p, _)| (p, m));
    theirs.sort_by_key(|&(m, p, _)| (p, m));
    assert_eq!(ours, theirs);
}

#[test]
fn the_matrix_in_the_http_api_docs_is_the_servers() {
    let docs = include_str!("../../../../docs/http-api.md");
    let table = runway_api::policy::markdown_table();
    assert!(
        docs.contains(&table),
        "docs/http-api.md must contain the matrix exactly as \
         runway_api::policy::markdown_table() renders it:\n{table}"
    );
}

/// Every kind of caller the authorization matrix tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Anonymous,
    ExpiredSession,
    IdleExpiredSession,
    RevokedSession,
    Member,
    Admin,
    DisabledUser,
    /// An admin's API token.
    ApiToken,
    /// A member's read-only API token.
    ReadOnlyApiToken,
    RevokedApiToken,
    Agent,
    /// The job token of a job other than the one in the path.
    OtherJobsToken,
    Registration,
}

const KINDS: [Kind; 13] = [
    Kind::Anonymous,
    Kind::ExpiredSession,
    Kind::IdleExpiredSession,
    Kind::RevokedSession,
    Kind::Member,
    Kind::Admin,
    Kind::DisabledUser,
    Kind::ApiToken,
    Kind::ReadOnlyApiToken,
    Kind::RevokedApiToken,
    Kind::Agent,
    Kind::OtherJobsToken,
    Kind::Registration,
];

/// What the matrix says a call comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Authorized: whatever the route then answers, not 401 or 403.
    Pass,
    Unauthorized,
    Forbidden,
}

/// The matrix, as the docs state it, for one route and one kind of caller.
fn expected(caller: Caller, method: &str, kind: Kind) -> Expect {
    use Expect::{Forbidden, Pass, Unauthorized};
    match caller {
        Caller::Anyone => Pass,
        c if c.is_for_users() => match kind {
            Kind::Admin => Pass,
            Kind::Member if c == Caller::Admin => Forbidden,
            Kind::Member => Pass,
            Kind::ApiToken if c == Caller::Session => Forbidden,
            Kind::ApiToken => Pass,
            Kind::ReadOnlyApiToken
                if c == Caller::Session || c == Caller::Admin || method != "get" =>
            {
                Forbidden
            }
            Kind::ReadOnlyApiToken => Pass,
            _ => Unauthorized,
        },
        Caller::Agent if kind == Kind::Agent => Pass,
        Caller::Registration if kind == Kind::Registration => Pass,
        // A job token is good for its own job only; this table has only others'.
        _ => Unauthorized,
    }
}

/// A session for `username` written straight to the store (no argon2), with the
/// given times; returns its token.
async fn stored_session(
    app: &TestApp,
    username: &str,
    created_at: time::OffsetDateTime,
    idle_timeout_seconds: i64,
    expires_at: time::OffsetDateTime,
) -> String {
    use runway_core::id::SessionId;
    use runway_core::secret::IssuedToken;
    use runway_core::session::Session;
    let user = app.store.user_by_username(username).await.unwrap().unwrap();
    let id = SessionId::new();
    let issued = IssuedToken::session(id);
    let session = Session {
        id,
        user_id: user.id,
        username: user.username,
        role: user.role,
        device_name: None,
        user_agent: None,
        ip: None,
        created_at,
        last_seen_at: created_at,
        expires_at,
        idle_timeout_seconds,
        token_hash: issued.hash,
        credential_epoch: user.credential_epoch,
    };
    app.store
        .create_session(&session, &crate::app::any_event())
        .await
        .unwrap();
    issued.plaintext.expose().to_owned()
}

/// A fresh, active session of `username`.
async fn fresh_session(app: &TestApp, username: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    stored_session(app, username, now, 86_400, now + time::Duration::days(7)).await
}

/// An API token made through the API with the session `session`.
async fn api_token(app: &TestApp, session: &str, read_only: bool) -> (String, String) {
    let r = app
        .post_json(
            "/api/v1/auth/tokens",
            Some(session),
            &json!({"name": "matrix", "read_only": read_only}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let body = r.json();
    (
        body["api_token"]["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_matrix_says() {
    use time::{Duration, OffsetDateTime};
    let app = TestApp::without_abuse_limits().await;
    let tokens = Tokens::mint(&app).await;
    let admin = &tokens.admin;
    let now = OffsetDateTime::now_utc();

    let expired = stored_session(
        &app,
        "admin",
        now - Duration::days(8),
        30 * 86_400,
        now - Duration::days(1),
    )
    .await;
    let idle = stored_session(
        &app,
        "admin",
        now - Duration::hours(2),
        3600,
        now + Duration::days(7),
    )
    .await;
    let revoked = fresh_session(&app, "admin").await;
    app.delete("/api/v1/auth/session", Some(&revoked)).await;
    accounts::create_user(
        app.store.as_ref(),
        "ada",
        &Secret::new(MEMBER_PASSWORD),
        Role::Admin,
    )
    .await
    .unwrap();
    // An admin disabled, with a session and an API token made before.
    accounts::create_user(
        app.store.as_ref(),
        "dora",
        &Secret::new(MEMBER_PASSWORD),
        Role::Admin,
    )
    .await
    .unwrap();
    let disabled = fresh_session(&app, "dora").await;
    let (_, disabled_token) = api_token(&app, &disabled, false).await;
    let dora = app.store.user_by_username("dora").await.unwrap().unwrap();
    let r = app
        .send(
            TestApp::request(
                Method::PATCH,
                &format!("/api/v1/users/{}", dora.id),
                Some(admin),
            )
            .header("content-type", "application/json")
            .body(Body::from(r#"{"disabled":true}"#))
            .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let (_, admin_api) = api_token(&app, admin, false).await;
    let member_session = fresh_session(&app, "mia").await;
    let (_, read_only_api) = api_token(&app, &member_session, true).await;
    let (revoked_id, revoked_api) = api_token(&app, admin, false).await;
    app.delete(&format!("/api/v1/auth/tokens/{revoked_id}"), Some(admin))
        .await;
    // The job token of a job other than the claimed one in `tokens`.
    let (_, other_agent) = app.agent(admin, "matrix-other").await;
    let (_, other_job) = app.claimed_job(admin, &other_agent).await;

    for route @ &(method, path, caller, _) in ROUTES {
        for kind in KINDS {
            // Credentials a call could spend (signing out, rotating the agent
            // token) are fresh for every call; the rest are minted once.
            let fresh;
            let token = match kind {
                Kind::Anonymous => None,
                Kind::ExpiredSession => Some(expired.as_str()),
                Kind::IdleExpiredSession => Some(idle.as_str()),
                Kind::RevokedSession => Some(revoked.as_str()),
                Kind::Member => {
                    fresh = fresh_session(&app, "mia").await;
                    Some(fresh.as_str())
                }
                Kind::Admin => {
                    // Another admin than the one minting: a call may sign the
                    // caller out everywhere.
                    fresh = fresh_session(&app, "ada").await;
                    Some(fresh.as_str())
                }
                Kind::DisabledUser => Some(disabled.as_str()),
                Kind::ApiToken => Some(admin_api.as_str()),
                Kind::ReadOnlyApiToken => Some(read_only_api.as_str()),
                Kind::RevokedApiToken => Some(revoked_api.as_str()),
                Kind::Agent => {
                    fresh = app.agent(admin, "matrix-fresh").await.1;
                    Some(fresh.as_str())
                }
                Kind::OtherJobsToken => Some(other_job.as_str()),
                Kind::Registration => Some(tokens.registration.as_str()),
            };
            // Whose record it is is the service's rule, checked below: here an
            // own-records route gets an id of no one's.
            let path_here = if caller == Caller::OwnerOrAdmin {
                concrete(path)
            } else {
                tokens.path(route)
            };
            let r = send(&app, method, &path_here, token, None, Body::empty()).await;
            let want = expected(caller, method, kind);
            let got = match r.status {
                StatusCode::UNAUTHORIZED => Expect::Unauthorized,
                StatusCode::FORBIDDEN => Expect::Forbidden,
                _ => Expect::Pass,
            };
            assert_eq!(
                got,
                want,
                "{method} {path} ({caller:?}) as {kind:?}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        if caller == Caller::Job {
            let r = send(
                &app,
                method,
                &tokens.path(route),
                Some(&tokens.job),
                None,
                Body::empty(),
            )
            .await;
            assert!(
                !matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                "{method} {path} refused its own job token: {}",
                r.status
            );
        }
        if caller == Caller::OwnerOrAdmin {
            // The admin's job: a member may not touch it.
            let member = fresh_session(&app, "mia").await;
            let path = path.replace("{id}", &tokens.finished_job_id);
            send(&app, method, &path, Some(&member), None, Body::empty())
                .await
                .assert_error(403, "forbidden");
        }
    }
    // The disabled user cannot come back by signing in either.
    app.post_json(
        "/api/v1/auth/sessions",
        None,
        &json!({"username": "dora", "password": MEMBER_PASSWORD}),
    )
    .await
    .assert_error(403, "account_disabled");
    app.get("/api/v1/jobs", Some(&disabled_token))
        .await
        .assert_error(401, "unauthorized");
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
        let token = if matches!(caller, Caller::User | Caller::Admin | Caller::OwnerOrAdmin) {
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
