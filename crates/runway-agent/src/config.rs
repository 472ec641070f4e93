//! The agent's configuration: flags, each with an environment variable.
//!
//! | variable | flag | default | what |
//! |---|---|---|---|
//! | `RUNWAY_AGENT_SERVER_URL` | `--server-url` | (required) | the Runway server, `http://` or `https://` |
//! | `RUNWAY_AGENT_REGISTRATION_TOKEN` | `--registration-token` | | `rwr_…`; used only on the first start |
//! | `RUNWAY_AGENT_NAME` | `--name` | the host name | display name sent at registration |
//! | `RUNWAY_AGENT_REGION` | `--region` | | where the agent runs |
//! | `RUNWAY_AGENT_LABELS` | `--labels` | none | comma-separated capabilities |
//! | `RUNWAY_AGENT_QUEUE` | `--queue` | the server's (`default`) | the queue to pull from |
//! | `RUNWAY_AGENT_CAPACITY` | `--capacity` | 1 | jobs run at once, 1–64 |
//! | `RUNWAY_AGENT_WORK_DIR` | `--work-dir` | `./runway-agent/work` | job workspaces |
//! | `RUNWAY_AGENT_STATE_DIR` | `--state-dir` | `./runway-agent/state` | the saved token, journal, log spools |
//! | `RUNWAY_AGENT_LOG` | `--log` | `info` | a tracing `EnvFilter` for the agent's own log (stderr) |
//!
//! clap's `env` support is used directly (unlike `runway`, which layers a TOML
//! file): an agent has one source of configuration, the unit file or container that
//! starts it, and a flag wins over its variable. [`Args`] is what clap parses;
//! [`Config`] is the validated result, with relative directories made absolute once,
//! at start-up, so a job's `cwd` does not depend on where a later path is resolved.

use std::path::{Path, PathBuf};

use clap::Parser;
use reqwest::Url;
use runway_protocol::Token;

const LONG_ABOUT: &str = "\
runway-agent runs on a worker machine: it registers with a Runway server, reports its \
health every heartbeat, claims jobs from its queue, runs each job's script with \
`bash -eo pipefail` in a fresh workspace, streams the output (with secret values masked) \
back to the server, and reports the result.

First start: there is no saved agent token in the state directory, so the agent \
registers with RUNWAY_AGENT_REGISTRATION_TOKEN (a token from a Runway admin) and saves \
the agent token it gets back to <state dir>/agent.json (mode 0600, directory 0700). \
Later starts reuse that token and need no registration token. Name, region, labels, \
queue and capacity are fixed at registration; to change them, delete agent.json and \
register again. If the server rejects the saved token (agent deleted or token rotated), \
the agent exits with status 1 and says so.

Signals: the first SIGTERM (or Ctrl-C) stops claiming, lets running jobs finish, \
disconnects and exits 0. A second one cancels the running jobs (SIGTERM to each job's \
process group, SIGKILL after the server's grace period), reports them failed and exits 0. \
A third one kills them at once and exits without reporting them.

Every attempt the agent runs is appended to <state dir>/journal.jsonl.

Example:
  RUNWAY_AGENT_SERVER_URL=http://127.0.0.1:8080 \\
  RUNWAY_AGENT_REGISTRATION_TOKEN=rwr_... \\
  RUNWAY_AGENT_LABELS=linux,docker runway-agent";

/// The command line, as clap parses it.
#[derive(Debug, Parser)]
#[command(
    name = "runway-agent",
    version,
    about = "The Runway build agent: registers with a Runway server, claims jobs, runs them \
             with bash and streams their logs back.",
    long_about = LONG_ABOUT
)]
pub struct Args {
    /// The Runway server's base URL, e.g. http://127.0.0.1:8080. The agent calls
    /// <URL>/agent/v1/….
    #[arg(long, env = "RUNWAY_AGENT_SERVER_URL", value_name = "URL")]
    pub server_url: String,

    /// Registration token (rwr_…) from a Runway admin. Needed only on the first start,
    /// when no agent token is saved in the state directory; ignored afterwards.
    #[arg(
        long,
        env = "RUNWAY_AGENT_REGISTRATION_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub registration_token: Option<String>,

    /// The agent's display name, sent at registration [default: the host name].
    #[arg(long, env = "RUNWAY_AGENT_NAME", value_name = "NAME")]
    pub name: Option<String>,

    /// Where the agent runs (e.g. eu-west-1), sent at registration.
    #[arg(long, env = "RUNWAY_AGENT_REGION", value_name = "REGION")]
    pub region: Option<String>,

    /// Comma-separated capabilities that jobs can require (e.g. linux,docker); `*`
    /// runs jobs with any labels. Sent at registration.
    #[arg(long, env = "RUNWAY_AGENT_LABELS", value_name = "LIST", value_parser = parse_labels)]
    pub labels: Option<Labels>,

    /// The queue to pull jobs from, sent at registration [default: the server's,
    /// `default`].
    #[arg(long, env = "RUNWAY_AGENT_QUEUE", value_name = "QUEUE")]
    pub queue: Option<String>,

    /// How many jobs to run at once (1–64): one claim loop each.
    #[arg(
        long,
        env = "RUNWAY_AGENT_CAPACITY",
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=64)
    )]
    pub capacity: u32,

    /// Where job workspaces are created, one fresh directory per attempt
    /// (<work dir>/<job id>-<attempt>), removed when the attempt ends.
    #[arg(
        long,
        env = "RUNWAY_AGENT_WORK_DIR",
        value_name = "DIR",
        default_value = "./runway-agent/work"
    )]
    pub work_dir: PathBuf,

    /// Where the agent keeps its token (agent.json, 0600), its journal of attempts
    /// (journal.jsonl) and the log spool of running jobs. Created 0700.
    #[arg(
        long,
        env = "RUNWAY_AGENT_STATE_DIR",
        value_name = "DIR",
        default_value = "./runway-agent/state"
    )]
    pub state_dir: PathBuf,

    /// The agent's own log filter (tracing EnvFilter syntax, e.g. `debug` or
    /// `info,runway_agent=debug`). The log goes to stderr.
    #[arg(
        long,
        env = "RUNWAY_AGENT_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log: String,
}

/// A parsed `RUNWAY_AGENT_LABELS`: trimmed, without empties or duplicates, in the
/// order given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels(pub Vec<String>);

/// Splits a comma-separated label list. Spaces around a label are dropped, empty
/// entries are skipped (so `""` and `"a,,b,"` work), and a repeated label is kept once.
///
/// # Errors
/// A label longer than 64 characters, naming it.
pub fn parse_labels(list: &str) -> Result<Labels, String> {
    let mut labels: Vec<String> = Vec::new();
    for label in list.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        if label.chars().count() > 64 {
            return Err(format!("label `{label}` is longer than 64 characters"));
        }
        if !labels.iter().any(|l| l == label) {
            labels.push(label.to_owned());
        }
    }
    Ok(Labels(labels))
}

/// The validated configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server's base URL (http or https, no query), without a trailing slash.
    pub server_url: Url,
    /// Used only when no agent token is saved.
    pub registration_token: Option<Token>,
    /// Display name.
    pub name: String,
    /// Where the agent runs.
    pub region: Option<String>,
    /// Capabilities.
    pub labels: Vec<String>,
    /// Queue; `None` lets the server choose.
    pub queue: Option<String>,
    /// Claim loops; the server's figure for this agent can lower it.
    pub capacity: u32,
    /// Absolute.
    pub work_dir: PathBuf,
    /// Absolute.
    pub state_dir: PathBuf,
    /// The agent's own log filter.
    pub log_filter: String,
}

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not a URL, or not http(s).
    #[error("RUNWAY_AGENT_SERVER_URL `{url}` is not usable: {reason}")]
    ServerUrl {
        /// As given.
        url: String,
        /// Why.
        reason: String,
    },
    /// Empty or too long.
    #[error("RUNWAY_AGENT_NAME `{0}` must be 1 to 100 characters")]
    Name(String),
    /// No name was given and the host name is unknown.
    #[error("cannot tell this machine's host name: set RUNWAY_AGENT_NAME")]
    NoHostName,
    /// `std::path::absolute` failed (no current directory).
    #[error("cannot make {var} `{path}` absolute")]
    Path {
        /// The variable.
        var: &'static str,
        /// As given.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Config {
    /// Validates parsed arguments. `host_name` is asked only when no name is given.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn from_args(
        args: Args,
        host_name: impl FnOnce() -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let server_url = parse_server_url(&args.server_url)?;
        let name = match non_empty(args.name) {
            Some(name) => name,
            None => host_name()
                .and_then(|n| non_empty(Some(n)))
                .ok_or(ConfigError::NoHostName)?,
        };
        if name.chars().count() > 100 {
            return Err(ConfigError::Name(name));
        }
        Ok(Self {
            server_url,
            registration_token: non_empty(args.registration_token).map(Token),
            name,
            region: non_empty(args.region),
            labels: args.labels.unwrap_or_default().0,
            queue: non_empty(args.queue),
            capacity: args.capacity,
            work_dir: absolute("RUNWAY_AGENT_WORK_DIR", &args.work_dir)?,
            state_dir: absolute("RUNWAY_AGENT_STATE_DIR", &args.state_dir)?,
            log_filter: args.log,
        })
    }
}

/// An unset and an empty variable mean the same (`RUNWAY_AGENT_REGION=` in a unit
/// file is a common way to say "none").
fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn absolute(var: &'static str, path: &Path) -> Result<PathBuf, ConfigError> {
    std::path::absolute(path).map_err(|source| ConfigError::Path {
        var,
        path: path.to_owned(),
        source,
    })
}

fn parse_server_url(raw: &str) -> Result<Url, ConfigError> {
    let fail = |reason: &str| ConfigError::ServerUrl {
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| fail(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(fail("it must not have a query or a fragment"));
    }
    // `https://ci.example.com/runway/` and `…/runway` mean the same base.
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["runway-agent", "--server-url", "http://127.0.0.1:8080"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Args::command().debug_assert();
    }

    /// The flags are the declaration of the agent's settings; the table above and
    /// `.env.example` must name every variable they read, and no other.
    #[test]
    fn every_variable_the_flags_read_is_in_the_module_table_and_the_env_example() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let example = std::fs::read_to_string(root.join(".env.example")).unwrap();
        let table = include_str!("config.rs");
        let declared: Vec<String> = Args::command()
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        assert!(declared.len() >= 10, "{declared:?}");
        for var in &declared {
            assert!(
                example.contains(&format!("# {var}=")),
                ".env.example lacks {var}"
            );
            assert!(
                table.contains(&format!("//! | `{var}` |")),
                "the table lacks {var}"
            );
        }
        for line in example.lines() {
            if let Some(var) = line
                .strip_prefix("# ")
                .and_then(|l| l.split_once('='))
                .map(|(name, _)| name)
                .filter(|name| name.starts_with("RUNWAY_AGENT_"))
            {
                assert!(
                    declared.iter().any(|d| d == var),
                    ".env.example names {var}, which no flag reads"
                );
            }
        }
    }

    #[test]
    fn labels_are_split_on_commas_trimmed_and_deduplicated() {
        assert_eq!(
            parse_labels(" linux, docker ,,linux,arm64 ,").unwrap().0,
            ["linux", "docker", "arm64"]
        );
    }

    #[test]
    fn an_empty_label_list_means_no_labels() {
        assert_eq!(parse_labels("").unwrap(), Labels::default());
        assert_eq!(parse_labels(" , ").unwrap(), Labels::default());
    }

    #[test]
    fn a_label_over_64_characters_is_refused_by_name() {
        let long = "x".repeat(65);
        let err = parse_labels(&format!("ok,{long}")).unwrap_err();
        assert!(err.contains(&long), "{err}");
    }

    #[test]
    fn labels_come_through_the_flag_into_the_config() {
        let config =
            Config::from_args(args(&["--labels", "linux,docker"]), || Some("h".into())).unwrap();
        assert_eq!(config.labels, ["linux", "docker"]);
    }

    #[test]
    fn defaults_apply_when_only_the_server_url_is_given() {
        let config = Config::from_args(args(&[]), || Some("builder-7".into())).unwrap();
        assert_eq!(config.name, "builder-7");
        assert_eq!(config.capacity, 1);
        assert!(config.labels.is_empty());
        assert!(config.work_dir.is_absolute());
        assert!(config.work_dir.ends_with("runway-agent/work"));
        assert!(config.state_dir.ends_with("runway-agent/state"));
        assert_eq!(config.log_filter, "info");
        assert!(config.registration_token.is_none());
    }

    #[test]
    fn an_empty_region_or_queue_means_none() {
        let config = Config::from_args(
            args(&["--region", "", "--queue", " ", "--name", "a"]),
            || None,
        )
        .unwrap();
        assert_eq!(config.region, None);
        assert_eq!(config.queue, None);
    }

    #[test]
    fn without_a_name_or_host_name_the_error_says_what_to_set() {
        let err = Config::from_args(args(&[]), || None).unwrap_err();
        assert!(err.to_string().contains("RUNWAY_AGENT_NAME"), "{err}");
    }

    #[test]
    fn capacity_outside_1_to_64_is_refused() {
        for bad in ["0", "65"] {
            let argv = [
                "runway-agent",
                "--server-url",
                "http://x",
                "--capacity",
                bad,
            ];
            assert!(Args::try_parse_from(argv).is_err(), "capacity {bad}");
        }
    }

    #[test]
    fn the_server_url_must_be_http_or_https_and_loses_its_trailing_slash() {
        let url = parse_server_url("https://ci.example.com/runway/").unwrap();
        assert_eq!(url.as_str(), "https://ci.example.com/runway");
        for bad in ["ftp://x", "not a url", "http://x/?a=1"] {
            let err = parse_server_url(bad).unwrap_err();
            assert!(err.to_string().contains("RUNWAY_AGENT_SERVER_URL"), "{err}");
        }
    }

    #[test]
    fn the_help_names_every_variable_and_explains_the_first_start() {
        let help = Args::command().render_long_help().to_string();
        for var in [
            "RUNWAY_AGENT_SERVER_URL",
            "RUNWAY_AGENT_REGISTRATION_TOKEN",
            "RUNWAY_AGENT_NAME",
            "RUNWAY_AGENT_REGION",
            "RUNWAY_AGENT_LABELS",
            "RUNWAY_AGENT_QUEUE",
            "RUNWAY_AGENT_CAPACITY",
            "RUNWAY_AGENT_WORK_DIR",
            "RUNWAY_AGENT_STATE_DIR",
            "RUNWAY_AGENT_LOG",
        ] {
            assert!(help.contains(var), "--help does not mention {var}");
        }
        assert!(help.contains("First start"));
        assert!(help.contains("agent.json"));
    }
}
