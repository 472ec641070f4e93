use axum::http::StatusCode;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::app::TestApp;

#[tokio::test]
async fn an_admin_creates_lists_and_deletes_registration_tokens() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .replace_nanosecond(0)
        .unwrap();
    let r = app
        .post_json(
            "/api/v1/registration-tokens",
            Some(&admin),
            &json!({"description": "eu builders", "expires_at": expires.format(&Rfc3339).unwrap()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let v = r.json();
    let token = v["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("rwr_"));
    let record = &v["registration_token"];
    assert_eq!(record["description"], "eu builders");
    assert_eq!(
        time::OffsetDateTime::parse(record["expires_at"].as_str().unwrap(), &Rfc3339).unwrap(),
        expires
    );
    let id = record["id"].as_str().unwrap().to_owned();

    let list = app.get("/api/v1/registration-tokens", Some(&admin)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json()["items"][0]["id"], id.as_str());
    assert!(
        !String::from_utf8_lossy(&list.body).contains(&token),
        "the plaintext is shown only once"
    );

    let del = app
        .delete(&format!("/api/v1/registration-tokens/{id}"), Some(&admin))
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    app.delete(&format!("/api/v1/registration-tokens/{id}"), Some(&admin))
        .await
        .assert_error(404, "not_found");
    app.delete("/api/v1/registration-tokens/xyz", Some(&admin))
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        app.get("/api/v1/registration-tokens", Some(&admin))
            .await
            .json()["items"],
        json!([])
    );
}

#[tokio::test]
async fn members_may_not_manage_registration_tokens() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let member = app.member_token().await;
    let r = app
        .post_json("/api/v1/registration-tokens", Some(&admin), &json!({}))
        .await;
    let id = r.json()["registration_token"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_json("/api/v1/registration-tokens", Some(&member), &json!({}))
        .await
        .assert_error(403, "forbidden");
    app.get("/api/v1/registration-tokens", Some(&member))
        .await
        .assert_error(403, "forbidden");
    app.delete(&format!("/api/v1/registration-tokens/{id}"), Some(&member))
        .await
        .assert_error(403, "forbidden");
    app.get("/api/v1/registration-tokens", None)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn registration_token_fields_are_validated_by_name() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    for (body, field) in [
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"expires_at": "next tuesday"}), "expires_at"),
        (json!({"description": "d".repeat(201)}), "description"),
        // Blank means none, after the same checks as any description.
        (json!({"description": " ".repeat(201)}), "description"),
        (json!({"description": "\n"}), "description"),
        (json!({"single_use": true}), "single_use"),
    ] {
        let r = app
            .post_json("/api/v1/registration-tokens", Some(&admin), &body)
            .await;
        let message = r.assert_error(422, "validation_failed");
        assert!(message.contains(field), "{body}: {message}");
    }
}

#[tokio::test]
async fn a_registration_token_may_not_expire_centuries_from_now() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let r = app
        .post_json(
            "/api/v1/registration-tokens",
            Some(&admin),
            &json!({"expires_at": "2300-01-01T00:00:00Z"}),
        )
        .await;
    let message = r.assert_error(422, "validation_failed");
    assert!(message.contains("expires_at"), "{message}");
}

#[tokio::test]
async fn an_expiry_given_with_an_offset_is_stored_and_shown_in_utc() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let local = (time::OffsetDateTime::now_utc() + time::Duration::days(2))
        .replace_nanosecond(0)
        .unwrap()
        .to_offset(time::macros::offset!(+05:30));
    let r = app
        .post_json(
            "/api/v1/registration-tokens",
            Some(&admin),
            &json!({"expires_at": local.format(&Rfc3339).unwrap()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let shown = r.json()["registration_token"]["expires_at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(shown.ends_with('Z'), "{shown}");
    assert_eq!(
        time::OffsetDateTime::parse(&shown, &Rfc3339).unwrap(),
        local
    );
    let listed = app.get("/api/v1/registration-tokens", Some(&admin)).await;
    assert_eq!(listed.json()["items"][0]["expires_at"], shown.as_str());
}
