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
//!
//! any final status ──(a user's retry)──► queued (a new attempt follows)
//! ```
//!
//! * A cancel of a `queued` job is immediate (`canceled`); of a `claimed` or
//!   `running` job it is a request (`canceling`) that the agent honours.
//! * A `claimed` or `running` job whose agent vanished goes back to `queued` (a new
//!   attempt, history kept) while it has automatic retries left, and to `lost` when
//!   it has none.
//! * An attempt's final status never changes: attempts are never rewritten.
//! * A job leaves a final status only by an explicit user retry ([`check_retry`]):
//!   it goes back to `queued`, keeps every attempt it had, and its next claim is
//!   attempt `attempt_count + 1`. A retry also gives the job a fresh budget of
//!   automatic retries ([`RetryBudget`]): otherwise a job that had used them up
//!   before would be lost, not retried, the first time its agent died again.
//!
//! [`is_allowed`] is every move the system and agents make (claims, starts,
//! results, the reaper, cancels, the queue TTL), and from a final status it
//! allows none, so `JobStore::transition_job` and `DispatchStore::end_attempt`
//! can never take a job out of one. The retry is deliberately not a row of that
//! table but a rule of its own, applied by the one store call made for it
//! (`JobStore::retry_job`): it needs what the table's moves do not (a user asked,
//! the secrets supplied again, the budget reset), and keeping it out of the table
//! means no other caller can reopen a finished job by accident.
//!
//! Every backend asks [`check`] (or [`check_retry`], or [`settle`]) before it
//! writes a status, and writes it conditionally on the status it read, so the rules
//! are enforced in one place.

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

/// What a user's retry does to a job in `status`: a job in a final status goes
/// back to `queued`, where its next claim starts a new attempt. This is the only
/// way out of a final status (see the module docs).
///
/// # Errors
/// [`IllegalTransition`] `{ from: status, to: queued }` for a job that is not
/// final: it is still waiting or running, so there is nothing to retry yet.
pub const fn check_retry(status: JobStatus) -> Result<JobStatus, IllegalTransition> {
    if status.is_terminal() {
        Ok(JobStatus::Queued)
    } else {
        Err(IllegalTransition {
            from: status,
            to: JobStatus::Queued,
        })
    }
}

/// How many automatic retries a job has used, read from the job as a whole so
/// that a backend cannot pass one number without the others.
///
/// Automatic retries count the attempts since the user last retried the job
/// (`retried_at_attempt`, 0 if never), not all of them: a manual retry starts a
/// fresh budget of `max_retries`. Without that, a job whose agent died
/// `max_retries + 1` times, retried by hand, would be lost rather than retried
/// the next time an agent died under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    /// The job's attempts so far, the one ending now included.
    pub attempt_count: u32,
    /// The job's `attempt_count` when a user last retried it; 0 if never.
    pub retried_at_attempt: u32,
    /// Automatic retries allowed after the submission and after each manual retry.
    pub max_retries: u32,
}

impl RetryBudget {
    /// Attempts since the last manual retry (or the submission), the one ending
    /// now included.
    #[must_use]
    pub const fn attempts_since_retry(self) -> u32 {
        self.attempt_count.saturating_sub(self.retried_at_attempt)
    }

    /// Whether a lost attempt may be retried automatically: the first attempt
    /// after a submission or a manual retry is not itself a retry, so `max_retries`
    /// more may follow it.
    #[must_use]
    pub const fn allows_a_retry(self) -> bool {
        self.attempts_since_retry() <= self.max_retries
    }

    /// Whether a user's retry now stays within
    /// [`ATTEMPTS_MAX`](crate::job::limits::ATTEMPTS_MAX) however it goes: its
    /// first attempt and every automatic retry after it.
    #[must_use]
    pub fn has_room_for_a_retry(self) -> bool {
        u64::from(self.attempt_count) + 1 + u64::from(self.max_retries)
            <= u64::from(crate::job::limits::ATTEMPTS_MAX)
    }
}

/// How an agent's attempt at a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The agent reported the result: `succeeded`, `failed`, `canceled` (it stopped
    /// the script on a cancel request) or `timed_out` (it stopped it at its timeout).
    Reported(JobStatus),
    /// Nobody holds the attempt any more: its lease ran out, or its agent was
    /// deleted. Lost, and retried while retries remain; a job that was being
    /// canceled is simply canceled.
    Abandoned,
    /// Still held past its deadline with no result (the reaper): `timed_out`. An
    /// attempt that never started has no timeout running, so that is `Abandoned`.
    Overdue,
}

/// Where an ended attempt leaves the attempt and its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// The attempt's final status.
    pub attempt: JobStatus,
    /// The job's new status: the same, or `queued` for a retry.
    pub job: JobStatus,
}

/// Whether an agent holds a job in `status` (and so it has a lease).
#[must_use]
pub const fn is_held(status: JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Claimed | JobStatus::Running | JobStatus::Canceling
    )
}

/// What `end` does to a held job in `status` with `budget` (its attempts, this
/// one included, since the last manual retry, against `max_retries`). This is the
/// one place the automatic retry rule lives: automatic retries apply only to lost
/// attempts, and only while the budget allows one.
///
/// # Errors
/// [`IllegalTransition`] if the table does not allow the move, e.g. an agent
/// reporting `canceled` for a job nobody asked to cancel.
pub fn settle(
    status: JobStatus,
    end: AttemptEnd,
    budget: RetryBudget,
) -> Result<Settlement, IllegalTransition> {
    use JobStatus::{Canceled, Canceling, Claimed, Lost, Queued, TimedOut};
    let settlement = match end {
        AttemptEnd::Reported(result) if !result.is_terminal() || result == Lost => {
            return Err(IllegalTransition {
                from: status,
                to: result,
            });
        }
        AttemptEnd::Reported(result) => Settlement {
            attempt: result,
            job: result,
        },
        AttemptEnd::Overdue if status != Claimed => Settlement {
            attempt: TimedOut,
            job: TimedOut,
        },
        AttemptEnd::Abandoned | AttemptEnd::Overdue => {
            if status == Canceling {
                Settlement {
                    attempt: Canceled,
                    job: Canceled,
                }
            } else if budget.allows_a_retry() {
                Settlement {
                    attempt: Lost,
                    job: Queued,
                }
            } else {
                Settlement {
                    attempt: Lost,
                    job: Lost,
                }
            }
        }
    };
    if !is_held(status) {
        return Err(IllegalTransition {
            from: status,
            to: settlement.job,
        });
    }
    check(status, settlement.job)?;
    Ok(settlement)
}

#[cfg(test)]
mod tests {
    use super::JobStatus::*;
    use super::*;

    /// The budget of a job never retried by hand: `attempts` so far, `max_retries`.
    const fn fresh(attempts: u32, max_retries: u32) -> RetryBudget {
        RetryBudget {
            attempt_count: attempts,
            retried_at_attempt: 0,
            max_retries,
        }
    }

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
    fn no_move_of_the_system_or_an_agent_leaves_a_final_status() {
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
    fn a_users_retry_takes_every_final_status_and_only_those_back_to_queued() {
        for from in JobStatus::ALL {
            match check_retry(from) {
                Ok(to) => {
                    assert!(from.is_terminal(), "{from} is not final but was retried");
                    assert_eq!(to, Queued);
                }
                Err(err) => {
                    assert!(!from.is_terminal(), "{from} is final but cannot be retried");
                    assert_eq!(err, IllegalTransition { from, to: Queued });
                    let message = err.to_string();
                    assert!(message.contains(&format!("`{from}`")), "{message}");
                }
            }
        }
    }

    #[test]
    fn a_retry_is_allowed_only_while_its_every_attempt_fits_in_the_history() {
        let max = crate::job::limits::ATTEMPTS_MAX;
        let budget = |attempt_count, max_retries| RetryBudget {
            attempt_count,
            retried_at_attempt: 0,
            max_retries,
        };
        assert!(budget(max - 11, 10).has_room_for_a_retry());
        assert!(!budget(max - 10, 10).has_room_for_a_retry());
        assert!(budget(max - 1, 0).has_room_for_a_retry());
        assert!(!budget(max, 0).has_room_for_a_retry());
        assert!(!budget(u32::MAX, u32::MAX).has_room_for_a_retry());
    }

    #[test]
    fn a_manual_retry_gives_a_fresh_budget_of_automatic_retries() {
        // max_retries 1: attempts 1 and 2 were lost, the job with them; a user
        // retried it at attempt 2.
        let retried = |attempt_count| RetryBudget {
            attempt_count,
            retried_at_attempt: 2,
            max_retries: 1,
        };
        assert_eq!(retried(3).attempts_since_retry(), 1);
        assert_eq!(
            settle(Running, AttemptEnd::Abandoned, retried(3)).unwrap(),
            Settlement {
                attempt: Lost,
                job: Queued
            },
            "the first attempt after the retry is retried automatically"
        );
        assert_eq!(
            settle(Running, AttemptEnd::Abandoned, retried(4)).unwrap(),
            Settlement {
                attempt: Lost,
                job: Lost
            },
            "and the budget runs out again after max_retries"
        );
        // Without the reset the same attempt would have been the job's end.
        assert_eq!(
            settle(Running, AttemptEnd::Abandoned, fresh(3, 1))
                .unwrap()
                .job,
            Lost
        );
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
    fn a_lost_attempt_is_retried_while_retries_remain_then_the_job_is_lost() {
        let retried = settle(Running, AttemptEnd::Abandoned, fresh(1, 2)).unwrap();
        assert_eq!(
            retried,
            Settlement {
                attempt: Lost,
                job: Queued
            }
        );
        assert_eq!(
            settle(Claimed, AttemptEnd::Abandoned, fresh(3, 2))
                .unwrap()
                .job,
            Lost
        );
        assert_eq!(
            settle(Running, AttemptEnd::Abandoned, fresh(3, 2)).unwrap(),
            Settlement {
                attempt: Lost,
                job: Lost
            }
        );
        assert_eq!(
            settle(Running, AttemptEnd::Abandoned, fresh(1, 0))
                .unwrap()
                .job,
            Lost
        );
    }

    #[test]
    fn an_abandoned_job_that_was_being_canceled_is_canceled_not_retried() {
        assert_eq!(
            settle(Canceling, AttemptEnd::Abandoned, fresh(1, 5)).unwrap(),
            Settlement {
                attempt: Canceled,
                job: Canceled
            }
        );
    }

    #[test]
    fn an_overdue_attempt_times_out_unless_it_never_started() {
        assert_eq!(
            settle(Running, AttemptEnd::Overdue, fresh(1, 2))
                .unwrap()
                .job,
            TimedOut
        );
        assert_eq!(
            settle(Canceling, AttemptEnd::Overdue, fresh(1, 2))
                .unwrap()
                .job,
            TimedOut
        );
        assert_eq!(
            settle(Claimed, AttemptEnd::Overdue, fresh(1, 2))
                .unwrap()
                .job,
            Queued
        );
    }

    #[test]
    fn reported_results_follow_the_table() {
        assert_eq!(
            settle(Running, AttemptEnd::Reported(Succeeded), fresh(1, 2)).unwrap(),
            Settlement {
                attempt: Succeeded,
                job: Succeeded
            }
        );
        assert_eq!(
            settle(Canceling, AttemptEnd::Reported(Canceled), fresh(1, 2))
                .unwrap()
                .job,
            Canceled
        );
        assert_eq!(
            settle(Canceling, AttemptEnd::Reported(Succeeded), fresh(1, 2))
                .unwrap()
                .job,
            Succeeded
        );
        assert_eq!(
            settle(Claimed, AttemptEnd::Reported(Failed), fresh(1, 2))
                .unwrap()
                .job,
            Failed
        );
        // Nobody asked to cancel a running job; a job must start before it succeeds.
        assert!(settle(Running, AttemptEnd::Reported(Canceled), fresh(1, 2)).is_err());
        assert!(settle(Claimed, AttemptEnd::Reported(Succeeded), fresh(1, 2)).is_err());
        // Not results an agent can report.
        for not_a_result in [Queued, Claimed, Running, Canceling, Lost, Expired] {
            assert!(settle(Running, AttemptEnd::Reported(not_a_result), fresh(1, 2)).is_err());
        }
    }

    #[test]
    fn only_a_held_job_can_end_an_attempt() {
        for s in JobStatus::ALL.into_iter().filter(|s| !is_held(*s)) {
            for end in [
                AttemptEnd::Abandoned,
                AttemptEnd::Overdue,
                AttemptEnd::Reported(Failed),
            ] {
                assert!(settle(s, end, fresh(1, 2)).is_err(), "{s} {end:?}");
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
