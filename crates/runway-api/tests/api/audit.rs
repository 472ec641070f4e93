//! The audit log through the API: every mutation is recorded once, with its actor,
//! subject and request id, and only admins can read it.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::app::{ADMIN_PASSWORD, TestApp};

/// The whole log, newest first, following cursors.
async fn whole_log(app: &TestApp, token: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?limit=3&cursor={c}"),
            None => "/api/v1/audit?limit=3".to_owned(),
        };
        let r = app.get(&path, Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json());
        let page = r.json();
        events.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return events,
        }
    }
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_mutation_is_recorded_newest_first_with_its_actor_and_subject() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let job = app.submit_job(&admin, "build").await;
    let job_id = job["id"].as_str().unwrap();
    app.post_json(
        &format!("/api/v1/jobs/{job_id}/cancel"),
        Some(&admin),
        &json!({}),
    )
    .await;
    let reg = app
        .post_json("/api/v1/registration-tokens", Some(&admin), &json!({}))
        .await
        .json();
    let reg_id = reg["registration_token"]["id"].as_str().unwrap();
    let agent = app
        .register_agent(
            reg["token"].as_str().unwrap(),
            &json!({"name": "builder-1"}),
        )
        .await;
    let agent_token = agent["token"].as_str().unwrap();
    // Heartbeats are bookkeeping, not audited.
    let beat = app
        .post_json(
            "/agent/v1/heartbeat",
            Some(agent_token),
            &json!({"cpu_percent": 5}),
        )
        .await;
    assert_eq!(beat.status, StatusCode::OK);
    app.delete(
        &format!("/api/v1/registration-tokens/{reg_id}"),
        Some(&admin),
    )
    .await;
    // A refused mutation leaves no trace.
    let bad = app
        .post_json(
            "/api/v1/jobs",
            Some(&admin),
            &json!({"name": "", "script": "x"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let other = app.admin_token().await;
    app.post_json(
        "/api/v1/auth/sessions/revoke-all",
        Some(&other),
        &json!({"keep_current": true}),
    )
    .await;

    let events = whole_log(&app, &other).await;
    assert_eq!(
        actions(&events),
        [
            "sessions.revoked_all",
            "session.created",
            "registration_token.deleted",
            "agent.registered",
            "registration_token.created",
            "job.canceled",
            "job.created",
            "session.created",
            "user.created",
        ]
    );
    let by_action = |a: &str| events.iter().find(|e| e["action"] == a).unwrap();
    let canceled = by_action("job.canceled");
    assert_eq!(canceled["subject"], job_id);
    assert_eq!(canceled["actor"]["kind"], "user");
    assert_eq!(canceled["actor"]["username"], "admin");
    assert_eq!(canceled["detail"], "queued → canceled");
    let registered = by_action("agent.registered");
    assert_eq!(registered["actor"]["kind"], "agent");
    assert_eq!(registered["actor"]["name"], "builder-1");
    assert_eq!(registered["subject"], agent["agent"]["id"]);
    assert_eq!(by_action("registration_token.deleted")["subject"], reg_id);
    assert_eq!(
        by_action("sessions.revoked_all")["detail"],
        "revoked 1, kept the current one"
    );
    let bootstrap = by_action("user.created");
    assert_eq!(bootstrap["actor"], json!({"kind": "system"}));
    assert_eq!(bootstrap["detail"], "first start");
    // Newest first by id too, and every event carries a time.
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
    assert!(events.iter().all(|e| e["at"].is_string()));
}

#[tokio::test]
async fn an_event_carries_the_request_id_the_response_did() {
    let app = TestApp::new().await;
    let r = app
        .send(
            TestApp::request(Method::POST, "/api/v1/auth/sessions", None)
                .header("content-type", "application/json")
                .header("x-request-id", "deploy-42")
                .body(Body::from(
                    json!({"username": "admin", "password": ADMIN_PASSWORD, "device_name": "ci box"})
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("x-request-id"), "deploy-42");
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let session_id = r.json()["session"]["id"].as_str().unwrap().to_owned();
    let events = whole_log(&app, &token).await;
    let signed_in = &events[0];
    assert_eq!(signed_in["action"], "session.created");
    assert_eq!(signed_in["request_id"], "deploy-42");
    assert_eq!(signed_in["subject"], session_id.as_str());
    assert_eq!(signed_in["detail"], "device: ci box");
    let raw = serde_json::to_string(&events).unwrap();
    assert!(!raw.contains(&token), "the audit log never holds a token");
    assert!(!raw.contains(ADMIN_PASSWORD));
}

#[tokio::test]
async fn signing_out_and_revoking_a_device_are_recorded_against_that_session() {
    let app = TestApp::new().await;
    let laptop = app.sign_in("admin", ADMIN_PASSWORD).await;
    let phone = app.admin_token().await;
    let laptop_id = laptop["session"]["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/auth/sessions/{laptop_id}"), Some(&phone))
        .await;
    app.delete("/api/v1/auth/session", Some(&phone)).await;
    let admin = app.admin_token().await;
    let events = whole_log(&app, &admin).await;
    assert_eq!(
        actions(&events)[..3],
        ["session.created", "session.revoked", "session.revoked"]
    );
    assert_eq!(events[1]["detail"], "signed out");
    assert_eq!(events[2]["subject"], laptop_id);
}

/// The events of `GET /api/v1/audit?{query}`, following cursors.
async fn filtered_log(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?{query}&limit=2&cursor={c}"),
            None => format!("/api/v1/audit?{query}&limit=2"),
        };
        let r = app.get(&path, Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.json());
        let page = r.json();
        events.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return events,
        }
    }
}

#[tokio::test]
async fn the_audit_log_filters_by_actor_action_subject_and_time() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let member = app.member_token().await;
    let before_jobs = time::OffsetDateTime::now_utc();
    let first = app.submit_job(&member, "first").await;
    let second = app.submit_job(&admin, "second").await;
    let first_id = first["id"].as_str().unwrap();
    app.post_json(
        &format!("/api/v1/jobs/{first_id}/cancel"),
        Some(&member),
        &json!({}),
    )
    .await;
    let member_id = app.get("/api/v1/auth/session", Some(&member)).await.json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let by_member = filtered_log(&app, &admin, &format!("actor={member_id}")).await;
    assert_eq!(
        actions(&by_member),
        ["job.canceled", "job.created", "session.created"]
    );
    let about_first = filtered_log(&app, &admin, &format!("subject={first_id}")).await;
    assert_eq!(actions(&about_first), ["job.canceled", "job.created"]);
    let created = filtered_log(&app, &admin, "action=job.created").await;
    let subjects: Vec<&str> = created
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, [second["id"].as_str().unwrap(), first_id]);
    let since = before_jobs
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let recent = filtered_log(
        &app,
        &admin,
        &format!("since={}&action=job.created", since.replace('+', "%2B")),
    )
    .await;
    assert_eq!(recent.len(), 2);
    let earlier = filtered_log(
        &app,
        &admin,
        &format!("until={}&action=job.created", since.replace('+', "%2B")),
    )
    .await;
    assert!(earlier.is_empty(), "{earlier:?}");
    // The first-start admin and the member (made as `runway admin` would).
    let system = filtered_log(&app, &admin, "actor=system").await;
    assert_eq!(actions(&system), ["user.created", "user.created"]);
}

#[tokio::test]
async fn a_bad_audit_filter_is_a_400_naming_the_parameter() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    for (query, names) in [
        ("actor=ada", "actor"),
        ("action=job.exploded", "action"),
        ("since=yesterday", "since"),
        (
            "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "until",
        ),
        ("subject=", "subject"),
    ] {
        let r = app
            .get(&format!("/api/v1/audit?{query}"), Some(&admin))
            .await;
        let message = r.assert_error(400, "invalid_query");
        assert!(message.contains(names), "{query}: {message}");
    }
}

#[tokio::test]
async fn a_refused_sign_in_is_audited_without_the_name_that_was_typed() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let admin_id = app.get("/api/v1/auth/session", Some(&admin)).await.json()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = app
        .post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "admin", "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // Someone typing their password into the name field.
    let typed = "correct-horse-battery-staple";
    let unknown = app
        .post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": typed, "password": "whatever"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    let failed = filtered_log(&app, &admin, "action=session.sign_in_failed").await;
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0]["subject"], Value::Null);
    assert!(
        failed[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("unknown username, from "),
        "{}",
        failed[0]
    );
    assert_eq!(failed[1]["subject"], admin_id.as_str());
    assert_eq!(failed[1]["actor"]["kind"], "system");
    assert!(
        failed[1]["detail"]
            .as_str()
            .unwrap()
            .starts_with("wrong password, from "),
        "{}",
        failed[1]
    );
    let whole = whole_log(&app, &admin).await;
    let text = serde_json::to_string(&whole).unwrap();
    assert!(
        !text.contains(typed),
        "the typed name is in the log: {text}"
    );
    assert!(!text.contains("not the password"));
}

#[tokio::test]
async fn an_audit_bound_beyond_what_a_store_can_hold_selects_as_its_edge_would() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    app.submit_job(&admin, "kept").await;
    // The stores hold 1677 to 2262; these bounds lie outside, on both sides.
    let r = app
        .get(
            "/api/v1/audit?action=job.created&since=0052-04-08T09:59:20-17:30&until=9999-12-31T23:59:59Z",
            Some(&admin),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    let r = app
        .get("/api/v1/audit?since=9999-01-01T00:00:00Z", Some(&admin))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.json()["items"].as_array().unwrap().is_empty());
}
