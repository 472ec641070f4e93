//! The agent's own log: tracing's compact format on stderr, filtered by
//! `RUNWAY_AGENT_LOG` (an `EnvFilter`, default `info`), with colour only on a
//! terminal.
//!
//! Stderr, because that is what systemd's journal and container runtimes
//! collect; nothing of the agent's goes to stdout. Secrets never reach it: tokens
//! and secret values are [`runway_protocol::Token`]s and
//! [`runway_protocol::SecretValue`]s whose `Debug` redacts, the agent never logs
//! request headers or bodies, and a job's output goes to its job log, masked,
//! never here.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::AgentError;

/// Installs the global subscriber. Call once, early.
pub(crate) fn init(filter: &str) -> Result<(), AgentError> {
    let env_filter =
        EnvFilter::builder()
            .parse(filter)
            .map_err(|source| AgentError::LogFilter {
                filter: filter.to_owned(),
                source,
            })?;
    tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .compact()
        .try_init()
        .map_err(AgentError::Logger)
}
