//! Jobs and their attempts.
//!
//! A [`JobSpec`] is what a user submits; it is validated here, once, with limits that
//! every backend can store (a DynamoDB item is at most 400 KB). A [`Job`] is the
//! stored record; each time an agent claims it an [`Attempt`] is added, and attempts
//! are never rewritten once finished, so a retried job keeps its history.
//!
//! ## Secrets
//!
//! [`JobSpec::secrets`] is write-only: it deserializes from a submission but is never
//! serialized (`skip_serializing_if` always true), and its `Debug` names the variables without
//! their values, so no response, log line or panic message can carry one. The
//! stores keep the values only while the job can still run, hand them back only from
//! a claim (every other read returns the spec with `secrets` empty), and delete them
//! in the write that moves the job to a final state.
//!
//! The secrets' **names** are kept for the job's whole life ([`Job::secret_names`]),
//! never its values: a user's retry of a final job must supply every one of them
//! again ([`Job::check_retry_secrets`]), because the values are gone by then, and a
//! retry that silently ran without them would run a different job. The names are
//! fixed at submission: a retry cannot add or drop a secret, so the check against
//! the names read before the retry's write cannot be raced.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::id::{AgentId, JobId, UserId};
use crate::lifecycle::{JobStatus, RetryBudget};
use crate::secret::{Secret, TokenHash};

/// Limits on a job spec and its history.
pub mod limits {
    #[cfg(doc)]
    use crate::lifecycle::RetryBudget;

    /// Longest job name, in characters.
    pub const NAME_MAX: usize = 200;
    /// Largest script, in bytes.
    pub const SCRIPT_MAX: usize = 64 * 1024;
    /// Most environment variables, secrets included.
    pub const ENV_MAX: usize = 100;
    /// Longest environment variable name.
    pub const ENV_KEY_MAX: usize = 128;
    /// Longest environment variable value, in bytes.
    pub const ENV_VALUE_MAX: usize = 4 * 1024;
    /// Most labels on a job or agent.
    pub const LABELS_MAX: usize = 32;
    /// Longest label or queue name.
    pub const LABEL_MAX: usize = 64;
    /// Priority range; higher runs first.
    pub const PRIORITY: std::ops::RangeInclusive<i32> = -1000..=1000;
    /// Timeout range in seconds (1 s to 48 h).
    pub const TIMEOUT_SECONDS: std::ops::RangeInclusive<u32> = 1..=172_800;
    /// Most automatic retries of a lost job.
    pub const MAX_RETRIES: u32 = 10;
    /// Most attempts one job may have. Every attempt is kept in the job's record
    /// (on DynamoDB, in the item beside a spec of up to [`SPEC_TOTAL_MAX`], and an
    /// item holds at most 400 KB), and users' retries would otherwise let the list
    /// grow without end. At about 250 bytes an attempt, 50 take some 12 KB. A
    /// retry that could take a job past this ([`RetryBudget::has_room_for_a_retry`])
    /// is refused: submit the job again instead.
    pub const ATTEMPTS_MAX: u32 = 50;
    /// Most bytes of name, script, env and labels together. Each field has its own
    /// cap, but the caps add up to more than a DynamoDB item may hold (400 KB), so
    /// the whole spec has one too, leaving room for the job's other attributes.
    pub const SPEC_TOTAL_MAX: usize = 300 * 1024;
}

/// The JSON Schemas of the fields whose rules [`JobSpec::validate`] enforces and
/// that a plain attribute cannot state (maps with constrained names, arrays of
/// constrained items), built from [`limits`] so the OpenAPI document states each
/// limit exactly as it is checked. JSON Schema counts a string's length in
/// characters where the limits count bytes; for the ASCII-only names and labels
/// the two agree.
pub mod schema {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{
        AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
    };

    use super::limits;

    /// A label or queue name: what [`super::validate_label`] accepts.
    pub const LABEL_PATTERN: &str = r"^[A-Za-z0-9._:/=-]+$";
    /// An environment variable's name: what `is_env_name` accepts.
    pub const ENV_NAME_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";

    /// One label (or queue name).
    #[must_use]
    pub fn label() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(limits::LABEL_MAX))
            .pattern(Some(LABEL_PATTERN))
    }

    /// A queue name.
    #[must_use]
    pub fn queue() -> RefOr<Schema> {
        label().into()
    }

    /// A job's labels.
    #[must_use]
    pub fn labels() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(label())
            .max_items(Some(limits::LABELS_MAX))
            .into()
    }

    fn variables() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .max_properties(Some(limits::ENV_MAX))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(limits::ENV_KEY_MAX))
                    .pattern(Some(ENV_NAME_PATTERN)),
            ))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(limits::ENV_VALUE_MAX))
                    .pattern(Some(r"^[^\x00]*$"))
                    .build(),
            )))))
    }

    /// `env`: name → value.
    #[must_use]
    pub fn env() -> RefOr<Schema> {
        variables().into()
    }

    /// `secrets`: as `env`, and never returned.
    #[must_use]
    pub fn secrets() -> RefOr<Schema> {
        variables().write_only(Some(true)).into()
    }
}

/// `skip_serializing_if` of [`JobSpec::secrets`]: always.
const fn never_serialized(_: &JobSecrets) -> bool {
    true
}

/// `serialize_with` of [`JobSpec::secrets`], which serde requires beside
/// `skip_serializing_if` and never calls: a `null`, never a value.
fn serialize_nothing<S: serde::Serializer>(_: &JobSecrets, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

/// The queue a job goes to when none is named.
pub const DEFAULT_QUEUE: &str = "default";
/// Timeout when none is given: one hour.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 3600;
/// Automatic retries of a lost job when none is given.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

fn default_queue() -> String {
    DEFAULT_QUEUE.into()
}
const fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_SECONDS
}
const fn default_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}

/// A job's secret variables: name → value. `Debug` shows the names only; serde
/// reads them from a submission and never writes them anywhere (see the module docs).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct JobSecrets(pub BTreeMap<String, Secret>);

impl JobSecrets {
    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Names and values, for a store writing them or a claim handing them over.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.expose()))
    }
}

impl std::fmt::Debug for JobSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl FromIterator<(String, String)> for JobSecrets {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
    }
}

/// What a user submits to run. `Debug` shows the script's length and the
/// environment's names, never their text: a script or an `env` value often holds a
/// credential that should have been a secret, and a spec reaches `Debug` through
/// `tracing` fields, panic messages and test failures.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// A short, human name, e.g. `test (linux)`: 1 to 200 characters, not all
    /// whitespace, no control characters.
    #[schema(
        example = "unit tests",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// The bash script the agent runs: not all whitespace, at most 65536 bytes.
    #[schema(
        example = "cargo test --workspace",
        min_length = 1,
        max_length = 65536,
        pattern = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    pub script: String,
    /// Environment variables for the script: names are letters, digits and `_`,
    /// not starting with a digit, at most 128 bytes; values at most 4096 bytes,
    /// no NUL; at most 100 variables, `env` and `secrets` together.
    #[serde(default)]
    #[schema(schema_with = schema::env)]
    pub env: BTreeMap<String, String>,
    /// Labels an agent must all have to run the job (at most 32; each 1 to 64 of
    /// letters, digits and `. _ - : / =`).
    #[serde(default)]
    #[schema(schema_with = schema::labels)]
    pub labels: Vec<String>,
    /// The queue to wait in (a label, as in `labels`).
    #[serde(default = "default_queue")]
    #[schema(schema_with = schema::queue)]
    pub queue: String,
    /// Higher runs first; −1000 to 1000.
    #[serde(default)]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: i32,
    /// Wall-clock limit for one attempt, 1 to 172800 seconds.
    #[serde(default = "default_timeout")]
    #[schema(minimum = 1, maximum = 172_800)]
    pub timeout_seconds: u32,
    /// Automatic retries when the agent is lost, 0 to 10.
    #[serde(default = "default_retries")]
    #[schema(minimum = 0, maximum = 10)]
    pub max_retries: u32,
    /// Secret variables: exported to the script like `env`, masked as `***` in its
    /// log, never returned by any API, deleted when the job is final. Named and
    /// bounded as `env`, and no name may be in both.
    ///
    /// Never serialized, by `skip_serializing_if` rather than `skip_serializing`:
    /// the OpenAPI derive leaves a `skip_serializing` field out of the schema
    /// altogether, which made the request schema (closed to unknown fields) refuse
    /// the very field a submission sends secrets in.
    #[serde(
        default,
        skip_serializing_if = "never_serialized",
        serialize_with = "serialize_nothing"
    )]
    #[schema(write_only, schema_with = schema::secrets)]
    pub secrets: JobSecrets,
}

impl std::fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSpec")
            .field("name", &self.name)
            .field("script", &Redacted(self.script.len()))
            .field("env", &RedactedValues(&self.env))
            .field("labels", &self.labels)
            .field("queue", &self.queue)
            .field("priority", &self.priority)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("max_retries", &self.max_retries)
            .field("secrets", &self.secrets)
            .finish()
    }
}

/// Prints `[redacted: N bytes]` in place of a text.
struct Redacted(usize);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[redacted: {} bytes]", self.0)
    }
}

/// Prints a map's names with every value `[redacted]`.
struct RedactedValues<'a>(&'a BTreeMap<String, String>);

impl std::fmt::Debug for RedactedValues<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, format_args!("[redacted]"))))
            .finish()
    }
}

/// Whether `name` may name an environment variable: letters, digits and `_`, not
/// starting with a digit, at most [`limits::ENV_KEY_MAX`] bytes.
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= limits::ENV_KEY_MAX
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The JSON field, e.g. `env.PATH`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks a label or queue name: 1–64 of letters, digits, `.`, `_`, `-`, `:`, `/`, `=`.
///
/// # Errors
/// A [`FieldError`] for `field`.
pub fn validate_label(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() || value.len() > limits::LABEL_MAX {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {} characters", limits::LABEL_MAX),
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '='))
    {
        return Err(FieldError::new(
            field,
            "may contain only letters, digits and . _ - : / =",
        ));
    }
    Ok(())
}

/// Checks a list of labels.
///
/// # Errors
/// A [`FieldError`] for the first bad label, or for the list's length.
pub fn validate_labels(labels: &[String]) -> Result<(), FieldError> {
    if labels.len() > limits::LABELS_MAX {
        return Err(FieldError::new(
            "labels",
            format!("at most {} labels", limits::LABELS_MAX),
        ));
    }
    labels
        .iter()
        .enumerate()
        .try_for_each(|(i, l)| validate_label(&format!("labels[{i}]"), l))
}

impl JobSpec {
    /// Checks every field against [`limits`].
    ///
    /// # Errors
    /// The first field that is out of bounds.
    pub fn validate(&self) -> Result<(), FieldError> {
        let name = self.name.trim();
        if name.is_empty() || self.name.chars().count() > limits::NAME_MAX {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {} characters", limits::NAME_MAX),
            ));
        }
        if self.name.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        }
        if self.script.trim().is_empty() {
            return Err(FieldError::new("script", "must not be empty"));
        }
        if self.script.len() > limits::SCRIPT_MAX {
            return Err(FieldError::new(
                "script",
                format!("must be at most {} bytes", limits::SCRIPT_MAX),
            ));
        }
        if self.env.len() + self.secrets.len() > limits::ENV_MAX {
            return Err(FieldError::new(
                "env",
                format!(
                    "at most {} variables, env and secrets together",
                    limits::ENV_MAX
                ),
            ));
        }
        let variables = self
            .env
            .iter()
            .map(|(k, v)| ("env", k.as_str(), v.as_str()))
            .chain(self.secrets.iter().map(|(k, v)| ("secrets", k, v)));
        for (group, key, value) in variables {
            if !is_env_name(key) {
                return Err(FieldError::new(
                    format!("{group}.{key}"),
                    "names are letters, digits and _, not starting with a digit",
                ));
            }
            if value.len() > limits::ENV_VALUE_MAX || value.contains('\0') {
                return Err(FieldError::new(
                    format!("{group}.{key}"),
                    format!(
                        "values are at most {} bytes with no NUL",
                        limits::ENV_VALUE_MAX
                    ),
                ));
            }
        }
        if let Some(key) = self.secrets.0.keys().find(|k| self.env.contains_key(*k)) {
            return Err(FieldError::new(
                format!("secrets.{key}"),
                "is also in env; a variable is either plain or secret",
            ));
        }
        validate_labels(&self.labels)?;
        validate_label("queue", &self.queue)?;
        if !limits::PRIORITY.contains(&self.priority) {
            return Err(FieldError::new(
                "priority",
                "must be between -1000 and 1000",
            ));
        }
        if !limits::TIMEOUT_SECONDS.contains(&self.timeout_seconds) {
            return Err(FieldError::new(
                "timeout_seconds",
                "must be between 1 and 172800",
            ));
        }
        if self.max_retries > limits::MAX_RETRIES {
            return Err(FieldError::new("max_retries", "must be between 0 and 10"));
        }
        let total = self.name.len()
            + self.script.len()
            + self
                .env
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + self
                .secrets
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + self.labels.iter().map(String::len).sum::<usize>();
        if total > limits::SPEC_TOTAL_MAX {
            return Err(FieldError::new(
                "script",
                format!(
                    "the script, env, secrets and labels together must be at most {} bytes, got {total}",
                    limits::SPEC_TOTAL_MAX
                ),
            ));
        }
        Ok(())
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Job {
    /// Stable id; sorts by creation time.
    pub id: JobId,
    /// What was submitted.
    #[serde(flatten)]
    pub spec: JobSpec,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// Who submitted it.
    pub created_by: UserId,
    /// When it was submitted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its status last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// How many attempts it has had.
    pub attempt_count: u32,
    /// The names of the secrets it was submitted with, sorted; never their values.
    /// Kept after the values are deleted, so that a retry can ask for each again.
    pub secret_names: Vec<String>,
    /// `attempt_count` when a user last retried the job (0 if never): automatic
    /// retries of lost attempts count only the attempts after it
    /// ([`RetryBudget`]).
    pub retried_at_attempt: u32,
}

impl Job {
    /// A new queued job.
    #[must_use]
    pub fn new(spec: JobSpec, created_by: UserId, now: OffsetDateTime) -> Self {
        let secret_names = spec.secrets.0.keys().cloned().collect();
        Self {
            id: JobId::new(),
            spec,
            status: JobStatus::Queued,
            created_by,
            created_at: now,
            updated_at: now,
            attempt_count: 0,
            secret_names,
            retried_at_attempt: 0,
        }
    }

    /// What the job has used of its automatic retries.
    #[must_use]
    pub const fn retry_budget(&self) -> RetryBudget {
        RetryBudget {
            attempt_count: self.attempt_count,
            retried_at_attempt: self.retried_at_attempt,
            max_retries: self.spec.max_retries,
        }
    }

    /// Checks the secrets supplied with a user's retry: exactly the names the job
    /// was submitted with ([`Job::secret_names`]), each value as [`JobSpec::validate`]
    /// checks a submission's (and the spec with them within its size limits).
    ///
    /// # Errors
    /// A [`FieldError`] for `secrets` naming every missing secret, or for
    /// `secrets.NAME` of one the job was not submitted with, or the first value out
    /// of bounds.
    pub fn check_retry_secrets(&self, secrets: &JobSecrets) -> Result<(), FieldError> {
        if let Some(unknown) = secrets
            .0
            .keys()
            .find(|name| !self.secret_names.contains(name))
        {
            return Err(FieldError::new(
                format!("secrets.{unknown}"),
                if self.secret_names.is_empty() {
                    "the job was submitted without secrets; a retry runs it as submitted".to_owned()
                } else {
                    format!(
                        "the job was submitted with the secrets {}, and a retry runs it as \
                         submitted",
                        self.secret_names.join(", ")
                    )
                },
            ));
        }
        let missing: Vec<&str> = self
            .secret_names
            .iter()
            .filter(|name| !secrets.0.contains_key(*name))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(FieldError::new(
                "secrets",
                format!(
                    "the job was submitted with secrets, whose values were deleted when it \
                     finished; a retry must supply every one of them again (missing: {})",
                    missing.join(", ")
                ),
            ));
        }
        let mut spec = self.spec.clone();
        spec.secrets = secrets.clone();
        spec.validate()
    }
}

/// One run of a job on one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// The agent that claimed it.
    pub agent_id: AgentId,
    /// The attempt's status; the job's while it is the latest.
    pub status: JobStatus,
    /// When the agent claimed it.
    #[serde(with = "time::serde::rfc3339")]
    pub claimed_at: OffsetDateTime,
    /// When the script started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// The script's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// While an agent holds the attempt: when its lease runs out unless renewed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub lease_expires_at: Option<OffsetDateTime>,
    /// Bytes of log received so far.
    pub log_bytes: u64,
    /// SHA-256 of the attempt's job token. Never serialized.
    #[serde(skip)]
    pub job_token_hash: TokenHash,
}

/// How long past its timeout a held attempt may go before the reaper ends it as
/// `timed_out`: the agent enforces the timeout itself (and needs the cancel grace
/// to stop the script), so the reaper only acts for an agent that is gone.
pub const DEADLINE_GRACE: time::Duration = time::Duration::seconds(60);

/// How long past its timeout a job token keeps working, so that an agent can
/// still upload the last of the log and finish.
pub const JOB_TOKEN_GRACE: time::Duration = time::Duration::minutes(10);

impl Attempt {
    /// When the reaper ends the attempt as `timed_out` if it is still held: the
    /// claim, plus the job's timeout, plus [`DEADLINE_GRACE`].
    #[must_use]
    pub fn deadline(&self, timeout_seconds: u32) -> OffsetDateTime {
        self.claimed_at + time::Duration::seconds(i64::from(timeout_seconds)) + DEADLINE_GRACE
    }

    /// When the attempt's job token stops working: the claim, plus the job's
    /// timeout, plus [`JOB_TOKEN_GRACE`].
    #[must_use]
    pub fn job_token_expires_at(&self, timeout_seconds: u32) -> OffsetDateTime {
        self.claimed_at + time::Duration::seconds(i64::from(timeout_seconds)) + JOB_TOKEN_GRACE
    }
}

/// A job together with its attempts, oldest attempt first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct JobDetail {
    /// The job.
    #[serde(flatten)]
    pub job: Job,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        serde_json::from_str(r#"{"name":"build","script":"make"}"#).unwrap()
    }

    #[test]
    fn debug_of_a_spec_shows_neither_the_script_nor_env_values_nor_secrets() {
        let spec: JobSpec = serde_json::from_str(
            r#"{"name":"deploy","script":"curl -u admin:hunter2-script https://x",
                "env":{"DB_URL":"postgres://u:hunter2-env@db"},
                "secrets":{"TOKEN":"hunter2-secret"}}"#,
        )
        .unwrap();
        let debug = format!("{spec:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("deploy"), "{debug}");
        assert!(debug.contains("DB_URL"), "{debug}");
        assert!(debug.contains("TOKEN"), "{debug}");
        let length = format!("[redacted: {} bytes]", spec.script.len());
        assert!(debug.contains(&length), "{debug}");
        let pretty = format!("{spec:#?}");
        assert!(!pretty.contains("hunter2"), "{pretty}");
    }

    #[test]
    fn a_minimal_spec_gets_sensible_defaults() {
        let s = spec();
        assert_eq!(s.queue, "default");
        assert_eq!(s.priority, 0);
        assert_eq!(s.timeout_seconds, 3600);
        assert_eq!(s.max_retries, 2);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn unknown_fields_in_a_spec_are_rejected_by_name() {
        let err =
            serde_json::from_str::<JobSpec>(r#"{"name":"a","script":"b","colour":1}"#).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    type Mutation = Box<dyn Fn(&mut JobSpec)>;

    #[test]
    fn each_out_of_bounds_field_is_named() {
        let cases: Vec<(&str, Mutation)> = vec![
            ("name", Box::new(|s| s.name = " ".into())),
            ("name", Box::new(|s| s.name = "x".repeat(201))),
            ("name", Box::new(|s| s.name = "a\u{7}b".into())),
            (
                "script",
                Box::new(|s| {
                    s.script = "x".repeat(60 * 1024);
                    for i in 0..100 {
                        s.env.insert(format!("V{i}"), "y".repeat(4096));
                    }
                }),
            ),
            ("script", Box::new(|s| s.script = String::new())),
            ("script", Box::new(|s| s.script = "x".repeat(64 * 1024 + 1))),
            (
                "env.1X",
                Box::new(|s| {
                    s.env.insert("1X".into(), "v".into());
                }),
            ),
            (
                "env.A",
                Box::new(|s| {
                    s.env.insert("A".into(), "x".repeat(4097));
                }),
            ),
            (
                "labels[1]",
                Box::new(|s| s.labels = vec!["ok".into(), "not ok".into()]),
            ),
            ("labels", Box::new(|s| s.labels = vec!["l".into(); 33])),
            ("queue", Box::new(|s| s.queue = String::new())),
            ("priority", Box::new(|s| s.priority = 1001)),
            ("timeout_seconds", Box::new(|s| s.timeout_seconds = 0)),
            ("timeout_seconds", Box::new(|s| s.timeout_seconds = 172_801)),
            ("max_retries", Box::new(|s| s.max_retries = 11)),
            // Rules across fields, which the OpenAPI schema cannot state.
            (
                "secrets.A",
                Box::new(|s| {
                    s.env.insert("A".into(), "v".into());
                    s.secrets.0.insert("A".into(), Secret::new("v"));
                }),
            ),
            (
                "env",
                Box::new(|s| {
                    for i in 0..60 {
                        s.env.insert(format!("E{i}"), "v".into());
                        s.secrets.0.insert(format!("S{i}"), Secret::new("v"));
                    }
                }),
            ),
        ];
        for (field, mutate) in cases {
            let mut s = spec();
            mutate(&mut s);
            assert_eq!(s.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn a_name_is_measured_in_characters_not_bytes() {
        let mut s = spec();
        s.name = "é".repeat(200);
        assert!(s.validate().is_ok());
    }

    fn secrets(pairs: &[(&str, &str)]) -> JobSecrets {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_job_keeps_its_secrets_names_sorted_and_never_serializes_a_value() {
        let mut s = spec();
        s.secrets = secrets(&[("NPM_TOKEN", "npm_1"), ("DEPLOY_KEY", "hunter2")]);
        let job = Job::new(s, UserId::new(), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(job.secret_names, ["DEPLOY_KEY", "NPM_TOKEN"]);
        let text = serde_json::to_string(&job).unwrap();
        assert!(
            text.contains(r#""secret_names":["DEPLOY_KEY","NPM_TOKEN"]"#),
            "{text}"
        );
        assert!(
            !text.contains("hunter2") && !text.contains("npm_1"),
            "{text}"
        );
    }

    #[test]
    fn a_retry_must_supply_exactly_the_secrets_the_job_was_submitted_with() {
        let mut s = spec();
        s.secrets = secrets(&[("A_KEY", "1"), ("B_KEY", "2"), ("C_KEY", "3")]);
        let mut job = Job::new(s, UserId::new(), OffsetDateTime::UNIX_EPOCH);
        // Final: the values are gone, the names are not.
        job.spec.secrets = JobSecrets::default();

        let err = job
            .check_retry_secrets(&secrets(&[("B_KEY", "new")]))
            .unwrap_err();
        assert_eq!(err.field, "secrets");
        assert!(err.message.contains("(missing: A_KEY, C_KEY)"), "{err}");
        let err = job.check_retry_secrets(&JobSecrets::default()).unwrap_err();
        assert!(err.message.contains("A_KEY, B_KEY, C_KEY"), "{err}");

        let all = [("A_KEY", "x"), ("B_KEY", "y"), ("C_KEY", "z")];
        let err = job
            .check_retry_secrets(&secrets(&[all[0], all[1], all[2], ("EXTRA", "e")]))
            .unwrap_err();
        assert_eq!(err.field, "secrets.EXTRA");
        let err = job
            .check_retry_secrets(&secrets(&[all[0], all[1], ("C_KEY", "nul\0")]))
            .unwrap_err();
        assert_eq!(
            err.field, "secrets.C_KEY",
            "values are checked as at submission"
        );
        assert!(job.check_retry_secrets(&secrets(&all)).is_ok());

        let plain = Job::new(spec(), UserId::new(), OffsetDateTime::UNIX_EPOCH);
        assert!(plain.check_retry_secrets(&JobSecrets::default()).is_ok());
        let err = plain
            .check_retry_secrets(&secrets(&[("A_KEY", "x")]))
            .unwrap_err();
        assert_eq!(err.field, "secrets.A_KEY");
    }

    #[test]
    fn a_job_serializes_its_spec_fields_at_the_top_level() {
        let job = Job::new(spec(), UserId::new(), OffsetDateTime::UNIX_EPOCH);
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["name"], "build");
        assert_eq!(v["status"], "queued");
        assert_eq!(v["created_at"], "1970-01-01T00:00:00Z");
    }
}
