//! Abuse limits through the router: sign-in per account and per address, agent
//! registration, token creation, the backoff in `Retry-After`, the audit record
//! of a lockout, and two "instances" (routers) on one store sharing the counters,
//! as Lambda's instances do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, StatusCode, header};
use runway_api::{ApiConfig, router};
use runway_core::secret::Secret;
use runway_core::user::Role;
use runway_service::limits::LimitSettings;
use runway_service::{DispatchSettings, Service, accounts};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::app::{ADMIN_PASSWORD, TestApp, TestResponse, service};

/// An app whose limits are `limits`.
async fn app_with(limits: LimitSettings) -> TestApp {
    TestApp::with_service(
        service(DispatchSettings::default()).with_limits(limits),
        ApiConfig::default(),
    )
    .await
}

/// Sends `body` to `path` as if from `ip` (the `ConnectInfo` `runway serve`
/// attaches, and the Lambda adapter fills from the event's source IP).
async fn post_from(
    router: &Router,
    ip: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> TestResponse {
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    let mut request = TestApp::request(Method::POST, path, token)
        .header(header::CONTENT_TYPE, "application/json")
        .extension(ConnectInfo(addr));
    if token.is_none() {
        request = request.header(header::USER_AGENT, "limits-test");
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body: http_body_util::BodyExt::collect(body)
            .await
            .unwrap()
            .to_bytes(),
    }
}

async fn sign_in_from(router: &Router, ip: &str, username: &str, password: &str) -> TestResponse {
    post_from(
        router,
        ip,
        "/api/v1/auth/sessions",
        None,
        &json!({"username": username, "password": password}),
    )
    .await
}

/// Asserts a 429 `rate_limited` and returns its `Retry-After` in seconds.
#[track_caller]
fn assert_limited(r: &TestResponse) -> u64 {
    r.assert_error(429, "rate_limited");
    r.header("retry-after")
        .parse()
        .expect("Retry-After in seconds")
}

async fn wait(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds) + Duration::from_millis(100)).await;
}

#[tokio::test]
async fn the_sixth_failed_sign_in_for_an_account_is_a_429_a_wait_lets_it_in_and_a_success_resets_the_count()
 {
    let app = TestApp::new().await;
    for _ in 0..5 {
        app.post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "admin", "password": "not the password"}),
        )
        .await
        .assert_error(401, "invalid_credentials");
    }
    // Locked out: even the right password is refused, before any argon2 work.
    let r = app
        .post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "admin", "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(assert_limited(&r), 1);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign-ins")
    );
    // Another account is not affected.
    accounts::create_user(
        app.store.as_ref(),
        "mia",
        &Secret::new("member password 123"),
        Role::Member,
    )
    .await
    .unwrap();
    app.login("mia", "member password 123").await;

    wait(1).await;
    app.login("admin", ADMIN_PASSWORD).await;
    // The success cleared the counter: five more failures before the next 429.
    for _ in 0..5 {
        app.post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "admin", "password": "still not it"}),
        )
        .await
        .assert_error(401, "invalid_credentials");
    }
    let r = app
        .post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "admin", "password": "still not it"}),
        )
        .await;
    assert_limited(&r);
}

#[tokio::test]
async fn retry_after_doubles_with_each_failure_let_through_past_the_limit() {
    let app = app_with(LimitSettings {
        sign_in_max_failures: 1,
        ..LimitSettings::default()
    })
    .await;
    let wrong = json!({"username": "admin", "password": "wrong"});
    let mut waits = Vec::new();
    for _ in 0..3 {
        app.post_json("/api/v1/auth/sessions", None, &wrong)
            .await
            .assert_error(401, "invalid_credentials");
        let retry_after =
            assert_limited(&app.post_json("/api/v1/auth/sessions", None, &wrong).await);
        // Refused attempts do not count: a second one says the same.
        assert_eq!(
            assert_limited(&app.post_json("/api/v1/auth/sessions", None, &wrong).await),
            retry_after
        );
        waits.push(retry_after);
        wait(retry_after).await;
    }
    assert_eq!(waits, [1, 2, 4]);
}

#[tokio::test]
async fn failures_from_one_address_across_usernames_lock_that_address_out_and_no_other() {
    let app = app_with(LimitSettings {
        sign_in_max_failures_per_ip: 3,
        ..LimitSettings::default()
    })
    .await;
    for name in ["alice", "bob", "carol"] {
        sign_in_from(&app.router, "203.0.113.7", name, "guess")
            .await
            .assert_error(401, "invalid_credentials");
    }
    let r = sign_in_from(&app.router, "203.0.113.7", "admin", ADMIN_PASSWORD).await;
    assert_eq!(assert_limited(&r), 1);
    let r = sign_in_from(&app.router, "198.51.100.2", "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
}

#[tokio::test]
async fn agent_registration_is_limited_per_address_and_per_registration_token() {
    let app = app_with(LimitSettings {
        register_max_attempts: 2,
        ..LimitSettings::default()
    })
    .await;
    let admin = app.admin_token().await;
    let shared = app.registration_token(&admin).await;
    let register = |ip: &'static str, token: String| {
        let router = app.router.clone();
        async move {
            post_from(
                &router,
                ip,
                "/agent/v1/register",
                Some(&token),
                &json!({"name": "builder"}),
            )
            .await
        }
    };
    for _ in 0..2 {
        let r = register("192.0.2.10", shared.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    }
    // This address has used its attempts, whatever the token, valid or not.
    assert_limited(&register("192.0.2.10", app.registration_token(&admin).await).await);
    assert_limited(&register("192.0.2.10", "rwr_not_a_real_token".into()).await);
    // And so has the token, from any address.
    assert_limited(&register("192.0.2.99", shared.clone()).await);
    // A fresh token from a fresh address gets in.
    let r = register("192.0.2.50", app.registration_token(&admin).await).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
}

#[tokio::test]
async fn creating_registration_tokens_is_limited_per_user() {
    let app = app_with(LimitSettings {
        token_create_max_attempts: 2,
        ..LimitSettings::default()
    })
    .await;
    let admin = app.admin_token().await;
    for _ in 0..2 {
        app.registration_token(&admin).await;
    }
    let r = app
        .post_json("/api/v1/registration-tokens", Some(&admin), &json!({}))
        .await;
    assert_eq!(assert_limited(&r), 1);
}

#[tokio::test]
async fn creating_personal_api_tokens_shares_the_users_token_creation_limit() {
    let app = app_with(LimitSettings {
        token_create_max_attempts: 2,
        ..LimitSettings::default()
    })
    .await;
    let admin = app.admin_token().await;
    app.registration_token(&admin).await;
    let r = app
        .post_json("/api/v1/auth/tokens", Some(&admin), &json!({"name": "ci"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let r = app
        .post_json(
            "/api/v1/auth/tokens",
            Some(&admin),
            &json!({"name": "ci 2"}),
        )
        .await;
    assert_eq!(assert_limited(&r), 1);
    let listed = app.get("/api/v1/auth/tokens", Some(&admin)).await.json();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "the refused request made no token"
    );
}

#[tokio::test]
async fn a_lockout_is_audited_once_however_often_it_refuses_and_never_names_the_account() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let typed = "correct-horse-typed-as-a-name";
    for _ in 0..5 {
        sign_in_from(&app.router, "203.0.113.9", typed, "x")
            .await
            .assert_error(401, "invalid_credentials");
    }
    for _ in 0..4 {
        assert_limited(&sign_in_from(&app.router, "203.0.113.9", typed, "x").await);
    }
    let r = app
        .get("/api/v1/audit?action=rate_limit.refused", Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let events = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["actor"]["kind"], "system", "{event}");
    let detail = event["detail"].as_str().unwrap();
    assert!(detail.contains("203.0.113.9"), "{detail}");
    assert!(detail.contains("5 counted"), "{detail}");
    let everything = app.get("/api/v1/audit?limit=100", Some(&admin)).await;
    assert!(!String::from_utf8_lossy(&everything.body).contains(typed));
    assert!(
        !app.store
            .list_audit(&runway_core::store::AuditQuery::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| format!("{e:?}").contains(typed))
    );
}

#[tokio::test]
async fn two_instances_on_one_store_share_the_limit_as_lambda_instances_do() {
    let first = TestApp::new().await;
    // A second "instance": its own service and router, nothing shared in memory,
    // only the store.
    let second = router(
        Service::new(
            Arc::clone(&first.store),
            Arc::clone(first.service.logs()),
            DispatchSettings::default(),
        ),
        ApiConfig::default(),
    );
    for _ in 0..3 {
        sign_in_from(&first.router, "203.0.113.20", "admin", "wrong")
            .await
            .assert_error(401, "invalid_credentials");
    }
    for _ in 0..2 {
        sign_in_from(&second, "203.0.113.21", "admin", "wrong")
            .await
            .assert_error(401, "invalid_credentials");
    }
    assert_limited(&sign_in_from(&first.router, "203.0.113.22", "admin", ADMIN_PASSWORD).await);
    assert_limited(&sign_in_from(&second, "203.0.113.23", "admin", ADMIN_PASSWORD).await);
}

#[tokio::test]
async fn failed_oidc_callbacks_count_against_the_address_with_failed_password_sign_ins() {
    let service = service(DispatchSettings::default()).with_limits(LimitSettings {
        sign_in_max_failures_per_ip: 3,
        ..LimitSettings::default()
    });
    // A forged state is refused before the issuer is ever asked, so no issuer
    // needs to exist here.
    let app = TestApp::with_service(
        service,
        ApiConfig {
            public_url: Some("https://runway.example.test".into()),
            oidc: Some(runway_service::oidc::OidcSettings {
                issuer_url: "https://issuer.invalid".into(),
                client_id: "runway".into(),
                client_secret: None,
                redirect_url: "https://runway.example.test/api/v1/auth/oidc/callback".into(),
                allowed_email_domains: vec![],
                admin_emails: vec![],
                admin_group: None,
            }),
            ..ApiConfig::default()
        },
    )
    .await;
    let callback = |ip: &'static str| {
        let router = app.router.clone();
        async move {
            let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
            let request = TestApp::request(
                Method::GET,
                "/api/v1/auth/oidc/callback?code=c&state=forged",
                None,
            )
            .extension(ConnectInfo(addr))
            .body(Body::empty())
            .unwrap();
            let response = router.oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            TestResponse {
                status: parts.status,
                headers: parts.headers,
                body: http_body_util::BodyExt::collect(body)
                    .await
                    .unwrap()
                    .to_bytes(),
            }
        }
    };
    for _ in 0..2 {
        callback("203.0.113.40")
            .await
            .assert_error(400, "oidc_state_invalid");
    }
    sign_in_from(&app.router, "203.0.113.40", "admin", "wrong")
        .await
        .assert_error(401, "invalid_credentials");
    assert_limited(&callback("203.0.113.40").await);
    assert_limited(&sign_in_from(&app.router, "203.0.113.40", "admin", ADMIN_PASSWORD).await);
    callback("203.0.113.41")
        .await
        .assert_error(400, "oidc_state_invalid");
}

#[tokio::test]
async fn the_reaper_deletes_expired_counters_and_keeps_live_ones_so_they_do_not_pile_up() {
    use runway_core::limit::LimitKey;
    let app = TestApp::new().await;
    let long_ago = runway_core::OffsetDateTime::now_utc() - time::Duration::hours(2);
    for n in 0..3 {
        app.store
            .record_attempt(
                &LimitKey::new("signin_ip", &format!("192.0.2.{n}")),
                long_ago,
                Duration::from_secs(900),
            )
            .await
            .unwrap();
    }
    // A live counter, from a real failed sign-in.
    app.post_json(
        "/api/v1/auth/sessions",
        None,
        &json!({"username": "admin", "password": "wrong"}),
    )
    .await
    .assert_error(401, "invalid_credentials");

    let report = app.service.reap().await.unwrap();
    assert_eq!(report.counters_purged, 3, "{report}");
    assert_eq!(app.service.reap().await.unwrap().counters_purged, 0);
    let live = app
        .store
        .attempts(
            &LimitKey::new("signin_account", "admin"),
            runway_core::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    assert_eq!(live.map(|a| a.count), Some(1));
}
