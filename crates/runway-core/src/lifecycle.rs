//! The job lifecycle: the one table of legal state transitions.
//!
//! ```text
//!            ┌──────────────► expired
//!            │
//! queued ──► claimed ──► running ──► succeeded | failed | timed_out | lost
//!   │  ▲        │  │        │
//!   │  └────────┘  │        └──► canceling ──► canceled (or the result that raced it)
//!   │  (lost, retried)└──────────► canceling
//!   └──► canceled
//! ```
//!
//! * A cancel of a `queued` job is immediate (`canceled`); of a `claimed` or
//!   `running` job it is a request (`canceling`) that the agent honours.
//! * A `claimed` or `running` job whose agent vanished goes back to `queued` (a new
//!   attempt, history kept) while it has retries left, and to `lost` when it has none.
//! * Terminal states never change.
//!
//! Every backend asks [`check`] before it writes a status, and writes it
//! conditionally on the status it read, so the table is enforced in one place.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a job is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for an agent.
    Queued,
    /// An agent has claimed it and holds a lease.
    Claimed,
    /// The agent has started the script.
    Running,
    /// A cancel was asked for while claimed or running; the agent is stopping it.
    Canceling,
    /// The script exited 0.
    Succeeded,
    /// The script exited non-zero, or could not start.
    Failed,
    /// Canceled by a user.
    Canceled,
    /// Ran past its `timeout_seconds`.
    TimedOut,
    /// Its agent vanished and no retries were left.
    Lost,
    /// Stayed queued past the queue TTL.
    Expired,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 10] = [
        Self::Queued,
        Self::Claimed,
        Self::Running,
        Self::Canceling,
        Self::Succeeded,
        Self::Failed,
        Self::Canceled,
        Self::TimedOut,
        Self::Lost,
        Self::Expired,
    ];

    /// The wire and storage form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Claimed => "claimed",
            Self::Running => "running",
            Self::Canceling => "canceling",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::TimedOut => "timed_out",
            Self::Lost => "lost",
            Self::Expired => "expired",
        }
    }

    /// Parses the wire and storage form.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether the status is final.
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::Failed
                | Self::Canceled
                | Self::TimedOut
                | Self::Lost
                | Self::Expired
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a job cannot move from `{from}` to `{to}`")]
pub struct IllegalTransition {
    /// The job's current status.
    pub from: JobStatus,
    /// The status that was asked for.
    pub to: JobStatus,
}

/// Whether `from → to` is allowed. This match is the transition table.
#[must_use]
pub const fn is_allowed(from: JobStatus, to: JobStatus) -> bool {
    use JobStatus::{
        Canceled, Canceling, Claimed, Expired, Failed, Lost, Queued, Running, Succeeded, TimedOut,
    };
    matches!(
        (from, to),
        (Queued, Claimed | Canceled | Expired)
            | (Claimed, Queued | Running | Canceling | Failed | Lost)
            | (
                Running,
                Queued | Canceling | Succeeded | Failed | TimedOut | Lost
            )
            | (Canceling, Canceled | Succeeded | Failed | TimedOut | Lost)
    )
}

/// [`is_allowed`] as a `Result`.
///
/// # Errors
/// [`IllegalTransition`] naming both states.
pub const fn check(from: JobStatus, to: JobStatus) -> Result<(), IllegalTransition> {
    if is_allowed(from, to) {
        Ok(())
    } else {
        Err(IllegalTransition { from, to })
    }
}

/// What a user's cancel does to a job in `status`: `Some(next)` or `None` when the
/// job is already finished (or already canceling).
#[must_use]
pub const fn cancel_target(status: JobStatus) -> Option<JobStatus> {
    match status {
        JobStatus::Queued => Some(JobStatus::Canceled),
        JobStatus::Claimed | JobStatus::Running => Some(JobStatus::Canceling),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::JobStatus::*;
    use super::*;

    /// The table written out longhand, so a change to `is_allowed` must also change this.
    const ALLOWED: &[(JobStatus, JobStatus)] = &[
        (Queued, Claimed),
        (Queued, Canceled),
        (Queued, Expired),
        (Claimed, Queued),
        (Claimed, Running),
        (Claimed, Canceling),
        (Claimed, Failed),
        (Claimed, Lost),
        (Running, Queued),
        (Running, Canceling),
        (Running, Succeeded),
        (Running, Failed),
        (Running, TimedOut),
        (Running, Lost),
        (Canceling, Canceled),
        (Canceling, Succeeded),
        (Canceling, Failed),
        (Canceling, TimedOut),
        (Canceling, Lost),
    ];

    #[test]
    fn every_pair_of_states_is_either_allowed_or_an_error_naming_both() {
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                let expected = ALLOWED.contains(&(from, to));
                match check(from, to) {
                    Ok(()) => assert!(expected, "{from} -> {to} must be illegal"),
                    Err(err) => {
                        assert!(!expected, "{from} -> {to} must be legal");
                        let message = err.to_string();
                        assert!(message.contains(&format!("`{from}`")), "{message}");
                        assert!(message.contains(&format!("`{to}`")), "{message}");
                    }
                }
            }
        }
    }

    #[test]
    fn terminal_states_never_change() {
        for from in JobStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in JobStatus::ALL {
                assert!(
                    !is_allowed(from, to),
                    "{from} is terminal but may become {to}"
                );
            }
        }
    }

    #[test]
    fn no_state_moves_to_itself() {
        for s in JobStatus::ALL {
            assert!(!is_allowed(s, s), "{s} -> {s}");
        }
    }

    #[test]
    fn every_non_terminal_state_can_reach_a_terminal_one() {
        for s in JobStatus::ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert!(
                JobStatus::ALL
                    .iter()
                    .any(|t| t.is_terminal() && is_allowed(s, *t)),
                "{s}"
            );
        }
    }

    #[test]
    fn cancel_is_immediate_when_queued_and_a_request_when_held_by_an_agent() {
        assert_eq!(cancel_target(Queued), Some(Canceled));
        assert_eq!(cancel_target(Claimed), Some(Canceling));
        assert_eq!(cancel_target(Running), Some(Canceling));
        for s in [
            Canceling, Succeeded, Failed, Canceled, TimedOut, Lost, Expired,
        ] {
            assert_eq!(cancel_target(s), None, "{s}");
        }
        for s in JobStatus::ALL {
            if let Some(t) = cancel_target(s) {
                assert!(is_allowed(s, t), "cancel must follow the table: {s} -> {t}");
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_their_wire_form() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(JobStatus::parse("done"), None);
    }
}
