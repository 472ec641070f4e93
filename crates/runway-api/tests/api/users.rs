//! The users admin API: create, list, change, disable, delete, and a user's
//! sessions; the last admin stays.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::app::{MEMBER_PASSWORD, TestApp, TestResponse};

async fn patch(app: &TestApp, path: &str, token: &str, body: &Value) -> TestResponse {
    app.send(
        TestApp::request(Method::PATCH, path, Some(token))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

async fn create(app: &TestApp, admin: &str, body: &Value) -> Value {
    let r = app.post_json("/api/v1/users", Some(admin), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert_eq!(
        r.header("location"),
        format!("/api/v1/users/{}", r.json()["id"].as_str().unwrap())
    );
    r.json()
}

fn sign_in_body(username: &str) -> Value {
    json!({"username": username, "password": MEMBER_PASSWORD})
}

#[tokio::test]
async fn an_admin_creates_a_user_who_can_then_sign_in_and_lists_users_newest_first() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let ada = create(
        &app,
        &admin,
        &json!({"username": "ada", "role": "member", "password": MEMBER_PASSWORD}),
    )
    .await;
    assert_eq!(ada["role"], "member");
    assert_eq!(ada["disabled"], false);
    assert!(ada.get("password_hash").is_none());
    app.login("ada", MEMBER_PASSWORD).await;
    create(
        &app,
        &admin,
        &json!({"username": "bob", "role": "admin", "password": MEMBER_PASSWORD}),
    )
    .await;

    let first = app.get("/api/v1/users?limit=2", Some(&admin)).await.json();
    let names: Vec<_> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, ["bob", "ada"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = app
        .get(
            &format!("/api/v1/users?limit=2&cursor={cursor}"),
            Some(&admin),
        )
        .await
        .json();
    assert_eq!(rest["items"][0]["username"], "admin");
    assert_eq!(rest["next_cursor"], Value::Null);
    let one = app
        .get(
            &format!("/api/v1/users/{}", ada["id"].as_str().unwrap()),
            Some(&admin),
        )
        .await;
    assert_eq!(one.json(), ada);

    app.post_json(
        "/api/v1/users",
        Some(&admin),
        &json!({"username": "ada", "role": "member"}),
    )
    .await
    .assert_error(409, "conflict");
    app.post_json(
        "/api/v1/users",
        Some(&admin),
        &json!({"username": "has space", "role": "member"}),
    )
    .await
    .assert_error(422, "validation_failed");
    app.post_json(
        "/api/v1/users",
        Some(&admin),
        &json!({"username": "eve", "role": "root"}),
    )
    .await
    .assert_error(422, "validation_failed");
    let short = app
        .post_json(
            "/api/v1/users",
            Some(&admin),
            &json!({"username": "eve", "role": "member", "password": "short"}),
        )
        .await
        .assert_error(422, "validation_failed");
    assert!(short.starts_with("password"), "{short}");
}

#[tokio::test]
async fn a_user_made_without_a_password_cannot_sign_in_with_one() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    create(&app, &admin, &json!({"username": "sso", "role": "member"})).await;
    app.post_json(
        "/api/v1/auth/sessions",
        None,
        &json!({"username": "sso", "password": "!no-password"}),
    )
    .await
    .assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn disabling_a_user_signs_them_out_revokes_their_tokens_and_refuses_their_sign_in() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let member = app.member_token().await;
    let token = app
        .post_json("/api/v1/auth/tokens", Some(&member), &json!({"name": "ci"}))
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = app.get("/api/v1/auth/session", Some(&member)).await.json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = patch(
        &app,
        &format!("/api/v1/users/{id}"),
        &admin,
        &json!({"disabled": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["disabled"], true);
    app.get("/api/v1/jobs", Some(&member))
        .await
        .assert_error(401, "unauthorized");
    app.get("/api/v1/jobs", Some(&token))
        .await
        .assert_error(401, "unauthorized");
    app.post_json("/api/v1/auth/sessions", None, &sign_in_body("mia"))
        .await
        .assert_error(403, "account_disabled");
    // The wrong password still says only that.
    app.post_json(
        "/api/v1/auth/sessions",
        None,
        &json!({"username": "mia", "password": "wrong password!"}),
    )
    .await
    .assert_error(401, "invalid_credentials");
    let r = app
        .get(
            &format!("/api/v1/audit?subject={id}&action=user.disabled"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);

    let r = patch(
        &app,
        &format!("/api/v1/users/{id}"),
        &admin,
        &json!({"disabled": false}),
    )
    .await;
    assert_eq!(r.json()["disabled"], false);
    app.login("mia", MEMBER_PASSWORD).await;
}

#[tokio::test]
async fn a_role_change_takes_effect_on_the_next_sign_in_and_revokes_the_old_sessions() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let member = app.member_token().await;
    let id = app.get("/api/v1/auth/session", Some(&member)).await.json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get("/api/v1/audit", Some(&member))
        .await
        .assert_error(403, "forbidden");
    let r = patch(
        &app,
        &format!("/api/v1/users/{id}"),
        &admin,
        &json!({"role": "admin"}),
    )
    .await;
    assert_eq!(r.json()["role"], "admin");
    app.get("/api/v1/jobs", Some(&member))
        .await
        .assert_error(401, "unauthorized");
    let promoted = app.login("mia", MEMBER_PASSWORD).await;
    assert_eq!(
        app.get("/api/v1/audit", Some(&promoted)).await.status,
        StatusCode::OK
    );
    // An empty change changes nothing, and signs nobody out.
    let r = patch(&app, &format!("/api/v1/users/{id}"), &admin, &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["role"], "admin");
    assert_eq!(
        app.get("/api/v1/audit", Some(&promoted)).await.status,
        StatusCode::OK,
        "an empty change revoked nothing"
    );
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_disabled_or_deleted() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let me = app.get("/api/v1/auth/session", Some(&admin)).await.json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/users/{me}");
    for body in [json!({"role": "member"}), json!({"disabled": true})] {
        patch(&app, &path, &admin, &body)
            .await
            .assert_error(409, "last_admin");
    }
    app.delete(&path, Some(&admin))
        .await
        .assert_error(409, "last_admin");
    assert_eq!(
        app.get("/api/v1/jobs", Some(&admin)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let other = create(
        &app,
        &admin,
        &json!({"username": "bob", "role": "admin", "password": MEMBER_PASSWORD}),
    )
    .await;
    let bob = app.login("bob", MEMBER_PASSWORD).await;
    let me = app.get("/api/v1/auth/session", Some(&admin)).await.json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let demote = json!({"role": "member"});
    let (theirs, mine) = (
        format!("/api/v1/users/{}", other["id"].as_str().unwrap()),
        format!("/api/v1/users/{me}"),
    );
    let (a, b) = tokio::join!(
        patch(&app, &theirs, &admin, &demote),
        patch(&app, &mine, &bob, &demote),
    );
    // The loser is refused as the last admin, or, if the winner's write landed
    // before the loser's session was read, finds its session revoked.
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses[0], StatusCode::OK, "{statuses:?}");
    assert!(
        [StatusCode::UNAUTHORIZED, StatusCode::CONFLICT].contains(&statuses[1]),
        "{statuses:?}"
    );
    let users = app
        .store
        .list_users(&runway_core::page::PageRequest::default())
        .await
        .unwrap();
    let admins = users.items.iter().filter(|u| u.is_enabled_admin()).count();
    assert_eq!(admins, 1);
}

#[tokio::test]
async fn deleting_a_user_deletes_their_credentials_and_frees_the_name() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let member = app.member_token().await;
    let id = app.get("/api/v1/auth/session", Some(&member)).await.json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .delete(&format!("/api/v1/users/{id}"), Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/api/v1/jobs", Some(&member))
        .await
        .assert_error(401, "unauthorized");
    app.post_json("/api/v1/auth/sessions", None, &sign_in_body("mia"))
        .await
        .assert_error(401, "invalid_credentials");
    app.get(&format!("/api/v1/users/{id}"), Some(&admin))
        .await
        .assert_error(404, "not_found");
    app.delete(&format!("/api/v1/users/{id}"), Some(&admin))
        .await
        .assert_error(404, "not_found");
    create(&app, &admin, &json!({"username": "mia", "role": "member"})).await;
}

#[tokio::test]
async fn an_admin_lists_and_revokes_a_users_sessions() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let member = app.member_token().await;
    let me = app.get("/api/v1/auth/session", Some(&member)).await.json();
    let (id, session) = (
        me["user"]["id"].as_str().unwrap().to_owned(),
        me["session"]["id"].as_str().unwrap().to_owned(),
    );
    let listed = app
        .get(&format!("/api/v1/users/{id}/sessions"), Some(&admin))
        .await
        .json();
    assert_eq!(listed["items"][0]["id"], session.as_str());
    let r = app
        .delete(
            &format!("/api/v1/users/{id}/sessions/{session}"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/api/v1/jobs", Some(&member))
        .await
        .assert_error(401, "unauthorized");
    app.delete(
        &format!("/api/v1/users/{id}/sessions/{session}"),
        Some(&admin),
    )
    .await
    .assert_error(404, "not_found");
    app.get(
        &format!("/api/v1/users/{}/sessions", ulid::Ulid::new()),
        Some(&admin),
    )
    .await
    .assert_error(404, "not_found");
}
