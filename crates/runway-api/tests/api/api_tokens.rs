//! Personal API tokens end to end: shown once, never listed, usable as bearer
//! tokens, scoped, revocable, and audited.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::app::TestApp;

async fn make(app: &TestApp, session: &str, body: &Value) -> Value {
    let r = app
        .post_json("/api/v1/auth/tokens", Some(session), body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    r.json()
}

#[tokio::test]
async fn a_token_is_shown_once_in_its_documented_shape_and_never_listed() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let made = make(&app, &admin, &json!({"name": "ci deploy"})).await;
    let token = made["token"].as_str().unwrap();
    assert_eq!(token.len(), 79);
    assert!(token.starts_with("rwp_"), "{token}");
    assert!(token[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(made["api_token"]["name"], "ci deploy");
    assert_eq!(made["api_token"]["read_only"], false);
    assert_eq!(made["api_token"]["expires_at"], Value::Null);
    assert!(made["api_token"].get("token_hash").is_none());

    let r = app.get("/api/v1/auth/tokens", Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK);
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(!body.contains(token), "the secret is never listed");
    assert_eq!(r.json()["items"][0]["id"], made["api_token"]["id"]);
}

#[tokio::test]
async fn a_token_acts_as_its_user_and_stops_at_once_when_revoked() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let made = make(&app, &admin, &json!({"name": "ci"})).await;
    let token = made["token"].as_str().unwrap();
    let id = made["api_token"]["id"].as_str().unwrap();

    let job = app.submit_job(token, "from ci").await;
    let r = app
        .get(
            &format!("/api/v1/jobs/{}", job["id"].as_str().unwrap()),
            Some(token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // An admin's token can do what admins do.
    let r = app.get("/api/v1/audit", Some(token)).await;
    assert_eq!(r.status, StatusCode::OK);
    let events = r.json()["items"].as_array().unwrap().clone();
    let created = events
        .iter()
        .find(|e| e["action"] == "api_token.created")
        .expect("api_token.created is audited");
    assert_eq!(created["subject"], id);
    assert_eq!(created["actor"]["username"], "admin");
    let submitted = events
        .iter()
        .find(|e| e["action"] == "job.created")
        .unwrap();
    assert_eq!(submitted["actor"]["username"], "admin");

    let r = app
        .delete(&format!("/api/v1/auth/tokens/{id}"), Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/api/v1/jobs", Some(token))
        .await
        .assert_error(401, "unauthorized");
    app.delete(&format!("/api/v1/auth/tokens/{id}"), Some(&admin))
        .await
        .assert_error(404, "not_found");
    let r = app
        .get("/api/v1/audit?action=api_token.revoked", Some(&admin))
        .await;
    assert_eq!(r.json()["items"][0]["subject"], id);
}

#[tokio::test]
async fn a_read_only_token_reads_and_is_refused_anything_else() {
    let app = TestApp::new().await;
    let member = app.member_token().await;
    let made = make(
        &app,
        &member,
        &json!({"name": "dashboards", "read_only": true}),
    )
    .await;
    let token = made["token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/jobs", Some(token)).await.status,
        StatusCode::OK
    );
    let head = app
        .send(
            TestApp::request(Method::HEAD, "/api/v1/jobs", Some(token))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    app.post_json(
        "/api/v1/jobs",
        Some(token),
        &json!({"name": "x", "script": "true"}),
    )
    .await
    .assert_error(403, "read_only_token");
}

#[tokio::test]
async fn a_token_cannot_manage_tokens_or_sessions_and_is_never_a_cookie() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let token = make(&app, &admin, &json!({"name": "ci"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_json(
        "/api/v1/auth/tokens",
        Some(&token),
        &json!({"name": "more"}),
    )
    .await
    .assert_error(403, "session_required");
    app.get("/api/v1/auth/tokens", Some(&token))
        .await
        .assert_error(403, "session_required");
    app.post_json("/api/v1/auth/sessions/revoke-all", Some(&token), &json!({}))
        .await
        .assert_error(403, "session_required");
    let r = app
        .send(
            TestApp::request(Method::GET, "/api/v1/jobs", None)
                .header(header::COOKIE, format!("runway_session={token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    r.assert_error(401, "unauthorized");
    // Not an agent credential either.
    let r = app
        .post_raw("/agent/v1/jobs/claim", Some(&token), None, "")
        .await;
    r.assert_error(401, "unauthorized");
}

#[tokio::test]
async fn a_token_with_a_wrong_checksum_or_secret_is_refused() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let token = make(&app, &admin, &json!({"name": "ci"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bytes = token.clone().into_bytes();
    bytes[50] = if bytes[50] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(bytes).unwrap();
    app.get("/api/v1/jobs", Some(&typo))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn expiry_is_given_as_a_time_or_in_days_never_both_and_never_in_the_past() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let made = make(&app, &admin, &json!({"name": "week", "expires_in_days": 7})).await;
    assert!(made["api_token"]["expires_at"].is_string());
    for (body, field) in [
        (
            json!({"name": "x", "expires_in_days": 7, "expires_at": "2099-01-01T00:00:00Z"}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "scope": "all"}), "scope"),
    ] {
        let message = app
            .post_json("/api/v1/auth/tokens", Some(&admin), &body)
            .await
            .assert_error(422, "validation_failed");
        assert!(message.contains(field), "{body}: {message}");
    }
}

#[tokio::test]
async fn a_user_holds_at_most_forty_tokens() {
    let app = TestApp::without_abuse_limits().await;
    let admin = app.admin_token().await;
    for n in 0..40 {
        make(&app, &admin, &json!({"name": format!("t{n}")})).await;
    }
    app.post_json(
        "/api/v1/auth/tokens",
        Some(&admin),
        &json!({"name": "one more"}),
    )
    .await
    .assert_error(409, "too_many_api_tokens");
}
