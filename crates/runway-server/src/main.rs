//! The `runway` binary: parse the command line, load the configuration, hand over
//! to [`runway_server::run`]. Inside AWS Lambda (`AWS_LAMBDA_RUNTIME_API` set) the
//! default command is `lambda`, so the deployed `bootstrap` needs no arguments.
//! Any error is printed as one line, `error: …` with its cause chain, and the
//! process exits with status 1 — never a panic or a backtrace.

use std::process::ExitCode;

use clap::Parser as _;
use runway_server::cli::{Cli, Command};
use runway_server::lambda::RUNTIME_API_VAR;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_file = cli.config.clone();
    let command = cli.into_command(std::env::var_os(RUNTIME_API_VAR).is_some());
    let result = match command {
        // `version` must work even when the configuration is broken.
        Command::Version => runway_server::version(),
        // A value that is not UTF-8 is kept (lossily) so that it fails validation with
        // the variable's name rather than being silently ignored.
        command => runway_server::load_config(&command, config_file.as_deref(), |name| {
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
