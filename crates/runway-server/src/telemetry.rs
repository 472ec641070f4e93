//! Logging setup.
//!
//! Logs go to **stderr**, always: stdout is reserved for what the operator must read
//! or a script must parse (the listening address, a generated password printed
//! once), so the two never interleave in a pipe. The filter is `RUNWAY_LOG`, an
//! `EnvFilter` directive already validated by [`crate::config`]. `pretty` is the
//! compact single-line human format, with colour only when stderr is a terminal;
//! `json` writes one object per line with the event's fields flattened to the top
//! level, which is what log shippers (CloudWatch, Loki, Vector) index best.
//! At `info` every request logs a line, so the two parts `tracing-subscriber`
//! formats most expensively are replaced by cheaper ones that print the same text:
//! the timestamp ([`crate::log_time`], both formats) and, for `pretty`, the fields
//! ([`crate::log_fields`]).
//!
//! Whatever `RUNWAY_LOG` says, the AWS SDK, the HTTP/TLS stack and the Lambda
//! runtime log at `info` at most ([`crate::log_filter`]): their `debug` and `trace`
//! output carries credentials, signed requests and whole DynamoDB items.
//!
//! Secrets never reach this layer: the admin password and tokens are
//! [`runway_core::secret::Secret`]s whose `Debug` and `Display` print `[redacted]`,
//! and nothing here logs request bodies.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;
use crate::log_fields::PlainFields;
use crate::log_filter::capped;
use crate::log_time::UtcMicros;

/// Installs the global subscriber. Call once, early.
///
/// # Errors
/// If `filter` does not parse or a subscriber is already installed.
pub fn init(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .parse(filter)
        .with_context(|| format!("RUNWAY_LOG `{filter}` is not a valid log filter"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(UtcMicros)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Pretty => capped(
            builder
                .compact()
                .fmt_fields(PlainFields)
                .with_ansi(std::io::stderr().is_terminal())
                .finish(),
        )
        .try_init(),
        LogFormat::Json => capped(
            builder
                .json()
                .flatten_event(true)
                // No span is opened per request (runway-api's access line carries
                // the request id itself, which keeps the hot path cheap); the current
                // span, where one exists, rides along, and the full list would repeat it.
                .with_current_span(true)
                .with_span_list(false)
                .with_ansi(false)
                .finish(),
        )
        .try_init(),
    };
    installed
        .map_err(|err| anyhow::anyhow!("{err}"))
        .context("cannot install the logger")
}
