//! The agent as a whole: start-up, the heartbeat task, the claim loops, signals
//! and the way out.
//!
//! **Start-up.** With a saved token the agent calls `GET config`, which both
//! checks the token (a 401 is fatal here, before any job is claimed) and fetches
//! the timings. Without one it registers and saves the token first.
//!
//! **Tasks.** One heartbeat task, and `capacity` claim loops, each of which runs
//! the job it claims to the end before claiming again, so "running jobs" is
//! "claim loops busy" and the agent never holds more than its capacity.
//!
//! **Modes** ([`Mode`]) drive the way out. The first SIGTERM or Ctrl-C, or the
//! server's `drain`, moves to `Drain`: claim loops end (an in-flight long poll is
//! dropped) once their job, if any, is done. A second signal or the server's
//! `disconnect` moves to `Stop`, which also asks every running job to stop; the
//! agent still waits for their results to be accepted, which takes as long as the
//! server is unreachable, so a third signal moves to `Stop(Lost)`: jobs are killed
//! at once and nothing more is reported. A rejected agent token does the same and
//! the process exits 1. Otherwise, when every claim loop has ended, the agent calls
//! `disconnect` and exits 0.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use runway_protocol::{AgentAction, AgentConfig, RegisterRequest, Timings};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::client::{AgentApi, Claim, Client, ClientError, ServerMessage};
use crate::config::Config;
use crate::control::{JobTable, Mode, Stop};
use crate::state::{SavedAgent, StateDir, create_private_dir};
use crate::{AgentError, Chain, heartbeat, runner};

/// What every task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) agent: AgentApi,
    pub(crate) state: StateDir,
    /// The latest timings from any answer (register, config, heartbeat, claim).
    pub(crate) timings: watch::Sender<Timings>,
    pub(crate) mode: watch::Sender<Mode>,
    pub(crate) jobs: JobTable,
}

impl Shared {
    /// Moves the agent's mode on (see [`Mode::then`]); entering `Stop` stops every
    /// running job.
    pub(crate) fn set_mode(&self, requested: Mode) {
        let mut entered = None;
        self.mode.send_if_modified(|mode| {
            let next = mode.then(requested);
            let changed = next != *mode;
            if changed {
                *mode = next;
                entered = Some(next);
            }
            changed
        });
        match entered {
            None => {}
            Some(Mode::Run) => tracing::info!("claiming jobs"),
            Some(Mode::Pause) => tracing::info!("paused by the server: claiming no new jobs"),
            Some(Mode::Drain) => {
                tracing::info!(
                    "draining: claiming no new jobs, exiting once the running ones are done"
                );
            }
            Some(Mode::Stop(stop)) => {
                tracing::info!(?stop, "stopping the running jobs, then exiting");
                self.jobs.stop_all(stop);
            }
        }
    }

    /// The fatal error for a rejected agent token.
    pub(crate) fn token_rejected(&self, detail: ServerMessage) -> AgentError {
        AgentError::TokenRejected {
            path: self.state.agent_file(),
            detail,
        }
    }
}

/// Runs the agent until it is told to leave.
pub(crate) async fn run(config: Config) -> Result<(), AgentError> {
    let mut signals = Signals::new().map_err(AgentError::Signals)?;
    let state = StateDir::open(&config.state_dir)?;
    create_private_dir(&config.work_dir).map_err(|source| AgentError::WorkDir {
        path: config.work_dir.clone(),
        source,
    })?;
    forget_old_attempts(&state, &config.work_dir);
    let client = Client::new(config.server_url.clone()).map_err(AgentError::Client)?;
    let connected = tokio::select! {
        connected = connect(&client, &state, &config) => connected?,
        signal = signals.next() => {
            tracing::info!(signal, "stopped before connecting to the server");
            return Ok(());
        }
    };
    let shared = Arc::new(Shared {
        config,
        agent: connected.agent,
        state,
        timings: watch::channel(connected.timings).0,
        mode: watch::channel(Mode::Run).0,
        jobs: JobTable::default(),
    });
    shared.set_mode(Mode::from_action(connected.action));
    serve(shared, connected.capacity, &mut signals).await
}

/// The heartbeat and the claim loops, until every loop has ended.
async fn serve(
    shared: Arc<Shared>,
    capacity: u32,
    signals: &mut Signals,
) -> Result<(), AgentError> {
    let mut heartbeat = tokio::spawn({
        let shared = Arc::clone(&shared);
        async move { heartbeat::run(&shared).await }
    });
    let mut loops = JoinSet::new();
    for slot in 0..capacity {
        loops.spawn(claim_loop(Arc::clone(&shared), slot));
    }
    tracing::info!(capacity, "waiting for jobs");

    let mut signals_seen = 0u32;
    let mut heartbeat_running = true;
    let mut fatal: Option<AgentError> = None;
    let mut on_fatal = |err: AgentError, shared: &Shared| {
        fatal.get_or_insert(err);
        shared.set_mode(Mode::Stop(Stop::Lost));
    };
    loop {
        tokio::select! {
            signal = signals.next() => {
                signals_seen += 1;
                if signals_seen == 1 {
                    tracing::info!(
                        signal,
                        "finishing the running jobs, then exiting (send it again to cancel them)"
                    );
                    shared.set_mode(Mode::Drain);
                } else if signals_seen == 2 {
                    tracing::warn!(
                        signal,
                        "canceling the running jobs (send it again to exit without reporting them)"
                    );
                    shared.set_mode(Mode::Stop(Stop::Shutdown));
                } else {
                    tracing::warn!(signal, "killing the running jobs and exiting without reporting them");
                    shared.set_mode(Mode::Stop(Stop::Lost));
                }
            }
            joined = loops.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(err))) => on_fatal(err, &shared),
                Some(Err(err)) => {
                    tracing::error!(error = %err, "a claim loop failed; draining");
                    shared.set_mode(Mode::Drain);
                }
            },
            joined = &mut heartbeat, if heartbeat_running => {
                heartbeat_running = false;
                match joined {
                    Ok(Err(err)) => on_fatal(err, &shared),
                    Ok(Ok(())) => {}
                    Err(err) => {
                        tracing::error!(error = %err, "the heartbeat task failed; draining");
                        shared.set_mode(Mode::Drain);
                    }
                }
            }
        }
    }
    heartbeat.abort();
    if let Some(err) = fatal {
        return Err(err);
    }
    match shared.agent.disconnect().await {
        Ok(()) => tracing::info!("disconnected"),
        Err(err) => {
            tracing::warn!(error = %Chain(&err), "cannot tell the server that the agent is leaving");
        }
    }
    Ok(())
}

/// One claim loop: claim, run the job, repeat, until the agent leaves.
async fn claim_loop(shared: Arc<Shared>, slot: u32) -> Result<(), AgentError> {
    let mut mode = shared.mode.subscribe();
    let mut backoff = Backoff::new();
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Run => {}
            Mode::Pause => {
                if mode.changed().await.is_err() {
                    return Ok(());
                }
                continue;
            }
            Mode::Drain | Mode::Stop(_) => return Ok(()),
        }
        let wait = shared.timings.borrow().claim_wait_max_seconds;
        // A pause lets an in-flight claim finish (a job it brings is run); leaving
        // drops it, so a shutdown is not held up by a 20-second long poll.
        let claimed = tokio::select! {
            claimed = shared.agent.claim(wait) => claimed,
            () = leaving(&mut mode) => return Ok(()),
        };
        let pause = match claimed {
            Ok(Claim::Job(claim)) => {
                backoff.reset();
                runner::run(&shared, *claim).await;
                Duration::ZERO
            }
            Ok(Claim::Empty { poll_interval }) => {
                backoff.reset();
                poll_interval.unwrap_or_else(|| {
                    Duration::from_secs(shared.timings.borrow().poll_interval_seconds.into())
                })
            }
            Err(ClientError::AgentTokenRejected(detail)) => {
                return Err(shared.token_rejected(detail));
            }
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::error!(
                    slot,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %Chain(&err),
                    "claim failed"
                );
                delay
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = leaving(&mut mode) => return Ok(()),
            }
        }
    }
}

/// Resolves once the mode says claim loops should end.
async fn leaving(mode: &mut watch::Receiver<Mode>) {
    if mode.wait_for(|m| m.is_leaving()).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What start-up learned.
#[derive(Debug)]
struct Connected {
    agent: AgentApi,
    timings: Timings,
    action: AgentAction,
    capacity: u32,
}

/// Resumes as the saved agent, or registers (first start).
async fn connect(
    client: &Client,
    state: &StateDir,
    config: &Config,
) -> Result<Connected, AgentError> {
    if let Some(saved) = state.load_agent()? {
        if saved.server_url != config.server_url.as_str() {
            tracing::warn!(
                saved = %saved.server_url,
                configured = %config.server_url,
                "the saved agent token was issued for another server URL"
            );
        }
        let agent = client.agent(saved.token);
        let remote = match agent.config().await {
            Ok(remote) => remote,
            Err(ClientError::AgentTokenRejected(detail)) => {
                return Err(AgentError::TokenRejected {
                    path: state.agent_file(),
                    detail,
                });
            }
            Err(err) => return Err(AgentError::Client(err)),
        };
        warn_about_local_changes(config, &remote);
        tracing::info!(
            agent.id = %remote.agent_id,
            agent.name = %remote.name,
            queue = %remote.queue,
            "resuming as the saved agent"
        );
        return Ok(Connected {
            agent,
            timings: remote.timings,
            action: remote.action,
            capacity: config.capacity.min(remote.capacity).max(1),
        });
    }

    let Some(registration_token) = &config.registration_token else {
        return Err(AgentError::NoRegistrationToken {
            path: state.agent_file(),
        });
    };
    let request = RegisterRequest {
        name: config.name.clone(),
        region: config.region.clone(),
        labels: config.labels.clone(),
        queue: config.queue.clone(),
        capacity: Some(config.capacity),
        version: Some(env!("CARGO_PKG_VERSION").to_owned()),
    };
    tracing::info!(server = %config.server_url, agent.name = %config.name, "registering (first start)");
    let registered = client
        .register(registration_token, &request)
        .await
        .map_err(AgentError::Register)?;
    state.save_agent(&SavedAgent {
        agent_id: registered.agent.id.clone(),
        name: registered.agent.name.clone(),
        server_url: config.server_url.to_string(),
        token: registered.token.clone(),
    })?;
    tracing::info!(
        agent.id = %registered.agent.id,
        path = %state.agent_file().display(),
        "registered; the agent token is saved"
    );
    Ok(Connected {
        agent: client.agent(registered.token),
        timings: registered.timings,
        action: AgentAction::None,
        capacity: config.capacity.min(registered.agent.capacity).max(1),
    })
}

/// Name, labels, queue and capacity are fixed at registration; a changed local
/// setting has no effect, which the operator should hear about.
fn warn_about_local_changes(config: &Config, remote: &AgentConfig) {
    let hint = "it is fixed at registration: remove agent.json and register again to change it";
    if config.name != remote.name {
        tracing::warn!(local = %config.name, registered = %remote.name, "RUNWAY_AGENT_NAME differs from the registered name; {hint}");
    }
    let mut local_labels = config.labels.clone();
    let mut remote_labels = remote.labels.clone();
    local_labels.sort();
    remote_labels.sort();
    if local_labels != remote_labels {
        tracing::warn!(local = ?config.labels, registered = ?remote.labels, "RUNWAY_AGENT_LABELS differs from the registered labels; {hint}");
    }
    if let Some(queue) = &config.queue
        && *queue != remote.queue
    {
        tracing::warn!(local = %queue, registered = %remote.queue, "RUNWAY_AGENT_QUEUE differs from the registered queue; {hint}");
    }
    if config.capacity != remote.capacity {
        tracing::warn!(
            local = config.capacity,
            registered = remote.capacity,
            "RUNWAY_AGENT_CAPACITY differs from the registered capacity; the smaller one applies"
        );
    }
}

/// Spools and workspaces left by attempts of a previous run that did not end
/// cleanly. Those attempts are lost (the server reaps them), so their
/// directories go; only directories the agent itself named are touched, never
/// anything else in the work directory.
fn forget_old_attempts(state: &StateDir, work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(state.jobs_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let workspace = work_dir.join(entry.file_name());
        tracing::info!(attempt = %entry.file_name().to_string_lossy(), "removing what an unfinished attempt of a previous run left");
        for dir in [workspace, entry.path()] {
            match std::fs::remove_dir_all(&dir) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    tracing::warn!(path = %dir.display(), error = %err, "cannot remove it");
                }
                _ => {}
            }
        }
    }
}

/// SIGTERM and SIGINT, as one stream.
#[derive(Debug)]
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
impl Shared {
    /// An agent for tests, with its directories under `root`.
    pub(crate) fn for_tests(server: reqwest::Url, root: &Path, timings: Timings) -> Self {
        let config = Config {
            server_url: server.clone(),
            registration_token: None,
            name: "test-agent".into(),
            region: None,
            labels: vec![],
            queue: None,
            capacity: 1,
            work_dir: root.join("work"),
            state_dir: root.join("state"),
            log_filter: "info".into(),
        };
        create_private_dir(&config.work_dir).unwrap();
        Self {
            agent: Client::new(server)
                .unwrap()
                .agent(runway_protocol::Token("rwa_test".into())),
            state: StateDir::open(&config.state_dir).unwrap(),
            config,
            timings: watch::channel(timings).0,
            mode: watch::channel(Mode::Run).0,
            jobs: JobTable::default(),
        }
    }
}

#[cfg(test)]
mod tests;
