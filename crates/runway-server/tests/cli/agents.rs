//! Jobs really run: real `runway-agent` processes running real bash against a real
//! `runway serve`, on SQLite (here) and on DynamoDB + S3 in moto (`dynamodb.rs`
//! runs the same stories there through [`Backend`]).
//!
//! The agent binary is found in the test binary's target directory
//! (`target/debug/runway-agent`). `cargo test` does not build it (it builds a
//! package's binaries only for that package's own integration tests), so `make test`
//! runs `cargo build -p runway-agent` first. If it is missing, or older than the
//! agent's sources, the tests fail with the command that builds it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::support::{ADMIN_PASSWORD, Server, Start, data_dir, run_to_end, runway};

/// Held by the heaviest stories (those on the DynamoDB emulator, and the big
/// SQLite contention run) so that they run one at a time: moto is one Python
/// process, and eight agents against it beside another such story make every
/// request take a second. The lighter tests still run in parallel with them.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for, and holds until dropped, the right to run a heavy story.
pub async fn one_heavy_story_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.lock().await
}

/// The `runway-agent` binary of this build.
pub fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/cli-<hash> → target/<profile>/runway-agent
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let agent = profile_dir.join("runway-agent");
    assert!(
        agent.is_file(),
        "{} is missing: these tests run the real agent. Build it first:\n\n    \
         cargo build -p runway-agent\n\n(`make test` does)",
        agent.display()
    );
    // `cargo test -p runway-server` builds the agent's library but not its binary:
    // refuse to test a binary older than the agent's sources.
    let built = std::fs::metadata(&agent)
        .and_then(|m| m.modified())
        .unwrap();
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runway-agent/src");
    if let Some(newer) = newest_file(&sources).filter(|(at, _)| *at > built) {
        panic!(
            "{} is older than {}: rebuild it with `cargo build -p runway-agent` \
             (`make test` does)",
            agent.display(),
            newer.1.display()
        );
    }
    agent
}

/// The most recently modified file under `dir`, and when.
fn newest_file(dir: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let found = if path.is_dir() {
            newest_file(&path)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|at| (at, path))
        };
        if let Some(found) = found
            && newest.as_ref().is_none_or(|(at, _)| found.0 > *at)
        {
            newest = Some(found);
        }
    }
    newest
}

/// Where the server's jobs run: which store, with what extra environment.
#[derive(Debug, Clone, Default)]
pub struct Backend {
    /// Extra environment for `runway serve` (the DynamoDB settings, say).
    pub env: Vec<(&'static str, String)>,
}

/// A running `runway-agent`.
#[derive(Debug)]
pub struct Agent {
    child: Child,
    /// Its state directory (token, journal).
    pub state_dir: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    /// Starts an agent against `server` with `registration` token, in `dir`.
    pub fn start(server_url: &str, registration: &str, dir: &Path, extra: &[(&str, &str)]) -> Self {
        let state_dir = dir.join("state");
        let work_dir = dir.join("work");
        let mut cmd = Command::new(agent_binary());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("RUNWAY_") {
                cmd.env_remove(name);
            }
        }
        cmd.current_dir(dir)
            .env("RUNWAY_AGENT_SERVER_URL", server_url)
            .env("RUNWAY_AGENT_REGISTRATION_TOKEN", registration)
            .env("RUNWAY_AGENT_STATE_DIR", &state_dir)
            .env("RUNWAY_AGENT_WORK_DIR", &work_dir)
            .env("RUNWAY_AGENT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        std::fs::create_dir_all(dir).unwrap();
        let mut child = cmd.spawn().expect("runway-agent starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().unwrap();
        let lines = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut reader = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            state_dir,
            stderr,
        }
    }

    /// What the agent logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// SIGTERM.
    pub async fn sigterm(&self) {
        let pid = self.child.id().expect("the agent is running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL, and wait for it to be gone.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL is delivered");
    }

    /// Waits for the agent to exit; its exit status.
    pub async fn wait(&mut self, patience: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(patience, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the agent did not exit in time; it logged:\n{}",
                    self.stderr()
                )
            })
            .unwrap()
    }

    /// The attempts this agent ran, from its own journal.
    pub fn journal(&self) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(self.state_dir.join("journal.jsonl")) else {
            return Vec::new();
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("a journal line is JSON"))
            .collect()
    }
}

/// A server with a signed-in admin and a registration token.
pub struct Rig {
    pub server: Server,
    pub admin: String,
    pub registration: String,
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    start: Start,
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rig {
    /// Starts `runway serve` with `env` (lease, reaper interval, store…).
    pub async fn start(backend: &Backend, env: &[(&'static str, &str)]) -> Self {
        let (tmp, data) = data_dir();
        let mut all = backend.env.clone();
        all.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let start = Start {
            admin_password: Some(ADMIN_PASSWORD),
            env: all,
            without_subcommand: false,
            // A fixed port, so that agents find a restarted server again.
            listen: Some(format!("127.0.0.1:{}", free_port())),
        };
        let server = Server::start(&data, start.clone()).await;
        let admin = server.sign_in("admin", ADMIN_PASSWORD).await;
        let (status, body) = server
            .post(
                "/api/v1/registration-tokens",
                &admin,
                json!({"description": "tests"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let registration = body["token"].as_str().unwrap().to_owned();
        Self {
            server,
            admin,
            registration,
            tmp,
            data,
            start,
        }
    }

    /// Kills the server with SIGKILL (no shutdown code runs) and starts it again
    /// on the same data directory and port.
    pub async fn crash_and_restart(&mut self) {
        self.server.kill_in_place().await;
        self.server = Server::start(&self.data, self.start.clone()).await;
        // Sessions survive a restart; sign in anew anyway, as a person would.
        self.admin = self.server.sign_in("admin", ADMIN_PASSWORD).await;
    }

    /// Starts an agent named `name` with extra environment.
    pub fn agent(&self, name: &str, extra: &[(&str, &str)]) -> Agent {
        let mut env = vec![("RUNWAY_AGENT_NAME", name)];
        env.extend_from_slice(extra);
        Agent::start(
            &self.server.base,
            &self.registration,
            &self.tmp.path().join("agents").join(name),
            &env,
        )
    }

    /// Creates the member `username` with `runway admin create-user`, as an
    /// operator would, and signs them in; returns their session token.
    pub async fn member(&self, username: &str) -> String {
        const PASSWORD: &str = "a-members-long-password";
        let mut cmd = runway(self.tmp.path());
        cmd.args(["admin", "create-user", "--username", username])
            .args(["--role", "member", "--password-stdin", "--data-dir"])
            .arg(&self.data)
            .env("RUNWAY_LOG", "warn");
        for (k, v) in &self.start.env {
            cmd.env(k, v);
        }
        let (status, stdout, stderr) = run_to_end(cmd, Some(&format!("{PASSWORD}\n"))).await;
        assert!(
            status.success(),
            "create-user {username}: {stdout}\n{stderr}"
        );
        self.server.sign_in(username, PASSWORD).await
    }

    /// Submits a job; returns its id. A 503 (a store that is busy, as an emulator
    /// on a loaded machine can be) is retried after a moment, as any client should.
    pub async fn submit(&self, spec: Value) -> String {
        let body = self
            .until_not_busy(201, || {
                self.server.post("/api/v1/jobs", &self.admin, spec.clone())
            })
            .await;
        body["id"].as_str().unwrap().to_owned()
    }

    /// The job as `GET /api/v1/jobs/{id}` shows it (503s retried).
    pub async fn job(&self, id: &str) -> Value {
        let path = format!("/api/v1/jobs/{id}");
        self.until_not_busy(200, || self.server.get(&path, &self.admin))
            .await
    }

    /// The body of the first answer that is not a 503, which must be `expected`.
    async fn until_not_busy<F, Fut>(&self, expected: u16, call: F) -> Value
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (u16, Value)>,
    {
        for _ in 0..30 {
            let (status, body) = call().await;
            if status == 503 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            assert_eq!(status, expected, "{body}");
            return body;
        }
        panic!("the store stayed unavailable (503) for 30 tries");
    }

    /// Waits until the job's status is one of `statuses`; returns the job.
    pub async fn wait_for(&self, id: &str, statuses: &[&str], patience: Duration) -> Value {
        let started = Instant::now();
        loop {
            let job = self.job(id).await;
            if statuses.iter().any(|s| job["status"] == *s) {
                return job;
            }
            assert!(
                started.elapsed() < patience,
                "job {id} is still `{}` after {patience:?}, not one of {statuses:?}: {job}\nserver log:\n{}",
                job["status"],
                self.server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The whole log of the job's latest attempt, once complete.
    pub async fn log(&self, id: &str) -> String {
        let mut bytes = Vec::new();
        let mut offset = 0_u64;
        let started = Instant::now();
        loop {
            let res = self
                .server
                .http
                .get(
                    self.server
                        .url(&format!("/api/v1/jobs/{id}/log?offset={offset}")),
                )
                .bearer_auth(&self.admin)
                .send()
                .await
                .unwrap();
            if res.status() == 503 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
            let next: u64 = res.headers()["x-log-next-offset"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let complete = res.headers()["x-log-complete"] == "true";
            let chunk = res.bytes().await.unwrap();
            assert_eq!(next, offset + chunk.len() as u64);
            bytes.extend_from_slice(&chunk);
            offset = next;
            if complete {
                return String::from_utf8(bytes).expect("the log is UTF-8");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the log never completed"
            );
            if chunk.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn spec(name: &str, script: &str) -> Value {
    json!({"name": name, "script": script, "timeout_seconds": 120})
}

/// The longest any step may take. Generous: on a loaded 2-core machine a moto
/// request can take a second.
const PATIENCE: Duration = Duration::from_secs(180);

// ------------------------------------------------------------------ the stories

/// A job succeeds, and stdout and stderr arrive interleaved in the order written.
pub async fn a_job_runs_and_its_output_arrives_in_order(backend: &Backend) {
    let rig = Rig::start(backend, &[]).await;
    let agent = rig.agent("builder-1", &[]);
    let id = rig
        .submit(spec(
            "hello",
            "echo one; echo two >&2; echo three; echo \"job=$RUNWAY_JOB_ID attempt=$RUNWAY_ATTEMPT name=$RUNWAY_JOB_NAME agent=$RUNWAY_AGENT_NAME\"",
        ))
        .await;
    let job = rig.wait_for(&id, &["succeeded", "failed"], PATIENCE).await;
    assert_eq!(job["status"], "succeeded", "{job}\n{}", agent.stderr());
    let attempt = &job["attempts"][0];
    assert_eq!(attempt["exit_code"], 0);
    assert_eq!(attempt["status"], "succeeded");
    let log = rig.log(&id).await;
    assert_eq!(
        log,
        format!("one\ntwo\nthree\njob={id} attempt=1 name=hello agent=builder-1\n")
    );
    assert_eq!(attempt["log_bytes"], log.len());
}

/// A script that exits non-zero fails the job with its exit code.
pub async fn a_failing_script_fails_the_job_with_its_exit_code(backend: &Backend) {
    let rig = Rig::start(backend, &[]).await;
    let _agent = rig.agent("builder-1", &[]);
    let id = rig
        .submit(spec("fails", "echo before; false; echo never"))
        .await;
    let job = rig.wait_for(&id, &["succeeded", "failed"], PATIENCE).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempts"][0]["exit_code"], 1);
    // `bash -e`: the script stopped at `false`.
    assert_eq!(rig.log(&id).await, "before\n");
    let id = rig.submit(spec("exit 3", "exit 3")).await;
    let job = rig.wait_for(&id, &["succeeded", "failed"], PATIENCE).await;
    assert_eq!(job["attempts"][0]["exit_code"], 3);
}

/// Megabytes of output (`lines` numbered lines) arrive complete and in order.
pub async fn megabytes_of_output_arrive_complete_and_in_order(backend: &Backend, lines: u32) {
    let rig = Rig::start(backend, &[]).await;
    let _agent = rig.agent("builder-1", &[]);
    let id = rig
        .submit(spec("loud", &format!("seq 1 {lines} | sed 's/$/ lorem/'")))
        .await;
    let job = rig.wait_for(&id, &["succeeded", "failed"], PATIENCE).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let log = rig.log(&id).await;
    let expected: String = (1..=lines).map(|n| format!("{n} lorem\n")).collect();
    assert_eq!(log.len(), expected.len());
    assert!(
        log == expected,
        "the log differs from what the script wrote"
    );
}

/// A secret reaches the script but never the log or any API response.
pub async fn a_secret_never_appears_in_the_log_or_the_api(backend: &Backend) -> (Rig, String) {
    let rig = Rig::start(backend, &[]).await;
    let _agent = rig.agent("builder-1", &[]);
    let secret = "s3cr3t-v4lue-0123456789";
    let id = rig
        .submit(json!({
            "name": "deploy",
            "script": "echo \"token is $DEPLOY_TOKEN\"; test \"${#DEPLOY_TOKEN}\" = 23 && echo \"it has 23 characters\"",
            "secrets": {"DEPLOY_TOKEN": secret},
            "env": {"PLAIN": "visible"}
        }))
        .await;
    let job = rig.wait_for(&id, &["succeeded", "failed"], PATIENCE).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(rig.log(&id).await, "token is ***\nit has 23 characters\n");
    for path in [
        format!("/api/v1/jobs/{id}"),
        "/api/v1/jobs".into(),
        "/api/v1/audit".into(),
    ] {
        let (_, body) = rig.server.get(&path, &rig.admin).await;
        assert!(
            !body.to_string().contains(secret),
            "{path} shows the secret"
        );
    }
    assert!(
        !rig.server.stderr().contains(secret),
        "the server logged the secret"
    );
    (rig, secret.to_owned())
}

/// Cancel while running stops the whole process tree: a script that traps SIGTERM
/// sees it; one that ignores it is killed after the grace period.
pub async fn cancel_stops_the_whole_process_tree(backend: &Backend) {
    let rig = Rig::start(backend, &[]).await;
    let _agent = rig.agent("builder-1", &[("RUNWAY_AGENT_CAPACITY", "2")]);
    // A sleep no other test (or earlier run) has, so `pgrep` below sees only ours.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let sleep = format!("sleep 311.{nanos:09}");
    let polite = rig
        .submit(spec(
            "polite",
            &format!("trap 'echo got TERM; exit 143' TERM; echo started; {sleep} & wait"),
        ))
        .await;
    let stubborn = rig
        .submit(spec(
            "stubborn",
            &format!("trap '' TERM; echo started; (trap '' TERM; {sleep}) & {sleep}; echo never"),
        ))
        .await;
    for id in [&polite, &stubborn] {
        rig.wait_for(id, &["running"], PATIENCE).await;
        // Wait for the script itself to be under way.
        let started = Instant::now();
        while !partial_log(&rig, id).await.contains("started") {
            assert!(started.elapsed() < PATIENCE);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let canceled_at = Instant::now();
    for id in [&polite, &stubborn] {
        let (status, body) = rig
            .server
            .post(&format!("/api/v1/jobs/{id}/cancel"), &rig.admin, json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "canceling");
    }
    let job = rig.wait_for(&polite, &["canceled"], PATIENCE).await;
    assert_eq!(job["attempts"][0]["status"], "canceled");
    // The agent's lease renewal is a long poll that answers on the cancel: a silent
    // job stops within moments, not at its next renewal 40 s later.
    assert!(
        canceled_at.elapsed() < Duration::from_secs(8),
        "the polite job took {:?} to stop",
        canceled_at.elapsed()
    );
    // The agent says in the log why the job stopped, then the script's own words.
    assert_eq!(
        rig.log(&polite).await,
        "started\n[runway-agent] the job was canceled: stopping it (SIGTERM, then SIGKILL after 10 s)\ngot TERM\n"
    );
    let job = rig.wait_for(&stubborn, &["canceled"], PATIENCE).await;
    assert_eq!(job["attempts"][0]["status"], "canceled");
    assert!(
        canceled_at.elapsed() >= Duration::from_secs(9),
        "the stubborn job must get the 10 s grace before SIGKILL"
    );
    let log = rig.log(&stubborn).await;
    assert!(
        log.starts_with("started\n[runway-agent] the job was canceled"),
        "{log}"
    );
    assert!(!log.contains("never"), "{log}");
    // Nothing of either job is left running.
    let ps = Command::new("pgrep")
        .args(["-f", &sleep])
        .output()
        .await
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}

/// A job past its timeout is stopped and `timed_out`.
pub async fn a_job_past_its_timeout_is_timed_out(backend: &Backend) {
    let rig = Rig::start(backend, &[]).await;
    let _agent = rig.agent("builder-1", &[]);
    let id = rig
        .submit(json!({"name": "slow", "script": "echo waiting; sleep 120", "timeout_seconds": 2}))
        .await;
    let job = rig
        .wait_for(&id, &["timed_out", "failed", "succeeded"], PATIENCE)
        .await;
    assert_eq!(job["status"], "timed_out", "{job}");
    assert_eq!(
        rig.log(&id).await,
        "waiting\n[runway-agent] the job exceeded its timeout of 2 s: stopping it (SIGTERM, then SIGKILL after 10 s)\n"
    );
}

/// An agent SIGKILLed mid-job loses it; the reaper re-queues it and another agent
/// completes it, with the history kept.
pub async fn a_job_lost_with_its_agent_is_retried_by_another(backend: &Backend) {
    let rig = Rig::start(
        backend,
        &[
            ("RUNWAY_JOB_LEASE_SECONDS", "5"),
            ("RUNWAY_REAPER_INTERVAL_SECONDS", "1"),
        ],
    )
    .await;
    let first = rig.agent("doomed", &[]);
    let id = rig
        .submit(spec(
            "flaky host",
            "if [ \"$RUNWAY_ATTEMPT\" = 1 ]; then echo first; sleep 317; fi; echo \"done on $RUNWAY_AGENT_NAME\"",
        ))
        .await;
    rig.wait_for(&id, &["running"], PATIENCE).await;
    first.kill().await;
    let second = rig.agent("survivor", &[]);
    let job = rig
        .wait_for(&id, &["succeeded", "failed", "lost"], PATIENCE)
        .await;
    assert_eq!(job["status"], "succeeded", "{job}\n{}", second.stderr());
    let attempts = job["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{job}");
    assert_eq!(attempts[0]["status"], "lost");
    assert_eq!(attempts[1]["status"], "succeeded");
    assert_ne!(attempts[0]["agent_id"], attempts[1]["agent_id"]);
    assert_eq!(rig.log(&id).await, "done on survivor\n");
    // A SIGKILLed agent cannot stop its job's processes; clean up after it.
    let _ = Command::new("pkill")
        .args(["-f", "sleep 317"])
        .status()
        .await;
}

/// A job that fails is retried by the member who submitted it: it runs again on
/// the agent and succeeds, and the job shows both attempts as they ended. Another
/// member may not retry it.
pub async fn a_failed_job_retried_by_its_owner_runs_again_and_keeps_both_attempts(
    backend: &Backend,
) {
    let rig = Rig::start(backend, &[]).await;
    let agent = rig.agent("builder-1", &[]);
    let mia = rig.member("mia").await;
    let bob = rig.member("bob").await;
    let (status, job) = rig
        .server
        .post(
            "/api/v1/jobs",
            &mia,
            spec(
                "flaky test",
                "echo \"attempt $RUNWAY_ATTEMPT\"; test \"$RUNWAY_ATTEMPT\" != 1",
            ),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let failed = rig.wait_for(&id, &["succeeded", "failed"], PATIENCE).await;
    assert_eq!(failed["status"], "failed", "{failed}\n{}", agent.stderr());
    assert_eq!(failed["attempts"][0]["exit_code"], 1);

    let retry = format!("/api/v1/jobs/{id}/retry");
    let (status, refused) = rig.server.post(&retry, &bob, json!({})).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "forbidden");
    assert_eq!(
        rig.job(&id).await["status"],
        "failed",
        "the refusal changed nothing"
    );

    let (status, retried) = rig.server.post(&retry, &mia, json!({})).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["status"], "queued");
    assert_eq!(retried["attempts"].as_array().unwrap().len(), 1);

    let done = rig.wait_for(&id, &["succeeded", "failed"], PATIENCE).await;
    assert_eq!(done["status"], "succeeded", "{done}\n{}", agent.stderr());
    let attempts: Vec<_> = done["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["number"].as_u64().unwrap(),
                a["status"].as_str().unwrap().to_owned(),
                a["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [(1, "failed".to_owned(), 1), (2, "succeeded".to_owned(), 0)],
        "{done}"
    );
    assert_eq!(
        done["attempts"][0]["agent_id"],
        done["attempts"][1]["agent_id"]
    );
    assert_eq!(rig.log(&id).await, "attempt 2\n");
    let first = rig
        .server
        .http
        .get(rig.server.url(&format!("/api/v1/jobs/{id}/log?attempt=1")))
        .bearer_auth(&mia)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-log-complete"], "true");
    assert_eq!(
        first.text().await.unwrap(),
        "attempt 1\n",
        "the first attempt's log is kept"
    );
}

/// The log so far (from offset 0, at most one read), complete or not.
pub async fn partial_log(rig: &Rig, id: &str) -> String {
    let res = rig
        .server
        .http
        .get(rig.server.url(&format!("/api/v1/jobs/{id}/log")))
        .bearer_auth(&rig.admin)
        .send()
        .await
        .unwrap();
    String::from_utf8_lossy(&res.bytes().await.unwrap()).into_owned()
}

/// Whether some job is in `status`; `None` when the server could not say (a busy
/// emulator answering 503), so the caller asks again later.
async fn any_in(rig: &Rig, status: &str) -> Option<bool> {
    let (code, page) = rig
        .server
        .get(&format!("/api/v1/jobs?status={status}&limit=1"), &rig.admin)
        .await;
    (code == 200).then(|| !page["items"].as_array().is_none_or(Vec::is_empty))
}

/// Counts of jobs per status.
pub async fn statuses(rig: &Rig, ids: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for id in ids {
        let job = rig.job(id).await;
        *counts
            .entry(job["status"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    counts
}

/// SIGTERM to an agent: it claims nothing more, lets its running job finish,
/// disconnects and exits 0.
pub async fn an_agent_told_to_stop_finishes_its_job_first(backend: &Backend) {
    let rig = Rig::start(backend, &[]).await;
    let mut agent = rig.agent("builder-1", &[]);
    let running = rig
        .submit(spec("finish me", "sleep 2; echo finished"))
        .await;
    rig.wait_for(&running, &["running"], PATIENCE).await;
    agent.sigterm().await;
    let status = agent.wait(PATIENCE).await;
    assert!(
        status.success(),
        "the agent exited with {status}:\n{}",
        agent.stderr()
    );
    let job = rig.job(&running).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(rig.log(&running).await, "finished\n");
    // It claimed nothing after the signal.
    let later = rig.submit(spec("nobody", "true")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.job(&later).await["status"], "queued");
    assert_eq!(agent.journal().len(), 1);
}

/// The server SIGKILLed mid-run and restarted: nothing it acknowledged is lost, the
/// agent carries on, and every job ends in a final state.
pub async fn a_server_crash_loses_nothing_and_every_job_finishes(backend: &Backend) {
    let mut rig = Rig::start(backend, &[]).await;
    let agent = rig.agent("builder-1", &[("RUNWAY_AGENT_CAPACITY", "2")]);
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(
            rig.submit(spec(&format!("job {n}"), "echo start; sleep 1; echo end"))
                .await,
        );
    }
    rig.wait_for(&ids[0], &["running", "succeeded"], PATIENCE)
        .await;
    rig.crash_and_restart().await;
    for id in &ids {
        let job = rig
            .wait_for(
                id,
                &["succeeded", "failed", "lost", "canceled", "timed_out"],
                Duration::from_secs(120),
            )
            .await;
        assert_eq!(
            job["status"],
            "succeeded",
            "{job}\nagent:\n{}",
            agent.stderr()
        );
        assert_eq!(rig.log(id).await, "start\nend\n");
    }
}

/// Many agents, many jobs: every job has exactly one attempt, which succeeded,
/// and by the agents' own journals every job ran exactly once, so never on two
/// agents at once.
pub async fn many_agents_run_many_jobs_each_exactly_once(
    backend: &Backend,
    agents: usize,
    jobs: usize,
) {
    let rig = Rig::start(backend, &[]).await;
    let mut ids = Vec::with_capacity(jobs);
    for n in 0..jobs {
        ids.push(
            rig.submit(spec(&format!("job {n}"), "echo \"$RUNWAY_JOB_ID\""))
                .await,
        );
    }
    // The backlog first, then the fleet: every agent starts racing for the same jobs.
    let fleet: Vec<Agent> = (0..agents)
        .map(|n| rig.agent(&format!("agent-{n}"), &[]))
        .collect();
    let started = Instant::now();
    let patience = Duration::from_secs(600);
    loop {
        let done = any_in(&rig, "succeeded").await;
        let mut busy = Some(false);
        for status in ["queued", "claimed", "running"] {
            busy = match (busy, any_in(&rig, status).await) {
                (Some(b), Some(now)) => Some(b || now),
                _ => None,
            };
        }
        if done == Some(true) && busy == Some(false) {
            break;
        }
        assert!(
            started.elapsed() < patience,
            "jobs still pending after {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let counts = statuses(&rig, &ids).await;
    assert_eq!(counts.get("succeeded"), Some(&jobs), "{counts:?}");
    // Each job: one attempt, succeeded; and its log is its own id.
    for id in ids.iter().step_by(jobs.div_ceil(50).max(1)) {
        let job = rig.job(id).await;
        let attempts = job["attempts"].as_array().unwrap();
        let succeeded = attempts
            .iter()
            .filter(|a| a["status"] == "succeeded")
            .count();
        assert_eq!(succeeded, 1, "exactly one successful attempt: {job}");
        assert_eq!(attempts.len(), 1, "{job}");
        assert_eq!(rig.log(id).await, format!("{id}\n"));
    }
    // The agents' own records: every job ran exactly once, never overlapping.
    let mut runs: HashMap<String, Vec<(u64, u64, String)>> = HashMap::new();
    for (n, agent) in fleet.iter().enumerate() {
        for line in agent.journal() {
            runs.entry(line["job_id"].as_str().unwrap().to_owned())
                .or_default()
                .push((
                    line["started_at_ms"].as_u64().unwrap(),
                    line["finished_at_ms"].as_u64().unwrap(),
                    format!("agent-{n}"),
                ));
        }
    }
    assert_eq!(
        runs.len(),
        jobs,
        "every job appears in some agent's journal"
    );
    for (job, mut attempts) in runs {
        attempts.sort();
        for pair in attempts.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "job {job} ran twice at once: {attempts:?}"
            );
        }
        assert_eq!(
            attempts.len(),
            1,
            "job {job} ran more than once: {attempts:?}"
        );
    }
    let used = fleet.iter().filter(|a| !a.journal().is_empty()).count();
    assert!(used > agents / 2, "only {used} of {agents} agents got work");
}

// ------------------------------------------------------------------ on SQLite

const SQLITE: Backend = Backend { env: Vec::new() };

#[tokio::test]
async fn on_sqlite_a_job_runs_and_its_output_arrives_in_order() {
    a_job_runs_and_its_output_arrives_in_order(&SQLITE).await;
}

#[tokio::test]
async fn on_sqlite_a_failing_script_fails_the_job_with_its_exit_code() {
    a_failing_script_fails_the_job_with_its_exit_code(&SQLITE).await;
}

#[tokio::test]
async fn on_sqlite_megabytes_of_output_arrive_complete_and_in_order() {
    // About 12.9 MB: 50 chunks of 256 KiB.
    megabytes_of_output_arrive_complete_and_in_order(&SQLITE, 1_000_000).await;
}

#[tokio::test]
async fn on_sqlite_a_secret_never_appears_in_the_log_the_api_or_the_database() {
    let (rig, secret) = a_secret_never_appears_in_the_log_or_the_api(&SQLITE).await;
    // The job is final, so its secret is gone from the database and its log too.
    let server = rig.server;
    server.stop().await;
    for entry in std::fs::read_dir(&rig.data).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} still holds the secret",
            path.display()
        );
    }
}

#[tokio::test]
async fn on_sqlite_cancel_stops_the_whole_process_tree() {
    cancel_stops_the_whole_process_tree(&SQLITE).await;
}

#[tokio::test]
async fn on_sqlite_a_job_past_its_timeout_is_timed_out() {
    a_job_past_its_timeout_is_timed_out(&SQLITE).await;
}

#[tokio::test]
async fn on_sqlite_an_agent_told_to_stop_finishes_its_job_first() {
    an_agent_told_to_stop_finishes_its_job_first(&SQLITE).await;
}

#[tokio::test]
async fn on_sqlite_a_server_crash_loses_nothing_and_every_job_finishes() {
    a_server_crash_loses_nothing_and_every_job_finishes(&SQLITE).await;
}

#[tokio::test]
async fn on_sqlite_sixteen_agents_run_two_thousand_jobs_each_exactly_once() {
    let _heavy = one_heavy_story_at_a_time().await;
    many_agents_run_many_jobs_each_exactly_once(&SQLITE, 16, 2000).await;
}

#[tokio::test]
async fn on_sqlite_a_failed_job_retried_by_its_owner_runs_again_and_keeps_both_attempts() {
    a_failed_job_retried_by_its_owner_runs_again_and_keeps_both_attempts(&SQLITE).await;
}

#[tokio::test]
async fn on_sqlite_a_job_lost_with_its_agent_is_retried_by_another() {
    a_job_lost_with_its_agent_is_retried_by_another(&SQLITE).await;
}
