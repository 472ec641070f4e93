//! Personal API tokens: long-lived bearer credentials a user makes for scripts
//! and CI, usable wherever a session is (`Authorization: Bearer rwp_…`, never a
//! cookie, never an agent route).
//!
//! A token is shown once and stored only as its SHA-256 ([`crate::secret`] has
//! its scanner-friendly shape). Like a session, it embeds its id and carries a
//! copy of its user's name and role, so authenticating a request with it is one
//! read by key; and like a session it cannot outlive a credential change: it is
//! created only while its user is still at the
//! [`credential_epoch`](crate::user::User::credential_epoch) of the session that
//! asked for it, and disabling the user, changing their role or deleting them
//! deletes every token in the same write that bumps the epoch. A password reset
//! leaves tokens alone (they are not the password, and CI should not break when a
//! person changes theirs); revoking them is one call per token.
//!
//! A read-only token may call only `GET` and `HEAD` routes. Expiry is optional and
//! decided in code ([`ApiToken::is_active`]); an expired token stays listed (so
//! its owner sees why a script broke) until it is revoked or a new token is
//! created, which deletes the user's expired ones in the same write. A user holds
//! at most [`MAX_API_TOKENS_PER_USER`] live tokens; creating one more is refused,
//! never an eviction: silently breaking someone's automation is worse than
//! asking them to clean up.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::id::{ApiTokenId, UserId};
use crate::secret::TokenHash;
use crate::user::Role;

/// The most live API tokens one user holds. With
/// [`MAX_SESSIONS_PER_USER`](crate::session::MAX_SESSIONS_PER_USER) sessions,
/// disabling a user is at most 50 + 40 deletes, the user, the admin counter and
/// the audit event: 93 actions, inside one DynamoDB transaction (100).
pub const MAX_API_TOKENS_PER_USER: usize = 40;

// Disabling a user with every credential they may hold fits one DynamoDB
// transaction: checked when the crate compiles.
const _: () = assert!(crate::session::MAX_SESSIONS_PER_USER + MAX_API_TOKENS_PER_USER + 3 <= 100);

/// The longest token name, in characters.
pub const MAX_API_TOKEN_NAME_LEN: usize = 100;

/// The longest lifetime a token may be given, in days (about five years).
pub const MAX_API_TOKEN_DAYS: i64 = 1830;

/// A personal API token, as stored (the secret itself is never kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiToken {
    /// Stable id; also embedded in the token.
    pub id: ApiTokenId,
    /// Whose token this is.
    pub user_id: UserId,
    /// The user's name when the token was made.
    pub username: String,
    /// The user's role when the token was made (a role change deletes the token).
    pub role: Role,
    /// What the user called it, e.g. `ci deploy`.
    pub name: String,
    /// Whether it may call only `GET` and `HEAD` routes.
    pub read_only: bool,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working, if ever.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// SHA-256 of the token. Never serialized.
    #[serde(skip)]
    pub token_hash: TokenHash,
    /// The user's credential epoch when the token was asked for: the store
    /// creates it only if the user is still at this epoch. Never serialized.
    #[serde(skip)]
    pub credential_epoch: u64,
}

impl ApiToken {
    /// Whether the token may be used at `now`.
    #[must_use]
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|expires| now < expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn a_token_without_expiry_never_lapses_and_one_with_lapses_at_it() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut token = ApiToken {
            id: ApiTokenId::new(),
            user_id: UserId::new(),
            username: "ada".into(),
            role: Role::Member,
            name: "ci".into(),
            read_only: false,
            created_at: t0,
            expires_at: None,
            token_hash: TokenHash::of("t"),
            credential_epoch: 0,
        };
        assert!(token.is_active(t0 + Duration::days(10_000)));
        token.expires_at = Some(t0 + Duration::days(1));
        assert!(token.is_active(t0 + Duration::days(1) - Duration::seconds(1)));
        assert!(!token.is_active(t0 + Duration::days(1)));
    }
}
