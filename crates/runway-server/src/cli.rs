//! The command line of the `runway` binary.
//!
//! One binary with subcommands (like git or cargo), so a single artifact serves the
//! API and administers the same data directory. Flags only *override* the
//! configuration; everything a flag can set has an environment variable too, and the
//! help text names it, because in containers and systemd units the environment is
//! how Runway is configured. clap's own `env` support is deliberately not used: the
//! layering (defaults → file → environment) lives in one place, [`crate::config`],
//! and its error messages name the variable that was wrong.
//!
//! The same binary is the Lambda function: with no subcommand it serves API Gateway
//! events when `AWS_LAMBDA_RUNTIME_API` is set (the Lambda runtime sets it, and only
//! it), so the deployed `bootstrap` needs no arguments, and a socket otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use runway_core::user::Role;

const LONG_ABOUT: &str = "\
Runway is the control plane of a CI/CD service: people sign in, build agents register \
and pull jobs, and every job moves through one strict lifecycle. This binary serves the \
HTTP API on an embedded SQLite database or on DynamoDB, on a socket or as an AWS Lambda \
function behind API Gateway, and administers the store directly.

With no subcommand, `runway` runs `runway serve`, or `runway lambda` when \
AWS_LAMBDA_RUNTIME_API is set (that is, inside AWS Lambda).

Configuration comes from defaults, then a TOML file (--config, RUNWAY_CONFIG, or \
./runway.toml if present), then RUNWAY_* environment variables; the environment wins. \
`runway config` prints the result. The main variables:
  RUNWAY_LISTEN        address to serve on        [default: 127.0.0.1:8080]
  RUNWAY_DATA_DIR      where the database lives   [default: ./runway-data]
  RUNWAY_STORE         sqlite or dynamodb         [default: sqlite]
  RUNWAY_DYNAMODB_TABLE_PREFIX, RUNWAY_DYNAMODB_ENDPOINT, RUNWAY_DYNAMODB_REGION
                       where the DynamoDB tables are [default: runway_, AWS, the SDK's region]
  RUNWAY_ADMIN_PASSWORD  password of the first `admin` (else one is generated and printed once)
  RUNWAY_LOG, RUNWAY_LOG_FORMAT  log filter [default: info] and format (pretty|json)
See .env.example for every variable.

Examples:
  runway                                      # serve on 127.0.0.1:8080, data in ./runway-data
  runway serve --listen 0.0.0.0:8080 --data-dir /var/lib/runway
  RUNWAY_LOG=debug RUNWAY_LOG_FORMAT=json runway serve
  runway config                               # show the effective configuration
  runway admin create-user --username ada --role admin
  printf '%s\\n' \"$PASSWORD\" | runway admin reset-password --username ada --password-stdin
  runway dynamodb create-tables --prefix runway-staging- --region eu-west-1";

/// Runway: a CI/CD control plane.
#[derive(Debug, Parser)]
#[command(
    name = "runway",
    version,
    about = "Runway, the control plane of a CI/CD service: serves the HTTP API for users and \
             build agents on SQLite or DynamoDB, on a socket or on AWS Lambda, and administers \
             the store.",
    long_about = LONG_ABOUT,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// TOML configuration file; a named file that is missing is an error.
    /// Overrides RUNWAY_CONFIG [env: RUNWAY_CONFIG] [default: ./runway.toml if it exists].
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// `serve`'s flags, accepted without the subcommand since `serve` is the default.
    #[command(flatten)]
    pub serve: ServeArgs,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The command to run: the one given; else `lambda` inside AWS Lambda
    /// (`on_lambda`: `AWS_LAMBDA_RUNTIME_API` is set) when no `serve` flag was given;
    /// else `serve` with the top-level flags.
    #[must_use]
    pub fn into_command(self, on_lambda: bool) -> Command {
        match self.command {
            Some(command) => command,
            None if on_lambda && self.serve.is_empty() => Command::Lambda,
            None => Command::Serve(self.serve),
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API until SIGTERM or Ctrl-C (the default command).
    #[command(long_about = "\
Serve the HTTP API until SIGTERM or Ctrl-C.

Opens (and creates) the SQLite database in the data directory. On the very first start \
it creates the user `admin`, with RUNWAY_ADMIN_PASSWORD or a generated password printed \
once. It then prints `Runway listening on http://ADDR` with the address actually bound. \
On SIGTERM it stops accepting connections and lets in-flight requests finish for up to \
RUNWAY_SHUTDOWN_GRACE_SECONDS [default: 30].

Examples:
  runway serve
  runway serve --listen 0.0.0.0:8080 --data-dir /var/lib/runway
  runway serve --listen 127.0.0.1:0      # any free port; read the address from stdout")]
    Serve(ServeArgs),
    /// Serve the API and run one local agent beside it: submit a job and watch it run.
    #[command(long_about = "\
Serve the HTTP API, like `runway serve`, and run one build agent in the same process, \
so a job submitted to the `default` queue runs at once on this machine with bash. The \
agent is the real runway-agent, talking to the server over loopback HTTP; it runs two \
jobs at once and takes jobs with any labels. Its token, journal and workspaces live in \
<data dir>/dev-agent.

Ctrl-C (or SIGTERM) stops the agent first (it finishes running jobs; a second Ctrl-C \
cancels them), then the server. Everything `runway serve` reads is read here too.

Examples:
  runway dev
  runway dev --listen 127.0.0.1:0 --data-dir /tmp/runway-try")]
    Dev(ServeArgs),
    /// Serve API Gateway HTTP API events as an AWS Lambda function (the default
    /// command when AWS_LAMBDA_RUNTIME_API is set).
    #[command(long_about = "\
Serve API Gateway HTTP API (payload v2.0) events as an AWS Lambda function, through the \
same Router as `runway serve`.

This is what the deployed `bootstrap` runs: with no subcommand, `runway` picks it when \
AWS_LAMBDA_RUNTIME_API is set. Configuration comes from the environment only (no file); \
logs default to JSON. The store is opened once, at cold start. No admin is created with a \
generated password (nobody would see it): set RUNWAY_ADMIN_PASSWORD for a first admin, or \
create users from a workstation with `RUNWAY_STORE=dynamodb runway admin create-user`.

Locally, run it under `cargo lambda watch`, which emulates the Lambda runtime API.")]
    Lambda,
    /// Run the reaper once: end lost, timed-out and expired work, then exit.
    #[command(long_about = "\
Run one pass of the reaper against the store and exit. `runway serve` already runs it \
every RUNWAY_REAPER_INTERVAL_SECONDS [default: 15] and on AWS an EventBridge schedule \
runs it every minute; this is for cron jobs, scripts and emergencies.

One pass: held jobs whose lease ran out (RUNWAY_JOB_LEASE_SECONDS without a renewal) are \
marked lost and queued again while retries remain (a job being canceled becomes \
canceled); held jobs far past their timeout become timed_out; queued jobs older than \
RUNWAY_QUEUE_TTL_SECONDS become expired. It prints what it did, one line. Safe beside a \
running server: every change is a conditional write.

Examples:
  runway reap
  runway reap --data-dir /var/lib/runway
  RUNWAY_STORE=dynamodb RUNWAY_DYNAMODB_TABLE_PREFIX=runway-prod- runway reap")]
    Reap(ReapArgs),
    /// Print the effective configuration as TOML, secrets redacted, and its sources.
    ///
    /// With `--reference readme` or `--reference env`, print instead the reference of
    /// every setting (name, default, what it accepts, what it does) as the README's
    /// Markdown table or as `.env.example` comments.
    Config(ConfigArgs),
    /// Manage users directly in the store (SQLite data directory or DynamoDB); no
    /// server needed.
    Admin(AdminArgs),
    /// DynamoDB operations: create the tables.
    Dynamodb(DynamodbArgs),
    /// Print the version and the store backends compiled in.
    Version,
}

/// Flags of `runway config`.
#[derive(Debug, Default, Args)]
pub struct ConfigArgs {
    /// Print the reference of every setting instead of the effective configuration:
    /// `readme` (a Markdown table) or `env` (`.env.example` comments).
    #[arg(long, value_name = "FORMAT")]
    pub reference: Option<Reference>,
}

/// What `runway config --reference` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reference {
    /// The README's configuration table.
    Readme,
    /// The settings part of `.env.example`.
    Env,
}

/// Flags of `runway serve`.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address and port to listen on; port 0 picks a free one.
    /// Overrides RUNWAY_LISTEN [env: RUNWAY_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Directory holding the database (runway.db); created if missing.
    /// Overrides RUNWAY_DATA_DIR [env: RUNWAY_DATA_DIR] [default: ./runway-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl ServeArgs {
    /// Whether no flag was given.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.listen.is_none() && self.data_dir.is_none()
    }
}

/// Flags of `runway reap`.
#[derive(Debug, Default, Args)]
pub struct ReapArgs {
    /// Directory holding the database (runway.db). Not used with RUNWAY_STORE=dynamodb.
    /// Overrides RUNWAY_DATA_DIR [env: RUNWAY_DATA_DIR] [default: ./runway-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `runway dynamodb` and its subcommands.
#[derive(Debug, Args)]
pub struct DynamodbArgs {
    /// The DynamoDB task.
    #[command(subcommand)]
    pub command: DynamodbCommand,
}

/// The DynamoDB tasks.
#[derive(Debug, Subcommand)]
pub enum DynamodbCommand {
    /// Create Runway's tables (and their indexes and TTL) where missing.
    #[command(long_about = "\
Create Runway's DynamoDB tables, with their indexes and TTL, on on-demand billing, and \
wait until they are active. Tables that exist are left as they are, so running it again \
is safe. In production Terraform owns the tables; this is for moto, DynamoDB Local and \
first experiments. AWS credentials and the region come from the usual AWS chain \
(AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION, …).

Examples:
  runway dynamodb create-tables --endpoint http://127.0.0.1:5000 --region us-east-1
  RUNWAY_DYNAMODB_TABLE_PREFIX=runway-staging- runway dynamodb create-tables")]
    CreateTables(CreateTablesArgs),
}

/// Flags of `runway dynamodb create-tables`.
#[derive(Debug, Default, Args)]
pub struct CreateTablesArgs {
    /// Prepended to every table name.
    /// Overrides RUNWAY_DYNAMODB_TABLE_PREFIX [env: RUNWAY_DYNAMODB_TABLE_PREFIX] [default: runway_].
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,

    /// DynamoDB endpoint, e.g. moto's.
    /// Overrides RUNWAY_DYNAMODB_ENDPOINT [env: RUNWAY_DYNAMODB_ENDPOINT] [default: AWS].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// The tables' region.
    /// Overrides RUNWAY_DYNAMODB_REGION [env: RUNWAY_DYNAMODB_REGION] [default: AWS_REGION].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

/// `runway admin` and its flags.
#[derive(Debug, Args)]
#[command(long_about = "\
Manage users directly in the store: the data directory's SQLite database, or with \
RUNWAY_STORE=dynamodb the DynamoDB tables (no data directory needed then). This works \
while a server is running on the same store. On AWS, this is how the first users are \
created: the Lambda function never prints a generated password.

Examples:
  runway admin create-user --username ada --role admin
  printf '%s\\n' \"$PASSWORD\" | runway admin create-user --username bob --password-stdin
  runway admin reset-password --username ada
  RUNWAY_STORE=dynamodb RUNWAY_DYNAMODB_TABLE_PREFIX=runway-prod- runway admin create-user --username ada --role admin")]
pub struct AdminArgs {
    /// Directory holding the SQLite database; it must already exist (run `runway serve`
    /// once). Not used with RUNWAY_STORE=dynamodb.
    /// Overrides RUNWAY_DATA_DIR [env: RUNWAY_DATA_DIR] [default: ./runway-data].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The admin task.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The admin tasks.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user. Without --password-stdin a strong password is generated and
    /// printed once.
    CreateUser(CreateUserArgs),
    /// Set a user's password and sign them out of every device. Without
    /// --password-stdin a strong password is generated and printed once.
    ResetPassword(ResetPasswordArgs),
    /// List every user: name, role, enabled or disabled, id.
    ListUsers,
    /// Disable a user: they are signed out of every device, their API tokens are
    /// revoked and they cannot sign in. The last enabled admin cannot be disabled.
    DisableUser(UsernameArgs),
    /// Enable a disabled user again.
    EnableUser(UsernameArgs),
}

/// Flags of `runway admin disable-user` and `enable-user`.
#[derive(Debug, Args)]
pub struct UsernameArgs {
    /// The user.
    #[arg(long, value_name = "NAME")]
    pub username: String,
}

/// Flags of `runway admin create-user`.
#[derive(Debug, Args)]
pub struct CreateUserArgs {
    /// Login name: 1–64 letters, digits, `.`, `_`, `-` or `@`.
    #[arg(long, value_name = "NAME")]
    pub username: String,

    /// What the user may do.
    #[arg(long, value_enum, default_value_t = RoleArg::Member)]
    pub role: RoleArg,

    /// Read the password (at least 12 characters) from the first line of stdin
    /// instead of generating one.
    #[arg(long)]
    pub password_stdin: bool,
}

/// Flags of `runway admin reset-password`.
#[derive(Debug, Args)]
pub struct ResetPasswordArgs {
    /// The user whose password to reset.
    #[arg(long, value_name = "NAME")]
    pub username: String,

    /// Read the new password (at least 12 characters) from the first line of stdin
    /// instead of generating one.
    #[arg(long)]
    pub password_stdin: bool,
}

/// A role as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Manages users, registration tokens and agents.
    Admin,
    /// Runs and watches jobs.
    Member,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => Self::Admin,
            RoleArg::Member => Self::Member,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve_with_the_top_level_flags() {
        let Command::Serve(args) = Cli::try_parse_from(["runway"]).unwrap().into_command(false)
        else {
            panic!("expected serve");
        };
        assert!(args.listen.is_none() && args.data_dir.is_none());
        let cli = Cli::try_parse_from(["runway", "--listen", "127.0.0.1:9"]).unwrap();
        let Command::Serve(args) = cli.into_command(false) else {
            panic!("expected serve");
        };
        assert_eq!(args.listen, Some("127.0.0.1:9".parse().unwrap()));
    }

    #[test]
    fn no_subcommand_inside_lambda_means_lambda_unless_serve_flags_are_given() {
        let cli = Cli::try_parse_from(["runway"]).unwrap();
        assert!(matches!(cli.into_command(true), Command::Lambda));
        let cli = Cli::try_parse_from(["runway", "--listen", "127.0.0.1:9"]).unwrap();
        assert!(matches!(cli.into_command(true), Command::Serve(_)));
        let cli = Cli::try_parse_from(["runway", "config"]).unwrap();
        assert!(matches!(cli.into_command(true), Command::Config(_)));
        let cli = Cli::try_parse_from(["runway", "lambda"]).unwrap();
        assert!(matches!(cli.into_command(false), Command::Lambda));
    }

    #[test]
    fn dynamodb_create_tables_takes_a_prefix_an_endpoint_and_a_region() {
        let cli = Cli::try_parse_from([
            "runway",
            "dynamodb",
            "create-tables",
            "--prefix",
            "ci-",
            "--endpoint",
            "http://127.0.0.1:5000",
        ])
        .unwrap();
        let Some(Command::Dynamodb(DynamodbArgs {
            command: DynamodbCommand::CreateTables(args),
        })) = cli.command
        else {
            panic!("expected dynamodb create-tables");
        };
        assert_eq!(args.prefix.as_deref(), Some("ci-"));
        assert_eq!(args.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert!(args.region.is_none());
    }

    #[test]
    fn serve_flags_before_another_subcommand_are_refused() {
        assert!(Cli::try_parse_from(["runway", "--listen", "127.0.0.1:9", "config"]).is_err());
    }

    #[test]
    fn serve_flags_parse_into_an_address_and_a_directory() {
        let cli = Cli::try_parse_from([
            "runway",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(args.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(args.data_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn the_config_flag_is_accepted_after_a_subcommand() {
        let cli = Cli::try_parse_from(["runway", "config", "--config", "x.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
    }

    #[test]
    fn create_user_defaults_to_the_member_role() {
        let cli =
            Cli::try_parse_from(["runway", "admin", "create-user", "--username", "bob"]).unwrap();
        let Some(Command::Admin(admin)) = cli.command else {
            panic!("expected admin");
        };
        let AdminCommand::CreateUser(args) = admin.command else {
            panic!("expected create-user");
        };
        assert_eq!(Role::from(args.role), Role::Member);
        assert!(!args.password_stdin);
    }

    #[test]
    fn an_unknown_role_is_rejected() {
        assert!(
            Cli::try_parse_from([
                "runway",
                "admin",
                "create-user",
                "--username",
                "bob",
                "--role",
                "root"
            ])
            .is_err()
        );
    }
}
