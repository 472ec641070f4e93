//! The whole agent against a fake server: start-up, modes and the way out.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};

use runway_protocol::{
    AgentHealth, ClaimResponse, ClaimedJob, FinishResponse, HeartbeatResponse, LeaseResponse,
    LogAck, POLL_INTERVAL_HEADER, RegisterResponse, RegisteredAgent, Token,
};

use super::*;
use crate::testutil::{FakeServer, Recorded, Reply, timings};

const LEASE_OK: &str = r#"{"lease_expires_at":"2030-01-01T00:00:00Z","cancel":false}"#;

fn fast_timings() -> Timings {
    Timings {
        heartbeat_interval_seconds: 1,
        cancel_grace_seconds: 5,
        ..timings()
    }
}

fn config(server: &FakeServer, root: &Path, registration_token: Option<&str>) -> Config {
    Config {
        server_url: server.url(),
        registration_token: registration_token.map(|t| Token(t.into())),
        name: "builder-1".into(),
        region: Some("eu-west-1".into()),
        labels: vec!["linux".into()],
        queue: None,
        capacity: 1,
        work_dir: root.join("work"),
        state_dir: root.join("state"),
        log_filter: "info".into(),
    }
}

fn registered() -> Reply {
    Reply::json(
        201,
        &RegisterResponse {
            agent: RegisteredAgent {
                id: "01AGENT".into(),
                name: "builder-1".into(),
                queue: "default".into(),
                labels: vec!["linux".into()],
                capacity: 1,
            },
            token: Token("rwa_new".into()),
            timings: fast_timings(),
        },
    )
}

fn heartbeat_answer(action: AgentAction) -> Reply {
    Reply::json(
        200,
        &HeartbeatResponse {
            agent_status: AgentHealth::Online,
            action,
            cancel_job_ids: vec![],
            timings: fast_timings(),
        },
    )
}

fn endpoint(req: &Recorded) -> &str {
    let path = req.path.split('?').next().unwrap_or_default();
    path.strip_prefix("/agent/v1/").unwrap_or(path)
}

/// Counts calls per endpoint, so a script can answer the n-th one differently.
#[derive(Default)]
struct Counter(Mutex<BTreeMap<String, usize>>);

impl Counter {
    fn next(&self, name: &str) -> usize {
        let mut counts = self.0.lock().unwrap();
        let n = counts.entry(name.to_owned()).or_default();
        *n += 1;
        *n - 1
    }
}

async fn run_agent(config: Config) -> Result<(), AgentError> {
    tokio::time::timeout(Duration::from_secs(20), run(config))
        .await
        .expect("the agent exits")
}

#[tokio::test]
async fn a_first_start_registers_saves_the_token_0600_and_a_drain_makes_it_disconnect_and_exit() {
    let server = FakeServer::start(|req| match endpoint(req) {
        "register" => registered(),
        "heartbeat" => heartbeat_answer(AgentAction::Drain),
        "jobs/claim" => Reply::status(204).header(POLL_INTERVAL_HEADER, "1"),
        "disconnect" => Reply::status(204),
        _ => Reply::status(404),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    run_agent(config(&server, dir.path(), Some("rwr_registration")))
        .await
        .unwrap();

    let state = StateDir::open(&dir.path().join("state")).unwrap();
    let saved = state.load_agent().unwrap().unwrap();
    assert_eq!(saved.token.expose(), "rwa_new");
    assert_eq!(saved.agent_id, "01AGENT");
    let mode = std::fs::metadata(state.agent_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let requests = server.requests();
    let register = &requests[0];
    assert_eq!(endpoint(register), "register");
    assert_eq!(
        register.header("authorization"),
        Some("Bearer rwr_registration")
    );
    let body: serde_json::Value = serde_json::from_slice(&register.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"name":"builder-1","region":"eu-west-1","labels":["linux"],
            "capacity":1,"version":env!("CARGO_PKG_VERSION")})
    );
    for later in &requests[1..] {
        assert_eq!(later.header("authorization"), Some("Bearer rwa_new"));
    }
    assert_eq!(requests.last().map(endpoint), Some("disconnect"));
}

#[tokio::test]
async fn a_second_start_uses_the_saved_token_and_needs_no_registration_token() {
    let server = FakeServer::start(|req| match endpoint(req) {
        "config" => Reply::json(
            200,
            &AgentConfig {
                agent_id: "01AGENT".into(),
                name: "builder-1".into(),
                queue: "default".into(),
                labels: vec!["linux".into()],
                capacity: 1,
                action: AgentAction::Drain,
                timings: fast_timings(),
            },
        ),
        "disconnect" => Reply::status(204),
        _ => Reply::status(404),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&server, dir.path(), None);
    StateDir::open(&config.state_dir)
        .unwrap()
        .save_agent(&SavedAgent {
            agent_id: "01AGENT".into(),
            name: "builder-1".into(),
            server_url: server.url().to_string(),
            token: Token("rwa_saved".into()),
        })
        .unwrap();
    run_agent(config).await.unwrap();
    let requests = server.requests();
    assert_eq!(endpoint(&requests[0]), "config");
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer rwa_saved")
    );
    assert!(requests.iter().all(|r| endpoint(r) != "register"));
}

#[tokio::test]
async fn a_rejected_saved_token_is_fatal_and_the_error_says_what_to_do() {
    let server = FakeServer::start(|_| Reply::status(401)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&server, dir.path(), Some("rwr_unused"));
    let state = StateDir::open(&config.state_dir).unwrap();
    state
        .save_agent(&SavedAgent {
            agent_id: "01AGENT".into(),
            name: "builder-1".into(),
            server_url: server.url().to_string(),
            token: Token("rwa_rotated".into()),
        })
        .unwrap();
    let err = run_agent(config).await.unwrap_err();
    assert!(matches!(err, AgentError::TokenRejected { .. }), "{err:?}");
    let message = Chain(&err).to_string();
    assert!(
        message.contains(&state.agent_file().display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("RUNWAY_AGENT_REGISTRATION_TOKEN"),
        "{message}"
    );
    assert!(!message.contains("rwa_rotated"), "{message}");
}

#[tokio::test]
async fn a_first_start_without_a_registration_token_says_what_to_set() {
    let server = FakeServer::start(|_| Reply::status(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let err = run_agent(config(&server, dir.path(), None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::NoRegistrationToken { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("set RUNWAY_AGENT_REGISTRATION_TOKEN"),
        "{err}"
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_401_on_claim_is_fatal() {
    let server = FakeServer::start(|req| match endpoint(req) {
        "register" => registered(),
        "heartbeat" => heartbeat_answer(AgentAction::None),
        _ => Reply::status(401),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let err = run_agent(config(&server, dir.path(), Some("rwr_x")))
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::TokenRejected { .. }), "{err:?}");
    assert!(
        server
            .requests()
            .iter()
            .all(|r| endpoint(r) != "disconnect")
    );
}

#[tokio::test]
async fn a_disconnect_action_cancels_the_running_job_which_finishes_as_canceled_then_the_agent_exits()
 {
    let counter = Arc::new(Counter::default());
    let server = FakeServer::start(move |req| match endpoint(req) {
        "register" => registered(),
        "heartbeat" => match counter.next("heartbeat") {
            0 => heartbeat_answer(AgentAction::None),
            _ => heartbeat_answer(AgentAction::Disconnect),
        },
        "jobs/claim" if counter.next("claim") == 0 => Reply::json(
            200,
            &ClaimResponse {
                job: ClaimedJob {
                    id: "01JOB".into(),
                    attempt: 1,
                    name: "long".into(),
                    script: "trap 'echo got TERM; exit 5' TERM\necho started\n\
                             while true; do sleep 0.1; done\n"
                        .into(),
                    env: BTreeMap::new(),
                    secrets: BTreeMap::new(),
                    timeout_seconds: 600,
                },
                job_token: Token("rwj_job".into()),
                lease_expires_at: serde_json::from_str::<LeaseResponse>(LEASE_OK)
                    .unwrap()
                    .lease_expires_at,
                timings: fast_timings(),
            },
        ),
        "jobs/claim" => Reply::status(204).header(POLL_INTERVAL_HEADER, "1"),
        "jobs/01JOB/start" | "jobs/01JOB/lease" => Reply::raw(200, LEASE_OK),
        "jobs/01JOB/logs" => {
            let offset: u64 = req.query("offset").unwrap().parse().unwrap();
            Reply::json(
                200,
                &LogAck {
                    next_offset: offset + req.body.len() as u64,
                },
            )
        }
        "jobs/01JOB/finish" => Reply::json(
            200,
            &FinishResponse {
                status: "canceled".into(),
            },
        ),
        "disconnect" => Reply::status(204),
        _ => Reply::status(404),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    run_agent(config(&server, dir.path(), Some("rwr_x")))
        .await
        .unwrap();

    let requests = server.requests();
    let finish = requests
        .iter()
        .find(|r| endpoint(r) == "jobs/01JOB/finish")
        .expect("the job is finished");
    let finish: serde_json::Value = serde_json::from_slice(&finish.body).unwrap();
    assert_eq!(finish["result"], "canceled");
    assert_eq!(finish["exit_code"], 5);
    let log: Vec<u8> = requests
        .iter()
        .filter(|r| endpoint(r) == "jobs/01JOB/logs")
        .flat_map(|r| r.body.clone())
        .collect();
    let log = String::from_utf8(log).unwrap();
    assert!(
        log.contains("[runway-agent] the server told this agent to disconnect: stopping it"),
        "{log}"
    );
    // The heartbeat that got `disconnect` reported the running job.
    let reported: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| endpoint(r) == "heartbeat")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert!(
        reported.iter().any(|h| h["running_job_ids"] == serde_json::json!(["01JOB"])
            && h["running_jobs"] == 1),
        "{reported:?}"
    );
    assert_eq!(requests.last().map(endpoint), Some("disconnect"));
}

#[tokio::test]
async fn a_pause_stops_claiming_until_the_server_says_none_again() {
    let counter = Arc::new(Counter::default());
    let server = FakeServer::start(move |req| match endpoint(req) {
        "register" => registered(),
        "heartbeat" => heartbeat_answer(match counter.next("heartbeat") {
            0 | 1 => AgentAction::Pause,
            2 => AgentAction::None,
            _ => AgentAction::Drain,
        }),
        "jobs/claim" => Reply::status(204).header(POLL_INTERVAL_HEADER, "1"),
        "disconnect" => Reply::status(204),
        _ => Reply::status(404),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    run_agent(config(&server, dir.path(), Some("rwr_x")))
        .await
        .unwrap();
    let calls: Vec<String> = server
        .requests()
        .iter()
        .map(|r| endpoint(r).to_owned())
        .collect();
    let heartbeat = |n: usize| {
        calls
            .iter()
            .enumerate()
            .filter(|(_, c)| *c == "heartbeat")
            .nth(n)
            .map(|(i, _)| i)
            .unwrap()
    };
    let (paused, resumed, drained) = (heartbeat(0), heartbeat(2), heartbeat(3));
    assert!(
        !calls[paused + 1..=resumed].contains(&"jobs/claim".to_owned()),
        "claimed while paused: {calls:?}"
    );
    assert!(
        calls[resumed + 1..drained].contains(&"jobs/claim".to_owned()),
        "did not claim again after the pause: {calls:?}"
    );
}
