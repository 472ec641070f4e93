//! Typed identifiers.
//!
//! Every record is identified by a [ULID](https://github.com/ulid/spec): 128 bits, the
//! first 48 of which are a millisecond timestamp, so ids sort by creation time and a
//! "newest first" listing is an index scan in reverse id order on every backend.
//! Each kind of record gets its own newtype so a `JobId` can never be passed where an
//! `AgentId` is expected. On the wire and in the stores an id is its 26-character
//! Crockford base32 string.
//!
//! Ids are drawn from one process-wide *monotonic* generator: two records created in
//! the same millisecond still sort in creation order, so "newest first" means
//! submission order, not a coin toss within the millisecond.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// The error returned when a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid id (expected a 26-character ULID)")]
pub struct InvalidId(pub String);

macro_rules! ulid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Ulid);

        impl $name {
            /// A new id stamped with the current time, greater than every id this
            /// process made before it.
            #[must_use]
            pub fn new() -> Self {
                Self(next_ulid())
            }

            /// Wraps an existing ULID.
            #[must_use]
            pub const fn from_ulid(ulid: Ulid) -> Self {
                Self(ulid)
            }

            /// The underlying ULID.
            #[must_use]
            pub const fn ulid(self) -> Ulid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ulid::from_string(s).map(Self).map_err(|_| InvalidId(s.chars().take(64).collect()))
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .min_length(Some(26))
                    .max_length(Some(26))
                    .pattern(Some(ULID_PATTERN))
                    .examples([serde_json_example()])
                    .description(Some(concat!(stringify!($name), ": a ULID, sortable by creation time")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// What [`Ulid::from_string`] accepts, and so what every id's schema says: 26 of
/// Crockford's base32 digits, in either case (it does not check that the first
/// digit is at most 7).
pub const ULID_PATTERN: &str = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$";

/// The next ULID from the process-wide monotonic generator. In the astronomically
/// unlikely case that the random part overflows within one millisecond, it falls back
/// to a fresh random ULID rather than failing.
fn next_ulid() -> Ulid {
    static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    generator.generate().unwrap_or_else(|_| Ulid::new())
}

fn serde_json_example() -> &'static str {
    "01JDQ5V8ZK4M3X9T2B7N6C1F0R"
}

ulid_id!(
    /// Identifies a [`crate::user::User`].
    UserId
);
ulid_id!(
    /// Identifies a [`crate::session::Session`]; also embedded in its token.
    SessionId
);
ulid_id!(
    /// Identifies an [`crate::agent::Agent`].
    AgentId
);
ulid_id!(
    /// Identifies a [`crate::agent::RegistrationToken`].
    RegistrationTokenId
);
ulid_id!(
    /// Identifies a [`crate::job::Job`].
    JobId
);
ulid_id!(
    /// Identifies an [`crate::audit::AuditEvent`].
    AuditId
);
ulid_id!(
    /// Identifies a personal [`crate::api_token::ApiToken`]; also embedded in it.
    ApiTokenId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_string_form() {
        let id = JobId::new();
        let parsed: JobId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
    }

    #[test]
    fn a_malformed_id_is_rejected_with_its_text() {
        let err = "not-an-id".parse::<AgentId>().unwrap_err();
        assert_eq!(err, InvalidId("not-an-id".into()));
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let a = JobId::from_ulid(Ulid::from_parts(1_000, 5));
        let b = JobId::from_ulid(Ulid::from_parts(2_000, 1));
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn ids_made_in_quick_succession_sort_in_creation_order() {
        let ids: Vec<JobId> = (0..1000).map(|_| JobId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = UserId::new();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
    }
}
