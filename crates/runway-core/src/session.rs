//! User sessions: one per device.
//!
//! A session has two expiries, and both are checked on every request by
//! [`Session::is_active`], never left to a TTL sweep (DynamoDB's TTL deletes lazily,
//! typically within two days):
//!
//! * `expires_at`, absolute, fixed at sign-in (default 7 days);
//! * idle expiry, `last_seen_at + idle_timeout` (default 24 h). `last_seen_at` is
//!   written at most once a minute ([`Session::needs_touch`]) so validation stays a
//!   single read on the hot path.
//!
//! The user's name and role are copied into the session at sign-in, so that
//! authenticating a request is exactly one read. Anything that changes a user's role
//! or password revokes their sessions, so the copy cannot outlive the truth.
//!
//! A sign-in cannot outlive a credential change either: the session carries the
//! user's [`credential_epoch`](crate::user::User::credential_epoch) as read with the
//! password hash, and the store creates it only while the user's epoch is still
//! that one (a password reset and signing out everywhere bump the epoch in the same
//! write that deletes the sessions). A user holds at most
//! [`MAX_SESSIONS_PER_USER`] sessions; a new one evicts the oldest. The bound keeps
//! revoking them all one bounded write (one DynamoDB transaction).

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::id::{SessionId, UserId};
use crate::secret::TokenHash;
use crate::user::Role;

/// How often `last_seen_at` is refreshed at most.
pub const TOUCH_INTERVAL: Duration = Duration::minutes(1);

/// The most sessions one user holds; creating one more evicts the oldest. Kept
/// small enough that revoking all of them and updating the user fits in one
/// DynamoDB transaction (100 actions) with room to spare.
pub const MAX_SESSIONS_PER_USER: usize = 50;

/// A signed-in device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Session {
    /// Stable id; also embedded in the session token.
    pub id: SessionId,
    /// Whose session this is.
    pub user_id: UserId,
    /// The user's name at sign-in.
    pub username: String,
    /// The user's role at sign-in.
    pub role: Role,
    /// What the user called the device, if anything.
    pub device_name: Option<String>,
    /// The `User-Agent` the session was created with.
    pub user_agent: Option<String>,
    /// The client address the session was created from.
    pub ip: Option<String>,
    /// When the user signed in.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the session was last used, to the minute.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// The absolute expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Idle time after which the session lapses, in seconds.
    pub idle_timeout_seconds: i64,
    /// SHA-256 of the token. Never serialized.
    #[serde(skip)]
    pub token_hash: TokenHash,
    /// The user's credential epoch when the password was checked: the store
    /// creates the session only if the user is still at this epoch. Never
    /// serialized.
    #[serde(skip)]
    pub credential_epoch: u64,
}

impl Session {
    /// When the session lapses if it is not used again.
    #[must_use]
    pub fn idle_expires_at(&self) -> OffsetDateTime {
        self.last_seen_at + Duration::seconds(self.idle_timeout_seconds)
    }

    /// The earlier of the two expiries: what a TTL attribute should hold.
    #[must_use]
    pub fn effective_expiry(&self) -> OffsetDateTime {
        self.expires_at.min(self.idle_expires_at())
    }

    /// Whether the session may be used at `now`.
    #[must_use]
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        now < self.effective_expiry()
    }

    /// Whether `last_seen_at` is stale enough to be written again: after
    /// [`TOUCH_INTERVAL`], or after half the idle timeout if that is shorter, so a
    /// client that keeps calling never lapses between two writes.
    #[must_use]
    pub fn needs_touch(&self, now: OffsetDateTime) -> bool {
        let half_idle = Duration::seconds(self.idle_timeout_seconds / 2);
        now - self.last_seen_at >= TOUCH_INTERVAL.min(half_idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(created: OffsetDateTime) -> Session {
        Session {
            id: SessionId::new(),
            user_id: UserId::new(),
            username: "ada".into(),
            role: Role::Member,
            device_name: None,
            user_agent: None,
            ip: None,
            created_at: created,
            last_seen_at: created,
            expires_at: created + Duration::days(7),
            idle_timeout_seconds: 86_400,
            token_hash: TokenHash::of("t"),
            credential_epoch: 0,
        }
    }

    #[test]
    fn a_session_lapses_after_its_idle_timeout() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let s = session(t0);
        assert!(s.is_active(t0 + Duration::hours(23)));
        assert!(!s.is_active(t0 + Duration::hours(24)));
    }

    #[test]
    fn a_session_in_daily_use_still_ends_at_its_absolute_expiry() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut s = session(t0);
        s.last_seen_at = t0 + Duration::days(7) - Duration::minutes(1);
        assert!(s.is_active(t0 + Duration::days(7) - Duration::seconds(1)));
        assert!(!s.is_active(t0 + Duration::days(7)));
    }

    #[test]
    fn a_short_idle_timeout_is_refreshed_often_enough_to_keep_an_active_session() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut s = session(t0);
        s.idle_timeout_seconds = 60;
        assert!(!s.needs_touch(t0 + Duration::seconds(29)));
        assert!(s.needs_touch(t0 + Duration::seconds(30)));
    }

    #[test]
    fn last_seen_is_written_at_most_once_a_minute() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let s = session(t0);
        assert!(!s.needs_touch(t0 + Duration::seconds(59)));
        assert!(s.needs_touch(t0 + Duration::seconds(60)));
    }
}
