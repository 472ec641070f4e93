use axum::body::Body;
use axum::http::{Method, StatusCode};
use runway_api::ApiConfig;

use crate::app::TestApp;

#[tokio::test]
async fn health_answers_ok() {
    let app = TestApp::new().await;
    let r = app.get("/health", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn ready_reports_the_store_backend() {
    let app = TestApp::new().await;
    let r = app.get("/ready", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "ready", "store": "sqlite"})
    );
}

#[tokio::test]
async fn info_names_the_server_its_version_and_its_store() {
    let app = TestApp::new().await;
    let v = app.get("/api/v1/info", None).await.json();
    assert_eq!(v["name"], "runway");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["store"], "sqlite");
    assert_eq!(v["auth_methods"], serde_json::json!(["password"]));
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sane_caller_one_is_kept() {
    let app = TestApp::new().await;
    let r = app.get("/health", None).await;
    assert!(r.header("x-request-id").parse::<ulid::Ulid>().is_ok());

    let mine = app
        .send(
            TestApp::request(Method::GET, "/health", None)
                .header("x-request-id", "trace-42.a_b")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(mine.header("x-request-id"), "trace-42.a_b");
}

#[tokio::test]
async fn an_unsafe_or_overlong_caller_request_id_is_replaced() {
    let app = TestApp::new().await;
    for bad in ["has space", &"x".repeat(65), "semi;colon"] {
        let r = app
            .send(
                TestApp::request(Method::GET, "/nope", None)
                    .header("x-request-id", bad)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        let id = r.header("x-request-id").to_owned();
        assert_ne!(id, bad);
        assert!(id.parse::<ulid::Ulid>().is_ok(), "{id}");
        r.assert_error(404, "not_found");
    }
}

fn preflight(origin: &str) -> axum::http::Request<Body> {
    TestApp::request(Method::OPTIONS, "/api/v1/auth/session", None)
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_cors_preflight_from_an_allowed_origin_is_granted() {
    let app = TestApp::with_config(ApiConfig {
        cors_allowed_origins: vec!["https://ci.example.com".into()],
        ..ApiConfig::default()
    })
    .await;
    let r = app.send(preflight("https://ci.example.com")).await;
    assert!(r.status.is_success(), "{:?}", r.status);
    assert_eq!(
        r.header("access-control-allow-origin"),
        "https://ci.example.com"
    );
    let methods = r
        .header("access-control-allow-methods")
        .to_ascii_uppercase();
    for m in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    assert!(
        r.header("access-control-allow-headers")
            .to_ascii_lowercase()
            .contains("authorization")
    );
    assert!(!r.header("x-request-id").is_empty());

    // Simple requests expose the request id and ETag to the page.
    let simple = app
        .send(
            TestApp::request(Method::GET, "/health", None)
                .header("origin", "https://ci.example.com")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let exposed = simple
        .header("access-control-expose-headers")
        .to_ascii_lowercase();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("etag"),
        "{exposed}"
    );
}

#[tokio::test]
async fn a_cors_preflight_from_another_origin_gets_no_grant() {
    let app = TestApp::with_config(ApiConfig {
        cors_allowed_origins: vec!["https://ci.example.com".into()],
        ..ApiConfig::default()
    })
    .await;
    let r = app.send(preflight("https://evil.example.com")).await;
    assert!(r.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn without_configured_origins_no_cors_headers_are_sent() {
    let app = TestApp::new().await;
    let r = app
        .send(
            TestApp::request(Method::GET, "/health", None)
                .header("origin", "https://ci.example.com")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-"))
    );
}
