//! Durability across a restart, and what reaches the disk.

use std::path::Path;

use runway_core::secret::TokenHash;
use serde_json::{Value, json};

use crate::support::{ADMIN_PASSWORD, Server, Start, data_dir};

/// Everything a first run creates, with the secrets it was handed.
struct Populated {
    session_token: String,
    registration_token: String,
    registration_token_id: String,
    agent_token: String,
    agent_id: String,
    job_ids: Vec<String>,
    canceled_job_id: String,
}

const METRICS: &str = r#"{"cpu_percent": 42.5, "memory_percent": 61.0, "disk_percent": 17.25, "load_average": 1.5, "running_jobs": 0}"#;

/// Signs in, registers an agent that heartbeats, creates jobs and cancels one.
async fn populate(server: &Server) -> Populated {
    let session_token = server.sign_in("admin", ADMIN_PASSWORD).await;

    let (status, reg) = server
        .post(
            "/api/v1/registration-tokens",
            &session_token,
            json!({"description": "restart test"}),
        )
        .await;
    assert_eq!(status, 201, "{reg}");
    let registration_token = reg["token"].as_str().unwrap().to_owned();
    let registration_token_id = reg["registration_token"]["id"].as_str().unwrap().to_owned();

    let (status, registered) = server
        .post(
            "/agent/v1/register",
            &registration_token,
            json!({"name": "builder-1", "region": "eu-west-1", "labels": ["linux"]}),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    let agent_token = registered["token"].as_str().unwrap().to_owned();
    let agent_id = registered["agent"]["id"].as_str().unwrap().to_owned();

    let metrics: Value = serde_json::from_str(METRICS).unwrap();
    let (status, beat) = server
        .post("/agent/v1/heartbeat", &agent_token, metrics)
        .await;
    assert_eq!(status, 200, "{beat}");

    let mut job_ids = Vec::new();
    for i in 0..3 {
        let (status, job) = server
            .post(
                "/api/v1/jobs",
                &session_token,
                json!({"name": format!("job {i}"), "script": format!("echo {i}")}),
            )
            .await;
        assert_eq!(status, 201, "{job}");
        assert_eq!(job["status"], "queued");
        job_ids.push(job["id"].as_str().unwrap().to_owned());
    }
    let canceled_job_id = job_ids[1].clone();
    let (status, job) = server
        .post(
            &format!("/api/v1/jobs/{canceled_job_id}/cancel"),
            &session_token,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "canceled");

    Populated {
        session_token,
        registration_token,
        registration_token_id,
        agent_token,
        agent_id,
        job_ids,
        canceled_job_id,
    }
}

async fn start(data: &Path) -> Server {
    Server::start(
        data,
        Start {
            admin_password: Some(ADMIN_PASSWORD),
            ..Start::default()
        },
    )
    .await
}

/// How the first run ends.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// SIGTERM: a graceful shutdown.
    Sigterm,
    /// SIGKILL right after the last acknowledged write: a crash, with no shutdown
    /// code run, so only what each commit made durable is left.
    Sigkill,
}

/// Populates a fresh data directory, ends the server as `ending` says, restarts it
/// on the same directory and checks everything acknowledged is there.
async fn survives_a_restart_after(ending: Ending) {
    let (_tmp, data) = data_dir();
    let server = start(&data).await;
    // `populate` returns after its last write (the cancel) was answered with 2xx.
    let p = populate(&server).await;
    match ending {
        Ending::Sigterm => {
            server.stop().await;
        }
        Ending::Sigkill => {
            server.kill().await;
            // Proof that recovery is exercised: no connection was closed cleanly,
            // so the write-ahead log is still there for the next open to replay.
            assert!(
                data.join("runway.db-wal").exists(),
                "a killed server leaves its write-ahead log behind"
            );
        }
    }

    let server = start(&data).await;
    assert_everything_is_there(&server, &p).await;
    server.stop().await;
}

/// The session, jobs (with the cancel), agent (with its heartbeat), registration
/// token and agent token from `populate` are all there and usable.
async fn assert_everything_is_there(server: &Server, p: &Populated) {
    let (status, me) = server.get("/api/v1/auth/session", &p.session_token).await;
    assert_eq!(status, 200, "the session survives: {me}");
    assert_eq!(me["user"]["username"], "admin");

    let (status, jobs) = server.get("/api/v1/jobs", &p.session_token).await;
    assert_eq!(status, 200, "{jobs}");
    let listed: Vec<(&str, &str)> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["id"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    let mut expected: Vec<(&str, &str)> = p
        .job_ids
        .iter()
        .map(|id| {
            let status = if *id == p.canceled_job_id {
                "canceled"
            } else {
                "queued"
            };
            (id.as_str(), status)
        })
        .collect();
    expected.reverse(); // newest first
    assert_eq!(listed, expected);
    let (status, job) = server
        .get(
            &format!("/api/v1/jobs/{}", p.canceled_job_id),
            &p.session_token,
        )
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "canceled");
    assert_eq!(job["name"], "job 1");

    let (status, agent) = server
        .get(&format!("/api/v1/agents/{}", p.agent_id), &p.session_token)
        .await;
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent["name"], "builder-1");
    assert_eq!(agent["region"], "eu-west-1");
    let metrics: Value = serde_json::from_str(METRICS).unwrap();
    for (key, value) in metrics.as_object().unwrap() {
        assert_eq!(&agent["metrics"][key], value, "metric {key}: {agent}");
    }
    assert!(agent["last_heartbeat_at"].is_string(), "{agent}");

    let (status, tokens) = server
        .get("/api/v1/registration-tokens", &p.session_token)
        .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(
        tokens["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == p.registration_token_id.as_str()),
        "{tokens}"
    );

    let (status, config) = server.get("/agent/v1/config", &p.agent_token).await;
    assert_eq!(status, 200, "the agent token still works: {config}");
    let (status, beat) = server
        .post("/agent/v1/heartbeat", &p.agent_token, json!({}))
        .await;
    assert_eq!(status, 200, "{beat}");
}

#[tokio::test]
async fn everything_acknowledged_before_a_sigterm_is_there_after_a_restart() {
    survives_a_restart_after(Ending::Sigterm).await;
}

#[tokio::test]
async fn everything_acknowledged_before_a_sigkill_is_there_after_a_restart() {
    survives_a_restart_after(Ending::Sigkill).await;
}

/// Every file of the data directory, as bytes, concatenated.
fn data_dir_bytes(data: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn no_raw_token_or_password_reaches_the_data_directory_or_the_logs() {
    let (_tmp, data) = data_dir();
    let server = start(&data).await;
    let p = populate(&server).await;
    let (stdout, stderr) = server.stop().await;

    let names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "runway.db"), "{names:?}");
    let bytes = data_dir_bytes(&data);
    for (what, secret) in [
        ("session token", &p.session_token),
        ("agent token", &p.agent_token),
        ("registration token", &p.registration_token),
        ("admin password", &ADMIN_PASSWORD.to_owned()),
    ] {
        assert!(!contains(&bytes, secret), "the raw {what} is on disk");
        assert!(!stdout.contains(secret.as_str()), "the {what} is on stdout");
        assert!(
            !stderr.contains(secret.as_str()),
            "the {what} is in the logs"
        );
    }
    // The scan reads the right bytes: the stored hashes are found.
    assert!(
        contains(&bytes, TokenHash::of(&p.agent_token).as_str()),
        "the agent token's hash is not on disk; the scan is reading the wrong bytes"
    );
    assert!(contains(
        &bytes,
        TokenHash::of(&p.registration_token).as_str()
    ));
}
