use axum::http::StatusCode;
use serde_json::json;

use crate::app::{TestApp, next_millisecond};

#[tokio::test]
async fn users_list_agents_newest_first_with_their_health() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let member = app.member_token().await;
    let reg = app.registration_token(&admin).await;
    let eu = app
        .register_agent(&reg, &json!({"name": "eu-1", "region": "eu-west-1"}))
        .await;
    next_millisecond().await;
    let us = app
        .register_agent(&reg, &json!({"name": "us-1", "region": "us-east-1"}))
        .await;
    let hb = app
        .post_json("/agent/v1/heartbeat", us["token"].as_str(), &json!({}))
        .await;
    assert_eq!(hb.status, StatusCode::OK);

    let all = app.get("/api/v1/agents", Some(&member)).await;
    assert_eq!(all.status, StatusCode::OK);
    let v = all.json();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "us-1");
    assert_eq!(items[0]["status"], "online");
    assert_eq!(items[1]["status"], "never_connected");
    assert!(items[0].get("token_hash").is_none());

    let eu_only = app
        .get("/api/v1/agents?region=eu-west-1", Some(&member))
        .await
        .json();
    assert_eq!(eu_only["items"].as_array().unwrap().len(), 1);
    assert_eq!(eu_only["items"][0]["id"], eu["agent"]["id"]);

    let online = app
        .get("/api/v1/agents?status=online", Some(&member))
        .await
        .json();
    assert_eq!(online["items"].as_array().unwrap().len(), 1);
    assert_eq!(online["items"][0]["name"], "us-1");
    let never = app
        .get("/api/v1/agents?status=never_connected", Some(&member))
        .await
        .json();
    assert_eq!(never["items"][0]["name"], "eu-1");
}

#[tokio::test]
async fn the_agent_list_paginates_with_a_cursor() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let reg = app.registration_token(&admin).await;
    for name in ["a", "b", "c"] {
        app.register_agent(&reg, &json!({"name": name})).await;
        next_millisecond().await;
    }
    let first = app.get("/api/v1/agents?limit=2", Some(&admin)).await.json();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/api/v1/agents?limit=2&cursor={cursor}"),
            Some(&admin),
        )
        .await
        .json();
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["name"], "a");
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn bad_agent_list_queries_are_rejected() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    for q in ["status=sleeping", "limit=0", "limit=many", "colour=red"] {
        app.get(&format!("/api/v1/agents?{q}"), Some(&admin))
            .await
            .assert_error(400, "invalid_query");
    }
    app.get("/api/v1/agents?cursor=not-a-cursor", Some(&admin))
        .await
        .assert_error(400, "invalid_cursor");
    app.get("/api/v1/agents", None)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn one_agent_is_fetched_by_id() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let (id, agent_token) = app.agent(&admin, "b1").await;
    let r = app.get(&format!("/api/v1/agents/{id}"), Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["name"], "b1");
    assert_eq!(v["status"], "never_connected");
    assert_eq!(v["queue"], "default");
    assert_eq!(v["capacity"], 1);

    let unknown = runway_core::id::AgentId::new();
    app.get(&format!("/api/v1/agents/{unknown}"), Some(&admin))
        .await
        .assert_error(404, "not_found");
    app.get("/api/v1/agents/not-an-id", Some(&admin))
        .await
        .assert_error(404, "not_found");
    app.get(&format!("/api/v1/agents/{id}"), Some(&agent_token))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn an_empty_or_malformed_region_filter_is_a_bad_query() {
    let app = TestApp::new().await;
    let member = app.member_token().await;
    for query in ["region=", "region=has%20space"] {
        let r = app
            .get(&format!("/api/v1/agents?{query}"), Some(&member))
            .await;
        let message = r.assert_error(400, "invalid_query");
        assert!(message.contains("region"), "{message}");
    }
}
