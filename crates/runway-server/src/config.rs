//! Runway's configuration: defaults, then an optional TOML file, then `RUNWAY_*`
//! environment variables. The environment wins; `serve --listen` and
//! `--data-dir` beat all three. On AWS Lambda ([`Config::from_env`]) there is no
//! file: a function's configuration is its environment, set by Terraform, and a
//! stray file baked into the zip must not change it.
//!
//! The settings themselves (variable, file key, default, bounds, documentation) are
//! declared once, in [`crate::settings`], which also generates the README's table
//! and `.env.example` from them. The TOML key is the variable's name without
//! `RUNWAY_`, in lower case. `RUNWAY_CONFIG` names the TOML file to read (only the
//! `--config` flag beats it); without either, `./runway.toml` is read if it exists,
//! and a file named explicitly but missing is an error, so a typo never silently
//! falls back to the defaults.
//!
//! Design: each layer only supplies *text* for a setting together with where the
//! text came from ([`Origin`]); parsing happens once, at the end, so an error always names the exact variable or file key
//! that supplied the bad value and says what would have been accepted. An empty
//! environment variable counts as unset, so a blank line copied from `.env.example`
//! does not override the file.
//!
//! The environment is passed in as a function ([`Config::load`]) rather than read
//! from the process, so the layering is unit-tested without touching global state.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use runway_core::password::MIN_PASSWORD_LEN;
use runway_core::secret::Secret;
use serde::Deserialize;

use crate::settings::*;

/// The file read when neither `--config` nor `RUNWAY_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "runway.toml";
/// The variable that names the config file.
pub const CONFIG_VAR: &str = "RUNWAY_CONFIG";

/// How often agents of a Lambda deployment claim when idle.
pub const LAMBDA_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest admin password accepted, as the API's sign-in does.
const MAX_ADMIN_PASSWORD_LEN: usize = 1024;

/// Where a value came from, for error messages and `runway config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// A key in the configuration file.
    File {
        /// The file.
        path: PathBuf,
        /// The key in it.
        key: &'static str,
    },
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("the default"),
            Self::File { path, key } => write!(f, "`{key}` in {}", path.display()),
            Self::Env(name) => f.write_str(name),
            Self::Flag(name) => f.write_str(name),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse.
    #[error("{origin} is `{value}`, which is not valid: expected {expected}")]
    Invalid {
        /// Which variable or file key held it.
        origin: Origin,
        /// The offending text (never a secret: only non-secret settings are parsed).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A secret that breaks a rule; its value is never echoed.
    #[error("{origin} is not valid: expected {expected} (the value is not shown)")]
    InvalidSecret {
        /// Which variable or file key held it.
        origin: Origin,
        /// What would have been accepted.
        expected: String,
    },
    /// Settings that are each valid but do not fit together.
    #[error("{0}")]
    Inconsistent(&'static str),
    /// A file named by `--config` or `RUNWAY_CONFIG` that does not exist.
    #[error("the configuration file {path} (named by {named_by}) does not exist")]
    FileMissing {
        /// The file.
        path: PathBuf,
        /// `--config` or `RUNWAY_CONFIG`.
        named_by: &'static str,
    },
    /// A file that could not be read.
    #[error("cannot read the configuration file {path}")]
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file that is not valid TOML or has unknown or mistyped keys.
    #[error("{path} line {line}: {message}")]
    FileInvalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// The parser's message, which names the key.
        message: String,
    },
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One compact, human-readable line per event.
    Pretty,
    /// One JSON object per line, event fields flattened, for log shippers.
    Json,
}

impl LogFormat {
    /// The configuration form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pretty => "pretty",
            Self::Json => "json",
        }
    }
}

/// The store backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded SQLite database in the data directory.
    Sqlite,
    /// Amazon DynamoDB tables (or an emulator), see [`DynamoSettings`].
    Dynamodb,
}

impl StoreKind {
    /// The configuration form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Dynamodb => "dynamodb",
        }
    }
}

/// The backends this binary contains, for `runway version`.
pub const STORE_BACKENDS: &[&str] = &["sqlite", "dynamodb"];

/// Where the DynamoDB tables are. Read whatever the backend, so `runway config`
/// shows them and `runway dynamodb create-tables` can use them with a SQLite server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoSettings {
    /// Prepended to every table name.
    pub table_prefix: String,
    /// An endpoint override (moto, DynamoDB Local); `None` lets the SDK decide.
    pub endpoint: Option<String>,
    /// The region; `None` lets the SDK's default chain decide.
    pub region: Option<String>,
    /// The S3 bucket of job logs.
    pub log_bucket: Option<String>,
    /// An S3 endpoint override (moto); `None` lets the SDK decide.
    pub s3_endpoint: Option<String>,
}

impl DynamoSettings {
    /// Where requests go, for messages: the override, else the AWS SDK's own
    /// endpoint variables (`env` reads them), else `AWS`.
    #[must_use]
    pub fn endpoint_for_display(&self, env: impl Fn(&str) -> Option<String>) -> String {
        if let Some(endpoint) = &self.endpoint {
            return endpoint.clone();
        }
        ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"]
            .into_iter()
            .find_map(|name| {
                env(name)
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("{v}, from {name}"))
            })
            .unwrap_or_else(|| "AWS".to_owned())
    }

    /// The store crate's connection settings.
    #[must_use]
    pub fn store_config(&self) -> runway_store_dynamodb::DynamoConfig {
        runway_store_dynamodb::DynamoConfig {
            table_prefix: self.table_prefix.clone(),
            endpoint_url: self.endpoint.clone(),
            region: self.region.clone(),
            log_bucket: self.log_bucket.clone(),
            s3_endpoint: self.s3_endpoint.clone(),
            ..runway_store_dynamodb::DynamoConfig::default()
        }
    }
}

/// Where the process runs, which changes two things: whether a file is read, and
/// the default log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    /// A shell, a container or a systemd unit.
    Process,
    /// An AWS Lambda function.
    Lambda,
}

/// Where the configuration came from, for `runway config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// The `RUNWAY_*` variables that supplied a value.
    pub env: Vec<&'static str>,
    /// Command-line flags that overrode a value.
    pub flags: Vec<&'static str>,
}

impl fmt::Display for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("defaults")?;
        match &self.file {
            Some(path) => write!(f, ", file {}", path.display())?,
            None => f.write_str(", no file")?,
        }
        if self.env.is_empty() {
            f.write_str(", no environment variables")?;
        } else {
            write!(f, ", environment ({})", self.env.join(", "))?;
        }
        if !self.flags.is_empty() {
            write!(f, ", flags ({})", self.flags.join(", "))?;
        }
        Ok(())
    }
}

/// Sign-in through an OpenID Connect issuer. `Debug` redacts the secret.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer's identifier.
    pub issuer_url: String,
    /// This server's client id there.
    pub client_id: String,
    /// Its client secret, if it is a confidential client.
    pub client_secret: Option<Secret>,
    /// Email domains let in (lowercase); empty: all.
    pub allowed_email_domains: Vec<String>,
    /// Verified emails (lowercase) made admin at their first sign-in.
    pub admin_emails: Vec<String>,
    /// A `groups` value made admin at its first sign-in.
    pub admin_group: Option<String>,
}

/// The effective configuration. `Debug` is safe to log: the admin password and
/// the OIDC client secret are [`Secret`]s, which print `[redacted]`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Directory of the SQLite database.
    pub data_dir: PathBuf,
    /// Store backend.
    pub store: StoreKind,
    /// The DynamoDB tables (used when `store` is `dynamodb`, and by `runway dynamodb`).
    pub dynamodb: DynamoSettings,
    /// Tracing filter directive, already checked to parse.
    pub log: String,
    /// Log output format.
    pub log_format: LogFormat,
    /// Password for the first admin; `None` generates one.
    pub admin_password: Option<Secret>,
    /// Browser origins allowed by CORS.
    pub cors_origins: Vec<String>,
    /// The server's external URL, without a trailing `/`.
    pub public_url: Option<String>,
    /// OIDC sign-in, if an issuer is configured (then `public_url` is set).
    pub oidc: Option<OidcConfig>,
    /// Absolute session lifetime, in seconds.
    pub session_ttl_seconds: u64,
    /// Idle session lifetime, in seconds.
    pub session_idle_timeout_seconds: u64,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Time in-flight requests get after SIGTERM, in seconds.
    pub shutdown_grace_seconds: u64,
    /// Time for a request head to arrive, in seconds.
    pub header_read_timeout_seconds: u64,
    /// Time for a handler to answer, in seconds.
    pub request_timeout_seconds: u64,
    /// Time for a request body to arrive, in seconds.
    pub body_read_timeout_seconds: u64,
    /// Connections held open at once.
    pub max_connections: usize,
    /// A job's lease, in seconds.
    pub job_lease_seconds: u64,
    /// How often `serve` runs the reaper, in seconds.
    pub reaper_interval_seconds: u64,
    /// How long a job may stay queued, in seconds.
    pub queue_ttl_seconds: u64,
    /// The abuse limits (`runway_service::limits`).
    pub limits: runway_service::limits::LimitSettings,
    /// Where the values came from.
    pub sources: Sources,
}

/// The TOML file. Every key is optional; unknown keys are an error naming the key,
/// so a misspelt setting is never silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    dynamodb_table_prefix: Option<String>,
    dynamodb_endpoint: Option<String>,
    dynamodb_region: Option<String>,
    log: Option<String>,
    log_format: Option<String>,
    admin_password: Option<Secret>,
    cors_origins: Option<Vec<String>>,
    public_url: Option<String>,
    oidc_issuer_url: Option<String>,
    oidc_client_id: Option<String>,
    oidc_client_secret: Option<Secret>,
    oidc_allowed_email_domains: Option<Vec<String>>,
    oidc_admin_emails: Option<Vec<String>>,
    oidc_admin_group: Option<String>,
    session_ttl_seconds: Option<u64>,
    session_idle_timeout_seconds: Option<u64>,
    max_body_bytes: Option<u64>,
    shutdown_grace_seconds: Option<u64>,
    header_read_timeout_seconds: Option<u64>,
    request_timeout_seconds: Option<u64>,
    body_read_timeout_seconds: Option<u64>,
    max_connections: Option<u64>,
    job_lease_seconds: Option<u64>,
    reaper_interval_seconds: Option<u64>,
    queue_ttl_seconds: Option<u64>,
    rate_limit_window_seconds: Option<u64>,
    rate_limit_max_backoff_seconds: Option<u64>,
    signin_max_failures: Option<u64>,
    signin_max_failures_per_ip: Option<u64>,
    register_max_attempts: Option<u64>,
    token_create_max_attempts: Option<u64>,
    log_bucket: Option<String>,
    s3_endpoint: Option<String>,
}

impl FileConfig {
    /// The file's value for a setting, as text.
    fn text(&self, key: &str) -> Option<String> {
        match key {
            "listen" => self.listen.clone(),
            "data_dir" => self.data_dir.as_ref().map(|p| p.display().to_string()),
            "store" => self.store.clone(),
            "dynamodb_table_prefix" => self.dynamodb_table_prefix.clone(),
            "dynamodb_endpoint" => self.dynamodb_endpoint.clone(),
            "dynamodb_region" => self.dynamodb_region.clone(),
            "log" => self.log.clone(),
            "log_format" => self.log_format.clone(),
            "admin_password" => self.admin_password.as_ref().map(|s| s.expose().to_owned()),
            "cors_origins" => self.cors_origins.as_ref().map(|o| o.join(",")),
            "public_url" => self.public_url.clone(),
            "oidc_issuer_url" => self.oidc_issuer_url.clone(),
            "oidc_client_id" => self.oidc_client_id.clone(),
            "oidc_client_secret" => self
                .oidc_client_secret
                .as_ref()
                .map(|s| s.expose().to_owned()),
            "oidc_allowed_email_domains" => self
                .oidc_allowed_email_domains
                .as_ref()
                .map(|d| d.join(",")),
            "oidc_admin_emails" => self.oidc_admin_emails.as_ref().map(|e| e.join(",")),
            "oidc_admin_group" => self.oidc_admin_group.clone(),
            "session_ttl_seconds" => self.session_ttl_seconds.map(|n| n.to_string()),
            "session_idle_timeout_seconds" => {
                self.session_idle_timeout_seconds.map(|n| n.to_string())
            }
            "max_body_bytes" => self.max_body_bytes.map(|n| n.to_string()),
            "shutdown_grace_seconds" => self.shutdown_grace_seconds.map(|n| n.to_string()),
            "header_read_timeout_seconds" => {
                self.header_read_timeout_seconds.map(|n| n.to_string())
            }
            "request_timeout_seconds" => self.request_timeout_seconds.map(|n| n.to_string()),
            "body_read_timeout_seconds" => self.body_read_timeout_seconds.map(|n| n.to_string()),
            "max_connections" => self.max_connections.map(|n| n.to_string()),
            "job_lease_seconds" => self.job_lease_seconds.map(|n| n.to_string()),
            "reaper_interval_seconds" => self.reaper_interval_seconds.map(|n| n.to_string()),
            "queue_ttl_seconds" => self.queue_ttl_seconds.map(|n| n.to_string()),
            "rate_limit_window_seconds" => self.rate_limit_window_seconds.map(|n| n.to_string()),
            "rate_limit_max_backoff_seconds" => {
                self.rate_limit_max_backoff_seconds.map(|n| n.to_string())
            }
            "signin_max_failures" => self.signin_max_failures.map(|n| n.to_string()),
            "signin_max_failures_per_ip" => self.signin_max_failures_per_ip.map(|n| n.to_string()),
            "register_max_attempts" => self.register_max_attempts.map(|n| n.to_string()),
            "token_create_max_attempts" => self.token_create_max_attempts.map(|n| n.to_string()),
            "log_bucket" => self.log_bucket.clone(),
            "s3_endpoint" => self.s3_endpoint.clone(),
            _ => None,
        }
    }
}

/// The layers, merged lazily per setting.
struct Layers<'a, E> {
    file: Option<(PathBuf, FileConfig)>,
    env: &'a E,
    sources: Sources,
}

impl<'a, E: Fn(&str) -> Option<String>> Layers<'a, E> {
    fn new(file: Option<(PathBuf, FileConfig)>, env: &'a E) -> Self {
        Self {
            sources: Sources {
                file: file.as_ref().map(|(p, _)| p.clone()),
                ..Sources::default()
            },
            file,
            env,
        }
    }

    /// The winning text for a setting and where it came from; `None` only for a
    /// setting without a default that no layer sets.
    fn get(&mut self, setting: Setting) -> Option<(String, Origin)> {
        if let Some(value) = (self.env)(setting.env).filter(|v| !v.is_empty()) {
            self.sources.env.push(setting.env);
            return Some((value, Origin::Env(setting.env)));
        }
        if let Some((path, file)) = &self.file
            && let Some(value) = file.text(setting.key)
        {
            let origin = Origin::File {
                path: path.clone(),
                key: setting.key,
            };
            return Some((value, origin));
        }
        setting.default.map(|d| (d.to_owned(), Origin::Default))
    }

    /// The winning text of a setting that has a default.
    fn required(&mut self, setting: Setting) -> (String, Origin) {
        self.get(setting).unwrap_or_else(|| {
            // Every setting but the admin password has a default; see the table above.
            (String::new(), Origin::Default)
        })
    }

    fn parse<T>(
        &mut self,
        setting: Setting,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        let (value, origin) = self.required(setting);
        parse(value.trim()).ok_or(ConfigError::Invalid {
            origin,
            value,
            expected: setting.expected(),
        })
    }

    /// A whole-number setting, checked against the range it declares.
    fn whole<T: TryFrom<u64>>(&mut self, setting: Setting) -> Result<T, ConfigError> {
        let range = setting
            .range()
            .expect("whole() is only called for settings that accept a whole number");
        self.parse(setting, |s| {
            s.parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .and_then(|n| T::try_from(n).ok())
        })
    }

    /// Parses a setting without a default; `None` when no layer sets it.
    fn parse_optional<T>(
        &mut self,
        setting: Setting,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((value, origin)) = self.get(setting) else {
            return Ok(None);
        };
        match parse(value.trim()) {
            Some(parsed) => Ok(Some(parsed)),
            None => Err(ConfigError::Invalid {
                origin,
                value,
                expected: setting.expected(),
            }),
        }
    }
}

/// DynamoDB allows `[A-Za-z0-9_.-]` in table names, 3 to 255 of them; 200 leaves
/// room for the longest suffix (`registration_tokens`).
fn parse_table_prefix(s: &str) -> Option<String> {
    let valid = (1..=200).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    valid.then(|| s.to_owned())
}

fn parse_bucket(s: &str) -> Option<String> {
    let ok = (3..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    ok.then(|| s.to_owned())
}

fn parse_endpoint(s: &str) -> Option<String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))?;
    let valid = !rest.is_empty() && !s.chars().any(char::is_whitespace);
    valid.then(|| s.to_owned())
}

fn parse_region(s: &str) -> Option<String> {
    let valid = (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    valid.then(|| s.to_owned())
}

fn parse_origins(s: &str) -> Option<Vec<String>> {
    s.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let rest = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))?;
            let valid =
                !rest.is_empty() && !rest.contains('/') && !rest.chars().any(char::is_whitespace);
            valid.then(|| o.to_owned())
        })
        .collect()
}

/// An absolute http(s) URL with a host, and optionally a path; no query, fragment,
/// credentials or whitespace. A trailing `/` is dropped.
fn parse_public_url(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    let valid = !host.is_empty()
        && !host.contains('@')
        && !s.contains(['?', '#'])
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then(|| s.trim_end_matches('/').to_owned())
}

/// Printable text without whitespace, 1 to 255 characters.
fn parse_token_text(s: &str) -> Option<String> {
    let ok =
        (1..=255).contains(&s.len()) && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| s.to_owned())
}

/// Text without control characters, 1 to 255 characters.
fn parse_name(s: &str) -> Option<String> {
    let ok = (1..=255).contains(&s.len()) && !s.chars().any(char::is_control);
    ok.then(|| s.to_owned())
}

/// A comma-separated list, lowercased, each item checked by `valid`.
fn parse_list(s: &str, valid: fn(&str) -> bool) -> Option<Vec<String>> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let item = item.to_ascii_lowercase();
            valid(&item).then_some(item)
        })
        .collect()
}

fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_email(s: &str) -> bool {
    s.rsplit_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !local.chars().any(|c| c.is_whitespace() || c.is_control())
            && is_domain(domain)
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::FileUnreadable {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|err| {
        let line = err.span().map_or(1, |span| line_of(&text, span.start));
        // serde's messages quote the offending value ("invalid type: integer
        // `1234…`"); on the password's line that value is the secret, so the
        // message says only what is expected.
        let on_secret_line = text
            .lines()
            .nth(line - 1)
            .map(str::trim_start)
            .filter(|l| l.starts_with("admin_password") || l.starts_with("oidc_client_secret"));
        let message = if let Some(line) = on_secret_line {
            let key = line.split(['=', ' ']).next().unwrap_or_default();
            format!("{key} must be a string (its value is not shown)")
        } else {
            err.message().trim().to_owned()
        };
        ConfigError::FileInvalid {
            path: path.to_owned(),
            line,
            message,
        }
    })
}

/// The OIDC settings: all or nothing, and only with a public URL.
fn oidc_config<E: Fn(&str) -> Option<String>>(
    layers: &mut Layers<'_, E>,
    public_url: Option<&str>,
) -> Result<Option<OidcConfig>, ConfigError> {
    let issuer_url = layers.parse_optional(OIDC_ISSUER_URL, parse_endpoint)?;
    let client_id = layers.parse_optional(OIDC_CLIENT_ID, parse_token_text)?;
    let client_secret = match layers.get(OIDC_CLIENT_SECRET) {
        None => None,
        Some((secret, origin)) => {
            if secret.chars().count() > 1024 || secret.chars().any(char::is_control) {
                return Err(ConfigError::InvalidSecret {
                    origin,
                    expected: OIDC_CLIENT_SECRET.expected(),
                });
            }
            Some(Secret::new(secret))
        }
    };
    let allowed_email_domains =
        layers.parse(OIDC_ALLOWED_EMAIL_DOMAINS, |s| parse_list(s, is_domain))?;
    let admin_emails = layers.parse(OIDC_ADMIN_EMAILS, |s| parse_list(s, is_email))?;
    let admin_group = layers.parse_optional(OIDC_ADMIN_GROUP, parse_name)?;
    let Some(issuer_url) = issuer_url else {
        if client_id.is_some() || client_secret.is_some() {
            return Err(ConfigError::Inconsistent(
                "RUNWAY_OIDC_CLIENT_ID or RUNWAY_OIDC_CLIENT_SECRET is set without \
                 RUNWAY_OIDC_ISSUER_URL; set the issuer too, or remove them",
            ));
        }
        return Ok(None);
    };
    let Some(client_id) = client_id else {
        return Err(ConfigError::Inconsistent(
            "RUNWAY_OIDC_ISSUER_URL is set without RUNWAY_OIDC_CLIENT_ID; set the client id \
             the issuer gave this server",
        ));
    };
    if public_url.is_none() {
        return Err(ConfigError::Inconsistent(
            "RUNWAY_OIDC_ISSUER_URL is set without RUNWAY_PUBLIC_URL; the issuer sends \
             browsers back to {RUNWAY_PUBLIC_URL}/api/v1/auth/oidc/callback, so set the \
             server's external URL",
        ));
    }
    Ok(Some(OidcConfig {
        issuer_url,
        client_id,
        client_secret,
        allowed_email_domains,
        admin_emails,
        admin_group,
    }))
}

impl Config {
    /// Loads the configuration: defaults, then the file (`explicit`, else
    /// `RUNWAY_CONFIG`, else `./runway.toml` if it exists), then `env`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable or file key of the first bad value.
    pub fn load(
        explicit: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::load_with_default_file(explicit, env, Path::new(DEFAULT_CONFIG_FILE))
    }

    /// [`Config::load`] with the implicit file's location given, for tests.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with_default_file(
        explicit: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        default_file: &Path,
    ) -> Result<Self, ConfigError> {
        let named = match explicit {
            Some(path) => Some((path.to_owned(), "--config")),
            None => env(CONFIG_VAR)
                .filter(|v| !v.is_empty())
                .map(|v| (PathBuf::from(v), CONFIG_VAR)),
        };
        let file_path = match named {
            Some((path, named_by)) => {
                if !path.exists() {
                    return Err(ConfigError::FileMissing { path, named_by });
                }
                Some(path)
            }
            None => default_file.is_file().then(|| default_file.to_owned()),
        };
        let file = match file_path {
            Some(path) => {
                let parsed = read_file(&path)?;
                Some((path, parsed))
            }
            None => None,
        };
        Self::from_layers(Layers::new(file, &env), Host::Process)
    }

    /// The configuration of a Lambda function: defaults, then `env`; no file. The
    /// log format defaults to `json`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable of the first bad value.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_layers(Layers::new(None, &env), Host::Lambda)
    }

    fn from_layers<E: Fn(&str) -> Option<String>>(
        mut layers: Layers<'_, E>,
        host: Host,
    ) -> Result<Self, ConfigError> {
        let listen = layers.parse(LISTEN, |s| s.parse::<SocketAddr>().ok())?;
        let data_dir = layers.parse(DATA_DIR, |s| (!s.is_empty()).then(|| PathBuf::from(s)))?;
        let store = layers.parse(STORE, |s| match s {
            "sqlite" => Some(StoreKind::Sqlite),
            "dynamodb" => Some(StoreKind::Dynamodb),
            _ => None,
        })?;
        let dynamodb = DynamoSettings {
            table_prefix: layers.parse(DYNAMODB_TABLE_PREFIX, parse_table_prefix)?,
            endpoint: layers.parse_optional(DYNAMODB_ENDPOINT, parse_endpoint)?,
            region: layers.parse_optional(DYNAMODB_REGION, parse_region)?,
            log_bucket: layers.parse_optional(LOG_BUCKET, parse_bucket)?,
            s3_endpoint: layers.parse_optional(S3_ENDPOINT, parse_endpoint)?,
        };
        let log = layers.parse(LOG, |s| {
            tracing_subscriber::EnvFilter::builder()
                .parse(s)
                .ok()
                .map(|_| s.to_owned())
        })?;
        let log_format_setting = match host {
            Host::Process => LOG_FORMAT,
            Host::Lambda => Setting {
                default: Some("json"),
                ..LOG_FORMAT
            },
        };
        let log_format = layers.parse(log_format_setting, |s| match s {
            "pretty" => Some(LogFormat::Pretty),
            "json" => Some(LogFormat::Json),
            _ => None,
        })?;
        let admin_password = match layers.get(ADMIN_PASSWORD) {
            None => None,
            Some((password, origin)) => {
                let len = password.chars().count();
                if !(MIN_PASSWORD_LEN..=MAX_ADMIN_PASSWORD_LEN).contains(&len) {
                    return Err(ConfigError::InvalidSecret {
                        origin,
                        expected: ADMIN_PASSWORD.expected(),
                    });
                }
                Some(Secret::new(password))
            }
        };
        let cors_origins = layers.parse(CORS_ORIGINS, parse_origins)?;
        let public_url = layers.parse_optional(PUBLIC_URL, parse_public_url)?;
        let oidc = oidc_config(&mut layers, public_url.as_deref())?;
        let session_ttl_seconds = layers.whole(SESSION_TTL)?;
        let session_idle_timeout_seconds = layers.whole(SESSION_IDLE)?;
        let max_body_bytes = layers.whole(MAX_BODY)?;
        let shutdown_grace_seconds = layers.whole(SHUTDOWN_GRACE)?;
        let header_read_timeout_seconds = layers.whole(HEADER_READ_TIMEOUT)?;
        let request_timeout_seconds = layers.whole(REQUEST_TIMEOUT)?;
        let body_read_timeout_seconds = layers.whole(BODY_READ_TIMEOUT)?;
        let max_connections = layers.whole(MAX_CONNECTIONS)?;
        let job_lease_seconds = layers.whole(JOB_LEASE)?;
        let reaper_interval_seconds = layers.whole(REAPER_INTERVAL)?;
        let queue_ttl_seconds = layers.whole(QUEUE_TTL)?;
        let limits = limit_settings(&mut layers)?;

        Ok(Self {
            listen,
            data_dir,
            store,
            dynamodb,
            log,
            log_format,
            admin_password,
            cors_origins,
            public_url,
            oidc,
            session_ttl_seconds,
            session_idle_timeout_seconds,
            max_body_bytes,
            shutdown_grace_seconds,
            header_read_timeout_seconds,
            request_timeout_seconds,
            body_read_timeout_seconds,
            max_connections,
            job_lease_seconds,
            reaper_interval_seconds,
            queue_ttl_seconds,
            limits,
            sources: layers.sources,
        })
    }

    /// Applies `serve --listen`, which beats every other source.
    pub fn override_listen(&mut self, listen: SocketAddr) {
        self.listen = listen;
        self.sources.flags.push("--listen");
    }

    /// Applies `--data-dir`, which beats every other source.
    pub fn override_data_dir(&mut self, dir: PathBuf) {
        self.data_dir = dir;
        self.sources.flags.push("--data-dir");
    }

    /// Applies `dynamodb create-tables --prefix/--endpoint/--region`, which beat
    /// every other source.
    ///
    /// # Errors
    /// A flag value that is not valid, naming the flag.
    pub fn override_dynamodb(
        &mut self,
        prefix: Option<String>,
        endpoint: Option<String>,
        region: Option<String>,
    ) -> Result<(), ConfigError> {
        fn flag<T>(
            value: Option<String>,
            name: &'static str,
            setting: Setting,
            parse: fn(&str) -> Option<T>,
            flags: &mut Vec<&'static str>,
        ) -> Result<Option<T>, ConfigError> {
            let Some(value) = value else { return Ok(None) };
            let parsed = parse(value.trim()).ok_or(ConfigError::Invalid {
                origin: Origin::Flag(name),
                value,
                expected: setting.expected(),
            })?;
            flags.push(name);
            Ok(Some(parsed))
        }
        let flags = &mut self.sources.flags;
        if let Some(prefix) = flag(
            prefix,
            "--prefix",
            DYNAMODB_TABLE_PREFIX,
            parse_table_prefix,
            flags,
        )? {
            self.dynamodb.table_prefix = prefix;
        }
        if let Some(endpoint) = flag(
            endpoint,
            "--endpoint",
            DYNAMODB_ENDPOINT,
            parse_endpoint,
            flags,
        )? {
            self.dynamodb.endpoint = Some(endpoint);
        }
        if let Some(region) = flag(region, "--region", DYNAMODB_REGION, parse_region, flags)? {
            self.dynamodb.region = Some(region);
        }
        Ok(())
    }

    /// The dispatch settings of the service, locally (`runway serve`, `runway dev`).
    #[must_use]
    pub fn dispatch_settings(&self) -> runway_service::DispatchSettings {
        runway_service::DispatchSettings {
            lease: seconds(self.job_lease_seconds),
            queue_ttl: seconds(self.queue_ttl_seconds),
            reap_on_claim_every: std::time::Duration::from_secs(self.reaper_interval_seconds),
            ..runway_service::DispatchSettings::default()
        }
    }

    /// The dispatch settings on Lambda: a claim never waits (every waiting second is
    /// billed at the function's memory size), and agents are told to poll every
    /// [`LAMBDA_POLL_INTERVAL`] instead. DEPLOYMENT.md has the arithmetic.
    #[must_use]
    pub fn lambda_dispatch_settings(&self) -> runway_service::DispatchSettings {
        runway_service::DispatchSettings {
            claim_wait_max: std::time::Duration::ZERO,
            poll_interval: LAMBDA_POLL_INTERVAL,
            lease_waits: false,
            ..self.dispatch_settings()
        }
    }

    /// The settings the API needs.
    #[must_use]
    pub fn api_config(&self) -> runway_api::ApiConfig {
        runway_api::ApiConfig {
            session_ttl: seconds(self.session_ttl_seconds),
            session_idle_timeout: seconds(self.session_idle_timeout_seconds),
            cors_allowed_origins: self.cors_origins.clone(),
            public_url: self.public_url.clone(),
            max_body_bytes: self.max_body_bytes,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_seconds),
            body_read_timeout: std::time::Duration::from_secs(self.body_read_timeout_seconds),
            oidc: self.oidc_settings(),
            ..runway_api::ApiConfig::default()
        }
    }

    /// The service's OIDC settings, with the callback derived from the public URL.
    #[must_use]
    pub fn oidc_settings(&self) -> Option<runway_service::oidc::OidcSettings> {
        let oidc = self.oidc.as_ref()?;
        let public_url = self.public_url.as_deref()?;
        Some(runway_service::oidc::OidcSettings {
            issuer_url: oidc.issuer_url.clone(),
            client_id: oidc.client_id.clone(),
            client_secret: oidc.client_secret.clone(),
            redirect_url: format!("{public_url}/api/v1/auth/oidc/callback"),
            allowed_email_domains: oidc.allowed_email_domains.clone(),
            admin_emails: oidc.admin_emails.clone(),
            admin_group: oidc.admin_group.clone(),
        })
    }

    /// What `runway serve` bounds connections with, before any request exists.
    #[must_use]
    pub fn connection_limits(&self) -> crate::http::ConnectionLimits {
        crate::http::ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_seconds),
            max_connections: self.max_connections,
        }
    }

    /// The configuration as a TOML document, secrets shown as `[redacted]`, headed by
    /// comments saying which sources were read. Feeding it back as a file reproduces
    /// every setting except the admin password.
    #[must_use]
    pub fn to_toml(&self) -> String {
        use fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Effective configuration of runway {}.",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            out,
            "# Sources, lowest to highest precedence: {}.",
            self.sources
        );
        for setting in ALL {
            let value = match setting.key {
                "listen" => toml_string(&self.listen.to_string()),
                "data_dir" => toml_string(&self.data_dir.display().to_string()),
                "store" => toml_string(self.store.as_str()),
                "dynamodb_table_prefix" => toml_string(&self.dynamodb.table_prefix),
                "dynamodb_endpoint" => match &self.dynamodb.endpoint {
                    Some(endpoint) => toml_string(endpoint),
                    None => {
                        let _ = writeln!(
                            out,
                            "# dynamodb_endpoint is not set: the AWS SDK picks it (AWS_ENDPOINT_URL_DYNAMODB, else AWS)."
                        );
                        continue;
                    }
                },
                "dynamodb_region" => match &self.dynamodb.region {
                    Some(region) => toml_string(region),
                    None => {
                        let _ = writeln!(
                            out,
                            "# dynamodb_region is not set: the AWS SDK picks it (AWS_REGION, the profile)."
                        );
                        continue;
                    }
                },
                "log" => toml_string(&self.log),
                "log_format" => toml_string(self.log_format.as_str()),
                "admin_password" => match &self.admin_password {
                    Some(_) => toml_string("[redacted]"),
                    None => {
                        let _ = writeln!(
                            out,
                            "# admin_password is not set: the first start generates one and prints it once."
                        );
                        continue;
                    }
                },
                "cors_origins" => {
                    let items: Vec<String> =
                        self.cors_origins.iter().map(|o| toml_string(o)).collect();
                    format!("[{}]", items.join(", "))
                }
                "public_url" => match &self.public_url {
                    Some(url) => toml_string(url),
                    None => {
                        let _ = writeln!(
                            out,
                            "# public_url is not set: no Strict-Transport-Security header."
                        );
                        continue;
                    }
                },
                key @ ("oidc_issuer_url"
                | "oidc_client_id"
                | "oidc_client_secret"
                | "oidc_allowed_email_domains"
                | "oidc_admin_emails"
                | "oidc_admin_group") => {
                    let Some(oidc) = &self.oidc else {
                        if key == "oidc_issuer_url" {
                            let _ = writeln!(
                                out,
                                "# oidc_issuer_url is not set: sign-in is by password only."
                            );
                        }
                        continue;
                    };
                    let list = |items: &[String]| {
                        let items: Vec<String> = items.iter().map(|i| toml_string(i)).collect();
                        format!("[{}]", items.join(", "))
                    };
                    match key {
                        "oidc_issuer_url" => toml_string(&oidc.issuer_url),
                        "oidc_client_id" => toml_string(&oidc.client_id),
                        "oidc_client_secret" => match &oidc.client_secret {
                            Some(_) => toml_string("[redacted]"),
                            None => continue,
                        },
                        "oidc_allowed_email_domains" => list(&oidc.allowed_email_domains),
                        "oidc_admin_emails" => list(&oidc.admin_emails),
                        _ => match &oidc.admin_group {
                            Some(group) => toml_string(group),
                            None => continue,
                        },
                    }
                }
                "session_ttl_seconds" => self.session_ttl_seconds.to_string(),
                "session_idle_timeout_seconds" => self.session_idle_timeout_seconds.to_string(),
                "max_body_bytes" => self.max_body_bytes.to_string(),
                "shutdown_grace_seconds" => self.shutdown_grace_seconds.to_string(),
                "header_read_timeout_seconds" => self.header_read_timeout_seconds.to_string(),
                "request_timeout_seconds" => self.request_timeout_seconds.to_string(),
                "body_read_timeout_seconds" => self.body_read_timeout_seconds.to_string(),
                "max_connections" => self.max_connections.to_string(),
                "job_lease_seconds" => self.job_lease_seconds.to_string(),
                "reaper_interval_seconds" => self.reaper_interval_seconds.to_string(),
                "queue_ttl_seconds" => self.queue_ttl_seconds.to_string(),
                "rate_limit_window_seconds" => self.limits.window.as_secs().to_string(),
                "rate_limit_max_backoff_seconds" => self.limits.max_backoff.as_secs().to_string(),
                "signin_max_failures" => self.limits.sign_in_max_failures.to_string(),
                "signin_max_failures_per_ip" => self.limits.sign_in_max_failures_per_ip.to_string(),
                "register_max_attempts" => self.limits.register_max_attempts.to_string(),
                "token_create_max_attempts" => self.limits.token_create_max_attempts.to_string(),
                "log_bucket" => match &self.dynamodb.log_bucket {
                    Some(bucket) => toml_string(bucket),
                    None => {
                        let _ = writeln!(
                            out,
                            "# log_bucket is not set: needed with store = \"dynamodb\" (SQLite keeps logs itself)."
                        );
                        continue;
                    }
                },
                "s3_endpoint" => match &self.dynamodb.s3_endpoint {
                    Some(endpoint) => toml_string(endpoint),
                    None => {
                        let _ = writeln!(
                            out,
                            "# s3_endpoint is not set: the AWS SDK picks it (AWS_ENDPOINT_URL_S3, else AWS)."
                        );
                        continue;
                    }
                },
                _ => continue,
            };
            let _ = writeln!(out, "{} = {value}", setting.key);
        }
        out
    }
}

/// The abuse limits, checked to fit together: a lockout must not outlive the
/// counter it is computed from.
fn limit_settings<E: Fn(&str) -> Option<String>>(
    layers: &mut Layers<'_, E>,
) -> Result<runway_service::limits::LimitSettings, ConfigError> {
    let window: u64 = layers.whole(RATE_LIMIT_WINDOW)?;
    let max_backoff: u64 = layers.whole(RATE_LIMIT_MAX_BACKOFF)?;
    if max_backoff > window {
        return Err(ConfigError::Inconsistent(
            "RUNWAY_RATE_LIMIT_MAX_BACKOFF_SECONDS must be at most \
             RUNWAY_RATE_LIMIT_WINDOW_SECONDS: a lockout cannot outlast the counter it comes from",
        ));
    }
    Ok(runway_service::limits::LimitSettings {
        window: std::time::Duration::from_secs(window),
        max_backoff: std::time::Duration::from_secs(max_backoff),
        sign_in_max_failures: layers.whole(SIGNIN_MAX_FAILURES)?,
        sign_in_max_failures_per_ip: layers.whole(SIGNIN_MAX_FAILURES_PER_IP)?,
        register_max_attempts: layers.whole(REGISTER_MAX_ATTEMPTS)?,
        token_create_max_attempts: layers.whole(TOKEN_CREATE_MAX_ATTEMPTS)?,
    })
}

fn seconds(n: u64) -> time::Duration {
    // Both session settings are capped at a year, far inside i64.
    time::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A TOML basic string: quoted, with `"`, `\` and control characters escaped.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_malformed_admin_password_in_the_file_is_not_echoed_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runway.toml");
        std::fs::write(&path, "admin_password = 918273645546372\n").unwrap();
        let err = read_file(&path).unwrap_err().to_string();
        assert!(!err.contains("918273645546372"), "{err}");
        assert!(err.contains("admin_password"), "{err}");
    }
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn load(file: Option<&Path>, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        Config::load_with_default_file(file, env(pairs), &dir.path().join("runway.toml"))
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("runway.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn oidc_needs_a_client_id_and_a_public_url_and_derives_its_callback_from_it() {
        assert!(load(None, &[]).unwrap().oidc.is_none());
        let issuer = ("RUNWAY_OIDC_ISSUER_URL", "https://id.example.com");
        let client = ("RUNWAY_OIDC_CLIENT_ID", "runway");
        let public = ("RUNWAY_PUBLIC_URL", "https://ci.example.com/");
        let err = load(None, &[issuer, client]).unwrap_err().to_string();
        assert!(err.contains("RUNWAY_PUBLIC_URL"), "{err}");
        let err = load(None, &[issuer, public]).unwrap_err().to_string();
        assert!(err.contains("RUNWAY_OIDC_CLIENT_ID"), "{err}");
        let err = load(None, &[client]).unwrap_err().to_string();
        assert!(err.contains("RUNWAY_OIDC_ISSUER_URL"), "{err}");

        let c = load(
            None,
            &[
                issuer,
                client,
                public,
                ("RUNWAY_OIDC_CLIENT_SECRET", "s3cr3t-value"),
                (
                    "RUNWAY_OIDC_ALLOWED_EMAIL_DOMAINS",
                    "Example.com, example.org",
                ),
                ("RUNWAY_OIDC_ADMIN_EMAILS", "Ada@Example.com"),
                ("RUNWAY_OIDC_ADMIN_GROUP", "ci-admins"),
            ],
        )
        .unwrap();
        let settings = c.oidc_settings().unwrap();
        assert_eq!(
            settings.redirect_url,
            "https://ci.example.com/api/v1/auth/oidc/callback"
        );
        assert_eq!(
            settings.allowed_email_domains,
            ["example.com", "example.org"]
        );
        assert_eq!(settings.admin_emails, ["ada@example.com"]);
        assert_eq!(settings.admin_group.as_deref(), Some("ci-admins"));
        assert!(c.api_config().oidc.is_some());
        let printed = format!("{c:?}\n{}\n{settings:?}", c.to_toml());
        assert!(!printed.contains("s3cr3t-value"), "{printed}");
        assert!(c.to_toml().contains("oidc_client_secret = \"[redacted]\""));

        for (name, bad) in [
            ("RUNWAY_OIDC_ISSUER_URL", "id.example.com"),
            ("RUNWAY_OIDC_ALLOWED_EMAIL_DOMAINS", "example"),
            ("RUNWAY_OIDC_ADMIN_EMAILS", "ada"),
        ] {
            let err = load(None, &[issuer, client, public, (name, bad)])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(name), "{name}: {err}");
        }
    }

    #[test]
    fn with_nothing_set_every_setting_takes_its_default() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./runway-data"));
        assert_eq!(c.store, StoreKind::Sqlite);
        assert_eq!(c.log, "info");
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert!(c.admin_password.is_none());
        assert!(c.cors_origins.is_empty());
        assert_eq!(c.session_ttl_seconds, 604_800);
        assert_eq!(c.session_idle_timeout_seconds, 86_400);
        assert_eq!(c.max_body_bytes, 1_048_576);
        assert_eq!(c.shutdown_grace_seconds, 30);
        assert_eq!(c.header_read_timeout_seconds, 10);
        assert_eq!(c.request_timeout_seconds, 30);
        assert_eq!(c.body_read_timeout_seconds, 20);
        assert_eq!(c.max_connections, 512);
        assert_eq!(c.sources, Sources::default());
    }

    #[test]
    fn the_abuse_limits_default_to_the_services_and_a_backoff_past_the_window_is_refused() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.limits, runway_service::limits::LimitSettings::default());
        let c = load(
            None,
            &[
                ("RUNWAY_SIGNIN_MAX_FAILURES", "3"),
                ("RUNWAY_RATE_LIMIT_WINDOW_SECONDS", "120"),
                ("RUNWAY_RATE_LIMIT_MAX_BACKOFF_SECONDS", "60"),
                ("RUNWAY_REGISTER_MAX_ATTEMPTS", "7"),
            ],
        )
        .unwrap();
        assert_eq!(c.limits.sign_in_max_failures, 3);
        assert_eq!(c.limits.window, std::time::Duration::from_secs(120));
        assert_eq!(c.limits.max_backoff, std::time::Duration::from_secs(60));
        assert_eq!(c.limits.register_max_attempts, 7);
        let err = load(None, &[("RUNWAY_RATE_LIMIT_MAX_BACKOFF_SECONDS", "901")]).unwrap_err();
        assert!(
            matches!(err, ConfigError::Inconsistent(m) if m.contains("RUNWAY_RATE_LIMIT_WINDOW_SECONDS")),
            "{err}"
        );
        let err = load(None, &[("RUNWAY_SIGNIN_MAX_FAILURES", "0")]).unwrap_err();
        assert!(
            err.to_string().starts_with("RUNWAY_SIGNIN_MAX_FAILURES"),
            "{err}"
        );
    }

    #[test]
    fn the_file_beats_the_defaults_and_the_environment_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "listen = \"0.0.0.0:9000\"\nlog = \"debug\"\nmax_body_bytes = 2048\n",
        );
        let c = load(Some(&path), &[("RUNWAY_LOG", "warn")]).unwrap();
        assert_eq!(
            c.listen,
            "0.0.0.0:9000".parse().unwrap(),
            "file over default"
        );
        assert_eq!(c.max_body_bytes, 2048, "file over default");
        assert_eq!(c.log, "warn", "environment over file");
        assert_eq!(c.sources.file.as_deref(), Some(path.as_path()));
        assert_eq!(c.sources.env, vec!["RUNWAY_LOG"]);
    }

    #[test]
    fn flags_beat_the_environment() {
        let mut c = load(None, &[("RUNWAY_LISTEN", "127.0.0.1:1")]).unwrap();
        c.override_listen("127.0.0.1:2".parse().unwrap());
        c.override_data_dir(PathBuf::from("/srv/runway"));
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.data_dir, PathBuf::from("/srv/runway"));
        assert_eq!(c.sources.flags, vec!["--listen", "--data-dir"]);
    }

    #[test]
    fn runway_config_names_the_file_and_the_flag_beats_it() {
        let dir = tempfile::tempdir().unwrap();
        let from_env = write(&dir, "log = \"debug\"\n");
        let other = dir.path().join("other.toml");
        std::fs::write(&other, "log = \"trace\"\n").unwrap();
        let by_env = load(None, &[("RUNWAY_CONFIG", from_env.to_str().unwrap())]).unwrap();
        assert_eq!(by_env.log, "debug");
        let by_flag = load(
            Some(&other),
            &[("RUNWAY_CONFIG", from_env.to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(by_flag.log, "trace");
    }

    #[test]
    fn the_implicit_runway_toml_is_read_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "log_format = \"json\"\n");
        let c = Config::load_with_default_file(None, env(&[]), &path).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.sources.file, Some(path));
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error() {
        let err = load(Some(Path::new("/nonexistent/runway.toml")), &[]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::FileMissing {
                named_by: "--config",
                ..
            }
        ));
        let err = load(None, &[("RUNWAY_CONFIG", "/nonexistent/x.toml")]).unwrap_err();
        assert!(err.to_string().contains("RUNWAY_CONFIG"), "{err}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "log = \"info\"\nlisten_addr = \"x\"\n");
        let err = load(Some(&path), &[]).unwrap_err().to_string();
        assert!(err.contains("listen_addr"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_bad_environment_value_names_the_variable_and_the_accepted_form() {
        let err = load(None, &[("RUNWAY_LISTEN", "nonsense")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("RUNWAY_LISTEN is `nonsense`"), "{err}");
        assert!(err.contains("127.0.0.1:8080"), "{err}");
        for (var, value) in [
            ("RUNWAY_LOG_FORMAT", "xml"),
            ("RUNWAY_SESSION_TTL_SECONDS", "-5"),
            ("RUNWAY_SESSION_IDLE_TIMEOUT_SECONDS", "1"),
            ("RUNWAY_MAX_BODY_BYTES", "lots"),
            ("RUNWAY_SHUTDOWN_GRACE_SECONDS", "99999"),
            ("RUNWAY_HEADER_READ_TIMEOUT_SECONDS", "0"),
            ("RUNWAY_HEADER_READ_TIMEOUT_SECONDS", "301"),
            ("RUNWAY_REQUEST_TIMEOUT_SECONDS", "0"),
            ("RUNWAY_BODY_READ_TIMEOUT_SECONDS", "forever"),
            ("RUNWAY_MAX_CONNECTIONS", "0"),
            ("RUNWAY_CORS_ORIGINS", "ci.example.com"),
            ("RUNWAY_STORE", "postgres"),
            ("RUNWAY_LOG", "=[bad"),
        ] {
            let err = load(None, &[(var, value)]).unwrap_err().to_string();
            assert!(err.starts_with(var), "{var}: {err}");
            assert!(err.contains("expected"), "{var}: {err}");
        }
    }

    #[test]
    fn a_bad_file_value_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "log_format = \"xml\"\n");
        let err = load(Some(&path), &[]).unwrap_err().to_string();
        assert!(err.starts_with("`log_format` in "), "{err}");
        assert!(err.contains("`pretty` or `json`"), "{err}");
    }

    #[test]
    fn a_short_admin_password_is_refused_without_echoing_it() {
        let err = load(None, &[("RUNWAY_ADMIN_PASSWORD", "hunter2")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("RUNWAY_ADMIN_PASSWORD is not valid"),
            "{err}"
        );
        assert!(err.contains("12 to 1024 characters"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_dynamodb_store_is_chosen_with_its_prefix_endpoint_and_region() {
        let c = load(
            None,
            &[
                ("RUNWAY_STORE", "dynamodb"),
                ("RUNWAY_DYNAMODB_TABLE_PREFIX", "runway-prod-"),
                ("RUNWAY_DYNAMODB_ENDPOINT", "http://127.0.0.1:5000"),
                ("RUNWAY_DYNAMODB_REGION", "eu-west-1"),
            ],
        )
        .unwrap();
        assert_eq!(c.store, StoreKind::Dynamodb);
        let dynamo = c.dynamodb.store_config();
        assert_eq!(dynamo.table_prefix, "runway-prod-");
        assert_eq!(
            dynamo.endpoint_url.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(dynamo.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn the_dynamodb_settings_default_to_the_runway_prefix_and_the_sdk_chain() {
        let c = load(None, &[("RUNWAY_STORE", "dynamodb")]).unwrap();
        assert_eq!(c.dynamodb.table_prefix, "runway_");
        assert!(c.dynamodb.endpoint.is_none());
        assert!(c.dynamodb.region.is_none());
        let printed = c.to_toml();
        assert!(printed.contains("store = \"dynamodb\""), "{printed}");
        assert!(
            printed.contains("dynamodb_table_prefix = \"runway_\""),
            "{printed}"
        );
        assert!(
            printed.contains("# dynamodb_endpoint is not set"),
            "{printed}"
        );
        assert!(
            printed.contains("# dynamodb_region is not set"),
            "{printed}"
        );
    }

    #[test]
    fn the_dynamodb_endpoint_shown_is_the_override_else_the_sdk_variable_else_aws() {
        let mut settings = load(None, &[]).unwrap().dynamodb;
        assert_eq!(settings.endpoint_for_display(|_| None), "AWS");
        let sdk = |name: &str| {
            (name == "AWS_ENDPOINT_URL_DYNAMODB").then(|| "http://127.0.0.1:8000".to_owned())
        };
        assert_eq!(
            settings.endpoint_for_display(sdk),
            "http://127.0.0.1:8000, from AWS_ENDPOINT_URL_DYNAMODB"
        );
        settings.endpoint = Some("http://127.0.0.1:5000".into());
        assert_eq!(settings.endpoint_for_display(sdk), "http://127.0.0.1:5000");
    }

    #[test]
    fn bad_dynamodb_settings_name_the_variable() {
        for (var, value) in [
            ("RUNWAY_DYNAMODB_TABLE_PREFIX", "runway prod"),
            ("RUNWAY_DYNAMODB_TABLE_PREFIX", "tables/"),
            ("RUNWAY_DYNAMODB_ENDPOINT", "localhost:5000"),
            ("RUNWAY_DYNAMODB_ENDPOINT", "http://"),
            ("RUNWAY_DYNAMODB_REGION", "EU West"),
        ] {
            let err = load(None, &[(var, value)]).unwrap_err().to_string();
            assert!(err.starts_with(var), "{var}: {err}");
            assert!(err.contains("expected"), "{var}: {err}");
        }
    }

    #[test]
    fn the_dynamodb_settings_read_from_the_file_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "store = \"dynamodb\"\ndynamodb_table_prefix = \"ci-\"\ndynamodb_region = \"us-east-2\"\n",
        );
        let c = load(Some(&path), &[]).unwrap();
        assert_eq!(c.store, StoreKind::Dynamodb);
        assert_eq!(c.dynamodb.table_prefix, "ci-");
        assert_eq!(c.dynamodb.region.as_deref(), Some("us-east-2"));
        let again_path = write(&dir, &c.to_toml());
        let again = load(Some(&again_path), &[]).unwrap();
        assert_eq!(again.dynamodb, c.dynamodb);
        assert_eq!(again.store, StoreKind::Dynamodb);
    }

    #[test]
    fn on_lambda_no_file_is_read_and_logs_default_to_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "log = \"trace\"\n");
        let c = Config::from_env(env(&[
            ("RUNWAY_CONFIG", path.to_str().unwrap()),
            ("RUNWAY_STORE", "dynamodb"),
        ]))
        .unwrap();
        assert_eq!(c.log, "info", "the file named by RUNWAY_CONFIG is ignored");
        assert_eq!(c.sources.file, None);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.store, StoreKind::Dynamodb);
        let pretty = Config::from_env(env(&[("RUNWAY_LOG_FORMAT", "pretty")])).unwrap();
        assert_eq!(
            pretty.log_format,
            LogFormat::Pretty,
            "the environment still wins"
        );
    }

    #[test]
    fn create_tables_flags_beat_the_environment_and_bad_ones_name_the_flag() {
        let mut c = load(None, &[("RUNWAY_DYNAMODB_TABLE_PREFIX", "env-")]).unwrap();
        c.override_dynamodb(
            Some("flag-".into()),
            Some("http://127.0.0.1:1".into()),
            None,
        )
        .unwrap();
        assert_eq!(c.dynamodb.table_prefix, "flag-");
        assert_eq!(c.dynamodb.endpoint.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(c.sources.flags, vec!["--prefix", "--endpoint"]);
        let err = c
            .override_dynamodb(None, None, Some("Mars".into()))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--region is `Mars`"), "{err}");
    }

    #[test]
    fn cors_origins_are_split_on_commas_in_the_environment_and_read_as_an_array_in_the_file() {
        let c = load(
            None,
            &[(
                "RUNWAY_CORS_ORIGINS",
                "https://a.example, http://localhost:3000",
            )],
        )
        .unwrap();
        assert_eq!(
            c.cors_origins,
            ["https://a.example", "http://localhost:3000"]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "cors_origins = [\"https://b.example\"]\n");
        let c = load(Some(&path), &[]).unwrap();
        assert_eq!(c.cors_origins, ["https://b.example"]);
    }

    #[test]
    fn the_public_url_is_optional_loses_its_trailing_slash_and_must_be_http_or_https() {
        assert_eq!(load(None, &[]).unwrap().public_url, None);
        let c = load(None, &[("RUNWAY_PUBLIC_URL", "https://ci.example.com/")]).unwrap();
        assert_eq!(c.public_url.as_deref(), Some("https://ci.example.com"));
        assert_eq!(
            c.api_config().public_url.as_deref(),
            Some("https://ci.example.com")
        );
        let c = load(
            None,
            &[("RUNWAY_PUBLIC_URL", "http://10.0.0.5:8080/runway")],
        )
        .unwrap();
        assert_eq!(c.public_url.as_deref(), Some("http://10.0.0.5:8080/runway"));
        for bad in [
            "ci.example.com",
            "https://",
            "ftp://ci.example.com",
            "https://ci.example.com/?x=1",
            "https://user:pw@ci.example.com",
            "https://ci example.com",
        ] {
            let err = load(None, &[("RUNWAY_PUBLIC_URL", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("RUNWAY_PUBLIC_URL"), "{bad}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "public_url = \"https://b.example\"\n");
        let c = load(Some(&path), &[]).unwrap();
        assert_eq!(c.public_url.as_deref(), Some("https://b.example"));
        assert!(c.to_toml().contains("public_url = \"https://b.example\""));
    }

    #[test]
    fn the_connection_and_request_bounds_reach_the_server_and_the_router() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "header_read_timeout_seconds = 3\nmax_connections = 64\n",
        );
        let c = load(
            Some(&path),
            &[
                ("RUNWAY_REQUEST_TIMEOUT_SECONDS", "45"),
                ("RUNWAY_BODY_READ_TIMEOUT_SECONDS", "7"),
            ],
        )
        .unwrap();
        let limits = c.connection_limits();
        assert_eq!(
            limits.header_read_timeout,
            std::time::Duration::from_secs(3)
        );
        assert_eq!(limits.max_connections, 64);
        let api = c.api_config();
        assert_eq!(api.request_timeout, std::time::Duration::from_secs(45));
        assert_eq!(api.body_read_timeout, std::time::Duration::from_secs(7));
        let again = load(Some(&write(&dir, &c.to_toml())), &[]).unwrap();
        assert_eq!(again.max_connections, 64);
        assert_eq!(again.request_timeout_seconds, 45);
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "log = \"debug\"\n");
        let c = load(
            Some(&path),
            &[("RUNWAY_LOG", ""), ("RUNWAY_ADMIN_PASSWORD", "")],
        )
        .unwrap();
        assert_eq!(c.log, "debug");
        assert!(c.admin_password.is_none());
    }

    #[test]
    fn the_admin_password_never_shows_in_debug_or_in_the_printed_config() {
        let c = load(None, &[("RUNWAY_ADMIN_PASSWORD", "hunter2-hunter2")]).unwrap();
        assert_eq!(
            c.admin_password.as_ref().unwrap().expose(),
            "hunter2-hunter2"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        let printed = c.to_toml();
        assert!(!printed.contains("hunter2"));
        assert!(
            printed.contains("admin_password = \"[redacted]\""),
            "{printed}"
        );
    }

    #[test]
    fn the_printed_config_reads_back_as_the_same_settings() {
        let c = load(
            None,
            &[
                ("RUNWAY_DATA_DIR", "/var/lib/runway \"x\""),
                ("RUNWAY_CORS_ORIGINS", "https://a.example"),
                ("RUNWAY_SHUTDOWN_GRACE_SECONDS", "5"),
            ],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, &c.to_toml());
        let again = load(Some(&path), &[]).unwrap();
        assert_eq!(again.data_dir, c.data_dir);
        assert_eq!(again.cors_origins, c.cors_origins);
        assert_eq!(again.shutdown_grace_seconds, 5);
        assert_eq!(again.listen, c.listen);
    }
}
