//! Users and roles.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::id::UserId;

/// What a user may do. The authorization matrix lives in the API crate, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users, registration tokens and agents.
    Admin,
    /// Runs and watches jobs.
    Member,
}

impl Role {
    /// The stored form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// Parses the stored form.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }
}

/// A person who can sign in.
#[derive(Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct User {
    /// Stable id.
    pub id: UserId,
    /// Unique, case-sensitive login name.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// When the user was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The argon2id PHC string. Never serialized, never printed.
    #[serde(skip)]
    pub password_hash: String,
    /// Counts the user's credential changes (a password reset, signing out
    /// everywhere). A sign-in reads it with the hash and copies it into the new
    /// session, and the store creates the session only if the user's epoch is still
    /// that one, so a sign-in cannot outlive a change that raced it. New users
    /// start at 0. Not serialized: it means nothing to a client.
    #[serde(skip)]
    pub credential_epoch: u64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("password_hash", &"[redacted]")
            .field("credential_epoch", &self.credential_epoch)
            .finish()
    }
}

/// The longest username accepted.
pub const MAX_USERNAME_LEN: usize = 64;

/// Checks a username: 1–64 characters of letters, digits, `.`, `_`, `-` or `@`.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn validate_username(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_USERNAME_LEN {
        return Err(format!(
            "username must be 1 to {MAX_USERNAME_LEN} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err("username may contain only letters, digits, '.', '_', '-' and '@'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_checked_for_length_and_characters() {
        assert!(validate_username("admin").is_ok());
        assert!(validate_username("ada.lovelace@example.com").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username(&"a".repeat(65)).is_err());
        assert!(validate_username("has space").is_err());
    }

    #[test]
    fn a_users_debug_output_hides_the_password_hash() {
        let user = User {
            id: UserId::new(),
            username: "ada".into(),
            role: Role::Admin,
            created_at: OffsetDateTime::UNIX_EPOCH,
            password_hash: "$argon2id$secret".into(),
            credential_epoch: 0,
        };
        assert!(!format!("{user:?}").contains("argon2id"));
    }

    #[test]
    fn roles_round_trip_through_their_stored_form() {
        for role in [Role::Admin, Role::Member] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
