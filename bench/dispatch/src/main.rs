//! `runway-bench-dispatch`: the agent-protocol benchmarks of `make bench`.
//!
//! It plays agents (and the user who submits jobs) against a running `runway serve`
//! on loopback, through the real HTTP API and agent protocol, and prints one JSON
//! object per run on stdout. Progress and the first few error messages go to
//! stderr. `bench/run.sh` collects the lines in `target/bench/agent/` and
//! `bench/report.py` turns them into BENCHMARKS.md; this program only measures.
//!
//! | subcommand | what it measures |
//! |---|---|
//! | `dispatch` | one agent of capacity 1 long-polls `POST /agent/v1/jobs/claim?wait=20`. Once that claim has been sent and has had `--settle-ms` to reach the server and park, the driver submits one job (`POST /api/v1/jobs`); the sample is from just before the submit is sent to the moment the claim's 200 with *that* job has been read. Then `start` and `finish` (empty log) free the agent, and the next claim goes out. `--jobs` samples, one at a time. |
//! | `submit` | submits `--jobs` jobs over `--connections` concurrent loops: the backlog for `lifecycle`. |
//! | `lifecycle` | `--agents` agents of capacity 1, each a loop of `claim?wait=0` → `start` → one log chunk (`PUT logs?seq=0&offset=0`) → `finish` with its length and CRC-32, until its claim comes back 204 (the backlog is drained). Jobs/s from the first claim to the last finish, and each call's latency. |
//! | `logs` | `--jobs` agents claim and start one job each, then all stream `--mib` MiB at once in `--chunk-kib` chunks, one chunk in flight per job (as `runway-agent` sends them), and finish with the byte count and CRC-32. MB/s from the first chunk to the last finish, and the server's VmRSS from `/proc/PID/status` every `--rss-every-ms`. |
//!
//! Every run uses an admin session (`RUNWAY_BENCH_ADMIN_TOKEN`, or it signs in with
//! `RUNWAY_ADMIN_PASSWORD`), makes a registration token and registers its own
//! agents (each sends one heartbeat, as a real agent does on start). CPU time is
//! read from `/proc` as raw clock ticks (the server's with `--server-pid`, the
//! driver's own, and the whole machine's busy time) and left for the report to
//! divide by `CLK_TCK`.
//!
//! Honesty rules: only a loopback `--server` is accepted; every loop is bounded by a
//! count and by `--deadline` seconds; an unexpected answer is counted in the run's
//! `errors` (by call, status and error code) and never silently dropped, and a
//! dispatch sample is kept only if the claimed job is the one just submitted.
//!
//! The runtime is tokio's current-thread one: the driver shares two cores with the
//! server under test, and one thread is plenty for a few dozen connections (its CPU
//! time is in every result, so that can be checked).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "Agent-protocol benchmarks against a running `runway serve` on loopback")]
struct Cli {
    /// The server, `http://127.0.0.1:PORT` (loopback only).
    #[arg(long)]
    server: String,
    /// An admin session token (`rws_…`) to use instead of signing in. Every sign-in
    /// costs the server an argon2id hash, whose memory shows in its RSS, so a script
    /// running several benchmarks against one server signs in once.
    #[arg(long, env = "RUNWAY_BENCH_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The admin password the server was started with, to sign in without a token.
    #[arg(long, env = "RUNWAY_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// The server's PID: its CPU time (and, for `logs`, its RSS) come from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Stop after this many seconds whatever is left (the run is marked incomplete).
    #[arg(long, default_value_t = 300)]
    deadline: u64,
    /// Copied into the output: which repetition this is.
    #[arg(long, default_value_t = 1)]
    run: u32,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Submit → claimed by an idle agent that is long-polling, one job at a time.
    Dispatch {
        #[arg(long, default_value_t = 1000)]
        jobs: u32,
        /// How long the claim gets to reach the server before the job is submitted.
        #[arg(long, default_value_t = 20)]
        settle_ms: u64,
    },
    /// Submit a backlog of jobs (for `lifecycle`).
    Submit {
        #[arg(long)]
        jobs: u32,
        #[arg(long, default_value_t = 8)]
        connections: u32,
    },
    /// Concurrent agents draining the backlog: claim → start → one chunk → finish.
    Lifecycle {
        #[arg(long, default_value_t = 32)]
        agents: u32,
        /// The backlog's size: the run is complete when this many jobs finished.
        #[arg(long)]
        expect: u32,
        /// The one log chunk's size.
        #[arg(long, default_value_t = 4096)]
        chunk_bytes: usize,
    },
    /// Jobs streaming their logs at once.
    Logs {
        #[arg(long, default_value_t = 16)]
        jobs: u32,
        /// Log size of each job.
        #[arg(long, default_value_t = 32)]
        mib: u32,
        #[arg(long, default_value_t = 256)]
        chunk_kib: usize,
        #[arg(long, default_value_t = 100)]
        rss_every_ms: u64,
    },
}

/// The bytes every log chunk carries: built once, so a request body is a
/// `&'static [u8]` and sending it copies nothing in the driver.
static CHUNK: OnceLock<Vec<u8>> = OnceLock::new();

fn chunk() -> &'static [u8] {
    CHUNK.get().map_or(&[], Vec::as_slice)
}

/// Printable lines of 80 bytes, like a build log.
fn make_chunk(len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 ";
    (0..len)
        .map(|i| {
            if i % 80 == 79 {
                b'\n'
            } else {
                ALPHABET[i % ALPHABET.len()]
            }
        })
        .collect()
}

/// Unexpected answers, by `call: status code`. Shared by every task of a run.
#[derive(Debug, Default, Clone)]
struct Errors(Arc<Mutex<BTreeMap<String, u64>>>);

impl Errors {
    /// How many distinct messages are echoed to stderr (all are counted).
    const ECHO: u64 = 5;

    fn note(&self, what: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(what.to_owned()).or_insert(0);
        *n += 1;
        if *n <= Self::ECHO {
            eprintln!("bench-dispatch: {what}");
        }
    }

    fn to_json(&self) -> Value {
        json!(*self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn total(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }
}

/// The server's HTTP API, as the driver uses it.
#[derive(Debug, Clone)]
struct Api {
    http: Client,
    base: String,
}

/// A job as its agent holds it.
#[derive(Debug)]
struct Held {
    id: String,
    token: String,
}

impl Api {
    fn new(base: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(base).map_err(|e| format!("--server {base}: {e}"))?;
        let host = url.host_str().unwrap_or("");
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if url.scheme() != "http" || !loopback {
            return Err(format!(
                "--server {base}: only http:// on a loopback address is benchmarked"
            ));
        }
        let http = Client::builder()
            .tcp_nodelay(true)
            // Above the longest long poll (20 s), so a stall shows as an error, not a hang.
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    fn post(&self, path: &str, token: &str) -> RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    /// Sends, reads the whole body, and turns anything but a 2xx into
    /// `"CALL: STATUS CODE"` (the error envelope's code), the key it is counted by.
    async fn send(what: &str, req: RequestBuilder) -> Result<(StatusCode, Value), String> {
        let resp = req.send().await.map_err(|e| transport(what, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| transport(what, &e))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok((status, body))
        } else {
            let code = body["error"]["code"].as_str().unwrap_or("(no envelope)");
            Err(format!("{what}: {} {code}", status.as_u16()))
        }
    }

    async fn sign_in(&self, password: &str) -> Result<String, String> {
        let req = self
            .http
            .post(format!("{}/api/v1/auth/sessions", self.base))
            .json(&json!({"username": "admin", "password": password, "device_name": "bench-dispatch"}));
        let (_, body) = Self::send("sign-in", req).await?;
        string(&body, "token", "sign-in")
    }

    async fn registration_token(&self, admin: &str) -> Result<String, String> {
        let req = self
            .post("/api/v1/registration-tokens", admin)
            .json(&json!({
                "description": "runway-bench-dispatch"
            }));
        let (_, body) = Self::send("registration token", req).await?;
        string(&body, "token", "registration token")
    }

    /// Registers an agent and sends its first heartbeat; returns its `rwa_` token.
    async fn register(
        &self,
        registration: &str,
        name: &str,
        capacity: u32,
    ) -> Result<String, String> {
        let req = self
            .post("/agent/v1/register", registration)
            .json(&json!({"name": name, "capacity": capacity}));
        let (_, body) = Self::send("register", req).await?;
        let token = string(&body, "token", "register")?;
        Self::send("heartbeat", self.post("/agent/v1/heartbeat", &token)).await?;
        Ok(token)
    }

    async fn submit(&self, admin: &str, name: &str) -> Result<String, String> {
        let req = self
            .post("/api/v1/jobs", admin)
            .json(&json!({"name": name, "script": "true"}));
        let (_, body) = Self::send("submit", req).await?;
        string(&body, "id", "submit")
    }

    async fn claim(&self, agent: &str, wait: u32) -> Result<Option<Held>, String> {
        let req = self.post(&format!("/agent/v1/jobs/claim?wait={wait}"), agent);
        let (status, body) = Self::send("claim", req).await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(Held {
            id: body["job"]["id"]
                .as_str()
                .ok_or("claim: 200 without job.id")?
                .to_owned(),
            token: string(&body, "job_token", "claim")?,
        }))
    }

    async fn start(&self, job: &Held) -> Result<(), String> {
        let req = self.post(&format!("/agent/v1/jobs/{}/start", job.id), &job.token);
        Self::send("start", req).await.map(drop)
    }

    async fn put_log(
        &self,
        job: &Held,
        seq: u64,
        offset: u64,
        data: &'static [u8],
    ) -> Result<(), String> {
        let req = self
            .http
            .put(format!(
                "{}/agent/v1/jobs/{}/logs?seq={seq}&offset={offset}",
                self.base, job.id
            ))
            .bearer_auth(&job.token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(data);
        let (_, body) = Self::send("logs", req).await?;
        let want = offset + data.len() as u64;
        match body["next_offset"].as_u64() {
            Some(n) if n == want => Ok(()),
            other => Err(format!("logs: next_offset {other:?}, expected {want}")),
        }
    }

    async fn finish(&self, job: &Held, log_bytes: u64, log_crc32: u32) -> Result<(), String> {
        let req = self
            .post(&format!("/agent/v1/jobs/{}/finish", job.id), &job.token)
            .json(&json!({"result": "succeeded", "exit_code": 0,
                          "log_bytes": log_bytes, "log_crc32": log_crc32}));
        let (status, body) = Self::send("finish", req).await?;
        if status == StatusCode::OK && body["status"] == "succeeded" {
            Ok(())
        } else {
            Err(format!("finish: {} {}", status.as_u16(), body))
        }
    }
}

fn transport(what: &str, e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout (60 s)"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    format!("{what}: {kind} error")
}

fn string(body: &Value, field: &str, what: &str) -> Result<String, String> {
    body[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{what}: no `{field}` in the answer"))
}

/// CPU ticks of a process so far, user and system, from /proc/PID/stat.
fn process_ticks(pid: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the man page; `rest` starts at field 3.
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

/// Busy ticks of the whole machine so far (all but idle and iowait), from /proc/stat.
fn machine_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    Some(f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7)?)
}

fn vm_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU counters at the start of a measured interval.
#[derive(Debug)]
struct Cpu {
    server_pid: Option<u32>,
    server: Option<(u64, u64)>,
    driver: Option<(u64, u64)>,
    machine: Option<u64>,
    at: Instant,
}

impl Cpu {
    fn start(server_pid: Option<u32>) -> Self {
        Self {
            server_pid,
            server: server_pid.and_then(|p| process_ticks(&p.to_string())),
            driver: process_ticks("self"),
            machine: machine_ticks(),
            at: Instant::now(),
        }
    }

    /// Ticks used since `start`, and the wall time, as JSON. The server's are also
    /// split into user and system (kernel) time.
    fn since(&self) -> Value {
        let d = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| b.saturating_sub(a));
        let server = self.server_pid.and_then(|p| process_ticks(&p.to_string()));
        let total = |t: Option<(u64, u64)>| t.map(|(u, s)| u + s);
        json!({
            "server_ticks": d(total(self.server), total(server)),
            "server_user_ticks": d(self.server.map(|t| t.0), server.map(|t| t.0)),
            "server_sys_ticks": d(self.server.map(|t| t.1), server.map(|t| t.1)),
            "driver_ticks": d(total(self.driver), total(process_ticks("self"))),
            "machine_ticks": d(self.machine, machine_ticks()),
            "wall_s": self.at.elapsed().as_secs_f64(),
        })
    }
}

/// Latency samples of one kind, in milliseconds.
#[derive(Debug, Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1e3);
    }

    fn extend(&mut self, other: Self) {
        self.0.extend(other.0);
    }

    /// Nearest-rank percentiles, mean and max; with `raw`, every sample too.
    fn summary(&mut self, raw: bool) -> Value {
        self.0.sort_by(f64::total_cmp);
        let n = self.0.len();
        let pct = |p: f64| {
            // Nearest rank: the smallest sample with at least p% of them at or below it.
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            self.0.get(rank.clamp(1, n.max(1)) - 1).copied()
        };
        let mut v = json!({
            "n": n,
            "p50_ms": pct(50.0),
            "p90_ms": pct(90.0),
            "p99_ms": pct(99.0),
            "max_ms": self.0.last(),
            "mean_ms": if n == 0 { None } else { Some(self.0.iter().sum::<f64>() / n as f64) },
        });
        if raw {
            v["samples_ms"] = json!(
                self.0
                    .iter()
                    .map(|x| (x * 1e3).round() / 1e3)
                    .collect::<Vec<_>>()
            );
        }
        v
    }
}

/// Registers `n` agents of capacity 1 named `PREFIX-i`; returns their tokens.
async fn agents(api: &Api, admin: &str, prefix: &str, n: u32) -> Result<Vec<String>, String> {
    let registration = api.registration_token(admin).await?;
    let mut tokens = Vec::new();
    for i in 0..n {
        tokens.push(
            api.register(&registration, &format!("{prefix}-{i}"), 1)
                .await?,
        );
    }
    Ok(tokens)
}

fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    // A failed write to stdout (a closed pipe) leaves run.sh without the line, which
    // it reports; there is nothing better to do here.
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => Err(format!("tokio runtime: {e}")),
    };
    match result {
        Ok(v) => {
            emit(&v);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-dispatch: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<Value, String> {
    let api = Api::new(&cli.server)?;
    let admin = match (&cli.admin_token, &cli.admin_password) {
        (Some(token), _) => token.clone(),
        (None, Some(password)) => api.sign_in(password).await?,
        (None, None) => return Err("set RUNWAY_BENCH_ADMIN_TOKEN or RUNWAY_ADMIN_PASSWORD".into()),
    };
    let deadline = Instant::now() + Duration::from_secs(cli.deadline);
    let errors = Errors::default();
    let mut out = match cli.bench {
        Bench::Dispatch { jobs, settle_ms } => {
            let agent = agents(&api, &admin, &format!("dispatch-r{}", cli.run), 1)
                .await?
                .remove(0);
            dispatch(
                &api,
                &admin,
                &agent,
                jobs,
                Duration::from_millis(settle_ms),
                deadline,
                &errors,
                cli.server_pid,
            )
            .await
        }
        Bench::Submit { jobs, connections } => {
            submit(&api, &admin, jobs, connections, deadline, &errors).await
        }
        Bench::Lifecycle {
            agents: n,
            expect,
            chunk_bytes,
        } => {
            CHUNK.get_or_init(|| make_chunk(chunk_bytes));
            let tokens = agents(&api, &admin, &format!("lifecycle-r{}", cli.run), n).await?;
            lifecycle(&api, tokens, expect, deadline, &errors, cli.server_pid).await
        }
        Bench::Logs {
            jobs,
            mib,
            chunk_kib,
            rss_every_ms,
        } => {
            CHUNK.get_or_init(|| make_chunk(chunk_kib * 1024));
            let tokens = agents(&api, &admin, &format!("logs-r{}", cli.run), jobs).await?;
            let per_job = u64::from(mib) * 1024 * 1024;
            logs(
                &api,
                &admin,
                tokens,
                per_job,
                Duration::from_millis(rss_every_ms),
                deadline,
                &errors,
                cli.server_pid,
            )
            .await
        }
    };
    out["run"] = json!(cli.run);
    out["errors"] = errors.to_json();
    out["error_count"] = json!(errors.total());
    Ok(out)
}

/// Start and finish with an empty log: frees the agent's capacity.
async fn free(api: &Api, job: &Held, errors: &Errors) {
    if let Err(e) = api.start(job).await {
        errors.note(&e);
        return;
    }
    if let Err(e) = api.finish(job, 0, 0).await {
        errors.note(&e);
    }
}

/// After a failed or mismatched claim: claims and frees whatever is still queued
/// (at most a few jobs), so the next sample pairs a submit with its own claim again.
async fn drain(api: &Api, agent: &str, errors: &Errors) {
    for _ in 0..10 {
        match api.claim(agent, 0).await {
            Ok(Some(job)) => free(api, &job, errors).await,
            Ok(None) => return,
            Err(e) => errors.note(&e),
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one flat call site per benchmark"
)]
async fn dispatch(
    api: &Api,
    admin: &str,
    agent: &str,
    jobs: u32,
    settle: Duration,
    deadline: Instant,
    errors: &Errors,
    server_pid: Option<u32>,
) -> Value {
    let mut latency = Samples::default();
    let mut submit_latency = Samples::default();
    let cpu = Cpu::start(server_pid);
    let mut attempted = 0;
    for _ in 0..jobs {
        if Instant::now() >= deadline {
            break;
        }
        attempted += 1;
        let claim = tokio::spawn({
            let (api, agent) = (api.clone(), agent.to_owned());
            async move {
                let r = api.claim(&agent, 20).await;
                (r, Instant::now())
            }
        });
        tokio::time::sleep(settle).await;
        let t0 = Instant::now();
        let submitted = api.submit(admin, "bench-dispatch").await;
        let submit_took = t0.elapsed();
        let id = match submitted {
            Ok(id) => id,
            Err(e) => {
                errors.note(&e);
                claim.abort();
                continue;
            }
        };
        let Ok((claimed, at)) = claim.await else {
            errors.note("claim: the task panicked");
            continue;
        };
        match claimed {
            Ok(Some(job)) => {
                if job.id == id {
                    latency.push(at.saturating_duration_since(t0));
                    submit_latency.push(submit_took);
                    free(api, &job, errors).await;
                } else {
                    errors.note("claim: got another job than the one just submitted");
                    free(api, &job, errors).await;
                    drain(api, agent, errors).await;
                }
            }
            Ok(None) => {
                errors.note("claim: 204, no job within 20 s of a submit");
                drain(api, agent, errors).await;
            }
            Err(e) => {
                errors.note(&e);
                drain(api, agent, errors).await;
            }
        }
    }
    json!({
        "bench": "dispatch",
        "jobs": jobs,
        "attempted": attempted,
        "settle_ms": settle.as_millis() as u64,
        "complete": latency.0.len() == jobs as usize,
        "submit_to_claim": latency.summary(true),
        "submit_response": submit_latency.summary(false),
        "cpu": cpu.since(),
    })
}

async fn submit(
    api: &Api,
    admin: &str,
    jobs: u32,
    connections: u32,
    deadline: Instant,
    errors: &Errors,
) -> Value {
    let cpu = Cpu::start(None);
    let next = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicU32::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (api, admin, next, done, errors) = (
            api.clone(),
            admin.to_owned(),
            next.clone(),
            done.clone(),
            errors.clone(),
        );
        set.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < jobs && Instant::now() < deadline {
                match api.submit(&admin, "bench-lifecycle").await {
                    Ok(_) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.note(&e),
                }
            }
        });
    }
    set.join_all().await;
    json!({
        "bench": "submit",
        "jobs": jobs,
        "submitted": done.load(Ordering::Relaxed),
        "connections": connections,
        "cpu": cpu.since(),
    })
}

/// What one agent loop of `lifecycle` measured.
#[derive(Debug, Default)]
struct AgentLoop {
    jobs: u64,
    claim: Samples,
    start: Samples,
    logs: Samples,
    finish: Samples,
    job: Samples,
    last_finish: Option<Instant>,
}

async fn lifecycle_agent(api: Api, agent: String, deadline: Instant, errors: Errors) -> AgentLoop {
    let mut m = AgentLoop::default();
    let data = chunk();
    let len = data.len() as u64;
    let crc = crc32fast::hash(data);
    while Instant::now() < deadline {
        let t = Instant::now();
        let job = match api.claim(&agent, 0).await {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(e) => {
                errors.note(&e);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        m.claim.push(t.elapsed());
        let steps = async {
            let s = Instant::now();
            api.start(&job).await?;
            m.start.push(s.elapsed());
            let s = Instant::now();
            api.put_log(&job, 0, 0, data).await?;
            m.logs.push(s.elapsed());
            let s = Instant::now();
            api.finish(&job, len, crc).await?;
            m.finish.push(s.elapsed());
            Ok::<(), String>(())
        };
        match steps.await {
            Ok(()) => {
                m.jobs += 1;
                m.job.push(t.elapsed());
                m.last_finish = Some(Instant::now());
            }
            // The job is left to its lease; the agent goes on with the next one.
            Err(e) => errors.note(&e),
        }
    }
    m
}

async fn lifecycle(
    api: &Api,
    tokens: Vec<String>,
    expect: u32,
    deadline: Instant,
    errors: &Errors,
    server_pid: Option<u32>,
) -> Value {
    let agents = tokens.len();
    let cpu = Cpu::start(server_pid);
    let begin = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for token in tokens {
        set.spawn(lifecycle_agent(
            api.clone(),
            token,
            deadline,
            errors.clone(),
        ));
    }
    let mut all = AgentLoop::default();
    let mut per_agent = Vec::new();
    for m in set.join_all().await {
        per_agent.push(m.jobs);
        all.jobs += m.jobs;
        all.claim.extend(m.claim);
        all.start.extend(m.start);
        all.logs.extend(m.logs);
        all.finish.extend(m.finish);
        all.job.extend(m.job);
        all.last_finish = all.last_finish.max(m.last_finish);
    }
    let cpu = cpu.since();
    let elapsed = all
        .last_finish
        .map_or(0.0, |end| end.duration_since(begin).as_secs_f64());
    if all.jobs != u64::from(expect) {
        errors.note(&format!(
            "lifecycle: {} jobs finished, {expect} expected",
            all.jobs
        ));
    }
    json!({
        "bench": "lifecycle",
        "agents": agents,
        "expected": expect,
        "jobs": all.jobs,
        "complete": all.jobs == u64::from(expect),
        "chunk_bytes": chunk().len(),
        "elapsed_s": elapsed,
        "jobs_per_s": if elapsed > 0.0 { all.jobs as f64 / elapsed } else { 0.0 },
        "jobs_per_agent_min": per_agent.iter().min(),
        "jobs_per_agent_max": per_agent.iter().max(),
        "claim": all.claim.summary(false),
        "start": all.start.summary(false),
        "logs": all.logs.summary(false),
        "finish": all.finish.summary(false),
        "job": all.job.summary(false),
        "cpu": cpu,
    })
}

/// What one streaming job of `logs` measured.
#[derive(Debug, Default)]
struct Stream {
    bytes: u64,
    puts: Samples,
    finished: Option<Instant>,
}

async fn logs_job(
    api: Api,
    agent: String,
    per_job: u64,
    crc: u32,
    go: Arc<tokio::sync::Barrier>,
    deadline: Instant,
    errors: Errors,
) -> Stream {
    let mut s = Stream::default();
    let held = async {
        let job = api
            .claim(&agent, 5)
            .await?
            .ok_or("claim: 204 with jobs queued")?;
        api.start(&job).await?;
        Ok::<Held, String>(job)
    };
    let held = held.await;
    // Every task reaches the barrier, or the others would wait for ever.
    go.wait().await;
    let job = match held {
        Ok(job) => job,
        Err(e) => {
            errors.note(&e);
            return s;
        }
    };
    let data = chunk();
    let mut seq = 0;
    while s.bytes < per_job {
        if Instant::now() >= deadline {
            errors.note("logs: deadline reached while streaming");
            return s;
        }
        let t = Instant::now();
        if let Err(e) = api.put_log(&job, seq, s.bytes, data).await {
            errors.note(&e);
            return s;
        }
        s.puts.push(t.elapsed());
        s.bytes += data.len() as u64;
        seq += 1;
    }
    match api.finish(&job, s.bytes, crc).await {
        Ok(()) => s.finished = Some(Instant::now()),
        Err(e) => errors.note(&e),
    }
    s
}

#[expect(
    clippy::too_many_arguments,
    reason = "one flat call site per benchmark"
)]
async fn logs(
    api: &Api,
    admin: &str,
    tokens: Vec<String>,
    per_job: u64,
    rss_every: Duration,
    deadline: Instant,
    errors: &Errors,
    server_pid: Option<u32>,
) -> Value {
    let n = tokens.len();
    let data = chunk();
    let chunks = per_job.div_ceil(data.len() as u64);
    let per_job = chunks * data.len() as u64;
    let mut hasher = crc32fast::Hasher::new();
    for _ in 0..chunks {
        hasher.update(data);
    }
    let crc = hasher.finalize();
    for _ in 0..n {
        if let Err(e) = api.submit(admin, "bench-logs").await {
            errors.note(&e);
        }
    }
    let rss_before = server_pid.and_then(vm_rss_kb);
    let go = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut set = tokio::task::JoinSet::new();
    for token in tokens {
        set.spawn(logs_job(
            api.clone(),
            token,
            per_job,
            crc,
            go.clone(),
            deadline,
            errors.clone(),
        ));
    }
    go.wait().await;
    let cpu = Cpu::start(server_pid);
    let begin = Instant::now();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut rss: Vec<(f64, u64)> = Vec::new();
        let mut tick = tokio::time::interval(rss_every);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Some(kb) = server_pid.and_then(vm_rss_kb) {
                        rss.push((begin.elapsed().as_secs_f64(), kb));
                    }
                }
                _ = &mut stopped => break rss,
            }
        }
    });
    let mut bytes = 0;
    let mut puts = Samples::default();
    let mut end: Option<Instant> = None;
    let mut finished = 0;
    for s in set.join_all().await {
        bytes += s.bytes;
        puts.extend(s.puts);
        if let Some(t) = s.finished {
            finished += 1;
            end = end.max(Some(t));
        }
    }
    let cpu = cpu.since();
    let _ = stop.send(());
    let rss = sampler.await.unwrap_or_default();
    let elapsed = end.map_or(0.0, |e| e.duration_since(begin).as_secs_f64());
    // Steady: the median of the samples taken in the second half of the stream.
    let mut steady: Vec<u64> = rss
        .iter()
        .filter(|(t, _)| *t >= elapsed / 2.0 && *t <= elapsed)
        .map(|(_, kb)| *kb)
        .collect();
    steady.sort_unstable();
    json!({
        "bench": "logs",
        "jobs": n,
        "finished": finished,
        "complete": finished == n,
        "bytes_per_job": per_job,
        "chunk_bytes": data.len(),
        "bytes": bytes,
        "elapsed_s": elapsed,
        "mb_per_s": if elapsed > 0.0 { bytes as f64 / 1e6 / elapsed } else { 0.0 },
        "put": puts.summary(false),
        "rss_before_kb": rss_before,
        "rss_peak_kb": rss.iter().map(|(_, kb)| *kb).max(),
        "rss_steady_kb": steady.get(steady.len() / 2),
        "rss_samples": rss.len(),
        "rss_after_kb": server_pid.and_then(vm_rss_kb),
        "cpu": cpu,
    })
}
