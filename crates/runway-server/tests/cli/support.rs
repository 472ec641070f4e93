//! Spawning and stopping the real binary, and small HTTP helpers.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// How long a server may take to start or stop before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A password good enough for every account rule.
pub const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";

/// The binary, with a clean environment and `dir` as working directory.
pub fn runway(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runway"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("RUNWAY_") {
            cmd.env_remove(name);
        }
    }
    // Inside Lambda the default command would be `lambda`; the tests choose.
    cmd.env_remove("AWS_LAMBDA_RUNTIME_API");
    cmd.current_dir(dir)
        .env("RUNWAY_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs a short command to completion: (status, stdout, stderr).
pub async fn run_to_end(mut cmd: Command, stdin: Option<&str>) -> (ExitStatus, String, String) {
    use tokio::io::AsyncWriteExt as _;
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("runway starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("runway finishes in time")
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Collects a pipe's lines in the background.
fn collect(pipe: impl AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.lock().unwrap().push(line);
        }
    });
}

/// A running `runway serve`.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The HTTP client to use.
    pub http: reqwest::Client,
}

/// Options for [`Server::start`].
#[derive(Debug, Default, Clone)]
pub struct Start {
    pub admin_password: Option<&'static str>,
    pub env: Vec<(&'static str, String)>,
    /// Run `runway --listen …` without the `serve` subcommand (its default).
    pub without_subcommand: bool,
    /// Listen here instead of on a free port (a restart that agents must find again).
    pub listen: Option<String>,
}

impl Server {
    /// Starts `runway serve` on `data_dir` and waits for its listening line.
    pub async fn start(data_dir: &Path, opts: Start) -> Self {
        let mut cmd = runway(data_dir.parent().unwrap());
        if !opts.without_subcommand {
            cmd.arg("serve");
        }
        cmd.arg("--listen")
            .arg(opts.listen.as_deref().unwrap_or("127.0.0.1:0"))
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(p) = opts.admin_password {
            cmd.env("RUNWAY_ADMIN_PASSWORD", p);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("runway starts");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), Arc::clone(&stdout));
        collect(child.stderr.take().unwrap(), Arc::clone(&stderr));
        let base = tokio::time::timeout(PATIENCE, async {
            loop {
                let found = stdout.lock().unwrap().iter().find_map(|l| {
                    l.strip_prefix("Runway listening on ")
                        .map(|rest| rest.trim().to_owned())
                });
                if let Some(base) = found {
                    return base;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "runway exited with {status} before listening; stderr:\n{}",
                        stderr.lock().unwrap().join("\n")
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("runway prints its listening address in time");
        Self {
            child,
            base,
            stdout,
            stderr,
            http: reqwest::Client::new(),
        }
    }

    /// The address the server listens on, `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// Everything printed to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// Everything logged to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM.
    pub async fn sigterm(&self) {
        let pid = self.child.id().expect("still running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit and returns its status; stdout and stderr are
    /// fully collected afterwards.
    pub async fn wait(&mut self) -> ExitStatus {
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("runway exits in time")
            .unwrap();
        // Let the collectors drain the closed pipes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        status
    }

    /// SIGTERM, then wait; asserts a clean exit.
    pub async fn stop(mut self) -> (String, String) {
        self.sigterm().await;
        let status = self.wait().await;
        assert!(
            status.success(),
            "runway exited with {status}; stderr:\n{}",
            self.stderr()
        );
        (self.stdout(), self.stderr())
    }

    /// SIGKILL (`kill -9`), then wait: the process dies at once and runs no shutdown
    /// code at all (no graceful drain, no final checkpoint), as in a crash or an
    /// OOM kill. Asserts that it really was the signal that ended it.
    pub async fn kill(mut self) {
        self.kill_in_place().await;
    }

    /// [`Server::kill`] without giving up the handle (to replace it afterwards).
    pub async fn kill_in_place(&mut self) {
        self.child.kill().await.expect("SIGKILL is delivered");
        let status = self.wait().await;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "runway was not killed by SIGKILL but exited with {status}"
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs in and returns the session token.
    pub async fn sign_in(&self, username: &str, password: &str) -> String {
        let res = self.try_sign_in(username, password).await;
        assert_eq!(res.0, 201, "sign-in of {username} failed: {}", res.1);
        res.1["token"].as_str().unwrap().to_owned()
    }

    /// Tries to sign in: (status, body).
    pub async fn try_sign_in(&self, username: &str, password: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            "/api/v1/auth/sessions",
            None,
            Some(json!({"username": username, "password": password, "device_name": "tests"})),
        )
        .await
    }

    /// One request with an optional bearer token and JSON body: (status, body).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request reaches the server");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }
}

/// A fresh temp directory and a `data` directory path inside it (not yet created).
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    (tmp, data)
}

/// The generated admin password from a first start's stdout, if any.
pub fn generated_password(stdout: &str) -> Option<String> {
    stdout.lines().find_map(|l| {
        l.strip_prefix("Created user `admin` with password: ")
            .map(|p| p.trim().to_owned())
    })
}
