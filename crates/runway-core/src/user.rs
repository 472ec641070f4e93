//! Users, roles, and who is calling.
//!
//! A user is `admin` or `member`, and may be disabled: a disabled user keeps
//! their record (and their jobs' history names them) but cannot sign in, and
//! disabling deletes their sessions and API tokens in the same write that bumps
//! their credential epoch. Runway always keeps at least one enabled admin: the
//! stores refuse, atomically, to demote, disable or delete the last one
//! ([`crate::store::Conflict::LastAdmin`]).
//!
//! A [`Principal`] is an authenticated user as a request sees them: who, with
//! which role, and by which credential (a session or an API token).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::id::{ApiTokenId, SessionId, UserId};
use crate::session::Session;

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
    /// A disabled user cannot sign in and holds no sessions or API tokens.
    pub disabled: bool,
}

impl User {
    /// Whether the user counts towards "at least one admin": an enabled admin.
    #[must_use]
    pub fn is_enabled_admin(&self) -> bool {
        self.role == Role::Admin && !self.disabled
    }
}

/// What an admin changes about a user. Fields left `None` stay as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserChange {
    /// The new role.
    pub role: Option<Role>,
    /// Disable (`true`) or enable (`false`).
    pub disabled: Option<bool>,
}

impl UserChange {
    /// Whether applying the change to `user` revokes their credentials: a new role
    /// (sessions and tokens carry a copy of it) or disabling.
    #[must_use]
    pub fn revokes_credentials(&self, user: &User) -> bool {
        self.role.is_some_and(|role| role != user.role)
            || (self.disabled == Some(true) && !user.disabled)
    }

    /// `user` with the change applied (epoch untouched).
    #[must_use]
    pub fn apply(&self, user: &User) -> User {
        let mut changed = user.clone();
        if let Some(role) = self.role {
            changed.role = role;
        }
        if let Some(disabled) = self.disabled {
            changed.disabled = disabled;
        }
        changed
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A session (a bearer `rws_` token or the session cookie).
    Session(SessionId),
    /// A personal API token (`rwp_`).
    ApiToken {
        /// The token.
        id: ApiTokenId,
        /// Whether it may call only `GET` and `HEAD` routes.
        read_only: bool,
    },
}

/// An authenticated user, as copied into the credential that authenticated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// Their name when the credential was made.
    pub username: String,
    /// Their role when the credential was made.
    pub role: Role,
    /// The session or token the request came with.
    pub credential: Credential,
}

impl Principal {
    /// Whether the user is an admin.
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

impl From<&Session> for Principal {
    fn from(session: &Session) -> Self {
        Self {
            user_id: session.user_id,
            username: session.username.clone(),
            role: session.role,
            credential: Credential::Session(session.id),
        }
    }
}

impl From<&crate::api_token::ApiToken> for Principal {
    fn from(token: &crate::api_token::ApiToken) -> Self {
        Self {
            user_id: token.user_id,
            username: token.username.clone(),
            role: token.role,
            credential: Credential::ApiToken {
                id: token.id,
                read_only: token.read_only,
            },
        }
    }
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
            .field("disabled", &self.disabled)
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
            disabled: false,
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
