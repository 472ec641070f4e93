//! # runway-server
//!
//! The library behind the `runway` binary. `main.rs` only parses the command line
//! and loads the configuration; everything else is here, so it is unit-tested and
//! the binary stays a few dozen lines.
//!
//! * [`cli`] — the clap definition: `serve` (default), `lambda` (default inside
//!   AWS Lambda), `dev` (the server and one local agent), `reap`, `config`,
//!   `admin`, `dynamodb`, `version`.
//! * [`config`] — defaults → TOML file → `RUNWAY_*` environment, with errors that
//!   name the variable at fault; environment only on Lambda.
//! * [`telemetry`] — tracing to stderr, compact or JSON.
//! * [`log_filter`] — the `info` ceiling on the AWS SDK's and the wire-level
//!   crates' logs, which no `RUNWAY_LOG` lifts.
//! * [`serve`] — open the store (SQLite or DynamoDB), bootstrap `admin`, bind,
//!   serve with the reaper beside it, drain on SIGTERM.
//! * [`http`] — the accept loop: hyper with a header-read timeout and a
//!   connection cap.
//! * [`dev`] — `serve` plus the real agent, linked in, on a thread of its own.
//! * [`lambda`] — the same Router behind API Gateway, through `lambda_http`.
//! * [`admin`] — user management directly on the store.
//! * [`dynamodb`] — `runway dynamodb create-tables`.
//! * [`output`] — the few things written to stdout.
//!
//! One Tokio runtime is built per command, here rather than with `#[tokio::main]`,
//! so that `config` and `version` start no threads, and so that shutdown can bound
//! how long leftover blocking work may delay the exit. `lambda` builds its own,
//! single-threaded one.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod dev;
pub mod dynamodb;
pub mod http;
pub mod lambda;
pub mod log_fields;
pub mod log_filter;
pub mod log_time;
pub mod output;
pub mod serve;
pub mod settings;
pub mod telemetry;

use std::time::Duration;

use anyhow::Context as _;
use runway_core::secret::Secret;

use crate::cli::{AdminCommand, Command, DynamodbCommand};
use crate::config::{Config, STORE_BACKENDS};

/// How long leftover tasks may hold up the exit once a command is done.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(2);

/// `runway version`: the name, version and the store backends compiled in.
///
/// # Errors
/// If stdout is closed.
pub fn version() -> anyhow::Result<()> {
    output::lines(&[
        &format!("runway {}", env!("CARGO_PKG_VERSION")),
        &format!("store backends: {}", STORE_BACKENDS.join(", ")),
    ])
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn block_on<F: Future<Output = anyhow::Result<()>>>(future: F) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let result = runtime.block_on(future);
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    result
}

fn password_from_stdin(wanted: bool) -> anyhow::Result<Option<Secret>> {
    wanted
        .then(|| admin::read_password_line(std::io::stdin().lock()))
        .transpose()
}

/// Loads the configuration `command` runs with: on Lambda from the environment
/// only, otherwise from defaults, the file and the environment.
///
/// # Errors
/// A [`config::ConfigError`] naming the variable or file key at fault.
pub fn load_config(
    command: &Command,
    file: Option<&std::path::Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, config::ConfigError> {
    match command {
        Command::Lambda => Config::from_env(env),
        _ => Config::load(file, env),
    }
}

/// `runway reap`: one reaper pass, and a line saying what it did.
async fn reap(config: &Config) -> anyhow::Result<()> {
    let stores = serve::open_stores(config).await?;
    serve::check_store(config, stores.records.as_ref()).await?;
    let report = stores
        .service(config.dispatch_settings())
        .reap()
        .await
        .context("the reaper pass failed")?;
    output::lines(&[&format!("reaped: {report}")])
}

/// Runs `command` with the loaded configuration.
///
/// # Errors
/// Whatever the command fails with, with context for a one-line message.
pub fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::Version => version(),
        Command::Config(args) => output::text(&match args.reference {
            None => config.to_toml(),
            Some(cli::Reference::Readme) => settings::readme_table(),
            Some(cli::Reference::Env) => settings::env_example(),
        }),
        Command::Reap(args) => {
            if let Some(dir) = args.data_dir {
                config.override_data_dir(dir);
            }
            telemetry::init(&config.log, config.log_format)?;
            block_on(reap(&config))
        }
        Command::Lambda => lambda::run(&config),
        Command::Dynamodb(args) => match args.command {
            DynamodbCommand::CreateTables(flags) => {
                config.override_dynamodb(flags.prefix, flags.endpoint, flags.region)?;
                telemetry::init(&config.log, config.log_format)?;
                block_on(dynamodb::create_tables(&config))
            }
        },
        Command::Serve(args) => {
            if let Some(listen) = args.listen {
                config.override_listen(listen);
            }
            if let Some(dir) = args.data_dir {
                config.override_data_dir(dir);
            }
            telemetry::init(&config.log, config.log_format)?;
            block_on(async { serve::serve(&config).await })
        }
        Command::Dev(args) => {
            if let Some(listen) = args.listen {
                config.override_listen(listen);
            }
            if let Some(dir) = args.data_dir {
                config.override_data_dir(dir);
            }
            telemetry::init(&config.log, config.log_format)?;
            block_on(async { dev::dev(&config).await })
        }
        Command::Admin(args) => {
            if let Some(dir) = args.data_dir {
                config.override_data_dir(dir);
            }
            telemetry::init(&config.log, config.log_format)?;
            match args.command {
                AdminCommand::CreateUser(a) => {
                    let password = password_from_stdin(a.password_stdin)?;
                    block_on(admin::create_user(
                        &config,
                        &a.username,
                        a.role.into(),
                        password,
                    ))
                }
                AdminCommand::ResetPassword(a) => {
                    let password = password_from_stdin(a.password_stdin)?;
                    block_on(admin::reset_password(&config, &a.username, password))
                }
                AdminCommand::ListUsers => block_on(admin::list_users(&config)),
                AdminCommand::DisableUser(a) => {
                    block_on(admin::set_disabled(&config, &a.username, true))
                }
                AdminCommand::EnableUser(a) => {
                    block_on(admin::set_disabled(&config, &a.username, false))
                }
            }
        }
    }
}
