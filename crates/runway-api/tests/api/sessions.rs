use axum::body::Body;
use axum::http::{Method, StatusCode};
use runway_api::ApiConfig;
use runway_core::id::SessionId;
use runway_core::secret::Secret;
use runway_service::accounts;
use serde_json::json;

use crate::app::{ADMIN_PASSWORD, MEMBER_PASSWORD, TestApp};

#[tokio::test]
async fn signing_in_returns_a_session_token_the_session_and_the_user() {
    let app = TestApp::new().await;
    let r = app
        .send(
            TestApp::request(Method::POST, "/api/v1/auth/sessions", None)
                .header("content-type", "application/json")
                .header("user-agent", "runway-cli/1.0")
                .body(Body::from(
                    json!({"username": "admin", "password": ADMIN_PASSWORD, "device_name": "laptop"})
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let v = r.json();
    assert!(v["token"].as_str().unwrap().starts_with("rws_"));
    assert_eq!(v["user"]["username"], "admin");
    assert_eq!(v["user"]["role"], "admin");
    assert_eq!(v["session"]["username"], "admin");
    assert_eq!(v["session"]["device_name"], "laptop");
    assert_eq!(v["session"]["user_agent"], "runway-cli/1.0");
    assert_eq!(v["session"]["idle_timeout_seconds"], 86_400);
    assert!(v["session"]["ip"].is_null(), "no ConnectInfo in-process");
    assert!(v["session"].get("token_hash").is_none());
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let app = TestApp::new().await;
    for (u, p) in [("admin", "wrong password!!"), ("nobody", ADMIN_PASSWORD)] {
        let r = app
            .post_json(
                "/api/v1/auth/sessions",
                None,
                &json!({"username": u, "password": p}),
            )
            .await;
        r.assert_error(401, "invalid_credentials");
    }
}

#[tokio::test(start_paused = true)]
async fn a_sign_in_that_cannot_get_a_password_check_slot_is_shed_with_a_503() {
    let app = TestApp::with_config(ApiConfig {
        concurrent_password_checks: 0,
        ..ApiConfig::default()
    })
    .await;
    let r = app
        .post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "admin", "password": ADMIN_PASSWORD}),
        )
        .await;
    r.assert_error(503, "overloaded");
    assert_eq!(r.header("retry-after"), "1");
}

#[tokio::test]
async fn a_wrong_password_carries_www_authenticate_like_every_401() {
    let app = TestApp::new().await;
    let r = app
        .post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "admin", "password": "wrong"}),
        )
        .await;
    r.assert_error(401, "invalid_credentials");
    assert_eq!(r.header("www-authenticate"), "Bearer");
}

#[tokio::test]
async fn sign_in_fields_are_validated_by_name() {
    let app = TestApp::new().await;
    for (body, field) in [
        (json!({"username": "admin"}), "password"),
        (
            json!({"username": "admin", "password": "x", "remember": true}),
            "remember",
        ),
        (
            json!({"username": "a".repeat(65), "password": "x"}),
            "username",
        ),
        (
            json!({"username": "admin", "password": "x".repeat(1025)}),
            "password",
        ),
        (
            json!({"username": "admin", "password": "x", "device_name": "d".repeat(101)}),
            "device_name",
        ),
        // Blank names mean none, but they are held to the same rules first, as
        // the document's `maxLength` and pattern say.
        (
            json!({"username": "admin", "password": "x", "device_name": " ".repeat(101)}),
            "device_name",
        ),
        (
            json!({"username": "admin", "password": "x", "device_name": "\t"}),
            "device_name",
        ),
        (json!({"username": 7, "password": "x"}), "username"),
    ] {
        let r = app.post_json("/api/v1/auth/sessions", None, &body).await;
        let message = r.assert_error(422, "validation_failed");
        assert!(message.contains(field), "{body}: {message}");
    }
}

#[tokio::test]
async fn a_username_is_measured_in_characters_as_the_document_says() {
    let app = TestApp::new().await;
    // 64 characters, 128 bytes: within the limit, so only the credentials are wrong.
    let r = app
        .post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "é".repeat(64), "password": "x"}),
        )
        .await;
    r.assert_error(401, "invalid_credentials");
    let r = app
        .post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "é".repeat(65), "password": "x"}),
        )
        .await;
    let message = r.assert_error(422, "validation_failed");
    assert!(message.starts_with("username:"), "{message}");
}

#[tokio::test]
async fn a_valid_session_token_returns_the_user_and_session() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    let r = app.get("/api/v1/auth/session", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["user"]["username"], "admin");
    assert_eq!(v["user"]["role"], "admin");
    assert_eq!(v["session"]["user_id"], v["user"]["id"]);
}

#[tokio::test]
async fn missing_malformed_unknown_and_tampered_tokens_are_unauthorized() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    let unknown = format!("rws_{}_{}", SessionId::new(), "A".repeat(43));
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let cases: Vec<Option<String>> =
        vec![None, Some("garbage".into()), Some(unknown), Some(tampered)];
    for case in cases {
        let r = app.get("/api/v1/auth/session", case.as_deref()).await;
        r.assert_error(401, "unauthorized");
        assert_eq!(r.header("www-authenticate"), "Bearer");
    }
    // A non-bearer scheme is no token at all.
    let r = app
        .send(
            TestApp::request(Method::GET, "/api/v1/auth/session", None)
                .header("authorization", format!("Basic {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    r.assert_error(401, "unauthorized");
}

#[tokio::test]
async fn a_session_past_its_idle_timeout_is_unauthorized() {
    let app = TestApp::with_config(ApiConfig {
        session_idle_timeout: time::Duration::ZERO,
        ..ApiConfig::default()
    })
    .await;
    let token = app.admin_token().await;
    let r = app.get("/api/v1/auth/session", Some(&token)).await;
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), "Bearer");
}

#[tokio::test]
async fn a_session_past_its_absolute_expiry_is_unauthorized() {
    let app = TestApp::with_config(ApiConfig {
        session_ttl: time::Duration::ZERO,
        ..ApiConfig::default()
    })
    .await;
    let token = app.admin_token().await;
    app.get("/api/v1/auth/session", Some(&token))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn an_agent_token_is_not_a_session() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let (_, agent_token) = app.agent(&admin, "b1").await;
    app.get("/api/v1/auth/session", Some(&agent_token))
        .await
        .assert_error(401, "unauthorized");
    app.get("/api/v1/jobs", Some(&agent_token))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn signing_out_makes_the_token_fail_on_the_next_call() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    let r = app.delete("/api/v1/auth/session", Some(&token)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    app.get("/api/v1/auth/session", Some(&token))
        .await
        .assert_error(401, "unauthorized");
    app.delete("/api/v1/auth/session", Some(&token))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn listing_sessions_shows_each_device_newest_first_and_marks_the_current_one() {
    let app = TestApp::new().await;
    let first = app.admin_token().await;
    let second = app.admin_token().await;
    let r = app.get("/api/v1/auth/sessions", Some(&second)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["current"], true);
    assert_eq!(items[1]["current"], false);
    assert!(items[0]["id"].as_str() > items[1]["id"].as_str());
    assert_eq!(items[0]["username"], "admin");
    app.get("/api/v1/auth/sessions", None)
        .await
        .assert_error(401, "unauthorized");
    drop(first);
}

#[tokio::test]
async fn revoking_a_session_signs_that_device_out() {
    let app = TestApp::new().await;
    let laptop = app.sign_in("admin", ADMIN_PASSWORD).await;
    let phone = app.admin_token().await;
    let laptop_id = laptop["session"]["id"].as_str().unwrap();
    let laptop_token = laptop["token"].as_str().unwrap();

    let r = app
        .delete(&format!("/api/v1/auth/sessions/{laptop_id}"), Some(&phone))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/api/v1/auth/session", Some(laptop_token))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(
        app.get("/api/v1/auth/session", Some(&phone)).await.status,
        StatusCode::OK
    );
    // Gone now, so a second revoke is a 404.
    app.delete(&format!("/api/v1/auth/sessions/{laptop_id}"), Some(&phone))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn someone_elses_session_cannot_be_revoked() {
    let app = TestApp::new().await;
    let admin = app.sign_in("admin", ADMIN_PASSWORD).await;
    let member = app.member_token().await;
    let admin_session = admin["session"]["id"].as_str().unwrap();
    app.delete(
        &format!("/api/v1/auth/sessions/{admin_session}"),
        Some(&member),
    )
    .await
    .assert_error(404, "not_found");
    app.delete("/api/v1/auth/sessions/not-a-ulid", Some(&member))
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        app.get("/api/v1/auth/session", admin["token"].as_str())
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn revoke_all_without_a_body_signs_out_everywhere() {
    let app = TestApp::new().await;
    let a = app.admin_token().await;
    let b = app.admin_token().await;
    let r = app
        .post_raw("/api/v1/auth/sessions/revoke-all", Some(&a), None, "")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"revoked": 2}));
    for t in [&a, &b] {
        app.get("/api/v1/auth/session", Some(t))
            .await
            .assert_error(401, "unauthorized");
    }
}

#[tokio::test]
async fn revoke_all_can_keep_the_current_session() {
    let app = TestApp::new().await;
    let a = app.admin_token().await;
    let b = app.admin_token().await;
    let c = app.admin_token().await;
    let r = app
        .post_json(
            "/api/v1/auth/sessions/revoke-all",
            Some(&a),
            &json!({"keep_current": true}),
        )
        .await;
    assert_eq!(r.json(), json!({"revoked": 2}));
    assert_eq!(
        app.get("/api/v1/auth/session", Some(&a)).await.status,
        StatusCode::OK
    );
    for t in [&b, &c] {
        app.get("/api/v1/auth/session", Some(t))
            .await
            .assert_error(401, "unauthorized");
    }
    let r = app
        .post_json(
            "/api/v1/auth/sessions/revoke-all",
            Some(&a),
            &json!({"keep": true}),
        )
        .await;
    assert!(r.assert_error(422, "validation_failed").contains("keep"));
}

#[tokio::test]
async fn resetting_a_password_signs_the_user_out_and_the_new_password_works() {
    let app = TestApp::new().await;
    let member = app.member_token().await;
    accounts::reset_password(
        app.store.as_ref(),
        "mia",
        &Secret::new("a brand new password"),
    )
    .await
    .unwrap();
    app.get("/api/v1/auth/session", Some(&member))
        .await
        .assert_error(401, "unauthorized");
    app.post_json(
        "/api/v1/auth/sessions",
        None,
        &json!({"username": "mia", "password": MEMBER_PASSWORD}),
    )
    .await
    .assert_error(401, "invalid_credentials");
    app.login("mia", "a brand new password").await;
}

#[tokio::test]
async fn account_rules_are_enforced() {
    let app = TestApp::new().await;
    let store = app.store.as_ref();
    let weak = Secret::new("short");
    assert!(matches!(
        accounts::create_user(store, "bob", &weak, runway_core::user::Role::Member).await,
        Err(accounts::AccountError::WeakPassword)
    ));
    assert!(matches!(
        accounts::create_user(
            store,
            "has space",
            &Secret::new(MEMBER_PASSWORD),
            runway_core::user::Role::Member
        )
        .await,
        Err(accounts::AccountError::InvalidUsername(_))
    ));
    assert!(matches!(
        accounts::create_user(
            store,
            "admin",
            &Secret::new(MEMBER_PASSWORD),
            runway_core::user::Role::Member
        )
        .await,
        Err(accounts::AccountError::UsernameTaken(_))
    ));
    assert!(matches!(
        accounts::reset_password(store, "ghost", &Secret::new(MEMBER_PASSWORD)).await,
        Err(accounts::AccountError::NoSuchUser(_))
    ));
    assert!(matches!(
        accounts::ensure_admin(store, None).await,
        Ok(accounts::Bootstrap::AlreadyInitialized)
    ));
    assert!(matches!(
        accounts::ensure_admin(store, Some(weak)).await,
        Err(accounts::AccountError::WeakPassword)
    ));
}

#[tokio::test]
async fn a_first_start_without_a_password_generates_one_that_signs_in() {
    let service = crate::app::service(runway_service::DispatchSettings::default());
    let store = std::sync::Arc::clone(service.store());
    let accounts::Bootstrap::CreatedWithGeneratedPassword(password) =
        accounts::ensure_admin(store.as_ref(), None).await.unwrap()
    else {
        panic!("expected a generated password")
    };
    assert_eq!(format!("{password:?}"), "Secret([redacted])");
    let app = TestApp {
        router: runway_api::router(service.clone(), ApiConfig::default()),
        store,
        service,
    };
    app.login("admin", password.expose()).await;
}

#[tokio::test]
async fn the_fifty_first_sign_in_evicts_the_oldest_session_which_then_gets_401() {
    let app = TestApp::new().await;
    let mut tokens = Vec::new();
    for _ in 0..runway_core::session::MAX_SESSIONS_PER_USER {
        tokens.push(app.admin_token().await);
    }
    let newest = app.admin_token().await;

    app.get("/api/v1/auth/session", Some(&tokens[0]))
        .await
        .assert_error(401, "unauthorized");
    for t in [&tokens[1], &newest] {
        assert_eq!(
            app.get("/api/v1/auth/session", Some(t)).await.status,
            StatusCode::OK
        );
    }
    let listed = app.get("/api/v1/auth/sessions", Some(&newest)).await.json();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(runway_core::session::MAX_SESSIONS_PER_USER),
        "{listed}"
    );
    let audit = app.get("/api/v1/audit?limit=5", Some(&newest)).await.json();
    assert!(
        audit.to_string().contains("evicted"),
        "the eviction is audited: {audit}"
    );
}

#[tokio::test]
async fn the_reaper_deletes_expired_sessions_and_leaves_live_ones() {
    let app = TestApp::new().await;
    let live = app.admin_token().await;
    let admin = app
        .store
        .user_by_username("admin")
        .await
        .unwrap()
        .expect("admin");
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    let expired = runway_core::session::Session {
        id: SessionId::new(),
        user_id: admin.id,
        username: admin.username.clone(),
        role: admin.role,
        device_name: None,
        user_agent: None,
        ip: None,
        created_at: long_ago,
        last_seen_at: long_ago,
        expires_at: long_ago + time::Duration::days(7),
        idle_timeout_seconds: 86_400,
        token_hash: runway_core::secret::TokenHash::of("expired"),
        credential_epoch: admin.credential_epoch,
    };
    app.store
        .create_session(&expired, &crate::app::any_event())
        .await
        .unwrap();

    let report = app.service.reap().await.unwrap();
    assert_eq!(report.sessions_purged, 1, "{report}");
    assert_eq!(app.store.get_session(expired.id).await.unwrap(), None);
    assert_eq!(
        app.get("/api/v1/auth/session", Some(&live)).await.status,
        StatusCode::OK
    );
    assert_eq!(app.service.reap().await.unwrap().sessions_purged, 0);
}
