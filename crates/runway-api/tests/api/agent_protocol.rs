use axum::body::Body;
use axum::http::{Method, StatusCode};
use runway_core::agent::RegistrationToken;
use runway_core::id::{RegistrationTokenId, UserId};
use runway_core::secret::TokenHash;
use serde_json::json;

use crate::app::TestApp;

#[tokio::test]
async fn an_agent_registers_with_a_registration_token() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let reg = app.registration_token(&admin).await;
    let v = app
        .register_agent(
            &reg,
            &json!({"name": "builder-1", "region": "eu-west-1", "labels": ["linux", "docker"],
                    "queue": "fast", "capacity": 4, "version": "1.2.3"}),
        )
        .await;
    assert!(v["token"].as_str().unwrap().starts_with("rwa_"));
    assert_eq!(v["timings"]["heartbeat_interval_seconds"], 30);
    assert_eq!(v["timings"]["job_lease_seconds"], 120);
    let agent = &v["agent"];
    assert_eq!(agent["name"], "builder-1");
    assert_eq!(agent["labels"], json!(["linux", "docker"]));
    assert_eq!(agent["queue"], "fast");
    assert_eq!(agent["capacity"], 4);
    // The rest of the record, as users see it.
    let id = agent["id"].as_str().unwrap();
    let admin_view = app
        .get(&format!("/api/v1/agents/{id}"), Some(&admin))
        .await
        .json();
    let agent = &admin_view;
    assert_eq!(agent["region"], "eu-west-1");
    assert_eq!(agent["version"], "1.2.3");
    assert_eq!(agent["state"], "active");
    assert_eq!(agent["status"], "never_connected");
    assert!(agent.get("token_hash").is_none());
}

#[tokio::test]
async fn registering_needs_a_live_registration_token() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let body = json!({"name": "b"});

    let r = app.post_json("/agent/v1/register", None, &body).await;
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), "Bearer");

    let unknown = format!("rwr_{}", "x".repeat(43));
    app.post_json("/agent/v1/register", Some(&unknown), &body)
        .await
        .assert_error(401, "unauthorized");
    // A session token is not a registration token.
    app.post_json("/agent/v1/register", Some(&admin), &body)
        .await
        .assert_error(401, "unauthorized");

    // Deleted.
    let r = app
        .post_json("/api/v1/registration-tokens", Some(&admin), &json!({}))
        .await
        .json();
    let id = r["registration_token"]["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/registration-tokens/{id}"), Some(&admin))
        .await;
    app.post_json("/agent/v1/register", r["token"].as_str(), &body)
        .await
        .assert_error(401, "unauthorized");

    // Expired.
    let now = time::OffsetDateTime::now_utc();
    let expired_plain = format!("rwr_{}", "e".repeat(43));
    app.store
        .create_registration_token(
            &RegistrationToken {
                id: RegistrationTokenId::new(),
                description: None,
                created_by: UserId::new(),
                created_at: now - time::Duration::hours(2),
                expires_at: Some(now - time::Duration::hours(1)),
                max_uses: None,
                uses: 0,
                token_hash: TokenHash::of(&expired_plain),
            },
            &runway_core::audit::AuditEvent::new(
                runway_core::audit::Actor::System,
                runway_core::audit::AuditAction::RegistrationTokenCreated,
                None,
                now,
            ),
        )
        .await
        .unwrap();
    app.post_json("/agent/v1/register", Some(&expired_plain), &body)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn registration_fields_are_validated_by_name() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let reg = app.registration_token(&admin).await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "n".repeat(101)}), "name"),
        (json!({"name": "b", "capacity": 0}), "capacity"),
        (json!({"name": "b", "capacity": 65}), "capacity"),
        (json!({"name": "b", "capacity": -1}), "capacity"),
        (json!({"name": "b", "region": "r".repeat(65)}), "region"),
        (json!({"name": "b", "version": "v".repeat(65)}), "version"),
        (json!({"name": "b", "labels": ["bad label"]}), "labels[0]"),
        (json!({"name": "b", "os": "linux"}), "os"),
    ] {
        let r = app.post_json("/agent/v1/register", Some(&reg), &body).await;
        let message = r.assert_error(422, "validation_failed");
        assert!(message.contains(field), "{body}: {message}");
    }
}

#[tokio::test]
async fn a_heartbeat_records_metrics_and_marks_the_agent_online() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let (id, token) = app.agent(&admin, "b1").await;
    let r = app
        .post_json(
            "/agent/v1/heartbeat",
            Some(&token),
            &json!({"cpu_percent": 12.5, "memory_percent": 40.0, "running_jobs": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["agent_status"], "online");
    assert_eq!(v["action"], "none");
    assert_eq!(v["cancel_job_ids"], json!([]));
    assert_eq!(v["timings"]["heartbeat_interval_seconds"], 30);
    let agent = app
        .get(&format!("/api/v1/agents/{id}"), Some(&admin))
        .await
        .json();
    assert_eq!(agent["status"], "online");
    assert_eq!(agent["metrics"]["cpu_percent"], 12.5);
    assert!(agent["last_heartbeat_at"].is_string());
}

#[tokio::test]
async fn heartbeats_reject_bad_metrics_and_non_agent_tokens() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let reg = app.registration_token(&admin).await;
    let token = app.register_agent(&reg, &json!({"name": "b"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (body, field) in [
        (json!({"cpu_percent": 101.0}), "cpu_percent"),
        (json!({"load_average": -1.0}), "load_average"),
        (json!({"gpu_percent": 1.0}), "gpu_percent"),
        (json!({"running_jobs": "two"}), "running_jobs"),
    ] {
        let message = app
            .post_json("/agent/v1/heartbeat", Some(&token), &body)
            .await
            .assert_error(422, "validation_failed");
        assert!(message.contains(field), "{body}: {message}");
    }
    for wrong in [admin.as_str(), reg.as_str(), "rwa_unknown"] {
        app.post_json("/agent/v1/heartbeat", Some(wrong), &json!({}))
            .await
            .assert_error(401, "unauthorized");
    }
    app.post_json("/agent/v1/heartbeat", None, &json!({}))
        .await
        .assert_error(401, "unauthorized");
}

async fn config(
    app: &TestApp,
    token: &str,
    if_none_match: Option<&str>,
) -> crate::app::TestResponse {
    let mut b = TestApp::request(Method::GET, "/agent/v1/config", Some(token));
    if let Some(v) = if_none_match {
        b = b.header("if-none-match", v);
    }
    app.send(b.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn the_agent_config_carries_the_server_timings_and_a_strong_etag() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let (id, token) = app.agent(&admin, "b1").await;
    let r = config(&app, &token, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({
            "agent_id": id, "name": "b1", "queue": "default", "labels": [], "capacity": 1,
            "action": "none",
            "timings": {
                "heartbeat_interval_seconds": 30, "offline_after_seconds": 90,
                "job_lease_seconds": 120, "lease_renew_interval_seconds": 40,
                "claim_wait_max_seconds": 20, "poll_interval_seconds": 0,
                "cancel_grace_seconds": 10, "log_flush_interval_ms": 500,
                "log_chunk_max_bytes": 262_144, "log_max_bytes": 67_108_864
            }
        })
    );
    let etag = r.header("etag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(config(&app, &token, None).await.header("etag"), etag);

    for matching in [
        etag.clone(),
        "*".into(),
        format!("\"other\", {etag}"),
        format!("W/{etag}"),
    ] {
        let r = config(&app, &token, Some(&matching)).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{matching}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), etag);
    }
    let r = config(&app, &token, Some("\"stale\"")).await;
    assert_eq!(r.status, StatusCode::OK);

    app.get("/agent/v1/config", Some(&admin))
        .await
        .assert_error(401, "unauthorized");
    app.get("/agent/v1/config", None)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn heartbeat_metrics_are_bounded_and_rounded_to_what_any_store_can_hold() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let (id, token) = app.agent(&admin, "builder").await;
    let r = app
        .post_json(
            "/agent/v1/heartbeat",
            Some(&token),
            &json!({"load_average": 1e200}),
        )
        .await;
    let message = r.assert_error(422, "validation_failed");
    assert!(message.contains("load_average"), "{message}");

    let r = app
        .post_json(
            "/agent/v1/heartbeat",
            Some(&token),
            &json!({"cpu_percent": 1e-140, "load_average": 0.123456}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let agent = app
        .get(&format!("/api/v1/agents/{id}"), Some(&admin))
        .await
        .json();
    assert_eq!(agent["metrics"]["cpu_percent"], 0.0);
    assert_eq!(agent["metrics"]["load_average"], 0.123);
}
