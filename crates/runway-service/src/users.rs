//! Users as admins manage them through the API: create, list, change the role,
//! disable or enable, delete, and see or revoke a user's sessions.
//!
//! Who may call these is the API's matrix (admins only); the rules here are what
//! holds whoever calls:
//!
//! * a user created without a password can sign in only through the OpenID
//!   Connect issuer (their hash is `NO_PASSWORD`, which no password matches);
//! * a new role or a disable revokes every session and API token of the user in
//!   the store write that makes the change (`UserAdminStore::update_user`), so
//!   neither a copy of the old role nor a sign-in already in flight survives it;
//! * the last enabled admin cannot be demoted, disabled or deleted, decided by
//!   the store atomically with the write (`Conflict::LastAdmin`), so two admins
//!   demoting each other at once leave one;
//! * every change hands its audit event to the store, written in the same
//!   transaction: `user.created`, `user.role_changed`, `user.disabled`,
//!   `user.enabled`, `user.deleted`; revoking a session is `session.revoked`.

use std::sync::Arc;

use runway_core::OffsetDateTime;
use runway_core::audit::AuditAction;
use runway_core::id::{SessionId, UserId};
use runway_core::job::FieldError;
use runway_core::page::{Page, PageRequest};
use runway_core::password::NO_PASSWORD;
use runway_core::secret::Secret;
use runway_core::session::Session;
use runway_core::store::Store;
use runway_core::user::{Role, User, UserChange, validate_username};

use crate::accounts::{check_password, hash};
use crate::audit::Caller;
use crate::error::{ServiceError, ServiceResult};

/// User administration on one store.
#[derive(Clone)]
pub struct Users {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").finish_non_exhaustive()
    }
}

/// The audit action and note of a change from `before` to `after`: one event per
/// write, so a change of both role and state is recorded under the stronger of
/// the two (a disable over a role change over an enable) and the note says all.
fn describe(before: &User, after: &User) -> (AuditAction, String) {
    let mut parts = Vec::new();
    if before.role != after.role {
        parts.push(format!(
            "role {} → {}",
            before.role.as_str(),
            after.role.as_str()
        ));
    }
    if before.disabled != after.disabled {
        parts.push(
            if after.disabled {
                "disabled"
            } else {
                "enabled"
            }
            .to_owned(),
        );
    }
    let action = if after.disabled && !before.disabled {
        AuditAction::UserDisabled
    } else if before.role != after.role {
        AuditAction::UserRoleChanged
    } else {
        AuditAction::UserEnabled
    };
    let revoked = if after.disabled && !before.disabled || before.role != after.role {
        "; sessions and API tokens revoked"
    } else {
        ""
    };
    (
        action,
        format!("`{}`: {}{revoked}", before.username, parts.join(", ")),
    )
}

impl Users {
    /// Users on `store`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Creates a user; with no `password` they can sign in only through OpenID
    /// Connect.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad username or password;
    /// `Conflict(UsernameTaken)`; store failures.
    pub async fn create(
        &self,
        caller: &Caller,
        username: &str,
        role: Role,
        password: Option<Secret>,
    ) -> ServiceResult<User> {
        validate_username(username).map_err(|why| FieldError::new("username", why))?;
        let password_hash = match &password {
            Some(password) => {
                check_password(password)
                    .map_err(|err| FieldError::new("password", err.to_string()))?;
                hash(password).await
            }
            None => NO_PASSWORD.to_owned(),
        };
        let user = User {
            id: UserId::new(),
            username: username.to_owned(),
            role,
            created_at: OffsetDateTime::now_utc(),
            password_hash,
            credential_epoch: 0,
            disabled: false,
        };
        let how = if password.is_some() {
            "with a password"
        } else {
            "OpenID Connect only"
        };
        let event = caller.event(
            AuditAction::UserCreated,
            user.id,
            Some(format!("{} `{}`, {how}", role.as_str(), user.username)),
        );
        self.store.create_user_audited(&user, &event).await?;
        Ok(user)
    }

    /// A page of users, newest first.
    ///
    /// # Errors
    /// Store failures (an unknown cursor included).
    pub async fn list(&self, page: &PageRequest) -> ServiceResult<Page<User>> {
        Ok(self.store.list_users(page).await?)
    }

    /// One user.
    ///
    /// # Errors
    /// `NotFound("user")`; store failures.
    pub async fn get(&self, id: UserId) -> ServiceResult<User> {
        self.store
            .get_user(id)
            .await?
            .ok_or(ServiceError::NotFound("user"))
    }

    /// Changes a user's role or state; returns the user as now stored. A change
    /// to what the user already is writes nothing.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for an empty change; `NotFound("user")`;
    /// `Conflict(LastAdmin)`; store failures.
    pub async fn update(
        &self,
        caller: &Caller,
        id: UserId,
        change: UserChange,
    ) -> ServiceResult<User> {
        if change == UserChange::default() {
            return Err(FieldError::new("role", "give `role`, `disabled` or both").into());
        }
        let user = self.get(id).await?;
        let after = change.apply(&user);
        if after == user {
            return Ok(user);
        }
        let (action, detail) = describe(&user, &after);
        let event = caller.event(action, id, Some(detail));
        self.store
            .update_user(id, change, &event)
            .await
            .map_err(ServiceError::or_not_found("user"))
    }

    /// Deletes a user with their sessions, API tokens and issuer identities.
    /// Their jobs stay, naming them by id.
    ///
    /// # Errors
    /// `NotFound("user")`; `Conflict(LastAdmin)`; store failures.
    pub async fn delete(&self, caller: &Caller, id: UserId) -> ServiceResult<()> {
        let user = self.get(id).await?;
        let event = caller.event(
            AuditAction::UserDeleted,
            id,
            Some(format!("{} `{}`", user.role.as_str(), user.username)),
        );
        self.store
            .delete_user(id, &event)
            .await
            .map_err(ServiceError::or_not_found("user"))
    }

    /// A user's active sessions, newest first.
    ///
    /// # Errors
    /// `NotFound("user")`; store failures.
    pub async fn sessions(&self, id: UserId) -> ServiceResult<Vec<Session>> {
        self.get(id).await?;
        Ok(self
            .store
            .list_user_sessions(id, OffsetDateTime::now_utc())
            .await?)
    }

    /// Revokes one of a user's sessions.
    ///
    /// # Errors
    /// `NotFound("session")` if it is not theirs; store failures.
    pub async fn revoke_session(
        &self,
        caller: &Caller,
        user: UserId,
        session: SessionId,
    ) -> ServiceResult<()> {
        let event = caller.event(
            AuditAction::SessionRevoked,
            session,
            Some(format!("by an admin, of user {user}")),
        );
        self.store
            .revoke_session(user, session, &event)
            .await
            .map_err(ServiceError::or_not_found("session"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, disabled: bool) -> User {
        User {
            id: UserId::new(),
            username: "ada".into(),
            role,
            created_at: OffsetDateTime::UNIX_EPOCH,
            password_hash: String::new(),
            credential_epoch: 0,
            disabled,
        }
    }

    #[test]
    fn a_change_is_recorded_under_its_strongest_action_and_the_note_says_all() {
        let admin = user(Role::Admin, false);
        let (action, note) = describe(&admin, &user(Role::Member, true));
        assert_eq!(action, AuditAction::UserDisabled);
        assert!(note.contains("role admin → member, disabled"), "{note}");
        assert!(note.contains("revoked"), "{note}");
        let (action, _) = describe(&admin, &user(Role::Member, false));
        assert_eq!(action, AuditAction::UserRoleChanged);
        let (action, note) = describe(&user(Role::Admin, true), &admin);
        assert_eq!(action, AuditAction::UserEnabled);
        assert!(!note.contains("revoked"), "{note}");
    }
}
