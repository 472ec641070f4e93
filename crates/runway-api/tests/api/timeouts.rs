//! How long a request may take: a handler that outlives the request timeout is a
//! 503, a body that does not arrive in time a 408, and the long polls (a claim or a
//! lease renewal that waits) get their wait on top of the request timeout.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use futures_util::StreamExt as _;
use runway_api::ApiConfig;
use runway_service::DispatchSettings;
use serde_json::json;

use crate::app::{ADMIN_PASSWORD, TestApp, service};

fn with_request_timeout(request_timeout: Duration) -> ApiConfig {
    ApiConfig {
        request_timeout,
        ..ApiConfig::default()
    }
}

#[tokio::test]
async fn a_request_that_outlives_the_request_timeout_is_a_503_that_says_when_to_retry() {
    // No password check may run, so a sign-in waits (5 s) for a turn it never gets.
    let app = TestApp::with_config(ApiConfig {
        concurrent_password_checks: 0,
        ..with_request_timeout(Duration::from_millis(500))
    })
    .await;
    let started = Instant::now();
    let r = app
        .post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "admin", "password": ADMIN_PASSWORD}),
        )
        .await;
    let message = r.assert_error(503, "request_timeout");
    assert!(message.contains("retry"), "{message}");
    assert_eq!(r.header("retry-after"), "1");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_claim_that_waits_longer_than_the_request_timeout_is_not_cut_off() {
    let app = TestApp::with_service(
        service(DispatchSettings {
            claim_wait_max: Duration::from_millis(1500),
            ..DispatchSettings::default()
        }),
        with_request_timeout(Duration::from_millis(500)),
    )
    .await;
    let admin = app.admin_token().await;
    let (_, agent) = app.agent(&admin, "patient").await;
    let started = Instant::now();
    let r = app
        .send(
            TestApp::request(Method::POST, "/agent/v1/jobs/claim?wait=20", Some(&agent))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn a_lease_renewal_that_waits_longer_than_the_request_timeout_is_not_cut_off() {
    // A 6 s lease is renewed every 2 s, so a renewal may wait up to 2 s.
    let app = TestApp::with_service(
        service(DispatchSettings {
            lease: time::Duration::seconds(6),
            ..DispatchSettings::default()
        }),
        with_request_timeout(Duration::from_millis(500)),
    )
    .await;
    let admin = app.admin_token().await;
    let (_, agent) = app.agent(&admin, "renewer").await;
    let (job, token) = app.claimed_job(&admin, &agent).await;
    let started = Instant::now();
    let r = app
        .send(
            TestApp::request(
                Method::POST,
                &format!("/agent/v1/jobs/{job}/lease?wait=30"),
                Some(&token),
            )
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
    assert_eq!(r.json()["cancel"], false);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_does_not_arrive_within_the_body_read_timeout_is_a_408_and_the_connection_closes()
 {
    let app = TestApp::with_config(ApiConfig {
        body_read_timeout: Duration::from_millis(300),
        ..ApiConfig::default()
    })
    .await;
    let admin = app.admin_token().await;
    // The first bytes of the body, then nothing, ever.
    let trickle = futures_util::stream::once(async {
        Ok::<_, Infallible>(Bytes::from_static(b"{\"name\":\"slow"))
    })
    .chain(futures_util::stream::pending());
    let started = Instant::now();
    let r = app
        .send(
            TestApp::request(Method::POST, "/api/v1/jobs", Some(&admin))
                .header("content-type", "application/json")
                .body(Body::from_stream(trickle))
                .unwrap(),
        )
        .await;
    let message = r.assert_error(408, "body_timeout");
    assert!(message.contains("did not arrive"), "{message}");
    assert_eq!(r.header("connection"), "close");
    assert!(started.elapsed() < Duration::from_secs(5));
}
