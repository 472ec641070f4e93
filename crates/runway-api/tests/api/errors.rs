//! The error envelope across the router: routing misses, body and media-type
//! problems, and store failures, which a store that always fails stands in for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use runway_api::{ApiConfig, router};
use runway_core::OffsetDateTime;
use runway_core::agent::{Agent, AgentMetrics, AgentState, RegistrationToken};
use runway_core::api_token::ApiToken;
use runway_core::audit::AuditEvent;
use runway_core::id::{AgentId, ApiTokenId, JobId, RegistrationTokenId, SessionId, UserId};
use runway_core::job::{Job, JobDetail, JobSecrets};
use runway_core::lifecycle::{AttemptEnd, JobStatus};
use runway_core::limit::{Attempts, LimitKey};
use runway_core::log::{LogAppend, LogChunk, LogSlice, LogSummary};
use runway_core::oidc::{OidcIdentity, PendingLogin};
use runway_core::page::{Page, PageRequest};
use runway_core::secret::{IssuedToken, TokenHash};
use runway_core::session::Session;
use runway_core::store::{
    AgentQuery, AgentStore, ApiTokenStore, AuditQuery, AuditStore, Claim, ClaimRequest,
    DispatchStore, Due, HeldAttempt, JobQuery, JobStore, LimitStore, LogStore, OidcIdentityStore,
    OidcLoginStore, RegistrationTokenStore, SessionStore, StoreError, StoreHealth, StoreResult,
    UserAdminStore, UserStore,
};
use runway_core::user::{Role, User, UserChange};
use runway_service::{DispatchSettings, Service};
use serde_json::json;

use crate::app::TestApp;

#[tokio::test]
async fn an_unknown_route_is_a_404_envelope() {
    let app = TestApp::new().await;
    for path in ["/nope", "/api/v1", "/api/v2/jobs", "/api/v1/jobs/x/y/z"] {
        app.get(path, None).await.assert_error(404, "not_found");
    }
}

#[tokio::test]
async fn a_known_route_with_the_wrong_method_is_a_405_envelope() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    app.delete("/api/v1/jobs", Some(&token))
        .await
        .assert_error(405, "method_not_allowed");
    app.get("/agent/v1/register", None)
        .await
        .assert_error(405, "method_not_allowed");
    app.post_json("/health", None, &json!({}))
        .await
        .assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let app = TestApp::with_config(ApiConfig {
        max_body_bytes: 256,
        ..ApiConfig::default()
    })
    .await;
    let token = app.admin_token().await;
    let body = json!({"name": "big", "script": "x".repeat(1000)});
    let message = app
        .post_json("/api/v1/jobs", Some(&token), &body)
        .await
        .assert_error(413, "payload_too_large");
    assert!(message.contains("256"), "{message}");
    // Under the limit, the same route works.
    app.submit_job(&token, "small").await;
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_a_415() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    let body = json!({"name": "x", "script": "y"}).to_string();
    app.post_raw("/api/v1/jobs", Some(&token), None, body.clone())
        .await
        .assert_error(415, "unsupported_media_type");
    app.post_raw("/api/v1/jobs", Some(&token), Some("text/plain"), body)
        .await
        .assert_error(415, "unsupported_media_type");
    app.post_raw(
        "/api/v1/auth/sessions/revoke-all",
        Some(&token),
        Some("text/plain"),
        "{}",
    )
    .await
    .assert_error(415, "unsupported_media_type");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    for body in [
        "{",
        "not json",
        "{\"name\": \"x\",}",
        "{\"name\": \"x\", \"script\": \"y\"} {}",
    ] {
        app.post_raw("/api/v1/jobs", Some(&token), Some("application/json"), body)
            .await
            .assert_error(400, "invalid_json");
    }
    app.post_raw(
        "/api/v1/auth/sessions",
        None,
        Some("application/json; charset=utf-8"),
        "{\"username\":",
    )
    .await
    .assert_error(400, "invalid_json");
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_a_422_naming_the_field() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    let message = app
        .post_json(
            "/api/v1/jobs",
            Some(&token),
            &json!({"name": "x", "script": "y", "priority": "high"}),
        )
        .await
        .assert_error(422, "validation_failed");
    assert!(message.starts_with("priority"), "{message}");
    app.post_json("/api/v1/jobs", Some(&token), &json!([1, 2]))
        .await
        .assert_error(422, "validation_failed");
}

/// A store that fails every call with the error `make` builds, except that it can
/// hold one session, and counts how often that session is read and touched.
struct FailingStore {
    make: fn() -> StoreError,
    session: Option<Session>,
    session_reads: AtomicUsize,
    touches: AtomicUsize,
}

impl FailingStore {
    fn fail<T>(&self) -> StoreResult<T> {
        Err((self.make)())
    }
}

#[async_trait]
impl UserStore for FailingStore {
    async fn create_user(&self, _: &User) -> StoreResult<()> {
        self.fail()
    }
    async fn user_by_username(&self, _: &str) -> StoreResult<Option<User>> {
        self.fail()
    }
    async fn get_user(&self, _: UserId) -> StoreResult<Option<User>> {
        self.fail()
    }
    async fn set_password_hash(&self, _: UserId, _: &str, _: &AuditEvent) -> StoreResult<()> {
        self.fail()
    }
    async fn has_users(&self) -> StoreResult<bool> {
        self.fail()
    }
}

#[async_trait]
impl UserAdminStore for FailingStore {
    async fn create_user_audited(&self, _: &User, _: &AuditEvent) -> StoreResult<()> {
        self.fail()
    }
    async fn list_users(&self, _: &PageRequest) -> StoreResult<Page<User>> {
        self.fail()
    }
    async fn update_user(&self, _: UserId, _: UserChange, _: &AuditEvent) -> StoreResult<User> {
        self.fail()
    }
    async fn delete_user(&self, _: UserId, _: &AuditEvent) -> StoreResult<()> {
        self.fail()
    }
}

#[async_trait]
impl ApiTokenStore for FailingStore {
    async fn create_api_token(&self, _: &ApiToken, _: &AuditEvent) -> StoreResult<()> {
        self.fail()
    }
    async fn get_api_token(&self, _: ApiTokenId) -> StoreResult<Option<ApiToken>> {
        self.fail()
    }
    async fn list_api_tokens(&self, _: UserId) -> StoreResult<Vec<ApiToken>> {
        self.fail()
    }
    async fn revoke_api_token(&self, _: UserId, _: ApiTokenId, _: &AuditEvent) -> StoreResult<()> {
        self.fail()
    }
}

#[async_trait]
impl SessionStore for FailingStore {
    async fn create_session(&self, _: &Session, _: &AuditEvent) -> StoreResult<Vec<SessionId>> {
        self.fail()
    }
    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        match &self.session {
            Some(s) => {
                self.session_reads.fetch_add(1, Ordering::SeqCst);
                Ok(Some(s.clone()).filter(|s| s.id == id))
            }
            None => self.fail(),
        }
    }
    async fn touch_session(&self, _: SessionId, _: OffsetDateTime) -> StoreResult<()> {
        self.touches.fetch_add(1, Ordering::SeqCst);
        self.fail()
    }
    async fn list_user_sessions(&self, _: UserId, _: OffsetDateTime) -> StoreResult<Vec<Session>> {
        self.fail()
    }
    async fn revoke_session(&self, _: UserId, _: SessionId, _: &AuditEvent) -> StoreResult<()> {
        self.fail()
    }
    async fn revoke_user_sessions(
        &self,
        _: UserId,
        _: Option<SessionId>,
        _: &AuditEvent,
    ) -> StoreResult<u64> {
        self.fail()
    }
    async fn purge_expired_sessions(&self, _: OffsetDateTime, _: u32) -> StoreResult<u64> {
        self.fail()
    }
}

#[async_trait]
impl OidcLoginStore for FailingStore {
    async fn create_oidc_login(&self, _: &PendingLogin) -> StoreResult<()> {
        self.fail()
    }
    async fn take_oidc_login(
        &self,
        _: &TokenHash,
        _: OffsetDateTime,
    ) -> StoreResult<Option<PendingLogin>> {
        self.fail()
    }
}

#[async_trait]
impl OidcIdentityStore for FailingStore {
    async fn user_by_oidc_identity(&self, _: &OidcIdentity) -> StoreResult<Option<User>> {
        self.fail()
    }
    async fn create_oidc_user(
        &self,
        _: &User,
        _: &OidcIdentity,
        _: &AuditEvent,
    ) -> StoreResult<()> {
        self.fail()
    }
}

#[async_trait]
impl RegistrationTokenStore for FailingStore {
    async fn create_registration_token(
        &self,
        _: &RegistrationToken,
        _: &AuditEvent,
    ) -> StoreResult<()> {
        self.fail()
    }
    async fn list_registration_tokens(&self) -> StoreResult<Vec<RegistrationToken>> {
        self.fail()
    }
    async fn delete_registration_token(
        &self,
        _: RegistrationTokenId,
        _: &AuditEvent,
    ) -> StoreResult<()> {
        self.fail()
    }
}

#[async_trait]
impl AgentStore for FailingStore {
    async fn register_agent(
        &self,
        _: &TokenHash,
        _: Agent,
        _: OffsetDateTime,
        _: &AuditEvent,
    ) -> StoreResult<Agent> {
        self.fail()
    }
    async fn agent_by_token_hash(&self, _: &TokenHash) -> StoreResult<Option<Agent>> {
        self.fail()
    }
    async fn get_agent(&self, _: AgentId) -> StoreResult<Option<Agent>> {
        self.fail()
    }
    async fn record_heartbeat(
        &self,
        _: AgentId,
        _: &AgentMetrics,
        _: OffsetDateTime,
    ) -> StoreResult<Agent> {
        self.fail()
    }
    async fn list_agents(&self, _: &AgentQuery, _: OffsetDateTime) -> StoreResult<Page<Agent>> {
        self.fail()
    }
    async fn set_agent_state(
        &self,
        _: AgentId,
        _: AgentState,
        _: &AuditEvent,
    ) -> StoreResult<Agent> {
        self.fail()
    }
    async fn rotate_agent_token(
        &self,
        _: AgentId,
        _: &TokenHash,
        _: &AuditEvent,
    ) -> StoreResult<()> {
        self.fail()
    }
    async fn delete_agent(&self, _: AgentId, _: &AuditEvent) -> StoreResult<()> {
        self.fail()
    }
}

#[async_trait]
impl DispatchStore for FailingStore {
    async fn claim_job(
        &self,
        _: &ClaimRequest,
        _: OffsetDateTime,
        _: &AuditEvent,
    ) -> StoreResult<Option<Claim>> {
        self.fail()
    }
    async fn start_attempt(
        &self,
        _: JobId,
        _: u32,
        _: OffsetDateTime,
        _: OffsetDateTime,
        _: &AuditEvent,
    ) -> StoreResult<Job> {
        self.fail()
    }
    async fn renew_lease(
        &self,
        _: JobId,
        _: u32,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> StoreResult<Job> {
        self.fail()
    }
    async fn end_attempt(
        &self,
        _: JobId,
        _: u32,
        _: AttemptEnd,
        _: Option<i32>,
        _: OffsetDateTime,
        _: &AuditEvent,
    ) -> StoreResult<Job> {
        self.fail()
    }
    async fn reap_attempt(
        &self,
        _: JobId,
        _: u32,
        _: Due,
        _: OffsetDateTime,
        _: &AuditEvent,
    ) -> StoreResult<Job> {
        self.fail()
    }
    async fn due_attempts(&self, _: OffsetDateTime, _: u32) -> StoreResult<Vec<HeldAttempt>> {
        self.fail()
    }
    async fn stale_queued_jobs(&self, _: OffsetDateTime, _: u32) -> StoreResult<Vec<JobId>> {
        self.fail()
    }
    async fn held_by(&self, _: AgentId) -> StoreResult<Vec<HeldAttempt>> {
        self.fail()
    }
}

#[async_trait]
impl LogStore for FailingStore {
    async fn append_log(&self, _: JobId, _: u32, _: &LogChunk) -> StoreResult<LogAppend> {
        self.fail()
    }
    async fn read_log(&self, _: JobId, _: u32, _: u64, _: usize) -> StoreResult<LogSlice> {
        self.fail()
    }
    async fn log_summary(&self, _: JobId, _: u32) -> StoreResult<LogSummary> {
        self.fail()
    }
}

fn failing_service(store: Arc<FailingStore>) -> Service {
    Service::new(
        Arc::clone(&store) as Arc<dyn runway_core::store::Store>,
        store as Arc<dyn LogStore>,
        DispatchSettings::default(),
    )
}

#[async_trait]
impl JobStore for FailingStore {
    async fn create_job(&self, _: &Job, _: &AuditEvent) -> StoreResult<()> {
        self.fail()
    }
    async fn get_job(&self, _: JobId) -> StoreResult<Option<JobDetail>> {
        self.fail()
    }
    async fn list_jobs(&self, _: &JobQuery) -> StoreResult<Page<Job>> {
        self.fail()
    }
    async fn transition_job(
        &self,
        _: JobId,
        _: JobStatus,
        _: OffsetDateTime,
        _: &AuditEvent,
    ) -> StoreResult<Job> {
        self.fail()
    }
    async fn retry_job(
        &self,
        _: JobId,
        _: &JobSecrets,
        _: OffsetDateTime,
        _: &AuditEvent,
    ) -> StoreResult<Job> {
        self.fail()
    }
}

#[async_trait]
impl LimitStore for FailingStore {
    async fn attempts(&self, _: &LimitKey, _: OffsetDateTime) -> StoreResult<Option<Attempts>> {
        self.fail()
    }
    async fn record_attempt(
        &self,
        _: &LimitKey,
        _: OffsetDateTime,
        _: Duration,
    ) -> StoreResult<Attempts> {
        self.fail()
    }
    async fn clear_attempts(&self, _: &LimitKey) -> StoreResult<()> {
        self.fail()
    }
    async fn note_refusal(&self, _: &LimitKey, _: u32, _: OffsetDateTime) -> StoreResult<bool> {
        self.fail()
    }
    async fn purge_expired_attempts(&self, _: OffsetDateTime, _: u32) -> StoreResult<u64> {
        self.fail()
    }
}

#[async_trait]
impl StoreHealth for FailingStore {
    fn backend(&self) -> &'static str {
        "failing"
    }
    async fn ping(&self) -> StoreResult<()> {
        self.fail()
    }
}

#[async_trait]
impl AuditStore for FailingStore {
    async fn append_audit(&self, _: &AuditEvent) -> StoreResult<()> {
        self.fail()
    }
    async fn list_audit(&self, _: &AuditQuery) -> StoreResult<Page<AuditEvent>> {
        self.fail()
    }
}

fn failing_app(make: fn() -> StoreError) -> TestApp {
    let service = failing_service(Arc::new(FailingStore {
        make,
        session: None,
        session_reads: AtomicUsize::new(0),
        touches: AtomicUsize::new(0),
    }));
    TestApp {
        router: router(service.clone(), ApiConfig::default()),
        store: Arc::clone(service.store()),
        service,
    }
}

/// A store holding one session last seen `idle` ago, whose every other call fails
/// as unavailable; returns the router, the store and the session's token.
fn one_session_app(idle: time::Duration) -> (axum::Router, Arc<FailingStore>, String) {
    let now = OffsetDateTime::now_utc();
    let id = SessionId::new();
    let issued = IssuedToken::session(id);
    let session = Session {
        id,
        user_id: UserId::new(),
        username: "ada".into(),
        role: Role::Member,
        device_name: None,
        user_agent: None,
        ip: None,
        created_at: now - idle,
        last_seen_at: now - idle,
        expires_at: now + time::Duration::days(1),
        idle_timeout_seconds: 86_400,
        token_hash: issued.hash,
        credential_epoch: 0,
    };
    let store = Arc::new(FailingStore {
        make: || StoreError::unavailable(std::io::Error::other("throttled"), None),
        session: Some(session),
        session_reads: AtomicUsize::new(0),
        touches: AtomicUsize::new(0),
    });
    let router = router(failing_service(Arc::clone(&store)), ApiConfig::default());
    (router, store, issued.plaintext.expose().to_owned())
}

async fn get_current_session(router: &axum::Router, token: &str) -> StatusCode {
    use tower::ServiceExt as _;
    router
        .clone()
        .oneshot(
            TestApp::request(Method::GET, "/api/v1/auth/session", Some(token))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn validating_a_session_is_one_store_read_and_no_write_within_the_minute() {
    let (router, store, token) = one_session_app(time::Duration::seconds(5));
    for round in 1..=3 {
        assert_eq!(get_current_session(&router, &token).await, StatusCode::OK);
        assert_eq!(store.session_reads.load(Ordering::SeqCst), round);
        assert_eq!(store.touches.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn a_session_idle_for_minutes_is_touched_and_a_throttled_touch_does_not_fail_the_call() {
    let (router, store, token) = one_session_app(time::Duration::minutes(3));
    assert_eq!(get_current_session(&router, &token).await, StatusCode::OK);
    assert_eq!(store.session_reads.load(Ordering::SeqCst), 1);
    assert_eq!(store.touches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unavailable_store_gives_503_with_retry_after() {
    let app = failing_app(|| {
        StoreError::unavailable(
            std::io::Error::other("database is locked"),
            Some(Duration::from_secs(3)),
        )
    });
    let r = app.get("/ready", None).await;
    r.assert_error(503, "store_unavailable");
    assert_eq!(r.header("retry-after"), "3");
    let r = app
        .post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "admin", "password": "whatever it is"}),
        )
        .await;
    r.assert_error(503, "store_unavailable");
    // Health never touches the store.
    assert_eq!(app.get("/health", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_store_bug_is_a_500_with_a_fixed_message_that_hides_the_cause() {
    let app =
        failing_app(|| StoreError::internal(std::io::Error::other("secret table xyz is corrupt")));
    let token = format!("rws_{}_{}", SessionId::new(), "a".repeat(43));
    // Readiness reports any store failure as "not ready", still without the cause.
    let ready = app.get("/ready", None).await;
    let message = ready.assert_error(503, "store_unavailable");
    assert!(!message.contains("xyz"), "{message}");
    for r in [
        app.get("/api/v1/auth/session", Some(&token)).await,
        app.send(
            TestApp::request(Method::GET, "/api/v1/jobs", Some(&token))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await,
    ] {
        let message = r.assert_error(500, "internal");
        assert!(!message.contains("xyz"), "{message}");
        assert!(!String::from_utf8_lossy(&r.body).contains("corrupt"));
    }
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_envelope_and_the_server_keeps_serving() {
    let app = failing_app(|| panic!("the store exploded near secret xyz"));
    let token = format!("rws_{}_{}", SessionId::new(), "a".repeat(43));
    for _ in 0..2 {
        let r = app.get("/api/v1/auth/session", Some(&token)).await;
        let message = r.assert_error(500, "internal");
        assert!(!message.contains("xyz"), "{message}");
    }
    assert_eq!(app.get("/health", None).await.status, StatusCode::OK);
}
