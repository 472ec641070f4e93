//! What the binary tells its operator on stdout.
//!
//! Stdout carries only what a person must read or a script must parse — the
//! listening address, a password shown once, `runway config`'s TOML — and logs go to
//! stderr (see [`crate::telemetry`]). Writing goes through this one function rather
//! than `println!` so that a closed pipe becomes an error with context instead of a
//! panic, and so that the workspace's `print_stdout` lint keeps catching stray
//! debugging prints everywhere else.

use std::io::Write as _;

use anyhow::Context as _;

/// Writes `lines` to stdout, each followed by a newline, and flushes.
///
/// # Errors
/// If stdout is closed or unwritable.
pub fn lines(lines: &[&str]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}").context("cannot write to stdout")?;
    }
    out.flush().context("cannot write to stdout")
}

/// Writes `text` to stdout as is, and flushes.
///
/// # Errors
/// If stdout is closed or unwritable.
pub fn text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}
