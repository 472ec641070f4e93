//! `POST /api/v1/jobs/{id}/retry`: a finished job back in its queue, its history
//! kept, its secrets supplied again, who may do it, and what is recorded.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::{TestApp, TestResponse};
use crate::dispatch::{claim, finish, job_call};

async fn retry(app: &TestApp, token: &str, id: &str, body: Option<Value>) -> TestResponse {
    let path = format!("/api/v1/jobs/{id}/retry");
    match body {
        Some(body) => app.post_json(&path, Some(token), &body).await,
        None => app.post_raw(&path, Some(token), None, "").await,
    }
}

async fn cancel(app: &TestApp, token: &str, id: &str) {
    let r = app
        .post_raw(&format!("/api/v1/jobs/{id}/cancel"), Some(token), None, "")
        .await;
    assert_eq!(r.json()["status"], "canceled");
}

/// Submits `spec` as `token` and cancels it while queued: a finished job.
async fn finished(app: &TestApp, token: &str, spec: Value) -> String {
    let r = app.post_json("/api/v1/jobs", Some(token), &spec).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    cancel(app, token, &id).await;
    id
}

fn id_of(job: &Value) -> &str {
    job["id"].as_str().unwrap()
}

#[tokio::test]
async fn retrying_a_failed_job_queues_it_keeping_its_attempt_and_the_next_claim_is_attempt_two() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let (_, agent) = app.agent(&admin, "b1").await;
    let job = app.submit_job(&admin, "flaky").await;
    let id = id_of(&job);
    let c = claim(&app, &agent, 0).await.json();
    let token = c["job_token"].as_str().unwrap();
    job_call(&app, id, token, "start", None).await;
    let r = job_call(
        &app,
        id,
        token,
        "finish",
        Some(finish("failed", Some(1), b"")),
    )
    .await;
    assert_eq!(r.json()["status"], "failed");

    let r = retry(&app, &admin, id, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let retried = r.json();
    assert_eq!(retried["status"], "queued");
    assert_eq!(retried["attempt_count"], 1);
    assert_eq!(retried["retried_at_attempt"], 1);
    assert_eq!(retried["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(retried["attempts"][0]["status"], "failed");
    assert_eq!(retried["attempts"][0]["exit_code"], 1);

    let second = claim(&app, &agent, 0).await.json();
    assert_eq!(second["job"]["id"], id);
    assert_eq!(second["job"]["attempt"], 2);
    let shown = app
        .get(&format!("/api/v1/jobs/{id}"), Some(&admin))
        .await
        .json();
    let statuses: Vec<_> = shown["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["number"].clone(), a["status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        [(json!(1), json!("failed")), (json!(2), json!("claimed"))]
    );
}

#[tokio::test]
async fn only_a_finished_job_can_be_retried_and_a_second_retry_conflicts() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let job = app.submit_job(&admin, "waiting").await;
    let id = id_of(&job);
    let message = retry(&app, &admin, id, None)
        .await
        .assert_error(409, "illegal_transition");
    assert!(
        message.contains("`queued`"),
        "names the job's status: {message}"
    );

    cancel(&app, &admin, id).await;
    let r = retry(&app, &admin, id, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    retry(&app, &admin, id, None)
        .await
        .assert_error(409, "illegal_transition");
}

#[tokio::test]
async fn of_two_racing_retries_exactly_one_wins_and_the_other_conflicts() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let id = finished(&app, &admin, json!({"name": "contested", "script": "true"})).await;
    let (a, b) = tokio::join!(
        retry(&app, &admin, &id, None),
        retry(&app, &admin, &id, None)
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    let loser = if a.status == StatusCode::CONFLICT {
        a
    } else {
        b
    };
    loser.assert_error(409, "illegal_transition");
    let job = app
        .get(&format!("/api/v1/jobs/{id}"), Some(&admin))
        .await
        .json();
    assert_eq!(job["status"], "queued");
}

#[tokio::test]
async fn members_retry_their_own_jobs_and_admins_anyones() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let member = app.member_token().await;
    let admins = finished(
        &app,
        &admin,
        json!({"name": "the admin's", "script": "true"}),
    )
    .await;
    let members = finished(
        &app,
        &member,
        json!({"name": "the member's", "script": "true"}),
    )
    .await;

    let message = retry(&app, &member, &admins, None)
        .await
        .assert_error(403, "forbidden");
    assert!(
        message.contains("only the jobs they submitted"),
        "{message}"
    );
    let job = app
        .get(&format!("/api/v1/jobs/{admins}"), Some(&admin))
        .await
        .json();
    assert_eq!(job["status"], "canceled", "a refused retry changes nothing");

    assert_eq!(
        retry(&app, &member, &members, None).await.json()["status"],
        "queued"
    );
    assert_eq!(
        retry(&app, &admin, &admins, None).await.json()["status"],
        "queued"
    );
    cancel(&app, &member, &members).await;
    assert_eq!(
        retry(&app, &admin, &members, None).await.json()["status"],
        "queued"
    );
}

#[tokio::test]
async fn a_job_submitted_with_secrets_is_retried_only_with_every_one_of_them_again() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let (_, agent) = app.agent(&admin, "b1").await;
    let id = finished(
        &app,
        &admin,
        json!({"name": "deploy", "script": "deploy",
               "secrets": {"B_KEY": "first-b-value", "A_KEY": "first-a-value"}}),
    )
    .await;
    let shown = app.get(&format!("/api/v1/jobs/{id}"), Some(&admin)).await;
    assert_eq!(shown.json()["secret_names"], json!(["A_KEY", "B_KEY"]));
    assert!(!String::from_utf8_lossy(&shown.body).contains("first-"));

    for body in [None, Some(json!({})), Some(json!({"secrets": {}}))] {
        let message = retry(&app, &admin, &id, body)
            .await
            .assert_error(422, "validation_failed");
        assert!(message.starts_with("secrets: "), "{message}");
        assert!(message.contains("(missing: A_KEY, B_KEY)"), "{message}");
    }
    let message = retry(&app, &admin, &id, Some(json!({"secrets": {"A_KEY": "a"}})))
        .await
        .assert_error(422, "validation_failed");
    assert!(message.contains("(missing: B_KEY)"), "{message}");
    let message = retry(
        &app,
        &admin,
        &id,
        Some(json!({"secrets": {"A_KEY": "a", "B_KEY": "b", "C_KEY": "c"}})),
    )
    .await
    .assert_error(422, "validation_failed");
    assert!(message.starts_with("secrets.C_KEY: "), "{message}");
    let message = retry(
        &app,
        &admin,
        &id,
        Some(json!({"secrets": {"A_KEY": "a", "B_KEY": "x".repeat(4097)}})),
    )
    .await
    .assert_error(422, "validation_failed");
    assert!(message.starts_with("secrets.B_KEY: "), "{message}");
    let job = app
        .get(&format!("/api/v1/jobs/{id}"), Some(&admin))
        .await
        .json();
    assert_eq!(job["status"], "canceled", "a refused retry changes nothing");

    let r = retry(
        &app,
        &admin,
        &id,
        Some(json!({"secrets": {"A_KEY": "second-a-value", "B_KEY": "second-b-value"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert!(!String::from_utf8_lossy(&r.body).contains("second-"));
    assert_eq!(r.json()["secret_names"], json!(["A_KEY", "B_KEY"]));
    let c = claim(&app, &agent, 0).await.json();
    assert_eq!(
        c["job"]["secrets"],
        json!({"A_KEY": "second-a-value", "B_KEY": "second-b-value"}),
        "the claim hands over the values the retry supplied"
    );
    for path in [
        format!("/api/v1/jobs/{id}"),
        "/api/v1/jobs".into(),
        "/api/v1/audit".into(),
    ] {
        let body = app.get(&path, Some(&admin)).await.body;
        assert!(!String::from_utf8_lossy(&body).contains("-value"), "{path}");
    }
}

#[tokio::test]
async fn a_retry_body_is_checked_like_any_other() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let id = finished(&app, &admin, json!({"name": "plain", "script": "true"})).await;
    let message = retry(&app, &admin, &id, Some(json!({"secret": {}})))
        .await
        .assert_error(422, "validation_failed");
    assert!(message.contains("unknown field `secret`"), "{message}");
    let message = retry(&app, &admin, &id, Some(json!({"secrets": {"A": 1}})))
        .await
        .assert_error(422, "validation_failed");
    assert!(message.starts_with("secrets.A: "), "{message}");
    let message = retry(&app, &admin, &id, Some(json!({"secrets": {"A": "v"}})))
        .await
        .assert_error(422, "validation_failed");
    assert!(message.contains("submitted without secrets"), "{message}");
    app.post_raw(
        &format!("/api/v1/jobs/{id}/retry"),
        Some(&admin),
        Some("application/json"),
        "{\"secrets\":",
    )
    .await
    .assert_error(400, "invalid_json");
}

#[tokio::test]
async fn retrying_an_unknown_job_is_not_found() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let unknown = runway_core::id::JobId::new().to_string();
    retry(&app, &admin, &unknown, None)
        .await
        .assert_error(404, "not_found");
    retry(&app, &admin, "not-an-id", None)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn a_retry_wakes_an_agent_waiting_to_claim() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let id = finished(&app, &admin, json!({"name": "again", "script": "true"})).await;
    let (_, agent) = app.agent(&admin, "idle").await;
    let waiter = TestApp {
        router: app.router.clone(),
        store: std::sync::Arc::clone(&app.store),
        service: app.service.clone(),
    };
    let waiting = tokio::spawn(async move { claim(&waiter, &agent, 10).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let retried = Instant::now();
    assert_eq!(retry(&app, &admin, &id, None).await.status, StatusCode::OK);
    let r = waiting.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["job"]["id"], id.as_str());
    assert!(
        retried.elapsed() < Duration::from_secs(2),
        "the claim was not woken by the retry"
    );
}

#[tokio::test]
async fn a_retry_is_audited_with_the_move_and_the_attempt_that_comes_next() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let member = app.member_token().await;
    let id = finished(&app, &member, json!({"name": "audited", "script": "true"})).await;
    assert_eq!(retry(&app, &member, &id, None).await.status, StatusCode::OK);
    let log = app.get("/api/v1/audit?limit=1", Some(&admin)).await.json();
    let event = &log["items"][0];
    assert_eq!(event["action"], "job.retried");
    assert_eq!(event["subject"], id.as_str());
    assert_eq!(event["actor"]["username"], "mia");
    assert_eq!(event["detail"], "canceled → queued; attempt 1 next");
    assert!(event["request_id"].is_string(), "{event}");
}
