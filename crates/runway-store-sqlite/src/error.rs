//! The one place where SQLite failures become [`StoreError`]s.
//!
//! Callers above the store traits must be able to tell "try again later" (503 with
//! `Retry-After`) from "you broke a rule" (409) from "bug or corruption" (500), and
//! nothing else. So:
//!
//! * `SQLITE_BUSY`, `SQLITE_LOCKED` and "cannot open" are transient →
//!   [`StoreError::Unavailable`] with a one-second hint;
//! * a UNIQUE / PRIMARY KEY violation of an insert that expects one →
//!   [`StoreError::Conflict`] with the [`Conflict`] the caller names, told which of
//!   the two keys it was ([`Key`]), so "username taken" and "this id exists" stay
//!   apart; anywhere else a violated key is a bug, hence internal;
//! * everything else → [`StoreError::Internal`], keeping the rusqlite error as the
//!   source so the cause chain is logged, never flattened into a string.

use std::time::Duration;

use runway_core::store::{Conflict, StoreError};
use rusqlite::ErrorCode;
use rusqlite::ffi;

/// How long a caller should wait after the database reported itself busy.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Maps a rusqlite error where no uniqueness violation is expected.
pub(crate) fn store_error(err: rusqlite::Error) -> StoreError {
    map(err, None::<fn(Key) -> Conflict>)
}

/// Which key an insert collided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// The primary key: a record with this id exists.
    Primary,
    /// A UNIQUE index, e.g. `users_by_username`.
    Unique,
}

/// Maps a rusqlite error; a uniqueness violation becomes `Conflict(conflict(key))`.
pub(crate) fn store_error_or_conflict(
    err: rusqlite::Error,
    conflict: impl FnOnce(Key) -> Conflict,
) -> StoreError {
    map(err, Some(conflict))
}

fn map(err: rusqlite::Error, conflict: Option<impl FnOnce(Key) -> Conflict>) -> StoreError {
    if let Some(code) = err.sqlite_error() {
        let key = match code.extended_code {
            ffi::SQLITE_CONSTRAINT_PRIMARYKEY => Some(Key::Primary),
            ffi::SQLITE_CONSTRAINT_UNIQUE => Some(Key::Unique),
            _ => None,
        };
        match (code.code, key, conflict) {
            (ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen, ..) => {
                return StoreError::unavailable(err, Some(RETRY_AFTER));
            }
            (ErrorCode::ConstraintViolation, Some(key), Some(conflict)) => {
                return StoreError::Conflict(conflict(key));
            }
            _ => {}
        }
    }
    StoreError::internal(err)
}

/// A stored value that cannot be decoded: corrupt data or a bug, never user input.
#[derive(Debug, thiserror::Error)]
#[error("column `{column}` holds an unexpected value: {reason}")]
pub(crate) struct BadColumn {
    pub(crate) column: &'static str,
    pub(crate) reason: String,
}

/// The database was written by a newer Runway than this one.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database has schema version {found}, newer than version {known} that this build of \
     Runway knows; it was written by a newer Runway. Upgrade Runway, or point it at another \
     data directory"
)]
pub struct SchemaTooNew {
    /// The database's `user_version`.
    pub found: i64,
    /// The latest migration this build embeds.
    pub known: i64,
}

/// A migration's SQL failed; the transaction left the schema as it was.
#[derive(Debug, thiserror::Error)]
#[error("migration `{name}` failed; the database was left unchanged")]
pub(crate) struct MigrationFailed {
    pub(crate) name: &'static str,
    #[source]
    pub(crate) source: rusqlite::Error,
}

/// The file opened, but SQLite refused to switch it to WAL mode.
#[derive(Debug, thiserror::Error)]
#[error("could not put the database in WAL mode (journal_mode is `{0}`)")]
pub(crate) struct NotWal(pub(crate) String);

#[cfg(test)]
mod tests {
    use runway_core::store::RecordKind;

    use super::*;

    fn sqlite_failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn a_busy_database_is_reported_as_unavailable_with_a_retry_hint() {
        for code in [ffi::SQLITE_BUSY, ffi::SQLITE_LOCKED, ffi::SQLITE_CANTOPEN] {
            match store_error(sqlite_failure(code)) {
                StoreError::Unavailable { retry_after, .. } => {
                    assert_eq!(retry_after, Some(RETRY_AFTER));
                }
                other => panic!("code {code}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_key_violation_is_the_conflict_the_caller_names_for_that_key() {
        let name = |key| match key {
            Key::Unique => Conflict::UsernameTaken("ada".into()),
            Key::Primary => Conflict::Exists(RecordKind::User),
        };
        let err = store_error_or_conflict(sqlite_failure(ffi::SQLITE_CONSTRAINT_UNIQUE), name);
        assert!(
            matches!(&err, StoreError::Conflict(Conflict::UsernameTaken(n)) if n == "ada"),
            "{err:?}"
        );
        let err = store_error_or_conflict(sqlite_failure(ffi::SQLITE_CONSTRAINT_PRIMARYKEY), name);
        assert!(
            matches!(
                err,
                StoreError::Conflict(Conflict::Exists(RecordKind::User))
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_key_violation_nobody_expected_is_internal() {
        let err = store_error(sqlite_failure(ffi::SQLITE_CONSTRAINT_UNIQUE));
        assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    }

    #[test]
    fn other_failures_are_internal_and_keep_their_cause() {
        let err = store_error(sqlite_failure(ffi::SQLITE_CORRUPT));
        let StoreError::Internal(source) = err else {
            panic!("expected internal")
        };
        assert!(source.downcast_ref::<rusqlite::Error>().is_some());
        let err = store_error(sqlite_failure(ffi::SQLITE_CONSTRAINT_NOTNULL));
        assert!(matches!(err, StoreError::Internal(_)));
    }
}
