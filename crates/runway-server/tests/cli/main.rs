//! End-to-end tests of the real `runway` binary.
//!
//! One test binary with modules, so the suite links once. Every
//! test runs `env!("CARGO_BIN_EXE_runway")` as a child process with its own temp data
//! directory, `--listen 127.0.0.1:0`, a scrubbed `RUNWAY_*` environment and its temp
//! directory as working directory (so no stray `./runway.toml` is read), finds the
//! port in the `Runway listening on http://…` line, talks HTTP with reqwest and stops
//! the server with a real SIGTERM.
//!
//! The `agents` tests run real `runway-agent` processes (real bash) against the
//! server; see that module for how the agent binary is found.
//!
//! The `dynamodb` tests run the binary on DynamoDB tables in `moto_server`, named by
//! `RUNWAY_TEST_DYNAMODB_ENDPOINT` (`scripts/moto.sh run cargo test …` sets it);
//! without it they fail with the command to run, never skip.
//!
//! The `leaks` tests run one scenario with every kind of secret on each store and
//! then search everything the system wrote for each raw value. They sign in
//! through the real OpenID provider named by `RUNWAY_TEST_OIDC_ISSUER`
//! (`scripts/oidc-provider.sh run …` sets it); without it they fail, saying so.

mod support;

mod admin;
mod agents;
mod config;
mod connections;
mod dynamodb;
mod leaks;
mod logs;
mod restart;
mod shutdown;
mod startup;
