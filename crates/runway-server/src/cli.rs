//! The command line of the `runway` binary.
//!
//! One binary with subcommands (as crates.io does), so a single artifact serves the
//! API and administers the same data directory. Flags only *override* the
//! configuration; everything a flag can set has an environment variable too, and the
//! help text names it, because in containers and systemd units the environment is
//! how Runway is configured. clap's own `env` support is deliberately not used: the
//! layering (defaults → file → environment) lives in one place, [`crate::config`],
//! and its error messages name the variable that was wrong.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use runway_core::user::Role;

const LONG_ABOUT: &str = "\
Runway is the control plane of a CI/CD service: people sign in, build agents register \
and pull jobs, and every job moves through one strict lifecycle. This binary serves the \
HTTP API on an embedded SQLite database and administers that database directly.

With no subcommand, `runway` runs `runway serve`.

Configuration comes from defaults, then a TOML file (--config, RUNWAY_CONFIG, or \
./runway.toml if present), then RUNWAY_* environment variables; the environment wins. \
`runway config` prints the result. The main variables:
  RUNWAY_LISTEN        address to serve on        [default: 127.0.0.1:8080]
  RUNWAY_DATA_DIR      where the database lives   [default: ./runway-data]
  RUNWAY_ADMIN_PASSWORD  password of the first `admin` (else one is generated and printed once)
  RUNWAY_LOG, RUNWAY_LOG_FORMAT  log filter [default: info] and format (pretty|json)
See .env.example for every variable.

Examples:
  runway                                      # serve on 127.0.0.1:8080, data in ./runway-data
  runway serve --listen 0.0.0.0:8080 --data-dir /var/lib/runway
  RUNWAY_LOG=debug RUNWAY_LOG_FORMAT=json runway serve
  runway config                               # show the effective configuration
  runway admin create-user --username ada --role admin
  printf '%s\\n' \"$PASSWORD\" | runway admin reset-password --username ada --password-stdin";

/// Runway: a CI/CD control plane.
#[derive(Debug, Parser)]
#[command(
    name = "runway",
    version,
    about = "Runway, the control plane of a CI/CD service: serves the HTTP API for users and \
             build agents on an embedded SQLite database, and administers that database.",
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
    /// The command to run: the one given, else `serve` with the top-level flags.
    #[must_use]
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
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
    /// Print the effective configuration as TOML, secrets redacted, and its sources.
    Config,
    /// Manage users directly in the data directory; no server needed.
    Admin(AdminArgs),
    /// Print the version and the store backends compiled in.
    Version,
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

/// `runway admin` and its flags.
#[derive(Debug, Args)]
#[command(long_about = "\
Manage users directly in the data directory's database. This works while a server is \
running on the same directory.

Examples:
  runway admin create-user --username ada --role admin
  printf '%s\\n' \"$PASSWORD\" | runway admin create-user --username bob --password-stdin
  runway admin reset-password --username ada")]
pub struct AdminArgs {
    /// Directory holding the database; it must already exist (run `runway serve` once).
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
        let Command::Serve(args) = Cli::try_parse_from(["runway"]).unwrap().into_command() else {
            panic!("expected serve");
        };
        assert!(args.listen.is_none() && args.data_dir.is_none());
        let cli = Cli::try_parse_from(["runway", "--listen", "127.0.0.1:9"]).unwrap();
        let Command::Serve(args) = cli.into_command() else {
            panic!("expected serve");
        };
        assert_eq!(args.listen, Some("127.0.0.1:9".parse().unwrap()));
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
