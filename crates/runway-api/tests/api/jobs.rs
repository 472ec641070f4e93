use axum::http::StatusCode;
use runway_core::id::JobId;
use runway_core::lifecycle::JobStatus;
use serde_json::{Value, json};

use crate::app::TestApp;

#[tokio::test]
async fn submitting_a_job_queues_it_and_points_to_it() {
    let app = TestApp::new().await;
    let member = app.member_token().await;
    let r = app
        .post_json(
            "/api/v1/jobs",
            Some(&member),
            &json!({"name": "unit tests", "script": "cargo test", "env": {"RUST_LOG": "info"},
                    "labels": ["linux"], "priority": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let job = r.json();
    let id = job["id"].as_str().unwrap();
    assert_eq!(r.header("location"), format!("/api/v1/jobs/{id}"));
    assert_eq!(job["status"], "queued");
    assert_eq!(job["queue"], "default");
    assert_eq!(job["timeout_seconds"], 3600);
    assert_eq!(job["priority"], 5);
    assert_eq!(job["attempt_count"], 0);

    let fetched = app.get(r.header("location"), Some(&member)).await;
    assert_eq!(fetched.status, StatusCode::OK);
    let detail = fetched.json();
    assert_eq!(detail["id"], id);
    assert_eq!(detail["name"], "unit tests");
    assert_eq!(detail["env"]["RUST_LOG"], "info");
    assert_eq!(detail["attempts"], json!([]));
}

#[tokio::test]
async fn job_specs_are_validated_by_name() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    for (body, field) in [
        (json!({"name": "x"}), "script"),
        (json!({"script": "x"}), "name"),
        (
            json!({"name": "x", "script": "y", "colour": "red"}),
            "colour",
        ),
        (
            json!({"name": "x", "script": "y", "priority": 1001}),
            "priority",
        ),
        (
            json!({"name": "x", "script": "y", "timeout_seconds": 0}),
            "timeout_seconds",
        ),
        (
            json!({"name": "x", "script": "y", "timeout_seconds": "soon"}),
            "timeout_seconds",
        ),
        (json!({"name": "x", "script": "y", "queue": ""}), "queue"),
        (
            json!({"name": "x", "script": "y", "env": {"1BAD": "v"}}),
            "env.1BAD",
        ),
        (json!({"name": " ", "script": "y"}), "name"),
    ] {
        let message = app
            .post_json("/api/v1/jobs", Some(&token), &body)
            .await
            .assert_error(422, "validation_failed");
        assert!(message.contains(field), "{body}: {message}");
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn jobs_are_listed_newest_first_two_at_a_time() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            app.submit_job(&token, &format!("job {i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Newest first means descending ids (ULIDs minted in the same millisecond are
    // ordered by their random part, not by submission).
    created.sort_unstable_by(|a, b| b.cmp(a));

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/jobs?limit=2&cursor={c}"),
            None => "/api/v1/jobs?limit=2".to_owned(),
        };
        let r = app.get(&path, Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK);
        let page = r.json();
        let page_ids = ids(&page);
        assert!(page_ids.len() <= 2);
        seen.extend(page_ids);
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
    // The cursor is opaque: no job id shows through, and it means nothing elsewhere.
    let first = app.get("/api/v1/jobs?limit=1", Some(&token)).await.json();
    let cursor = first["next_cursor"].as_str().unwrap();
    assert!(
        created.iter().all(|id| !cursor.contains(id.as_str())),
        "{cursor}"
    );
    app.get(&format!("/api/v1/agents?cursor={cursor}"), Some(&token))
        .await
        .assert_error(400, "invalid_cursor");
    app.get(&format!("/api/v1/jobs?cursor={}", created[0]), Some(&token))
        .await
        .assert_error(400, "invalid_cursor");
    assert_eq!(
        ids(&app.get("/api/v1/jobs", Some(&token)).await.json()),
        created
    );
}

#[tokio::test]
async fn jobs_are_filtered_by_status() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    let keep = app.submit_job(&token, "keep").await;
    let stop = app.submit_job(&token, "stop").await;
    let stop_id = stop["id"].as_str().unwrap();
    app.post_json(
        &format!("/api/v1/jobs/{stop_id}/cancel"),
        Some(&token),
        &json!({}),
    )
    .await;

    let canceled = app
        .get("/api/v1/jobs?status=canceled", Some(&token))
        .await
        .json();
    assert_eq!(ids(&canceled), vec![stop_id.to_owned()]);
    let queued = app
        .get("/api/v1/jobs?status=queued", Some(&token))
        .await
        .json();
    assert_eq!(ids(&queued), vec![keep["id"].as_str().unwrap().to_owned()]);
}

#[tokio::test]
async fn bad_job_list_queries_are_rejected() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    for q in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=ten",
        "status=done",
        "page=2",
    ] {
        app.get(&format!("/api/v1/jobs?{q}"), Some(&token))
            .await
            .assert_error(400, "invalid_query");
    }
    app.get("/api/v1/jobs?cursor=bogus", Some(&token))
        .await
        .assert_error(400, "invalid_cursor");
    app.get("/api/v1/jobs", None)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn cancelling_a_queued_job_cancels_it_and_a_second_cancel_conflicts() {
    let app = TestApp::new().await;
    let token = app.member_token().await;
    let job = app.submit_job(&token, "j").await;
    let id = job["id"].as_str().unwrap();
    let r = app
        .post_raw(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), None, "")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "canceled");

    let message = app
        .post_raw(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), None, "")
        .await
        .assert_error(409, "illegal_transition");
    assert!(message.contains("`canceled`"), "{message}");
    assert_eq!(message.matches("canceled").count(), 2, "{message}");
}

#[tokio::test]
async fn cancelling_a_job_an_agent_holds_asks_the_agent_to_stop() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    let job = app.submit_job(&token, "j").await;
    let id: JobId = job["id"].as_str().unwrap().parse().unwrap();
    // No claim endpoint yet: move the job as an agent's claim would.
    app.store
        .transition_job(
            id,
            JobStatus::Claimed,
            time::OffsetDateTime::now_utc(),
            &runway_core::audit::AuditEvent::new(
                runway_core::audit::Actor::System,
                runway_core::audit::AuditAction::JobClaimed,
                Some(id.to_string()),
                time::OffsetDateTime::now_utc(),
            ),
        )
        .await
        .unwrap();
    let r = app
        .post_raw(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), None, "")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "canceling");
    let message = app
        .post_raw(&format!("/api/v1/jobs/{id}/cancel"), Some(&token), None, "")
        .await
        .assert_error(409, "illegal_transition");
    assert!(message.contains("`canceling`"), "{message}");
}

#[tokio::test]
async fn unknown_and_malformed_job_ids_are_not_found() {
    let app = TestApp::new().await;
    let token = app.admin_token().await;
    let unknown = JobId::new();
    for path in [
        format!("/api/v1/jobs/{unknown}"),
        "/api/v1/jobs/01JDQ5V8ZK4M3X9T2B7N6C1F0".to_owned(),
        "/api/v1/jobs/not-an-id".to_owned(),
    ] {
        app.get(&path, Some(&token))
            .await
            .assert_error(404, "not_found");
    }
    app.post_raw(
        &format!("/api/v1/jobs/{unknown}/cancel"),
        Some(&token),
        None,
        "",
    )
    .await
    .assert_error(404, "not_found");
    app.get(&format!("/api/v1/jobs/{unknown}"), None)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn a_job_whose_fields_together_exceed_the_spec_limit_is_refused() {
    let app = TestApp::new().await;
    let token = app.member_token().await;
    let env: serde_json::Map<String, Value> = (0..100)
        .map(|i| (format!("V{i}"), json!("y".repeat(4096))))
        .collect();
    let r = app
        .post_json(
            "/api/v1/jobs",
            Some(&token),
            &json!({"name": "big", "script": "x".repeat(60 * 1024), "env": env}),
        )
        .await;
    let message = r.assert_error(422, "validation_failed");
    assert!(message.contains("together"), "{message}");
}
