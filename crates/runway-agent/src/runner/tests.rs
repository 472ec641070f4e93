//! Whole attempts against a fake server: the real bash, pipe, spool, uploader,
//! lease task and HTTP client; only the server is scripted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant as StdInstant;

use runway_protocol::{
    FinishPending, FinishResponse, LOG_NEXT_OFFSET_HEADER, LeaseResponse, LogAck, Token,
};

use super::*;
use crate::state::JournalEntry;
use crate::testutil::{FakeServer, Recorded, Reply, timings};

const LEASE_OK: &str = r#"{"lease_expires_at":"2030-01-01T00:00:00Z","cancel":false}"#;
const LEASE_CANCEL: &str = r#"{"lease_expires_at":"2030-01-01T00:00:00Z","cancel":true}"#;

/// What the fake server does for each call; the log store follows the contract.
#[derive(Clone)]
struct Script {
    lease: Reply,
    /// Answers to `finish`, in order; the last one repeats.
    finish: Vec<Reply>,
    /// Before answering the n-th finish (from 0), cut the stored log to this.
    lose_log_at_finish: Option<(usize, usize)>,
    start: Reply,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            lease: Reply::raw(200, LEASE_OK),
            finish: vec![Reply::json(
                200,
                &FinishResponse {
                    status: "done".into(),
                },
            )],
            lose_log_at_finish: None,
            start: Reply::raw(200, LEASE_OK),
        }
    }
}

struct Harness {
    dir: tempfile::TempDir,
    shared: Shared,
    server: FakeServer,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Harness {
    async fn new(script: Script, timings: Timings) -> Self {
        let log = Arc::new(Mutex::new(Vec::<u8>::new()));
        let finishes = Arc::new(Mutex::new(0usize));
        let server_log = Arc::clone(&log);
        let server = FakeServer::start(move |req: &Recorded| {
            let path = req.path.split('?').next().unwrap_or_default();
            if path.ends_with("/start") {
                script.start.clone()
            } else if path.ends_with("/lease") {
                script.lease.clone()
            } else if path.ends_with("/logs") {
                let mut log = server_log.lock().unwrap();
                let offset: usize = req.query("offset").unwrap().parse().unwrap();
                if offset == log.len() {
                    log.extend_from_slice(&req.body);
                    Reply::json(
                        200,
                        &LogAck {
                            next_offset: log.len() as u64,
                        },
                    )
                } else {
                    Reply::status(416).header(LOG_NEXT_OFFSET_HEADER, &log.len().to_string())
                }
            } else if path.ends_with("/finish") {
                let mut n = finishes.lock().unwrap();
                if let Some((at, keep)) = script.lose_log_at_finish
                    && at == *n
                {
                    server_log.lock().unwrap().truncate(keep);
                }
                let reply = script.finish[(*n).min(script.finish.len() - 1)].clone();
                *n += 1;
                reply
            } else {
                Reply::status(404)
            }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::for_tests(server.url(), dir.path(), timings);
        Self {
            dir,
            shared,
            server,
            log,
        }
    }

    async fn run(&self, job: ClaimedJob) {
        let claim = ClaimResponse {
            job,
            job_token: Token("rwj_jobtoken".into()),
            lease_expires_at: serde_json::from_str::<LeaseResponse>(LEASE_OK)
                .unwrap()
                .lease_expires_at,
            timings: *self.shared.timings.borrow(),
        };
        tokio::time::timeout(Duration::from_secs(30), run(&self.shared, claim))
            .await
            .expect("the attempt ends");
    }

    fn calls(&self) -> Vec<String> {
        self.server
            .requests()
            .iter()
            .map(|r| {
                r.path
                    .split('?')
                    .next()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    fn finishes(&self) -> Vec<serde_json::Value> {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/finish"))
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }

    fn server_log(&self) -> String {
        String::from_utf8(self.log.lock().unwrap().clone()).unwrap()
    }

    fn journal(&self) -> Vec<JournalEntry> {
        std::fs::read_to_string(self.shared.state.journal_file())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn job(script: &str) -> ClaimedJob {
    ClaimedJob {
        id: "01JOBTEST".into(),
        attempt: 1,
        name: "test job".into(),
        script: script.into(),
        env: BTreeMap::from([("GREETING".into(), "hello".into())]),
        secrets: BTreeMap::from([("TOKEN".into(), SecretValue("s3cr3t-value".into()))]),
        timeout_seconds: 60,
    }
}

#[tokio::test]
async fn a_job_runs_in_a_fresh_workspace_and_its_masked_log_and_result_are_reported() {
    let h = Harness::new(Script::default(), timings()).await;
    h.run(job(
        "pwd\necho \"$GREETING, secret is $TOKEN\"\necho to-stderr >&2\nexit 3\n",
    ))
    .await;

    let workspace = h.shared.config.work_dir.join("01JOBTEST-1");
    let log = h.server_log();
    assert_eq!(
        log,
        format!("{}\nhello, secret is ***\nto-stderr\n", workspace.display())
    );
    assert!(!log.contains("s3cr3t"));
    assert_eq!(
        h.finishes(),
        [serde_json::json!({
            "result": "failed",
            "exit_code": 3,
            "log_bytes": log.len(),
            "log_crc32": crc32fast::hash(log.as_bytes()),
        })]
    );
    let calls = h.calls();
    assert_eq!(calls.first().map(String::as_str), Some("start"));
    assert_eq!(calls.last().map(String::as_str), Some("finish"));
    for req in h.server.requests() {
        assert_eq!(req.header("authorization"), Some("Bearer rwj_jobtoken"));
    }
    let journal = h.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].result, JournalResult::Failed);
    assert_eq!(journal[0].exit_code, Some(3));
    assert!(journal[0].started_at_ms <= journal[0].finished_at_ms);
    // Both of the attempt's directories are gone.
    assert!(!workspace.exists());
    assert!(!h.shared.state.jobs_dir().join("01JOBTEST-1").exists());
    drop(h.dir);
}

#[tokio::test]
async fn a_cancel_on_the_lease_runs_the_kill_sequence_and_finishes_as_canceled() {
    let script = Script {
        lease: Reply::raw(200, LEASE_CANCEL),
        ..Script::default()
    };
    let h = Harness::new(
        script,
        Timings {
            lease_renew_interval_seconds: 1,
            cancel_grace_seconds: 5,
            ..timings()
        },
    )
    .await;
    let started = StdInstant::now();
    h.run(job(
        "trap 'echo got TERM; exit 7' TERM\necho started\nwhile true; do sleep 0.1; done\n",
    ))
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let log = h.server_log();
    assert!(log.starts_with("started\n"), "{log}");
    assert!(
        log.contains(
            "[runway-agent] the job was canceled: stopping it (SIGTERM, then SIGKILL after 5 s)\n"
        ),
        "{log}"
    );
    assert!(log.ends_with("got TERM\n"), "{log}");
    let finish = &h.finishes()[0];
    assert_eq!(finish["result"], "canceled");
    assert_eq!(finish["exit_code"], 7);
    assert_eq!(h.journal()[0].result, JournalResult::Canceled);
}

#[tokio::test]
async fn a_409_on_the_lease_kills_the_job_at_once_and_reports_nothing() {
    let script = Script {
        lease: Reply::status(409),
        ..Script::default()
    };
    let h = Harness::new(
        script,
        Timings {
            lease_renew_interval_seconds: 1,
            cancel_grace_seconds: 30,
            ..timings()
        },
    )
    .await;
    let started = StdInstant::now();
    // Ignores SIGTERM: only an immediate SIGKILL ends it before the 30 s grace.
    h.run(job(
        "trap '' TERM\necho started\nwhile true; do sleep 0.1; done\n",
    ))
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(h.finishes().is_empty(), "finish must not be called");
    let journal = h.journal();
    assert_eq!(journal[0].result, JournalResult::Lost);
    assert_eq!(journal[0].exit_code, None);
}

#[tokio::test]
async fn a_job_past_its_timeout_is_stopped_and_finishes_as_timed_out() {
    let h = Harness::new(
        Script::default(),
        Timings {
            cancel_grace_seconds: 2,
            ..timings()
        },
    )
    .await;
    let mut j = job("echo working\nsleep 30\n");
    j.timeout_seconds = 1;
    let started = StdInstant::now();
    h.run(j).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let log = h.server_log();
    assert!(
        log.contains("[runway-agent] the job exceeded its timeout of 1 s: stopping it"),
        "{log}"
    );
    let finish = &h.finishes()[0];
    assert_eq!(finish["result"], "timed_out");
    // bash died of the SIGTERM: no exit code.
    assert_eq!(finish["exit_code"], serde_json::Value::Null);
    assert_eq!(h.journal()[0].result, JournalResult::TimedOut);
}

#[tokio::test]
async fn a_finish_202_resends_the_log_from_the_offset_it_names_then_finishes_again() {
    let script = Script {
        finish: vec![
            Reply::json(202, &FinishPending { next_offset: 0 }),
            Reply::json(
                200,
                &FinishResponse {
                    status: "done".into(),
                },
            ),
        ],
        // The server "lost" the whole log just before the first finish.
        lose_log_at_finish: Some((0, 0)),
        ..Script::default()
    };
    let h = Harness::new(script, timings()).await;
    h.run(job("echo one\necho two\n")).await;
    assert_eq!(h.server_log(), "one\ntwo\n");
    let finishes = h.finishes();
    assert_eq!(finishes.len(), 2);
    assert_eq!(finishes[0], finishes[1]);
    assert_eq!(finishes[1]["result"], "succeeded");
    assert_eq!(finishes[1]["exit_code"], 0);
    let calls = h.calls();
    let first_finish = calls.iter().position(|c| c == "finish").unwrap();
    assert!(
        calls[first_finish..].contains(&"logs".to_owned()),
        "the log is resent after the 202: {calls:?}"
    );
}

#[tokio::test]
async fn a_script_that_cannot_be_started_fails_with_an_explanation_in_the_log() {
    let h = Harness::new(Script::default(), timings()).await;
    let mut j = job("echo never\n");
    // bash is looked up on the job's PATH.
    j.env.insert("PATH".into(), "/nonexistent".into());
    h.run(j).await;
    let log = h.server_log();
    assert!(
        log.starts_with("[runway-agent] cannot start `bash -eo pipefail`:"),
        "{log}"
    );
    let finish = &h.finishes()[0];
    assert_eq!(finish["result"], "failed");
    assert_eq!(finish["exit_code"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_start_that_says_cancel_reports_canceled_without_running_the_script() {
    let script = Script {
        start: Reply::raw(200, LEASE_CANCEL),
        ..Script::default()
    };
    let h = Harness::new(script, timings()).await;
    let marker = h.dir.path().join("ran");
    h.run(job(&format!("touch {}\n", marker.display()))).await;
    assert!(!marker.exists());
    assert_eq!(
        h.server_log(),
        "[runway-agent] the job was canceled before its script started\n"
    );
    let finish = &h.finishes()[0];
    assert_eq!(finish["result"], "canceled");
    assert_eq!(finish["exit_code"], serde_json::Value::Null);
    assert_eq!(h.journal()[0].result, JournalResult::Canceled);
}

#[tokio::test]
async fn a_job_the_server_takes_back_before_start_is_not_run() {
    let script = Script {
        start: Reply::status(409),
        ..Script::default()
    };
    let h = Harness::new(script, timings()).await;
    let marker = h.dir.path().join("ran");
    h.run(job(&format!("touch {}\n", marker.display()))).await;
    assert_eq!(h.calls(), ["start"]);
    assert!(!marker.exists());
    assert!(h.journal().is_empty());
    assert!(!h.shared.state.jobs_dir().join("01JOBTEST-1").exists());
}

#[tokio::test]
async fn output_reaches_the_server_while_the_job_is_still_running() {
    let h = Arc::new(Harness::new(Script::default(), timings()).await);
    let runner = {
        let h = Arc::clone(&h);
        tokio::spawn(async move { h.run(job("echo early\nsleep 3\necho late\n")).await })
    };
    // The flush interval is 50 ms: "early" is on the server long before the end.
    let deadline = StdInstant::now() + Duration::from_secs(2);
    while h.server_log().is_empty() && StdInstant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.server_log(), "early\n");
    assert!(!runner.is_finished());
    runner.await.unwrap();
    assert_eq!(h.server_log(), "early\nlate\n");
}

#[test]
fn only_plain_ids_may_name_a_directory() {
    assert!(is_safe_id("01HZX3K5J8Q2W"));
    assert!(is_safe_id("job_1-a"));
    for bad in ["", "..", "../etc", "a/b", "a b", &"x".repeat(129)] {
        assert!(!is_safe_id(bad), "{bad:?}");
    }
}

#[test]
fn read_only_directories_left_by_a_job_are_made_removable() {
    // (Root removes them anyway; this checks the fallback that other users need.)
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let inner = root.join("pkg/mod");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(inner.join("file"), "x").unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for d in [&inner, &root.join("pkg")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    make_dirs_writable(&root);
    assert_eq!(mode(&inner), 0o755);
    assert_eq!(mode(&root.join("pkg")), 0o755);
    remove_tree_blocking(&root).unwrap();
    assert!(!root.exists());
    // Removing what is not there is not an error.
    remove_tree_blocking(&root).unwrap();
}
