//! # runway-agent
//!
//! The Runway build agent. It runs on a worker machine, registers with a Runway
//! server once, then heartbeats, claims jobs, runs each job's script with
//! `bash -eo pipefail` in a fresh workspace, streams the output back with secrets
//! masked, and reports the result. It speaks only the agent protocol
//! ([`runway_protocol`], whose table of calls is the contract) and depends on no
//! store or server crate.
//!
//! ```text
//!                ┌─ heartbeat task ── metrics, running ids ─► server ─► timings, cancel ids, action
//!  agent::run ───┤
//!  (signals,     └─ claim loop × capacity ── claim ─► runner: one attempt
//!   modes)                                              ├─ bash in its own process group (job)
//!                                                       ├─ pipe reader → mask → cap → spool (logs)
//!                                                       ├─ uploader: spool → PUT logs   (logs)
//!                                                       └─ lease renewal
//! ```
//!
//! ## Where things live
//!
//! | module | what |
//! |---|---|
//! | [`config`] | flags and `RUNWAY_AGENT_*` variables |
//! | `agent` | start-up (register or resume), claim loops, signals, modes, disconnect |
//! | `control` | the agent's mode, per-job stop signals, the table of running attempts |
//! | `heartbeat` | metrics (sysinfo, statvfs) and the heartbeat loop |
//! | `runner` | one attempt: start, run, lease, log, journal, finish |
//! | `job` | the process: environment, pipe, process group, kill sequence |
//! | `logs` | masking, the capped spool file, the chunk uploader |
//! | `client` | HTTP per token tier, retries with backoff, the error envelope |
//! | `state` | the saved token (0600), the journal |
//!
//! ## Design choices
//!
//! - **A current-thread Tokio runtime.** The agent waits on the network and on
//!   child processes; it never computes. One thread keeps the idle footprint to a
//!   few megabytes, and the only blocking work (removing a workspace) goes to
//!   Tokio's blocking pool.
//! - **The server owns the timings.** Every interval and limit comes from the
//!   latest [`runway_protocol::Timings`] the agent received, read where it is used,
//!   so a server-side change applies without restarting agents.
//! - **Retry where the network is, decide where the meaning is.** The client
//!   retries transient failures for every call; callers only see answers with a
//!   meaning (job gone, token rejected, 416, 202).
//! - **A job that is not ours is killed, not reported.** 404/409 (and 401 with a
//!   job token) from any job call stops the process group at once and skips
//!   `finish`; the server has already moved on.
//! - **Nothing is lost while the server is away.** Output is spooled to a file and
//!   uploaded from it, so a down server delays logs and the result but never
//!   blocks or drops a job's output.

#![forbid(unsafe_code)]

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;

pub mod config;

mod agent;
mod backoff;
mod client;
mod control;
mod heartbeat;
mod job;
mod logs;
mod runner;
mod state;
mod telemetry;
#[cfg(test)]
mod testutil;

pub use config::{Args, Config, ConfigError};

use client::{ClientError, ServerMessage};
use state::StateError;

/// Validates the configuration, sets up logging and runs the agent until it is
/// told to leave. Blocks.
///
/// # Errors
/// A configuration that cannot be used, a rejected token (registration or
/// agent), or a state directory that cannot be written; each message says what
/// to do.
pub fn run(args: Args) -> Result<(), AgentError> {
    let config = Config::from_args(args, sysinfo::System::host_name)?;
    telemetry::init(&config.log_filter)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    runtime.block_on(agent::run(config))
}

/// [`run`] for a process that has already set up logging: `runway dev` links the
/// agent in and runs it on a thread of its own, beside the server. Blocks.
///
/// # Errors
/// As [`run`], except that logging is left as the host set it up.
pub fn run_embedded(args: Args) -> Result<(), AgentError> {
    let config = Config::from_args(args, sysinfo::System::host_name)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    runtime.block_on(agent::run(config))
}

/// Why the agent stopped with an error (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A flag or variable that cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `RUNWAY_AGENT_LOG` does not parse.
    #[error("RUNWAY_AGENT_LOG `{filter}` is not a valid log filter")]
    LogFilter {
        /// As given.
        filter: String,
        /// Why.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global logger was already installed.
    #[error("cannot install the logger")]
    Logger(#[source] Box<dyn StdError + Send + Sync>),
    /// Tokio could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    /// Signal handlers could not be installed.
    #[error("cannot listen for SIGTERM and SIGINT")]
    Signals(#[source] io::Error),
    /// The state directory cannot be used.
    #[error(transparent)]
    State(#[from] StateError),
    /// The work directory cannot be created.
    #[error("cannot create the work directory {path}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The HTTP client could not be set up, or start-up got an answer outside
    /// the contract.
    #[error(transparent)]
    Client(ClientError),
    /// First start without a registration token.
    #[error(
        "cannot register: no agent token is saved in {path} and no registration token was given; \
         set RUNWAY_AGENT_REGISTRATION_TOKEN (or --registration-token) to a registration token \
         from a Runway admin"
    )]
    NoRegistrationToken {
        /// Where the token would be.
        path: PathBuf,
    },
    /// `register` failed.
    #[error("cannot register with the server")]
    Register(#[source] ClientError),
    /// The saved agent token was rejected: the agent was deleted or its token
    /// rotated.
    #[error(
        "the server rejected this agent's token ({detail}): the agent was deleted or its token \
         was rotated. Remove {path} and start the agent again with \
         RUNWAY_AGENT_REGISTRATION_TOKEN set to a new registration token"
    )]
    TokenRejected {
        /// The saved token's file.
        path: PathBuf,
        /// The server's answer.
        detail: ServerMessage,
    },
}

/// An error and its causes on one line, `outer: inner: root`.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
