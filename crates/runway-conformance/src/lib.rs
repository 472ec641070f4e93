//! # runway-conformance
//!
//! One test suite for every store backend, so that "SQLite and DynamoDB behave the
//! same" is a checked fact rather than a hope. A backend runs it with one line in
//! an integration test:
//!
//! ```
//! mod in_memory {
//!     runway_conformance::conformance_suite!(async {
//!         runway_store_sqlite::open_in_memory().unwrap()
//!     });
//! }
//! ```
//!
//! ## Why a macro
//!
//! Each case must be its own `#[tokio::test]`, so that a failure names the rule that
//! broke (`conformance::usernames_are_unique`), cases run in parallel, and one can
//! be run alone with `cargo test usernames`. A plain function looping over cases
//! would report a single pass/fail. The case bodies are ordinary generic functions
//! in [`cases`] (`pub async fn name<S: Backend>(store: S)`), readable and
//! type-checked here; the macro only stamps out one small test per case that builds
//! a fresh store and calls it.
//!
//! A backend is a [`Backend`]: every record trait ([`Store`]) and the
//! [`LogStore`], on one value. On AWS the logs live in S3 behind the same type, so
//! one fixture serves both, and the cases can check that a job's log and its
//! attempts agree.
//!
//! ## The factory
//!
//! `conformance_suite!(factory)` takes an expression that evaluates to a *future*
//! of the store (usually an `async { … }` block). It is evaluated once per case, so
//! every case gets a fresh, isolated store. When the store needs something kept
//! alive beside it (a temp directory, a DynamoDB emulator), use the second form,
//! which keeps the whole fixture until the case ends and hands the case a store
//! taken from it:
//!
//! ```
//! runway_conformance::conformance_suite!(
//!     async {
//!         let dir = tempfile::tempdir().unwrap();
//!         (runway_store_sqlite::open_data_dir(dir.path()).unwrap(), dir)
//!     },
//!     |fixture| fixture.0.clone()
//! );
//! ```
//!
//! Every test runs on a two-thread runtime, so the concurrency cases really race.
//! The expansion uses this crate's re-export of Tokio, so the backend's tests do not
//! need to name Tokio themselves; they must refer to this crate as
//! `runway_conformance` (the default name).

#![forbid(unsafe_code)]

use runway_core::store::{LogStore, Store};

pub mod cases;

/// A fresh audit event (by the system, with a new id) for a store call that
/// takes one, in tests that are not about the audit log.
#[must_use]
pub fn audit_event() -> runway_core::audit::AuditEvent {
    runway_core::audit::AuditEvent::new(
        runway_core::audit::Actor::System,
        runway_core::audit::AuditAction::JobCreated,
        Some("test".into()),
        time::OffsetDateTime::now_utc(),
    )
}

/// What the suite runs against: the records and the logs of one backend.
pub trait Backend: Store + LogStore + 'static {}

impl<T: Store + LogStore + 'static> Backend for T {}

#[doc(hidden)]
pub mod __private {
    pub use tokio;
}

/// Expands to one `#[tokio::test]` per conformance case; see the crate docs.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr $(,)?) => {
        $crate::__for_each_case!($crate::__conformance_tests { fixture = $factory; fixture });
    };
    ($factory:expr, |$fixture:ident| $store:expr $(,)?) => {
        $crate::__for_each_case!($crate::__conformance_tests { $fixture = $factory; $store });
    };
}

/// The list of cases, in one place: calls `$callback! { { $args } case, case, … }`.
/// Every `pub async fn` in `cases.rs` must be listed; a test checks it.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_case {
    ($callback:path { $($args:tt)* }) => {
        $callback! {
            { $($args)* }
            a_user_round_trips_by_id_and_by_username,
            usernames_are_unique,
            a_pending_oidc_login_is_taken_exactly_once,
            an_expired_pending_oidc_login_is_refused_and_deleted,
            racing_takes_of_one_pending_oidc_login_give_it_to_exactly_one,
            an_oidc_user_is_found_by_issuer_and_subject_only,
            setting_a_password_hash_replaces_it,
            a_password_change_revokes_every_session_of_that_user_and_no_one_elses,
            a_password_change_for_an_unknown_user_is_not_found_and_revokes_nothing,
            has_users_is_false_until_the_first_user_exists,
            a_session_round_trips_exactly,
            touching_a_session_updates_last_seen_at,
            a_late_touch_with_an_older_time_leaves_the_newer_last_seen_at,
            listing_sessions_returns_only_the_users_active_sessions_newest_first,
            a_user_can_revoke_one_of_their_sessions,
            revoking_another_users_session_is_not_found_and_it_survives,
            revoking_all_sessions_but_one_returns_the_count_and_keeps_that_one,
            a_sign_in_that_read_the_credentials_before_a_change_cannot_create_its_session,
            no_session_of_sign_ins_racing_a_password_reset_survives_it,
            a_user_holds_at_most_fifty_sessions_and_a_new_one_evicts_the_oldest,
            sign_ins_racing_at_the_bound_never_leave_more_than_fifty_sessions,
            a_sign_in_deletes_the_users_expired_sessions_and_reports_no_eviction,
            purging_expired_sessions_leaves_the_active_ones,
            registration_tokens_are_listed_newest_first_and_can_be_deleted,
            registering_with_a_usable_token_records_the_token_and_round_trips,
            registering_with_an_unknown_expired_or_deleted_token_is_not_found,
            a_registration_token_admits_as_many_agents_as_its_uses_allow,
            racing_registrations_for_a_tokens_last_use_admit_exactly_one,
            a_heartbeat_records_its_time_and_metrics,
            setting_an_agents_state_returns_and_stores_it,
            rotating_an_agents_token_retires_the_old_hash_at_once,
            deleting_an_agent_retires_its_token_and_a_second_delete_is_not_found,
            agents_are_listed_by_region_and_by_status_at_a_given_time,
            agents_paginate_newest_first_without_duplicates_or_gaps,
            a_garbage_cursor_is_rejected,
            a_job_round_trips_exactly_with_no_attempts,
            jobs_are_listed_newest_first_and_filtered_by_status,
            jobs_paginate_without_duplicates_or_gaps,
            a_legal_transition_updates_status_and_updated_at,
            an_illegal_transition_is_refused_naming_both_states,
            transitioning_an_unknown_job_is_not_found,
            exactly_one_of_sixteen_concurrent_transitions_wins,
            a_claim_takes_the_highest_priority_job_then_the_oldest,
            a_claim_never_takes_a_job_from_another_queue,
            a_claim_takes_only_jobs_whose_labels_are_all_the_agents_and_star_takes_any,
            an_agent_never_holds_more_jobs_than_its_capacity,
            a_paused_draining_or_deleted_agent_claims_nothing,
            a_claim_records_the_attempt_number_agent_lease_and_job_token_hash,
            a_claim_hands_over_the_secrets_and_no_other_read_does,
            secrets_survive_a_retry_and_no_read_returns_them_once_the_job_is_final,
            exactly_one_of_sixteen_concurrent_claims_wins,
            eight_agents_claiming_fifty_jobs_concurrently_claim_each_exactly_once,
            starting_moves_a_claimed_job_to_running_and_a_retried_start_only_extends_the_lease,
            starting_a_job_that_is_being_canceled_keeps_it_canceling,
            renewing_a_lease_extends_it_and_returns_the_status_the_agent_acts_on,
            an_attempt_that_was_superseded_or_finished_is_not_held_and_nothing_changes,
            a_reported_result_ends_the_attempt_and_the_job_with_its_exit_code,
            a_result_the_lifecycle_forbids_is_refused_and_changes_nothing,
            an_abandoned_attempt_is_requeued_with_its_history_while_retries_remain_then_lost,
            a_requeued_job_is_claimable_at_once_and_its_next_attempt_is_number_two,
            an_abandoned_attempt_of_a_job_being_canceled_is_canceled_not_retried,
            an_overdue_attempt_times_out_unless_it_never_started,
            the_reaper_loses_to_a_lease_renewed_after_it_looked,
            the_reaper_times_an_attempt_out_only_past_its_deadline,
            a_renewal_racing_the_reaper_either_keeps_the_job_or_loses_it_never_both,
            canceling_a_queued_job_cancels_it_and_canceling_a_held_one_asks_its_agent_to_stop,
            a_queued_job_that_expired_is_never_claimed,
            canceling_a_requeued_job_leaves_its_finished_attempt_as_it_was,
            a_job_moved_out_of_a_held_status_loses_its_lease,
            due_attempts_are_expired_leases_and_passed_deadlines_soonest_first,
            stale_queued_jobs_are_those_waiting_since_before_the_cutoff_oldest_first,
            held_by_lists_exactly_the_attempts_an_agent_holds,
            a_deleted_agents_jobs_stay_held_until_they_are_ended_as_abandoned,
            a_retry_requeues_a_final_job_with_its_history_and_the_next_claim_is_the_next_attempt,
            every_final_status_and_only_a_final_one_can_be_retried,
            a_retry_stores_the_secrets_it_is_given_and_only_the_next_claim_hands_them_over,
            a_retried_job_gets_a_fresh_budget_of_automatic_retries,
            a_retry_that_could_take_a_job_past_the_most_attempts_it_keeps_is_refused,
            exactly_one_of_sixteen_concurrent_retries_wins,
            a_new_attempts_log_is_empty,
            a_chunk_at_the_end_is_written_and_a_resend_is_a_duplicate,
            a_chunk_that_overlaps_the_end_writes_only_its_new_tail,
            a_chunk_past_the_end_is_refused_with_the_offset_expected,
            a_chunk_that_would_take_the_log_past_its_cap_is_refused_whole,
            a_log_reads_by_offset_from_the_start_the_middle_and_past_the_end,
            a_read_returns_at_most_max_bytes_even_across_chunk_boundaries,
            the_log_summary_is_the_size_and_crc32_of_everything_written,
            concurrent_appends_at_one_offset_write_exactly_once,
            each_attempt_has_its_own_log,
            the_log_of_an_attempt_that_does_not_exist_is_not_found,
            audit_events_are_listed_newest_first,
            audit_events_paginate_without_duplicates_or_gaps,
            audit_filters_return_exactly_the_matching_events_newest_first,
            a_sparse_audit_filter_pages_on_to_the_one_match,
            audit_events_round_trip_every_actor_and_optional_field,
            appending_an_audit_event_with_a_taken_id_is_a_conflict,
            a_job_write_and_its_audit_event_commit_together_or_not_at_all,
            a_dispatch_write_and_its_audit_event_commit_together_or_not_at_all,
            an_agent_write_and_its_audit_event_commit_together_or_not_at_all,
            a_registration_token_write_and_its_audit_event_commit_together_or_not_at_all,
            a_session_write_and_its_audit_event_commit_together_or_not_at_all,
            an_account_write_and_its_audit_event_commit_together_or_not_at_all,
            an_audit_event_past_its_limits_is_refused_and_not_stored,
            an_attempt_counter_counts_until_its_window_ends_then_starts_again,
            clearing_an_attempt_counter_forgets_it_and_no_other,
            sixteen_concurrent_attempts_on_one_key_count_exactly_sixteen,
            racing_attempts_on_an_expired_counter_start_it_again_exactly_once,
            a_lockout_is_reported_exactly_once_per_count,
            purging_expired_attempt_counters_leaves_the_live_ones,
            the_store_answers_a_ping,
            an_api_token_round_trips_and_is_listed_newest_first_with_its_event,
            an_api_token_for_an_unknown_or_changed_user_is_refused_and_writes_nothing,
            a_user_holds_at_most_forty_live_api_tokens_and_expired_ones_make_room,
            revoking_an_api_token_is_scoped_to_its_user,
            an_api_token_write_with_a_taken_event_id_changes_nothing,
            users_are_created_with_their_event_and_paginate_newest_first,
            disabling_a_user_revokes_their_sessions_and_api_tokens_in_one_write,
            a_role_change_revokes_credentials_and_a_failed_one_changes_nothing,
            the_last_enabled_admin_cannot_be_demoted_disabled_or_deleted,
            admins_demoting_each_other_at_once_leave_exactly_one,
            deleting_a_user_removes_their_name_identity_sessions_and_api_tokens,
            racing_enables_of_one_admin_count_them_once,
        }
    };
}

/// Stamps out the tests for [`conformance_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ({ $fixture:ident = $factory:expr; $store:expr } $($case:ident),* $(,)?) => {
        $(
            #[$crate::__private::tokio::test(
                flavor = "multi_thread",
                worker_threads = 2,
                crate = "runway_conformance::__private::tokio"
            )]
            async fn $case() {
                let $fixture = $factory.await;
                $crate::cases::$case($store).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    macro_rules! names {
        ({} $($case:ident),* $(,)?) => {
            const LISTED: &[&str] = &[$(stringify!($case)),*];
        };
    }

    crate::__for_each_case!(names {});

    #[test]
    fn every_case_in_cases_rs_is_run_by_the_macro_exactly_once() {
        let listed = LISTED.to_vec();
        let mut defined: Vec<&str> = include_str!("cases.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .map(|rest| rest.split(['<', '(']).next().unwrap_or(rest))
            .collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), listed.len(), "a case is listed twice");
        defined.sort_unstable();
        assert_eq!(sorted, defined);
    }
}
