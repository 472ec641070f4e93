//! The Lambda path in-process: real API Gateway HTTP API (payload v2.0) events,
//! through `lambda_http` exactly as `lambda_http::run` does it, into Runway's Router.
//!
//! Each test deserializes an event from `tests/fixtures/apigw-v2-*.json` (written
//! from the documented v2.0 format: `$default` route, `rawPath`,
//! `rawQueryString`, the `cookies` array, comma-joined multi-value headers,
//! base64 bodies, `requestContext.http.sourceIp`), hands the raw JSON to the
//! function's own handler ([`Invocation`]: `lambda_http`'s adapter around
//! [`LambdaHandler`], or the reaper for an EventBridge schedule), and reads the v2.0
//! *response* JSON that Lambda would return to API Gateway. The store is an
//! in-memory SQLite database per test, so the tests are independent.
//!
//! `scripts/lambda-e2e.sh` (`make test-lambda`) repeats the main cases against the
//! built binary under `cargo lambda watch`, the Runtime API emulator.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lambda_http::lambda_runtime::{Context, LambdaEvent};
use runway_api::ApiConfig;
use runway_core::secret::Secret;
use runway_core::store::{LogStore, Store, UserStore as _};
use runway_server::config::Config;
use runway_server::lambda::{Invocation, cold_start};
use runway_service::{DispatchSettings, Service, accounts};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The admin password the fixtures sign in with.
const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";

/// A fixture event, parsed.
fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/apigw-v2-{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An event for another method, path and query, keeping the fixture's headers and
/// request context (as API Gateway would fill them in).
fn retarget(mut event: Value, method: &str, path: &str, query: &str) -> Value {
    event["rawPath"] = json!(path);
    event["rawQueryString"] = json!(query);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    if let Some(object) = event.as_object_mut() {
        object.remove("queryStringParameters");
    }
    event
}

/// Gives `event` a JSON body, base64-encoded as API Gateway sends it.
fn with_body(mut event: Value, body: &Value) -> Value {
    let text = body.to_string();
    event["headers"]["content-type"] = json!("application/json");
    event["headers"]["content-length"] = json!(text.len().to_string());
    event["body"] = json!(BASE64.encode(text));
    event["isBase64Encoded"] = json!(true);
    event
}

fn with_bearer(mut event: Value, token: &str) -> Value {
    event["headers"]["authorization"] = json!(format!("Bearer {token}"));
    event
}

/// The Router on a fresh in-memory store with `admin` bootstrapped.
struct App {
    store: Arc<dyn Store>,
    handler: Invocation,
}

impl App {
    async fn new() -> Self {
        Self::with_settings(DispatchSettings::default()).await
    }

    async fn with_settings(settings: DispatchSettings) -> Self {
        let sqlite = Arc::new(runway_store_sqlite::open_in_memory().unwrap());
        let store: Arc<dyn Store> = Arc::clone(&sqlite) as Arc<dyn Store>;
        accounts::ensure_admin(store.as_ref(), Some(Secret::new(ADMIN_PASSWORD)))
            .await
            .unwrap();
        let service = Service::new(Arc::clone(&store), sqlite as Arc<dyn LogStore>, settings);
        let handler = Invocation::new(
            runway_api::router(service.clone(), ApiConfig::default()),
            service,
        );
        Self { store, handler }
    }

    /// One invocation: the event as Lambda delivers it, the response as Lambda
    /// returns it to API Gateway.
    async fn invoke(&self, event: Value) -> Response {
        invoke(&self.handler, event).await
    }

    /// Signs in with the fixture and returns the token.
    async fn sign_in(&self) -> String {
        let res = self.invoke(fixture("sign-in")).await;
        assert_eq!(res.status, 201, "{res:?}");
        res.json()["token"].as_str().unwrap().to_owned()
    }
}

/// A v2.0 response, as Lambda hands it back to API Gateway.
#[derive(Debug)]
struct Response {
    status: u64,
    raw: Value,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.raw["headers"][name].as_str()
    }

    fn json(&self) -> Value {
        assert_eq!(
            self.raw["isBase64Encoded"], false,
            "JSON is sent as text: {:?}",
            self.raw
        );
        let body = self.raw["body"].as_str().expect("a body");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// Asserts the error envelope: status, code, and a request id that matches the
    /// `x-request-id` header.
    fn assert_error(&self, status: u64, code: &str) {
        assert_eq!(self.status, status, "{:?}", self.raw);
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            !body["error"]["message"].as_str().unwrap().is_empty(),
            "{body}"
        );
        assert_eq!(
            body["error"]["request_id"].as_str(),
            self.header("x-request-id"),
            "{body}"
        );
        assert!(
            self.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
    }
}

async fn invoke(handler: &Invocation, event: Value) -> Response {
    let raw = handler
        .clone()
        .oneshot(LambdaEvent::new(event, Context::default()))
        .await
        .expect("an API Gateway event always gets a response");
    let status = raw["statusCode"].as_u64().expect("a statusCode");
    Response { status, raw }
}

/// An EventBridge schedule's event, as the rule in `schedule.tf` sends it.
fn scheduled_event() -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-01T20:00:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/runway-staging-reaper"],
        "detail": {}
    })
}

#[tokio::test]
async fn an_eventbridge_schedule_runs_the_reaper_and_requeues_a_lost_job() {
    let app = App::with_settings(DispatchSettings {
        lease: time::Duration::milliseconds(200),
        ..DispatchSettings::default()
    })
    .await;
    let token = app.sign_in().await;
    let job = app
        .invoke(with_bearer(
            with_body(
                retarget(fixture("sign-in"), "POST", "/api/v1/jobs", ""),
                &json!({"name": "j", "script": "true"}),
            ),
            &token,
        ))
        .await;
    assert_eq!(job.status, 201, "{job:?}");
    let reg = app
        .invoke(with_bearer(
            with_body(
                retarget(
                    fixture("sign-in"),
                    "POST",
                    "/api/v1/registration-tokens",
                    "",
                ),
                &json!({}),
            ),
            &token,
        ))
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = app
        .invoke(with_bearer(
            with_body(
                retarget(fixture("sign-in"), "POST", "/agent/v1/register", ""),
                &json!({"name": "b1"}),
            ),
            &reg,
        ))
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // On Lambda a claim never waits: it answers at once, with the poll interval.
    let claim = app
        .invoke(with_bearer(
            retarget(fixture("health"), "POST", "/agent/v1/jobs/claim", "wait=20"),
            &agent,
        ))
        .await;
    assert_eq!(claim.status, 200, "{claim:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let report = app
        .handler
        .clone()
        .oneshot(LambdaEvent::new(scheduled_event(), Context::default()))
        .await
        .unwrap();
    assert_eq!(report["reaped"]["requeued"], 1, "{report}");
    let id = job.json()["id"].as_str().unwrap().to_owned();
    let job = app
        .invoke(with_bearer(
            retarget(fixture("health"), "GET", &format!("/api/v1/jobs/{id}"), ""),
            &token,
        ))
        .await
        .json();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["attempts"][0]["status"], "lost");
    // A second tick finds nothing more to do.
    let report = app
        .handler
        .clone()
        .oneshot(LambdaEvent::new(scheduled_event(), Context::default()))
        .await
        .unwrap();
    assert_eq!(report["reaped"]["requeued"], 0, "{report}");
}

#[tokio::test]
async fn an_event_that_is_neither_http_nor_a_schedule_is_an_error_not_a_reaper_pass() {
    let app = App::new().await;
    let mut not_a_schedule = scheduled_event();
    not_a_schedule["source"] = json!("aws.s3");
    let err = app
        .handler
        .clone()
        .oneshot(LambdaEvent::new(not_a_schedule, Context::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("neither"), "{err}");
}

#[tokio::test]
async fn health_answers_200_in_the_v2_response_format() {
    let app = App::new().await;
    let res = app.invoke(fixture("health")).await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.json()["status"], "ok", "{res:?}");
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(res.header("x-request-id").is_some(), "{res:?}");
    assert_eq!(res.raw["cookies"], json!([]));
}

#[tokio::test]
async fn sign_in_with_a_base64_body_creates_a_session_that_records_the_source_ip() {
    let app = App::new().await;
    let res = app.invoke(fixture("sign-in")).await;
    assert_eq!(res.status, 201, "{res:?}");
    let body = res.json();
    assert!(
        body["token"].as_str().unwrap().starts_with("rws_"),
        "{body}"
    );
    assert_eq!(body["user"]["username"], "admin");
    let session = &body["session"];
    assert_eq!(
        session["ip"], "203.0.113.7",
        "requestContext.http.sourceIp, not the client-supplied X-Forwarded-For entry"
    );
    assert_eq!(session["device_name"], "lambda laptop");
    assert_eq!(
        session["user_agent"],
        "Mozilla/5.0 (X11; Linux x86_64) RunwayTests/1.0"
    );

    // The stored session, not only the response, carries the address.
    let admin = app.store.user_by_username("admin").await.unwrap().unwrap();
    let sessions = app
        .store
        .list_user_sessions(admin.id, runway_core::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].ip.as_deref(), Some("203.0.113.7"));

    // The token works on the next invocation.
    let token = body["token"].as_str().unwrap();
    let me = app
        .invoke(with_bearer(
            retarget(fixture("health"), "GET", "/api/v1/auth/session", ""),
            token,
        ))
        .await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.json()["user"]["username"], "admin");
}

#[tokio::test]
async fn a_query_string_limits_and_filters_the_job_list() {
    let app = App::new().await;
    let token = app.sign_in().await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let event = with_body(
            retarget(fixture("health"), "POST", "/api/v1/jobs", ""),
            &json!({"name": format!("job {n}"), "script": "true"}),
        );
        let res = app.invoke(with_bearer(event, &token)).await;
        assert_eq!(res.status, 201, "{res:?}");
        ids.push(res.json()["id"].as_str().unwrap().to_owned());
    }
    // The newest job leaves `queued`, so the filter has something to drop.
    let cancel = retarget(
        fixture("health"),
        "POST",
        &format!("/api/v1/jobs/{}/cancel", ids[3]),
        "",
    );
    let res = app.invoke(with_bearer(cancel, &token)).await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.json()["status"], "canceled");

    let res = app.invoke(with_bearer(fixture("list-jobs"), &token)).await;
    assert_eq!(res.status, 200, "{res:?}");
    let page = res.json();
    let listed: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| {
            assert_eq!(job["status"], "queued", "{job}");
            job["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        listed,
        [ids[2].as_str(), ids[1].as_str()],
        "limit=2, newest first, the canceled job filtered out"
    );
    assert!(
        page["next_cursor"].is_string(),
        "a third queued job: {page}"
    );

    let bad = retarget(fixture("list-jobs"), "GET", "/api/v1/jobs", "limit=0");
    app.invoke(with_bearer(bad, &token))
        .await
        .assert_error(400, "invalid_query");
}

#[tokio::test]
async fn cookies_and_multi_value_headers_reach_the_router_intact() {
    let event = fixture("cookies-and-multi-value-headers");
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let headers = request.headers();
    assert_eq!(headers["cookie"], "theme=dark; lang=en-GB");
    assert_eq!(headers["accept"], "application/json, text/plain;q=0.5");
    assert_eq!(headers["accept-language"], "en-GB, en;q=0.8");
    assert_eq!(headers["x-forwarded-for"], "198.51.100.10, 203.0.113.7");
    assert_eq!(request.uri().path(), "/api/v1/info");

    let app = App::new().await;
    let res = app.invoke(event).await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.json()["store"], "sqlite", "{res:?}");
}

#[tokio::test]
async fn errors_come_back_as_the_json_envelope_with_the_right_status() {
    let app = App::new().await;
    app.invoke(fixture("not-found"))
        .await
        .assert_error(404, "not_found");
    app.invoke(fixture("list-jobs"))
        .await
        .assert_error(401, "unauthorized");
    let wrong_password = with_body(
        fixture("sign-in"),
        &json!({"username": "admin", "password": "not-the-password"}),
    );
    app.invoke(wrong_password)
        .await
        .assert_error(401, "invalid_credentials");
    let unknown_field = with_body(
        fixture("sign-in"),
        &json!({"username": "admin", "password": ADMIN_PASSWORD, "remember_me": true}),
    );
    let res = app.invoke(unknown_field).await;
    assert!(
        res.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("remember_me"),
        "{res:?}"
    );
    assert!((400..500).contains(&res.status), "{res:?}");
    let wrong_method = retarget(fixture("health"), "DELETE", "/health", "");
    app.invoke(wrong_method)
        .await
        .assert_error(405, "method_not_allowed");
}

/// The configuration `cold_start` gets on Lambda: environment only, SQLite in `dir`.
fn lambda_config(dir: &std::path::Path, admin_password: Option<&str>) -> Config {
    let data_dir = dir.display().to_string();
    let admin_password = admin_password.map(str::to_owned);
    Config::from_env(move |name| match name {
        "RUNWAY_DATA_DIR" => Some(data_dir.clone()),
        "RUNWAY_ADMIN_PASSWORD" => admin_password.clone(),
        _ => None,
    })
    .unwrap()
}

#[tokio::test]
async fn a_cold_start_without_an_admin_password_creates_no_user() {
    let dir = tempfile::tempdir().unwrap();
    let (router, service) = cold_start(&lambda_config(dir.path(), None)).await.unwrap();
    let handler = Invocation::new(router, service);
    let res = invoke(&handler, fixture("health")).await;
    assert_eq!(res.status, 200, "{res:?}");
    invoke(&handler, fixture("sign-in"))
        .await
        .assert_error(401, "invalid_credentials");
    let store = runway_store_sqlite::open_data_dir(dir.path()).unwrap();
    assert!(!store.has_users().await.unwrap(), "no generated admin");
}

#[tokio::test]
async fn a_cold_start_with_an_admin_password_creates_admin_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = lambda_config(dir.path(), Some(ADMIN_PASSWORD));
    let (router, service) = cold_start(&config).await.unwrap();
    let handler = Invocation::new(router, service);
    let res = invoke(&handler, fixture("sign-in")).await;
    assert_eq!(res.status, 201, "{res:?}");
    // A second cold start (another execution environment) finds admin in place.
    let (router, service) = cold_start(&config).await.unwrap();
    let again = Invocation::new(router, service);
    let res = invoke(&again, fixture("sign-in")).await;
    assert_eq!(res.status, 201, "{res:?}");
}

#[tokio::test]
async fn two_lambda_instances_on_one_store_share_the_sign_in_limit_of_the_events_source_ip() {
    let sqlite = Arc::new(runway_store_sqlite::open_in_memory().unwrap());
    let store: Arc<dyn Store> = Arc::clone(&sqlite) as Arc<dyn Store>;
    accounts::ensure_admin(store.as_ref(), Some(Secret::new(ADMIN_PASSWORD)))
        .await
        .unwrap();
    // Two cold starts: nothing shared but the store, as two Lambda instances.
    let instance = || {
        let service = Service::new(
            Arc::clone(&store),
            Arc::clone(&sqlite) as Arc<dyn LogStore>,
            DispatchSettings::default(),
        )
        .with_limits(runway_service::limits::LimitSettings {
            sign_in_max_failures_per_ip: 2,
            ..runway_service::limits::LimitSettings::default()
        });
        Invocation::new(
            runway_api::router(service.clone(), ApiConfig::default()),
            service,
        )
    };
    let (first, second) = (instance(), instance());
    let from = |ip: &str, username: &str, password: &str| {
        let mut event = with_body(
            fixture("sign-in"),
            &json!({"username": username, "password": password}),
        );
        event["requestContext"]["http"]["sourceIp"] = json!(ip);
        event
    };
    invoke(&first, from("203.0.113.7", "ada", "guess"))
        .await
        .assert_error(401, "invalid_credentials");
    invoke(&second, from("203.0.113.7", "grace", "guess"))
        .await
        .assert_error(401, "invalid_credentials");
    let refused = invoke(&first, from("203.0.113.7", "admin", ADMIN_PASSWORD)).await;
    refused.assert_error(429, "rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    // The limit is the event's source address, not a header the client sends.
    let other = invoke(&second, from("198.51.100.4", "admin", ADMIN_PASSWORD)).await;
    assert_eq!(other.status, 201, "{other:?}");
}
