//! The headers that make the browser defend the API (nosniff, no framing, no
//! referrer, a CSP, HSTS behind https) and CORS, which only listed origins get, with
//! credentials.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use runway_api::ApiConfig;

use crate::app::{TestApp, TestResponse};

/// The policy of every response that is not HTML.
const NONE_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

#[track_caller]
fn assert_security_headers(r: &TestResponse) {
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert_eq!(r.header("x-frame-options"), "DENY");
    assert_eq!(r.header("referrer-policy"), "no-referrer");
    assert!(
        r.header("content-security-policy")
            .contains("frame-ancestors 'none'"),
        "{}",
        r.header("content-security-policy")
    );
}

fn from_origin(method: Method, path: &str, origin: &str) -> axum::http::Request<Body> {
    TestApp::request(method, path, None)
        .header("origin", origin)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_json_response_carries_the_security_headers_and_a_policy_that_allows_nothing() {
    let app = TestApp::new().await;
    let r = app.get("/api/v1/info", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_security_headers(&r);
    assert_eq!(r.header("content-security-policy"), NONE_POLICY);
    assert!(
        r.headers.get("strict-transport-security").is_none(),
        "no HSTS without an https public URL"
    );
}

#[tokio::test]
async fn error_responses_carry_the_security_headers_too() {
    let app = TestApp::new().await;
    let missing = app.get("/no/such/route", None).await;
    missing.assert_error(404, "not_found");
    assert_security_headers(&missing);
    assert_eq!(missing.header("content-security-policy"), NONE_POLICY);

    let unauthorized = app.get("/api/v1/auth/session", None).await;
    unauthorized.assert_error(401, "unauthorized");
    assert_security_headers(&unauthorized);

    let wrong_method = app.delete("/health", None).await;
    wrong_method.assert_error(405, "method_not_allowed");
    assert_security_headers(&wrong_method);
}

#[tokio::test]
async fn the_docs_page_gets_a_policy_that_loads_from_runway_itself_only() {
    let app = TestApp::new().await;
    let r = app.get("/docs", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_security_headers(&r);
    let csp = r.header("content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("style-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(!csp.contains("http"), "no other origin is allowed: {csp}");
}

#[tokio::test]
async fn an_https_public_url_turns_on_hsts_and_an_http_one_does_not() {
    let https = TestApp::with_config(ApiConfig {
        public_url: Some("https://ci.example.com".into()),
        ..ApiConfig::default()
    })
    .await;
    for path in ["/health", "/no/such/route", "/docs"] {
        let r = https.get(path, None).await;
        assert_eq!(
            r.header("strict-transport-security"),
            "max-age=31536000",
            "{path}"
        );
    }
    let http = TestApp::with_config(ApiConfig {
        public_url: Some("http://127.0.0.1:8080".into()),
        ..ApiConfig::default()
    })
    .await;
    let r = http.get("/health", None).await;
    assert!(r.headers.get("strict-transport-security").is_none());
}

fn listed() -> ApiConfig {
    ApiConfig {
        cors_allowed_origins: vec!["https://ci.example.com".into()],
        ..ApiConfig::default()
    }
}

#[tokio::test]
async fn a_listed_origin_may_send_credentials_and_the_answer_varies_by_origin() {
    let app = TestApp::with_config(listed()).await;
    let preflight = app
        .send(
            TestApp::request(Method::OPTIONS, "/api/v1/jobs", None)
                .header("origin", "https://ci.example.com")
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(preflight.status.is_success(), "{:?}", preflight.status);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        "https://ci.example.com"
    );
    assert_eq!(preflight.header("access-control-allow-credentials"), "true");
    assert!(
        preflight
            .header("vary")
            .to_ascii_lowercase()
            .contains("origin")
    );
    assert_security_headers(&preflight);

    let simple = app
        .send(from_origin(
            Method::GET,
            "/health",
            "https://ci.example.com",
        ))
        .await;
    assert_eq!(
        simple.header("access-control-allow-origin"),
        "https://ci.example.com"
    );
    assert_eq!(simple.header("access-control-allow-credentials"), "true");
}

#[tokio::test]
async fn an_origin_that_is_not_listed_gets_no_grant_and_no_credentials() {
    let app = TestApp::with_config(listed()).await;
    for origin in [
        "https://evil.example.com",
        "https://ci.example.com.evil.example",
        "http://ci.example.com",
        "null",
    ] {
        let r = app.send(from_origin(Method::GET, "/health", origin)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.headers.get("access-control-allow-origin").is_none(),
            "{origin}"
        );
        assert!(
            r.headers.get("access-control-allow-credentials").is_none(),
            "{origin}"
        );
    }
}
