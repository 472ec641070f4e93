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
//! in [`cases`] (`pub async fn name<S: Store + 'static>(store: S)`), readable and
//! type-checked here; the macro only stamps out one small test per case that builds
//! a fresh store and calls it.
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

pub mod cases;

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
            registration_tokens_are_listed_newest_first_and_can_be_deleted,
            registering_with_a_usable_token_records_the_token_and_round_trips,
            registering_with_an_unknown_expired_or_deleted_token_is_not_found,
            a_heartbeat_records_its_time_and_metrics,
            agents_are_listed_by_region_and_by_status_at_a_given_time,
            agents_paginate_newest_first_without_duplicates_or_gaps,
            a_garbage_cursor_is_rejected,
            a_job_round_trips_exactly_with_no_attempts,
            jobs_are_listed_newest_first_and_filtered_by_status,
            jobs_paginate_without_duplicates_or_gaps,
            a_legal_transition_updates_status_and_updated_at,
            an_illegal_transition_is_refused_naming_both_states,
            transitioning_an_unknown_job_is_not_found,
            exactly_one_of_sixteen_concurrent_claims_wins,
            audit_events_are_listed_newest_first,
            audit_events_paginate_without_duplicates_or_gaps,
            audit_events_round_trip_every_actor_and_optional_field,
            appending_an_audit_event_with_a_taken_id_is_a_conflict,
            an_audit_event_past_its_limits_is_refused_and_not_stored,
            the_store_answers_a_ping,
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
