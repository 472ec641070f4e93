//! Build agents and the registration tokens that admit them.
//!
//! An agent's health is never stored: it is derived from `last_heartbeat_at` at read
//! time by [`Agent::status`], so it cannot go stale when an agent dies silently.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::id::{AgentId, RegistrationTokenId, UserId};
use crate::secret::TokenHash;

/// How long after its last heartbeat an agent counts as offline.
pub const OFFLINE_AFTER: Duration = Duration::seconds(90);
/// The largest load average a heartbeat may report.
pub const MAX_LOAD_AVERAGE: f64 = 1e6;
/// How often the server asks agents to heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::seconds(30);

/// An agent's health, derived from its last heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Heartbeat within the last 90 seconds.
    Online,
    /// Has heartbeated, but not for 90 seconds or more.
    Offline,
    /// Registered but has never heartbeated.
    NeverConnected,
}

/// What an admin has asked of an agent. Stored, unlike health, because it is a
/// decision and not an observation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Claims jobs.
    #[default]
    Active,
    /// Claims nothing until resumed; keeps running what it holds.
    Paused,
    /// Claims nothing, finishes what it holds, then disconnects.
    Draining,
}

impl AgentState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Active, Self::Paused, Self::Draining];

    /// The wire and storage form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Draining => "draining",
        }
    }

    /// Parses the wire and storage form.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

/// What an agent reports in a heartbeat. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentMetrics {
    /// CPU use, 0–100.
    pub cpu_percent: Option<f64>,
    /// Memory use, 0–100.
    pub memory_percent: Option<f64>,
    /// Disk use of the work directory, 0–100.
    pub disk_percent: Option<f64>,
    /// One-minute load average.
    pub load_average: Option<f64>,
    /// Jobs the agent is running now.
    pub running_jobs: Option<u32>,
}

impl AgentMetrics {
    /// Checks ranges: percentages in 0–100, load non-negative, all finite.
    ///
    /// # Errors
    /// The name of the first field out of range, with the reason.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("cpu_percent", self.cpu_percent),
            ("memory_percent", self.memory_percent),
            ("disk_percent", self.disk_percent),
        ] {
            if let Some(v) = value
                && !(0.0..=100.0).contains(&v)
            {
                return Err(format!("{name} must be between 0 and 100, got {v}"));
            }
        }
        if let Some(v) = self.load_average
            && (!v.is_finite() || !(0.0..=MAX_LOAD_AVERAGE).contains(&v))
        {
            return Err(format!(
                "load_average must be between 0 and {MAX_LOAD_AVERAGE}, got {v}"
            ));
        }
        Ok(())
    }

    /// The metrics rounded to three decimals, which is all a dashboard shows and
    /// keeps every value inside the range any store can hold (DynamoDB numbers
    /// cannot be smaller than 1e-130, for one).
    #[must_use]
    pub fn rounded(&self) -> Self {
        let round = |v: Option<f64>| v.map(|x| (x * 1000.0).round() / 1000.0);
        Self {
            cpu_percent: round(self.cpu_percent),
            memory_percent: round(self.memory_percent),
            disk_percent: round(self.disk_percent),
            load_average: round(self.load_average),
            running_jobs: self.running_jobs,
        }
    }
}

/// A registered build agent.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Agent {
    /// Stable id.
    pub id: AgentId,
    /// Display name, usually the host name.
    pub name: String,
    /// Where the agent runs, e.g. `eu-west-1`.
    pub region: Option<String>,
    /// Capabilities a job can require, e.g. `linux`, `docker`.
    pub labels: Vec<String>,
    /// The queue it pulls from.
    pub queue: String,
    /// How many jobs it runs at once.
    pub capacity: u32,
    /// Active, paused or draining, as an admin set it.
    pub state: AgentState,
    /// The agent's own version string.
    pub version: Option<String>,
    /// When it registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The last heartbeat, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_heartbeat_at: Option<OffsetDateTime>,
    /// The metrics of the last heartbeat.
    pub metrics: AgentMetrics,
    /// Which registration token admitted it.
    pub registration_token_id: RegistrationTokenId,
    /// SHA-256 of the agent token. Never serialized.
    #[serde(skip)]
    pub token_hash: TokenHash,
}

impl Agent {
    /// Health at `now`.
    #[must_use]
    pub fn status(&self, now: OffsetDateTime) -> AgentStatus {
        match self.last_heartbeat_at {
            None => AgentStatus::NeverConnected,
            Some(at) if now - at < OFFLINE_AFTER => AgentStatus::Online,
            Some(_) => AgentStatus::Offline,
        }
    }
}

/// An admin-created token that lets an agent register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RegistrationToken {
    /// Stable id, used to list and revoke it.
    pub id: RegistrationTokenId,
    /// What the admin wrote to remember it by.
    pub description: Option<String>,
    /// Who created it.
    pub created_by: UserId,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working, if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// How many agents it may register in all; `None` for no limit.
    pub max_uses: Option<u32>,
    /// How many agents it has registered.
    pub uses: u32,
    /// SHA-256 of the token. Never serialized.
    #[serde(skip)]
    pub token_hash: TokenHash,
}

/// A registration token's lifetime when the admin gives none.
pub const REGISTRATION_TOKEN_DEFAULT_TTL: Duration = Duration::days(7);

impl RegistrationToken {
    /// Whether the token may be used at `now`: unexpired, with a use left.
    #[must_use]
    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|at| now < at) && self.max_uses.is_none_or(|max| self.uses < max)
    }
}

/// Whether an agent with `agent_labels` may run a job that asks for `job_labels`:
/// every label the job asks for is among the agent's, and an agent label `*`
/// matches any. The routing rule of every backend's claim.
#[must_use]
pub fn labels_satisfy(agent_labels: &[String], job_labels: &[String]) -> bool {
    agent_labels.iter().any(|l| l == "*")
        || job_labels
            .iter()
            .all(|wanted| agent_labels.contains(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(last: Option<OffsetDateTime>) -> Agent {
        Agent {
            id: AgentId::new(),
            name: "builder-1".into(),
            region: None,
            labels: vec![],
            queue: "default".into(),
            capacity: 1,
            state: AgentState::Active,
            version: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            last_heartbeat_at: last,
            metrics: AgentMetrics::default(),
            registration_token_id: RegistrationTokenId::new(),
            token_hash: TokenHash::of("x"),
        }
    }

    #[test]
    fn an_agent_that_never_heartbeated_is_never_connected() {
        assert_eq!(
            agent(None).status(OffsetDateTime::UNIX_EPOCH),
            AgentStatus::NeverConnected
        );
    }

    #[test]
    fn an_agent_goes_offline_90_seconds_after_its_last_heartbeat() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let a = agent(Some(t0));
        assert_eq!(a.status(t0 + Duration::seconds(89)), AgentStatus::Online);
        assert_eq!(a.status(t0 + Duration::seconds(90)), AgentStatus::Offline);
    }

    #[test]
    fn metrics_out_of_range_are_named() {
        let m = AgentMetrics {
            memory_percent: Some(101.0),
            ..AgentMetrics::default()
        };
        assert!(m.validate().unwrap_err().starts_with("memory_percent"));
        let m = AgentMetrics {
            load_average: Some(f64::NAN),
            ..AgentMetrics::default()
        };
        assert!(m.validate().unwrap_err().starts_with("load_average"));
        assert!(AgentMetrics::default().validate().is_ok());
    }

    #[test]
    fn an_absurd_load_average_is_refused_and_tiny_values_round_to_zero() {
        let m = AgentMetrics {
            load_average: Some(1e200),
            ..AgentMetrics::default()
        };
        assert!(m.validate().unwrap_err().starts_with("load_average"));
        let m = AgentMetrics {
            cpu_percent: Some(1e-140),
            load_average: Some(1.23456),
            ..AgentMetrics::default()
        };
        let r = m.rounded();
        assert_eq!(r.cpu_percent, Some(0.0));
        assert_eq!(r.load_average, Some(1.235));
    }

    #[test]
    fn an_expired_registration_token_is_unusable() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut t = RegistrationToken {
            id: RegistrationTokenId::new(),
            description: None,
            created_by: UserId::new(),
            created_at: t0,
            expires_at: None,
            max_uses: None,
            uses: 0,
            token_hash: TokenHash::of("r"),
        };
        assert!(t.is_usable(t0 + Duration::days(9999)));
        t.expires_at = Some(t0 + Duration::hours(1));
        assert!(t.is_usable(t0));
        assert!(!t.is_usable(t0 + Duration::hours(1)));
    }

    #[test]
    fn a_registration_token_with_no_uses_left_is_unusable() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut t = RegistrationToken {
            id: RegistrationTokenId::new(),
            description: None,
            created_by: UserId::new(),
            created_at: t0,
            expires_at: None,
            max_uses: Some(2),
            uses: 1,
            token_hash: TokenHash::of("r"),
        };
        assert!(t.is_usable(t0));
        t.uses = 2;
        assert!(!t.is_usable(t0));
    }

    #[test]
    fn a_job_runs_only_where_every_label_it_asks_for_is_found_or_the_agent_takes_any() {
        let v = |ls: &[&str]| ls.iter().map(|&l| l.to_owned()).collect::<Vec<_>>();
        assert!(labels_satisfy(&v(&["linux", "docker"]), &v(&["docker"])));
        assert!(labels_satisfy(&v(&["linux"]), &v(&[])));
        assert!(!labels_satisfy(&v(&["linux"]), &v(&["linux", "gpu"])));
        assert!(!labels_satisfy(&v(&[]), &v(&["linux"])));
        assert!(labels_satisfy(&v(&["*"]), &v(&["linux", "gpu"])));
    }
}
