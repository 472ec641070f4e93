//! The `runway-agent` binary: parse the command line, hand over to
//! [`runway_agent::run`]. Any error is printed as one line, `error: …` with its
//! causes, and the process exits with status 1; a clean exit (drained, told to
//! disconnect, or stopped by SIGTERM) is status 0.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = runway_agent::Args::parse();
    match runway_agent::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", runway_agent::Chain(&err));
            ExitCode::FAILURE
        }
    }
}
