//! The `runway` binary: parse the command line, load the configuration, hand over
//! to [`runway_server::run`]. Any error is printed as one line, `error: …` with its
//! cause chain, and the process exits with status 1 — never a panic or a backtrace.

use std::process::ExitCode;

use clap::Parser as _;
use runway_server::cli::{Cli, Command};
use runway_server::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_file = cli.config.clone();
    let command = cli.into_command();
    let result = match command {
        // `version` must work even when the configuration is broken.
        Command::Version => runway_server::version(),
        // A value that is not UTF-8 is kept (lossily) so that it fails validation with
        // the variable's name rather than being silently ignored.
        command => Config::load(config_file.as_deref(), |name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
        .map_err(anyhow::Error::from)
        .and_then(|config| runway_server::run(command, config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
