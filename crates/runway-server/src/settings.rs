//! Every server setting, declared once: its variable, its file key, its default,
//! what it accepts (with the bounds the loader enforces) and its documentation.
//!
//! [`crate::config`] parses with these declarations (a number's range is checked
//! from [`Accepts::Whole`], and an error quotes [`Setting::expected`]), `runway
//! config` prints in the order of [`ALL`], and the two documents users read are
//! generated from them: the README's configuration table ([`readme_table`]) and the
//! server part of `.env.example` ([`env_example`]). `runway config --reference
//! readme|env` prints either; a test fails when a checked-in copy differs from what
//! these declarations generate, so adding a setting here and regenerating is the
//! whole job, and the documents cannot drift from the code.
//!
//! `RUNWAY_CONFIG` (which file to read) is not among them: it decides where the
//! others come from, so it is documented by hand above the generated part.

use std::fmt::Write as _;

/// What a setting accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Accepts {
    /// Text checked by the setting's own parser, described here.
    Text(&'static str),
    /// A whole number in `min..=max`, of `unit` (plural, e.g. `seconds`; empty for
    /// a plain count).
    Whole {
        min: u64,
        max: u64,
        unit: &'static str,
    },
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setting {
    /// The environment variable.
    pub(crate) env: &'static str,
    /// The key in `runway.toml`.
    pub(crate) key: &'static str,
    /// The built-in default; `None` for a setting that is unset unless given.
    pub(crate) default: Option<&'static str>,
    /// How the README shows the default when it is not simply [`Setting::default`]
    /// (e.g. `AWS` for an endpoint the SDK picks).
    pub(crate) shown_default: Option<&'static str>,
    /// What it accepts.
    pub(crate) accepts: Accepts,
    /// What it does, for people: one paragraph of Markdown.
    pub(crate) doc: &'static str,
    /// A value to show in `.env.example` (else the default).
    pub(crate) example: Option<&'static str>,
}

impl Setting {
    /// What a valid value looks like, for error messages.
    pub(crate) fn expected(&self) -> String {
        match self.accepts {
            Accepts::Text(text) => text.to_owned(),
            Accepts::Whole { min, max, unit: "" } => {
                format!("a whole number from {min} to {max}")
            }
            Accepts::Whole { min, max, unit } => {
                format!("a whole number of {unit} from {min} to {max}")
            }
        }
    }

    /// The range a whole number must be in.
    pub(crate) fn range(&self) -> Option<std::ops::RangeInclusive<u64>> {
        match self.accepts {
            Accepts::Whole { min, max, .. } => Some(min..=max),
            Accepts::Text(_) => None,
        }
    }

    /// The README's default column.
    fn shown_default(&self) -> String {
        match (self.shown_default, self.default) {
            (Some(shown), _) => shown.to_owned(),
            (None, Some("") | None) => "none".to_owned(),
            (None, Some(default)) => format!("`{default}`"),
        }
    }
}

/// A blank to build the declarations from.
const BLANK: Setting = Setting {
    env: "",
    key: "",
    default: None,
    shown_default: None,
    accepts: Accepts::Text(""),
    doc: "",
    example: None,
};

const fn seconds(min: u64, max: u64) -> Accepts {
    Accepts::Whole {
        min,
        max,
        unit: "seconds",
    }
}

pub(crate) const LISTEN: Setting = Setting {
    env: "RUNWAY_LISTEN",
    key: "listen",
    default: Some("127.0.0.1:8080"),
    accepts: Accepts::Text(
        "an IP address and port, e.g. 127.0.0.1:8080 or [::]:8080 (port 0 picks a free port)",
    ),
    doc: "Address and port to serve on (an IP, not a host name; `serve --listen` beats it). \
          Port 0 picks a free port.",
    ..BLANK
};
pub(crate) const DATA_DIR: Setting = Setting {
    env: "RUNWAY_DATA_DIR",
    key: "data_dir",
    default: Some("./runway-data"),
    accepts: Accepts::Text("a directory path"),
    doc: "Where the SQLite database lives (`--data-dir` beats it). Created with mode `0700`, \
          its files `0600`; a wider existing one is tightened.",
    ..BLANK
};
pub(crate) const STORE: Setting = Setting {
    env: "RUNWAY_STORE",
    key: "store",
    default: Some("sqlite"),
    accepts: Accepts::Text("`sqlite` or `dynamodb`"),
    doc: "The store backend: `sqlite` (the data directory) or `dynamodb`.",
    ..BLANK
};
pub(crate) const DYNAMODB_TABLE_PREFIX: Setting = Setting {
    env: "RUNWAY_DYNAMODB_TABLE_PREFIX",
    key: "dynamodb_table_prefix",
    default: Some("runway_"),
    accepts: Accepts::Text(
        "1 to 200 letters, digits, `_`, `-` or `.` (DynamoDB table name characters)",
    ),
    doc: "Prepended to every DynamoDB table name (`runway_users`, `runway_jobs`, …). Create \
          the tables with `runway dynamodb create-tables` (Terraform does in production).",
    ..BLANK
};
pub(crate) const DYNAMODB_ENDPOINT: Setting = Setting {
    env: "RUNWAY_DYNAMODB_ENDPOINT",
    key: "dynamodb_endpoint",
    shown_default: Some("AWS"),
    accepts: Accepts::Text("an http:// or https:// URL such as http://127.0.0.1:5000"),
    doc: "DynamoDB endpoint override, e.g. moto or DynamoDB Local (the AWS SDK's own \
          `AWS_ENDPOINT_URL_DYNAMODB` works too).",
    example: Some("http://127.0.0.1:5000"),
    ..BLANK
};
pub(crate) const DYNAMODB_REGION: Setting = Setting {
    env: "RUNWAY_DYNAMODB_REGION",
    key: "dynamodb_region",
    shown_default: Some("the AWS SDK's"),
    accepts: Accepts::Text("an AWS region name such as eu-west-1"),
    doc: "Region of the DynamoDB tables. Unset: the AWS SDK's chain (`AWS_REGION`, the \
          profile; on Lambda, the function's region). Credentials always come from the AWS \
          chain.",
    example: Some("eu-west-1"),
    ..BLANK
};
pub(crate) const LOG: Setting = Setting {
    env: "RUNWAY_LOG",
    key: "log",
    default: Some("info"),
    accepts: Accepts::Text("a tracing filter such as `info` or `info,runway_api=debug`"),
    doc: "Log filter, a tracing `EnvFilter` directive such as `info,runway_api=debug`. The \
          AWS SDK, hyper, h2, rustls, reqwest and the Lambda runtime never log below `info` \
          whatever it says: their debug output carries credentials and items.",
    ..BLANK
};
pub(crate) const LOG_FORMAT: Setting = Setting {
    env: "RUNWAY_LOG_FORMAT",
    key: "log_format",
    default: Some("pretty"),
    shown_default: Some("`pretty` (`json` on Lambda)"),
    accepts: Accepts::Text("`pretty` or `json`"),
    doc: "Log format on stderr: `pretty` for people (compact), `json` for log pipelines \
          (one object per line).",
    ..BLANK
};
pub(crate) const ADMIN_PASSWORD: Setting = Setting {
    env: "RUNWAY_ADMIN_PASSWORD",
    key: "admin_password",
    shown_default: Some("generated"),
    accepts: Accepts::Text("a password of 12 to 1024 characters"),
    doc: "Password of the `admin` user created on the very first start; ignored once any \
          user exists. Unset: a random one is generated and printed once. Never logged. On \
          Lambda, unset means no admin is created (nobody would see it): use \
          `RUNWAY_STORE=dynamodb runway admin create-user` from a workstation.",
    example: Some(""),
    ..BLANK
};
pub(crate) const CORS_ORIGINS: Setting = Setting {
    env: "RUNWAY_CORS_ORIGINS",
    key: "cors_origins",
    default: Some(""),
    accepts: Accepts::Text(
        "comma-separated origins such as https://ci.example.com,http://localhost:3000",
    ),
    doc: "Comma-separated exact browser origins (`scheme://host[:port]`, no path, no \
          wildcard) allowed to call the API, with credentials (in the file, an array of \
          strings). None: no CORS header at all.",
    example: Some("https://ci.example.com,http://localhost:3000"),
    ..BLANK
};
pub(crate) const PUBLIC_URL: Setting = Setting {
    env: "RUNWAY_PUBLIC_URL",
    key: "public_url",
    accepts: Accepts::Text(
        "the server's external http:// or https:// URL, e.g. https://ci.example.com or \
         https://example.com/runway (no query or fragment)",
    ),
    doc: "The server's external URL, as browsers and agents reach it (behind a TLS proxy, \
          the proxy's). An `https://` one turns on `Strict-Transport-Security`; the OIDC \
          callback is `{this}/api/v1/auth/oidc/callback`; session cookies are `Secure` \
          unless it is plain `http://` on `localhost`, `127.0.0.1` or `[::1]`.",
    example: Some("https://ci.example.com"),
    ..BLANK
};
pub(crate) const OIDC_ISSUER_URL: Setting = Setting {
    env: "RUNWAY_OIDC_ISSUER_URL",
    key: "oidc_issuer_url",
    accepts: Accepts::Text(
        "the issuer's http:// or https:// URL, exactly as its ID tokens' `iss`, e.g. \
         https://accounts.example.com",
    ),
    doc: "The OpenID Connect issuer to sign in with (authorization code + PKCE), exactly \
          its ID tokens' `iss`. Needs `RUNWAY_PUBLIC_URL` and `RUNWAY_OIDC_CLIENT_ID`; \
          register the callback as a redirect URI at the issuer. Unset: password sign-in \
          only.",
    example: Some("https://accounts.example.com"),
    ..BLANK
};
pub(crate) const OIDC_CLIENT_ID: Setting = Setting {
    env: "RUNWAY_OIDC_CLIENT_ID",
    key: "oidc_client_id",
    accepts: Accepts::Text(
        "the client id the issuer gave this server: 1 to 255 characters, no spaces",
    ),
    doc: "This server's client id at the issuer.",
    example: Some("runway"),
    ..BLANK
};
pub(crate) const OIDC_CLIENT_SECRET: Setting = Setting {
    env: "RUNWAY_OIDC_CLIENT_SECRET",
    key: "oidc_client_secret",
    accepts: Accepts::Text("the client secret the issuer gave this server, 1 to 1024 characters"),
    doc: "Its client secret (a confidential client; unset for a public one). `[redacted]` \
          in `runway config`, never logged.",
    example: Some(""),
    ..BLANK
};
pub(crate) const OIDC_ALLOWED_EMAIL_DOMAINS: Setting = Setting {
    env: "RUNWAY_OIDC_ALLOWED_EMAIL_DOMAINS",
    key: "oidc_allowed_email_domains",
    default: Some(""),
    shown_default: Some("all"),
    accepts: Accepts::Text("comma-separated email domains such as example.com,example.org"),
    doc: "Comma-separated email domains let in; their `email_verified` must be true.",
    example: Some("example.com"),
};
pub(crate) const OIDC_ADMIN_EMAILS: Setting = Setting {
    env: "RUNWAY_OIDC_ADMIN_EMAILS",
    key: "oidc_admin_emails",
    default: Some(""),
    accepts: Accepts::Text(
        "comma-separated email addresses such as ada@example.com,grace@example.com",
    ),
    doc: "Comma-separated verified emails that become admins at their first sign-in.",
    example: Some("ada@example.com"),
    ..BLANK
};
pub(crate) const OIDC_ADMIN_GROUP: Setting = Setting {
    env: "RUNWAY_OIDC_ADMIN_GROUP",
    key: "oidc_admin_group",
    accepts: Accepts::Text(
        "a group name as the issuer's `groups` claim holds it, 1 to 255 characters",
    ),
    doc: "A `groups` claim value that makes an admin at the first sign-in (the `groups` \
          scope is then requested). Everyone else starts as a member.",
    example: Some("ci-admins"),
    ..BLANK
};
pub(crate) const SESSION_TTL: Setting = Setting {
    env: "RUNWAY_SESSION_TTL_SECONDS",
    key: "session_ttl_seconds",
    default: Some("604800"),
    accepts: seconds(60, 31_536_000),
    doc: "Absolute session lifetime (7 days).",
    ..BLANK
};
pub(crate) const SESSION_IDLE: Setting = Setting {
    env: "RUNWAY_SESSION_IDLE_TIMEOUT_SECONDS",
    key: "session_idle_timeout_seconds",
    default: Some("86400"),
    accepts: seconds(60, 31_536_000),
    doc: "A session unused this long lapses (24 hours).",
    ..BLANK
};
pub(crate) const MAX_BODY: Setting = Setting {
    env: "RUNWAY_MAX_BODY_BYTES",
    key: "max_body_bytes",
    default: Some("1048576"),
    accepts: Accepts::Whole {
        min: 1024,
        max: 1_073_741_824,
        unit: "bytes",
    },
    doc: "Largest request body (1 MiB).",
    ..BLANK
};
pub(crate) const SHUTDOWN_GRACE: Setting = Setting {
    env: "RUNWAY_SHUTDOWN_GRACE_SECONDS",
    key: "shutdown_grace_seconds",
    default: Some("30"),
    accepts: seconds(0, 3600),
    doc: "How long in-flight requests get to finish on SIGTERM or Ctrl-C (waiting claims \
          and live log streams are answered at once).",
    ..BLANK
};
pub(crate) const HEADER_READ_TIMEOUT: Setting = Setting {
    env: "RUNWAY_HEADER_READ_TIMEOUT_SECONDS",
    key: "header_read_timeout_seconds",
    default: Some("10"),
    accepts: seconds(1, 300),
    doc: "Time for a request's line and headers to arrive, else 408 and the connection is \
          closed; also how long an idle keep-alive connection stays open.",
    ..BLANK
};
pub(crate) const REQUEST_TIMEOUT: Setting = Setting {
    env: "RUNWAY_REQUEST_TIMEOUT_SECONDS",
    key: "request_timeout_seconds",
    default: Some("30"),
    accepts: seconds(1, 3600),
    doc: "Time for a handler to answer, else 503 `request_timeout`; a waiting claim or \
          lease renewal gets its wait on top, and a live log stream's body is not bounded \
          by it.",
    ..BLANK
};
pub(crate) const BODY_READ_TIMEOUT: Setting = Setting {
    env: "RUNWAY_BODY_READ_TIMEOUT_SECONDS",
    key: "body_read_timeout_seconds",
    default: Some("20"),
    accepts: seconds(1, 3600),
    doc: "Time for a whole request body to arrive, else 408 `body_timeout`.",
    ..BLANK
};
pub(crate) const MAX_CONNECTIONS: Setting = Setting {
    env: "RUNWAY_MAX_CONNECTIONS",
    key: "max_connections",
    default: Some("512"),
    accepts: Accepts::Whole {
        min: 1,
        max: 1_000_000,
        unit: "",
    },
    doc: "Connections `runway serve` holds open at once; more wait in the listen backlog \
          until one closes. Keep it under the open-file limit (`ulimit -n`).",
    ..BLANK
};
pub(crate) const JOB_LEASE: Setting = Setting {
    env: "RUNWAY_JOB_LEASE_SECONDS",
    key: "job_lease_seconds",
    default: Some("120"),
    accepts: seconds(5, 3600),
    doc: "A claimed or running job without a renewal from its agent for this long is lost, \
          and queued again while retries remain. Agents renew every third of it.",
    ..BLANK
};
pub(crate) const REAPER_INTERVAL: Setting = Setting {
    env: "RUNWAY_REAPER_INTERVAL_SECONDS",
    key: "reaper_interval_seconds",
    default: Some("15"),
    accepts: seconds(1, 3600),
    doc: "How often `runway serve` runs the reaper (lost leases, timeouts, the queue TTL); \
          claims also run it. On AWS an EventBridge schedule runs it every minute instead.",
    ..BLANK
};
pub(crate) const QUEUE_TTL: Setting = Setting {
    env: "RUNWAY_QUEUE_TTL_SECONDS",
    key: "queue_ttl_seconds",
    default: Some("86400"),
    accepts: seconds(60, 31_536_000),
    doc: "A job queued this long expires (24 hours).",
    ..BLANK
};
pub(crate) const RATE_LIMIT_WINDOW: Setting = Setting {
    env: "RUNWAY_RATE_LIMIT_WINDOW_SECONDS",
    key: "rate_limit_window_seconds",
    default: Some("900"),
    accepts: seconds(60, 86_400),
    doc: "How long an abuse-limit counter (sign-ins, agent registrations, token creations) \
          remembers attempts after the latest one (15 minutes). The counters live in the \
          store, so they hold across Lambda instances.",
    ..BLANK
};
pub(crate) const RATE_LIMIT_MAX_BACKOFF: Setting = Setting {
    env: "RUNWAY_RATE_LIMIT_MAX_BACKOFF_SECONDS",
    key: "rate_limit_max_backoff_seconds",
    default: Some("900"),
    accepts: seconds(1, 86_400),
    doc: "The longest lockout once a limit is reached: 1 s, doubling with each further \
          attempt, answered 429 with `Retry-After`. At most `RUNWAY_RATE_LIMIT_WINDOW_SECONDS`.",
    ..BLANK
};
pub(crate) const SIGNIN_MAX_FAILURES: Setting = Setting {
    env: "RUNWAY_SIGNIN_MAX_FAILURES",
    key: "signin_max_failures",
    default: Some("5"),
    accepts: Accepts::Whole {
        min: 1,
        max: 1000,
        unit: "",
    },
    doc: "Failed password sign-ins per account before the backoff starts; a success \
          clears the count.",
    ..BLANK
};
pub(crate) const SIGNIN_MAX_FAILURES_PER_IP: Setting = Setting {
    env: "RUNWAY_SIGNIN_MAX_FAILURES_PER_IP",
    key: "signin_max_failures_per_ip",
    default: Some("50"),
    accepts: Accepts::Whole {
        min: 1,
        max: 100_000,
        unit: "",
    },
    doc: "Failed sign-ins (password or OpenID Connect callback) per client address before \
          the backoff starts.",
    ..BLANK
};
pub(crate) const REGISTER_MAX_ATTEMPTS: Setting = Setting {
    env: "RUNWAY_REGISTER_MAX_ATTEMPTS",
    key: "register_max_attempts",
    default: Some("100"),
    accepts: Accepts::Whole {
        min: 1,
        max: 100_000,
        unit: "",
    },
    doc: "Agent registrations per client address, and per registration token, before the \
          backoff starts.",
    ..BLANK
};
pub(crate) const TOKEN_CREATE_MAX_ATTEMPTS: Setting = Setting {
    env: "RUNWAY_TOKEN_CREATE_MAX_ATTEMPTS",
    key: "token_create_max_attempts",
    default: Some("30"),
    accepts: Accepts::Whole {
        min: 1,
        max: 100_000,
        unit: "",
    },
    doc: "Token creations (registration tokens and personal API tokens) per user, and per \
          client address, before the backoff starts.",
    ..BLANK
};
pub(crate) const LOG_BUCKET: Setting = Setting {
    env: "RUNWAY_LOG_BUCKET",
    key: "log_bucket",
    accepts: Accepts::Text("an S3 bucket name: 3 to 63 lowercase letters, digits, `.` and `-`"),
    doc: "The S3 bucket of job logs, required with `RUNWAY_STORE=dynamodb` (SQLite keeps \
          logs in its database). Terraform creates it and sets this on the function; \
          `runway dynamodb create-tables` creates a plain one for emulators.",
    example: Some("runway-staging-logs"),
    ..BLANK
};
pub(crate) const S3_ENDPOINT: Setting = Setting {
    env: "RUNWAY_S3_ENDPOINT",
    key: "s3_endpoint",
    shown_default: Some("AWS"),
    accepts: Accepts::Text("an http:// or https:// URL such as http://127.0.0.1:5000"),
    doc: "S3 endpoint override, e.g. moto, with path-style addressing (the AWS SDK's own \
          `AWS_ENDPOINT_URL_S3` works too).",
    example: Some("http://127.0.0.1:5000"),
    ..BLANK
};

/// Every setting, in the order `runway config` prints them and the documents list
/// them.
pub(crate) const ALL: [Setting; 36] = [
    LISTEN,
    DATA_DIR,
    STORE,
    DYNAMODB_TABLE_PREFIX,
    DYNAMODB_ENDPOINT,
    DYNAMODB_REGION,
    LOG,
    LOG_FORMAT,
    ADMIN_PASSWORD,
    CORS_ORIGINS,
    PUBLIC_URL,
    OIDC_ISSUER_URL,
    OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET,
    OIDC_ALLOWED_EMAIL_DOMAINS,
    OIDC_ADMIN_EMAILS,
    OIDC_ADMIN_GROUP,
    SESSION_TTL,
    SESSION_IDLE,
    MAX_BODY,
    SHUTDOWN_GRACE,
    HEADER_READ_TIMEOUT,
    REQUEST_TIMEOUT,
    BODY_READ_TIMEOUT,
    MAX_CONNECTIONS,
    JOB_LEASE,
    REAPER_INTERVAL,
    QUEUE_TTL,
    RATE_LIMIT_WINDOW,
    RATE_LIMIT_MAX_BACKOFF,
    SIGNIN_MAX_FAILURES,
    SIGNIN_MAX_FAILURES_PER_IP,
    REGISTER_MAX_ATTEMPTS,
    TOKEN_CREATE_MAX_ATTEMPTS,
    LOG_BUCKET,
    S3_ENDPOINT,
];

/// The README's configuration table, generated from [`ALL`].
#[must_use]
pub fn readme_table() -> String {
    let mut out = String::from("| variable | default | accepts | meaning |\n|---|---|---|---|\n");
    for s in ALL {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            s.env,
            s.shown_default(),
            s.expected().replace('|', "\\|"),
            s.doc.replace('|', "\\|"),
        );
    }
    out
}

/// The server part of `.env.example`, generated from [`ALL`]: each setting's
/// documentation wrapped as comments, what it accepts and its default, then the
/// variable commented out with its default or an example.
#[must_use]
pub fn env_example() -> String {
    let mut out = String::new();
    for s in ALL {
        for line in wrap(s.doc, 84) {
            let _ = writeln!(out, "# {line}");
        }
        let accepts = format!(
            "Accepts {}. Default: {}.",
            s.expected(),
            s.shown_default().replace('`', "")
        );
        for line in wrap(&accepts, 84) {
            let _ = writeln!(out, "# {line}");
        }
        let value = s.example.or(s.default).unwrap_or_default();
        let _ = writeln!(out, "# {}={value}\n", s.env);
    }
    out
}

/// Greedy word wrap at `width` columns.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The start and end markers of a generated part in a checked-in document.
    const GENERATED_START: &str = "generated by `runway config --reference";
    const GENERATED_END: &str = "end of the generated part";

    /// The text between the line holding [`GENERATED_START`] and the line holding
    /// [`GENERATED_END`].
    fn generated_part(document: &str) -> String {
        let mut lines = document.lines();
        lines
            .by_ref()
            .find(|l| l.contains(GENERATED_START))
            .expect("the document marks its generated part");
        let mut part = String::new();
        for line in lines {
            if line.contains(GENERATED_END) {
                return part;
            }
            part.push_str(line);
            part.push('\n');
        }
        panic!("the generated part has no end marker");
    }

    fn document(name: &str) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        std::fs::read_to_string(root.join(name)).unwrap()
    }

    #[test]
    fn the_readme_table_is_the_one_the_declarations_generate() {
        assert_eq!(
            generated_part(&document("README.md")),
            readme_table(),
            "README.md's configuration table is stale: replace it with the output of \
             `cargo run -- config --reference readme`"
        );
    }

    #[test]
    fn the_env_example_is_the_one_the_declarations_generate() {
        assert_eq!(
            generated_part(&document(".env.example")),
            env_example(),
            ".env.example is stale: replace its generated part with the output of \
             `cargo run -- config --reference env`"
        );
    }

    #[test]
    fn every_setting_has_a_distinct_name_a_matching_key_and_documentation() {
        let mut seen = std::collections::HashSet::new();
        for s in ALL {
            assert!(seen.insert(s.env), "{} is declared twice", s.env);
            assert_eq!(
                s.key,
                s.env.trim_start_matches("RUNWAY_").to_ascii_lowercase(),
                "{}'s file key is its name without RUNWAY_, in lower case",
                s.env
            );
            assert!(!s.doc.is_empty(), "{} has no documentation", s.env);
            assert!(
                !s.expected().is_empty(),
                "{} says nothing of what it accepts",
                s.env
            );
        }
    }

    #[test]
    fn every_default_is_a_value_the_setting_accepts() {
        for s in ALL {
            if let (Some(range), Some(default)) = (s.range(), s.default) {
                let n: u64 = default.parse().unwrap();
                assert!(
                    range.contains(&n),
                    "{}'s default {n} is out of range",
                    s.env
                );
            }
        }
    }

    #[test]
    fn a_number_says_its_bounds_and_its_unit() {
        assert_eq!(
            HEADER_READ_TIMEOUT.expected(),
            "a whole number of seconds from 1 to 300"
        );
        assert_eq!(
            MAX_CONNECTIONS.expected(),
            "a whole number from 1 to 1000000"
        );
    }

    #[test]
    fn long_documentation_is_wrapped_without_breaking_words() {
        let lines = wrap("one two three four five", 9);
        assert_eq!(lines, ["one two", "three", "four five"]);
    }
}
