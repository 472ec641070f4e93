//! The agent protocol's job calls, in-process: claim (a woken long poll), start,
//! lease, log chunks, finish, cancel, and what users read back. The real agent
//! process runs the same calls in `runway-server/tests/cli/agents.rs`.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, StatusCode};
use runway_api::ApiConfig;
use runway_service::DispatchSettings;
use serde_json::{Value, json};

use crate::app::{TestApp, TestResponse, service};

pub async fn claim(app: &TestApp, agent: &str, wait: u32) -> TestResponse {
    app.send(
        TestApp::request(
            Method::POST,
            &format!("/agent/v1/jobs/claim?wait={wait}"),
            Some(agent),
        )
        .body(Body::empty())
        .unwrap(),
    )
    .await
}

async fn put_log(
    app: &TestApp,
    job: &str,
    token: &str,
    seq: u64,
    offset: u64,
    data: &[u8],
) -> TestResponse {
    app.send(
        TestApp::request(
            Method::PUT,
            &format!("/agent/v1/jobs/{job}/logs?seq={seq}&offset={offset}"),
            Some(token),
        )
        .header("content-type", "application/octet-stream")
        .body(Body::from(data.to_vec()))
        .unwrap(),
    )
    .await
}

pub async fn job_call(
    app: &TestApp,
    job: &str,
    token: &str,
    call: &str,
    body: Option<Value>,
) -> TestResponse {
    let path = format!("/agent/v1/jobs/{job}/{call}");
    match body {
        Some(body) => app.post_json(&path, Some(token), &body).await,
        None => {
            app.send(
                TestApp::request(Method::POST, &path, Some(token))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
        }
    }
}

pub fn finish(result: &str, exit_code: Option<i32>, log: &[u8]) -> Value {
    json!({
        "result": result,
        "exit_code": exit_code,
        "log_bytes": log.len(),
        "log_crc32": crc32fast::hash(log),
    })
}

/// A submitted job claimed by a fresh agent: (admin, agent token, job id, job token, claim).
async fn claimed(app: &TestApp, spec: Value) -> (String, String, String, String, Value) {
    let admin = app.admin_token().await;
    let (_, agent) = app.agent(&admin, "b1").await;
    let r = app.post_json("/api/v1/jobs", Some(&admin), &spec).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let r = claim(app, &agent, 0).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let c = r.json();
    let id = c["job"]["id"].as_str().unwrap().to_owned();
    let token = c["job_token"].as_str().unwrap().to_owned();
    (admin, agent, id, token, c)
}

#[tokio::test]
async fn a_claimed_job_runs_from_start_to_finish_and_users_read_its_log() {
    let app = TestApp::new().await;
    let (admin, _, id, token, c) = claimed(
        &app,
        json!({"name": "build", "script": "make", "env": {"A": "1"}, "timeout_seconds": 60}),
    )
    .await;
    assert_eq!(c["job"]["attempt"], 1);
    assert_eq!(c["job"]["script"], "make");
    assert_eq!(c["job"]["env"]["A"], "1");
    assert!(token.starts_with("rwj_"));
    assert_eq!(c["timings"]["lease_renew_interval_seconds"], 40);

    let r = job_call(&app, &id, &token, "start", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["cancel"], false);
    assert_eq!(
        app.get(&format!("/api/v1/jobs/{id}"), Some(&admin))
            .await
            .json()["status"],
        "running"
    );

    let r = put_log(&app, &id, &token, 0, 0, b"hello ").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["next_offset"], 6);
    assert_eq!(
        put_log(&app, &id, &token, 1, 6, b"world\n").await.json()["next_offset"],
        12
    );
    let r = job_call(&app, &id, &token, "lease", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["cancel"], false);

    // Users can read it while it runs: not complete yet.
    let r = app
        .get(&format!("/api/v1/jobs/{id}/log?offset=6"), Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"world\n");
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(r.header("x-log-next-offset"), "12");
    assert_eq!(r.header("x-log-complete"), "false");

    let r = job_call(
        &app,
        &id,
        &token,
        "finish",
        Some(finish("succeeded", Some(0), b"hello world\n")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["status"], "succeeded");
    let job = app
        .get(&format!("/api/v1/jobs/{id}"), Some(&admin))
        .await
        .json();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["attempts"][0]["exit_code"], 0);
    assert_eq!(job["attempts"][0]["log_bytes"], 12);
    let r = app
        .get(&format!("/api/v1/jobs/{id}/log"), Some(&admin))
        .await;
    assert_eq!(&r.body[..], b"hello world\n");
    assert_eq!(r.header("x-log-complete"), "true");
    // A finish retried after its answer was lost is answered the same.
    let r = job_call(
        &app,
        &id,
        &token,
        "finish",
        Some(finish("succeeded", Some(0), b"hello world\n")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // The job token is spent: the attempt has ended.
    job_call(&app, &id, &token, "lease", None)
        .await
        .assert_error(409, "job_not_held");
}

#[tokio::test]
async fn a_waiting_claim_is_answered_the_moment_a_job_is_submitted() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let (_, agent) = app.agent(&admin, "idle").await;
    let waiter = TestApp {
        router: app.router.clone(),
        store: std::sync::Arc::clone(&app.store),
        service: app.service.clone(),
    };
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let r = claim(&waiter, &agent, 10).await;
        (r, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let submitted = Instant::now();
    let job = app.submit_job(&admin, "wake up").await;
    let (r, waited) = waiting.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["job"]["id"], job["id"]);
    assert!(
        waited >= Duration::from_millis(300),
        "it claimed before the job existed"
    );
    assert!(
        submitted.elapsed() < Duration::from_secs(2),
        "the claim was not woken by the submission"
    );
}

#[tokio::test]
async fn an_empty_claim_is_a_204_with_the_poll_interval_after_its_wait() {
    let app = TestApp::with_service(
        service(DispatchSettings {
            claim_wait_max: Duration::from_millis(200),
            ..DispatchSettings::default()
        }),
        ApiConfig::default(),
    )
    .await;
    let admin = app.admin_token().await;
    let (_, agent) = app.agent(&admin, "idle").await;
    let started = Instant::now();
    // Asks for 20 s; the server caps the wait at its own maximum.
    let r = claim(&app, &agent, 20).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("x-poll-interval-seconds"), "0");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_log_gap_is_a_416_naming_the_offset_and_a_resend_is_acknowledged_again() {
    let app = TestApp::new().await;
    let (_, _, id, token, _) = claimed(&app, json!({"name": "j", "script": "true"})).await;
    assert_eq!(
        put_log(&app, &id, &token, 0, 0, b"abc").await.status,
        StatusCode::OK
    );
    let r = put_log(&app, &id, &token, 2, 10, b"xyz").await;
    let message = r.assert_error(416, "log_offset_mismatch");
    assert!(message.contains('3'), "{message}");
    assert_eq!(r.header("x-log-next-offset"), "3");
    let r = put_log(&app, &id, &token, 0, 0, b"abc").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["next_offset"], 3);
    let too_big = vec![b'x'; 256 * 1024 + 1];
    put_log(&app, &id, &token, 1, 3, &too_big)
        .await
        .assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn a_finish_before_the_whole_log_is_a_202_and_a_wrong_checksum_a_422() {
    let app = TestApp::new().await;
    let (admin, _, id, token, _) = claimed(&app, json!({"name": "j", "script": "true"})).await;
    job_call(&app, &id, &token, "start", None).await;
    put_log(&app, &id, &token, 0, 0, b"first ").await;
    let r = job_call(
        &app,
        &id,
        &token,
        "finish",
        Some(finish("failed", Some(2), b"first second")),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json()["next_offset"], 6);
    assert_eq!(r.header("x-log-next-offset"), "6");
    assert_eq!(
        app.get(&format!("/api/v1/jobs/{id}"), Some(&admin))
            .await
            .json()["status"],
        "running"
    );
    put_log(&app, &id, &token, 1, 6, b"second").await;
    let mut wrong = finish("failed", Some(2), b"first second");
    wrong["log_crc32"] = json!(12345);
    job_call(&app, &id, &token, "finish", Some(wrong))
        .await
        .assert_error(422, "log_mismatch");
    let r = job_call(
        &app,
        &id,
        &token,
        "finish",
        Some(finish("failed", Some(2), b"first second")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let job = app
        .get(&format!("/api/v1/jobs/{id}"), Some(&admin))
        .await
        .json();
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempts"][0]["exit_code"], 2);
}

#[tokio::test]
async fn a_job_token_works_only_for_its_own_job() {
    let app = TestApp::new().await;
    let (admin, _, _, token, _) = claimed(&app, json!({"name": "mine", "script": "true"})).await;
    let other = app.submit_job(&admin, "other").await;
    let other = other["id"].as_str().unwrap();
    job_call(&app, other, &token, "start", None)
        .await
        .assert_error(401, "unauthorized");
    job_call(&app, &ulid::Ulid::new().to_string(), &token, "start", None)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn a_lease_call_right_after_start_extends_nothing_and_one_later_extends_the_lease() {
    // A 4 s lease is renewed every second; a lease extended within the last
    // quarter of that (250 ms) is not extended again.
    let app = TestApp::with_service(
        service(DispatchSettings {
            lease: time::Duration::seconds(4),
            ..DispatchSettings::default()
        }),
        ApiConfig::default(),
    )
    .await;
    let (admin, _, id, token, _) = claimed(&app, json!({"name": "j", "script": "true"})).await;
    let started = job_call(&app, &id, &token, "start", None).await.json();
    let at_start = started["lease_expires_at"].clone();
    let stored = |job: Value| job["attempts"][0]["lease_expires_at"].clone();
    let soon = job_call(&app, &id, &token, "lease", None).await;
    assert_eq!(soon.status, StatusCode::OK);
    assert_eq!(
        soon.json()["lease_expires_at"],
        at_start,
        "not extended again"
    );
    assert_eq!(soon.json()["cancel"], false);
    let job = app.get(&format!("/api/v1/jobs/{id}"), Some(&admin)).await;
    assert_eq!(stored(job.json()), at_start);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = job_call(&app, &id, &token, "lease", None).await.json();
    assert_ne!(later["lease_expires_at"], at_start, "extended: {later}");
    let job = app.get(&format!("/api/v1/jobs/{id}"), Some(&admin)).await;
    assert_eq!(stored(job.json()), later["lease_expires_at"]);
}

#[tokio::test]
async fn a_cancel_reaches_the_agent_through_its_lease_and_its_heartbeat() {
    let app = TestApp::new().await;
    let (admin, agent, id, token, _) =
        claimed(&app, json!({"name": "j", "script": "sleep 100"})).await;
    job_call(&app, &id, &token, "start", None).await;
    let r = app
        .post_json(
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.json()["status"], "canceling");
    assert_eq!(
        job_call(&app, &id, &token, "lease", None).await.json()["cancel"],
        true
    );
    let hb = app
        .post_json(
            "/agent/v1/heartbeat",
            Some(&agent),
            &json!({"running_job_ids": [id]}),
        )
        .await
        .json();
    assert_eq!(hb["cancel_job_ids"], json!([id]));
    let r = job_call(
        &app,
        &id,
        &token,
        "finish",
        Some(finish("canceled", None, b"")),
    )
    .await;
    assert_eq!(r.json()["status"], "canceled");
    assert_eq!(
        app.get(&format!("/api/v1/jobs/{id}"), Some(&admin))
            .await
            .json()["attempts"][0]["status"],
        "canceled"
    );
}

#[tokio::test]
async fn secrets_go_to_the_claiming_agent_and_to_no_user() {
    let app = TestApp::new().await;
    let (admin, _, id, _, c) = claimed(
        &app,
        json!({"name": "deploy", "script": "deploy", "secrets": {"TOKEN": "hunter2hunter2"}}),
    )
    .await;
    assert_eq!(c["job"]["secrets"]["TOKEN"], "hunter2hunter2");
    for path in [format!("/api/v1/jobs/{id}"), "/api/v1/jobs".to_owned()] {
        let r = app.get(&path, Some(&admin)).await;
        assert!(
            !String::from_utf8_lossy(&r.body).contains("hunter2"),
            "{path}"
        );
    }
    // Listings are summaries: no script or env either.
    let list = app.get("/api/v1/jobs", Some(&admin)).await.json();
    assert!(list["items"][0].get("script").is_none());
    assert!(list["items"][0].get("env").is_none());
}

#[tokio::test]
async fn a_queued_job_no_online_agent_can_run_says_why() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let (_, agent) = app.agent(&admin, "linux box").await;
    app.post_json("/agent/v1/heartbeat", Some(&agent), &json!({}))
        .await;
    let r = app
        .post_json(
            "/api/v1/jobs",
            Some(&admin),
            &json!({"name": "gpu", "script": "x", "labels": ["gpu"]}),
        )
        .await
        .json();
    let job = app
        .get(
            &format!("/api/v1/jobs/{}", r["id"].as_str().unwrap()),
            Some(&admin),
        )
        .await
        .json();
    let reason = job["waiting_reason"].as_str().unwrap();
    assert!(reason.contains("gpu"), "{reason}");
    let r = app
        .post_json(
            "/api/v1/jobs",
            Some(&admin),
            &json!({"name": "elsewhere", "script": "x", "queue": "mac"}),
        )
        .await
        .json();
    let job = app
        .get(
            &format!("/api/v1/jobs/{}", r["id"].as_str().unwrap()),
            Some(&admin),
        )
        .await
        .json();
    assert!(job["waiting_reason"].as_str().unwrap().contains("`mac`"));
    // And the one it can run has no reason.
    let r = app.submit_job(&admin, "runnable").await;
    let job = app
        .get(
            &format!("/api/v1/jobs/{}", r["id"].as_str().unwrap()),
            Some(&admin),
        )
        .await
        .json();
    assert!(job.get("waiting_reason").is_none(), "{job}");
}

#[tokio::test]
async fn a_paused_agent_claims_nothing_and_is_told_so_until_resumed() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let (id, agent) = app.agent(&admin, "b1").await;
    app.submit_job(&admin, "waiting").await;
    let r = app
        .post_json(
            &format!("/api/v1/agents/{id}/pause"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.json()["state"], "paused");
    assert_eq!(claim(&app, &agent, 0).await.status, StatusCode::NO_CONTENT);
    let hb = app
        .post_json("/agent/v1/heartbeat", Some(&agent), &json!({}))
        .await
        .json();
    assert_eq!(hb["action"], "pause");
    app.post_json(
        &format!("/api/v1/agents/{id}/drain"),
        Some(&admin),
        &json!({}),
    )
    .await;
    let hb = app
        .post_json("/agent/v1/heartbeat", Some(&agent), &json!({}))
        .await
        .json();
    assert_eq!(hb["action"], "drain");
    app.post_json(
        &format!("/api/v1/agents/{id}/resume"),
        Some(&admin),
        &json!({}),
    )
    .await;
    assert_eq!(claim(&app, &agent, 0).await.status, StatusCode::OK);
}

#[tokio::test]
async fn deleting_an_agent_revokes_its_token_and_requeues_what_it_held() {
    let app = TestApp::new().await;
    let (admin, agent, id, token, _) = claimed(&app, json!({"name": "j", "script": "true"})).await;
    job_call(&app, &id, &token, "start", None).await;
    let agent_id = app.get("/api/v1/agents", Some(&admin)).await.json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .delete(&format!("/api/v1/agents/{agent_id}"), Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.post_json("/agent/v1/heartbeat", Some(&agent), &json!({}))
        .await
        .assert_error(401, "unauthorized");
    let job = app
        .get(&format!("/api/v1/jobs/{id}"), Some(&admin))
        .await
        .json();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["attempts"][0]["status"], "lost");
    job_call(&app, &id, &token, "lease", None)
        .await
        .assert_error(409, "job_not_held");
}

#[tokio::test]
async fn a_registration_token_with_one_use_admits_one_agent() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let r = app
        .post_json(
            "/api/v1/registration-tokens",
            Some(&admin),
            &json!({"max_uses": 1}),
        )
        .await
        .json();
    assert_eq!(r["registration_token"]["max_uses"], 1);
    let expires = r["registration_token"]["expires_at"].as_str().unwrap();
    let expires =
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let in_a_week = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    assert!(
        (expires - in_a_week).abs() < time::Duration::minutes(1),
        "the default expiry is 7 days"
    );
    let reg = r["token"].as_str().unwrap();
    assert_eq!(
        app.post_json("/agent/v1/register", Some(reg), &json!({"name": "a"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let message = app
        .post_json("/agent/v1/register", Some(reg), &json!({"name": "b"}))
        .await
        .assert_error(401, "unauthorized");
    assert!(message.contains("used up"), "{message}");
    let never = app
        .post_json(
            "/api/v1/registration-tokens",
            Some(&admin),
            &json!({"expires_at": null}),
        )
        .await
        .json();
    assert!(never["registration_token"]["expires_at"].is_null());
}

#[tokio::test]
async fn an_agent_that_rotates_its_token_keeps_working_with_the_new_one_only() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let (_, old) = app.agent(&admin, "b1").await;
    let r = app
        .post_json("/agent/v1/token/rotate", Some(&old), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let new = r.json()["token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    app.post_json("/agent/v1/heartbeat", Some(&old), &json!({}))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(
        app.post_json("/agent/v1/heartbeat", Some(&new), &json!({}))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_reaper_requeues_a_job_whose_lease_ran_out() {
    let app = TestApp::with_service(
        service(DispatchSettings {
            lease: time::Duration::milliseconds(300),
            ..DispatchSettings::default()
        }),
        ApiConfig::default(),
    )
    .await;
    let (admin, _, id, token, _) = claimed(&app, json!({"name": "j", "script": "true"})).await;
    job_call(&app, &id, &token, "start", None).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = app.service.reap().await.unwrap();
    assert_eq!(report.requeued, 1);
    let job = app
        .get(&format!("/api/v1/jobs/{id}"), Some(&admin))
        .await
        .json();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["attempts"][0]["status"], "lost");
    let audit = app.get("/api/v1/audit?limit=5", Some(&admin)).await.json();
    assert_eq!(audit["items"][0]["action"], "job.reaped");
    assert_eq!(audit["items"][0]["actor"]["kind"], "system");
}

#[tokio::test]
async fn a_log_stream_sends_the_log_as_events_ending_when_it_is_complete() {
    let app = TestApp::new().await;
    let (admin, _, id, token, _) = claimed(&app, json!({"name": "j", "script": "true"})).await;
    job_call(&app, &id, &token, "start", None).await;
    put_log(&app, &id, &token, 0, 0, b"line one\nline two\n").await;
    job_call(
        &app,
        &id,
        &token,
        "finish",
        Some(finish("succeeded", Some(0), b"line one\nline two\n")),
    )
    .await;
    let r = app
        .get(&format!("/api/v1/jobs/{id}/log/stream"), Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").starts_with("text/event-stream"));
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("id: 18\n"), "{text}");
    assert!(text.contains("data: line one\ndata: line two\n"), "{text}");
    assert!(text.contains("event: end\n"), "{text}");
    // Resumed from an offset: only what comes after it.
    let r = app
        .send(
            TestApp::request(
                Method::GET,
                &format!("/api/v1/jobs/{id}/log/stream"),
                Some(&admin),
            )
            .header("last-event-id", "9")
            .body(Body::empty())
            .unwrap(),
        )
        .await;
    let text = String::from_utf8_lossy(&r.body);
    assert!(!text.contains("line one"), "{text}");
    assert!(text.contains("data: line two"), "{text}");
}

#[tokio::test]
async fn without_live_streams_a_log_stream_asks_the_browser_to_reconnect() {
    let app = TestApp::with_config(ApiConfig {
        live_log_streams: false,
        ..ApiConfig::default()
    })
    .await;
    let (admin, _, id, token, _) = claimed(&app, json!({"name": "j", "script": "true"})).await;
    job_call(&app, &id, &token, "start", None).await;
    put_log(&app, &id, &token, 0, 0, b"partial\n").await;
    let r = app
        .get(&format!("/api/v1/jobs/{id}/log/stream"), Some(&admin))
        .await;
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("data: partial"), "{text}");
    assert!(text.contains("retry: 1000"), "{text}");
    assert!(!text.contains("event: end"), "{text}");
}

#[tokio::test]
async fn members_cancel_their_own_jobs_and_admins_anyones() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let member = app.member_token().await;
    let admins_job = app.submit_job(&admin, "the admin's").await;
    let members_job = app.submit_job(&member, "the member's").await;
    let message = app
        .post_json(
            &format!("/api/v1/jobs/{}/cancel", admins_job["id"].as_str().unwrap()),
            Some(&member),
            &json!({}),
        )
        .await
        .assert_error(403, "forbidden");
    assert!(
        message.contains("only the jobs they submitted"),
        "{message}"
    );
    let r = app
        .post_json(
            &format!(
                "/api/v1/jobs/{}/cancel",
                members_job["id"].as_str().unwrap()
            ),
            Some(&member),
            &json!({}),
        )
        .await;
    assert_eq!(r.json()["status"], "canceled");
    let r = app
        .post_json(
            &format!("/api/v1/jobs/{}/cancel", admins_job["id"].as_str().unwrap()),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.json()["status"], "canceled");
}
