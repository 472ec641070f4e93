//! The test harness: a router over a fresh store, with an admin whose password is
//! known, and helpers that send requests and check error envelopes.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use runway_api::{ApiConfig, router};
use runway_core::secret::Secret;
use runway_core::store::{LogStore, Store};
use runway_core::user::Role;
use runway_service::accounts;
use runway_service::{DispatchSettings, Service};
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
pub const MEMBER_PASSWORD: &str = "member password 123";

/// Waits until ULIDs minted next carry a later millisecond, so "newest first" is
/// well defined between records created back to back.
pub async fn next_millisecond() {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
}

pub struct TestApp {
    pub router: Router,
    pub store: Arc<dyn Store>,
    pub service: Service,
}

/// A service over a fresh in-memory SQLite store, with `settings`.
pub fn service(settings: DispatchSettings) -> Service {
    let store = Arc::new(runway_store_sqlite::open_in_memory().expect("in-memory store"));
    Service::new(
        Arc::clone(&store) as Arc<dyn Store>,
        store as Arc<dyn LogStore>,
        settings,
    )
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    /// Asserts the status, that the body is the error envelope with `code`, and that
    /// its request id is the `x-request-id` header. Returns the message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), "application/json");
        let v = self.json();
        let error = v["error"].as_object().expect("an error envelope");
        assert_eq!(error.len(), 3, "{v}");
        assert_eq!(error["code"], code, "{v}");
        let request_id = error["request_id"].as_str().unwrap();
        assert!(!request_id.is_empty());
        assert_eq!(request_id, self.header("x-request-id"));
        let message = error["message"].as_str().unwrap().to_owned();
        assert!(!message.is_empty());
        message
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(ApiConfig::default()).await
    }

    /// An app whose abuse limits are out of reach, for tests of other rules that
    /// make more tokens or sign-ins than a person would in 15 minutes.
    pub async fn without_abuse_limits() -> Self {
        let limits = runway_service::limits::LimitSettings {
            sign_in_max_failures: 1000,
            sign_in_max_failures_per_ip: 100_000,
            register_max_attempts: 100_000,
            token_create_max_attempts: 100_000,
            ..runway_service::limits::LimitSettings::default()
        };
        Self::with_service(
            service(DispatchSettings::default()).with_limits(limits),
            ApiConfig::default(),
        )
        .await
    }

    pub async fn with_config(config: ApiConfig) -> Self {
        Self::with_service(service(DispatchSettings::default()), config).await
    }

    pub async fn with_service(service: Service, config: ApiConfig) -> Self {
        let store = Arc::clone(service.store());
        let outcome = accounts::ensure_admin(store.as_ref(), Some(Secret::new(ADMIN_PASSWORD)))
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            accounts::Bootstrap::CreatedWithGivenPassword
        ));
        Self {
            router: router(service.clone(), config),
            store,
            service,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    pub fn request(
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> axum::http::request::Builder {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.send(
            Self::request(Method::GET, path, token)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.send(
            Self::request(Method::DELETE, path, token)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> TestResponse {
        let mut b = Self::request(Method::POST, path, token);
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        self.send(b.body(body.into()).unwrap()).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> TestResponse {
        self.post_raw(path, token, Some("application/json"), body.to_string())
            .await
    }

    /// Signs in and returns the whole 201 body.
    pub async fn sign_in(&self, username: &str, password: &str) -> Value {
        let r = self
            .post_json(
                "/api/v1/auth/sessions",
                None,
                &json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
        r.json()
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        self.sign_in(username, password).await["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn admin_token(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    /// Creates the member `mia` and signs her in.
    pub async fn member_token(&self) -> String {
        accounts::create_user(
            self.store.as_ref(),
            "mia",
            &Secret::new(MEMBER_PASSWORD),
            Role::Member,
        )
        .await
        .unwrap();
        self.login("mia", MEMBER_PASSWORD).await
    }

    /// A fresh registration token, created by the admin with `admin_token`.
    pub async fn registration_token(&self, admin_token: &str) -> String {
        let r = self
            .post_json("/api/v1/registration-tokens", Some(admin_token), &json!({}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
        r.json()["token"].as_str().unwrap().to_owned()
    }

    /// Registers an agent; returns the 201 body.
    pub async fn register_agent(&self, registration_token: &str, body: &Value) -> Value {
        let r = self
            .post_json("/agent/v1/register", Some(registration_token), body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
        r.json()
    }

    /// Registers an agent named `name` with a new registration token; returns its
    /// id and token.
    pub async fn agent(&self, admin_token: &str, name: &str) -> (String, String) {
        let reg = self.registration_token(admin_token).await;
        let body = self.register_agent(&reg, &json!({"name": name})).await;
        (
            body["agent"]["id"].as_str().unwrap().to_owned(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Submits a job and claims it as the agent with `agent_token`: (job id, job token).
    pub async fn claimed_job(&self, admin_token: &str, agent_token: &str) -> (String, String) {
        let job = self.submit_job(admin_token, "claimed").await;
        let r = self
            .send(
                Self::request(Method::POST, "/agent/v1/jobs/claim", Some(agent_token))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let claim = r.json();
        assert_eq!(claim["job"]["id"], job["id"]);
        (
            claim["job"]["id"].as_str().unwrap().to_owned(),
            claim["job_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Submits a job named `name`; returns the 201 body.
    pub async fn submit_job(&self, token: &str, name: &str) -> Value {
        let r = self
            .post_json(
                "/api/v1/jobs",
                Some(token),
                &json!({"name": name, "script": "echo hi"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
        r.json()
    }
}

/// An event by the system, for store writes a test makes directly.
pub fn any_event() -> runway_core::audit::AuditEvent {
    runway_core::audit::AuditEvent::new(
        runway_core::audit::Actor::System,
        runway_core::audit::AuditAction::SessionCreated,
        None,
        time::OffsetDateTime::now_utc(),
    )
}
