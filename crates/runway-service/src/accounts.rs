//! User accounts: first-start bootstrap and administration.
//!
//! Used by the `runway` binary (on first start and from `runway admin …`
//! commands) and by tests; the user-management API is [`crate::users`], which
//! shares the password rules and hashing here.
//! Password hashing runs on a blocking thread: argon2id is deliberately slow.
//!
//! Changing a user's password revokes all their sessions, because sessions carry a
//! copy of the user's name and role and must not outlive a credential change.
//!
//! Each change is recorded in the audit log with the actor `system`: these run on
//! the operator's side (first start, `runway admin`), not as a signed-in user. The
//! event is handed to the store write that makes the change, and the two commit
//! together or not at all ([`crate::audit`]).

use runway_core::OffsetDateTime;
use runway_core::audit::{Actor, AuditAction, AuditEvent};
use runway_core::id::UserId;
use runway_core::password::{MIN_PASSWORD_LEN, generate_password, hash_password};
use runway_core::secret::Secret;
use runway_core::store::{Conflict, StoreError, UserAdminStore, UserStore};
use runway_core::user::{Role, User, validate_username};

/// The longest password accepted anywhere; bounds the argon2 work an attacker can
/// ask for at sign-in.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// The name of the user created on first start.
pub const ADMIN_USERNAME: &str = "admin";

/// What [`ensure_admin`] did.
#[derive(Debug)]
pub enum Bootstrap {
    /// Users already existed; nothing was created.
    AlreadyInitialized,
    /// `admin` was created with the password the caller gave.
    CreatedWithGivenPassword,
    /// `admin` was created with this random password, to be shown to the operator once.
    CreatedWithGeneratedPassword(Secret),
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The username breaks the naming rules; the text says how.
    #[error("invalid username: {0}")]
    InvalidUsername(String),
    /// The password is too short (or absurdly long).
    #[error("the password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")]
    WeakPassword,
    /// Someone already has this username.
    #[error("the username `{0}` is taken")]
    UsernameTaken(String),
    /// No user has this username.
    #[error("no user is called `{0}`")]
    NoSuchUser(String),
    /// The store failed.
    #[error("store error")]
    Store(#[from] StoreError),
}

pub(crate) fn check_password(password: &Secret) -> Result<(), AccountError> {
    let len = password.expose().chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
        Ok(())
    } else {
        Err(AccountError::WeakPassword)
    }
}

pub(crate) async fn hash(password: &Secret) -> String {
    let password = password.clone();
    match tokio::task::spawn_blocking(move || hash_password(&password)).await {
        Ok(hash) => hash,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Creates the user `admin` (role admin) if, and only if, no user exists yet. With no
/// `password`, a random one is generated and returned so it can be printed once.
///
/// # Errors
/// [`AccountError::WeakPassword`] if a given password is too short; store failures.
pub async fn ensure_admin<S>(store: &S, password: Option<Secret>) -> Result<Bootstrap, AccountError>
where
    S: UserStore + UserAdminStore + ?Sized,
{
    if let Some(p) = &password {
        check_password(p)?;
    }
    if store.has_users().await? {
        return Ok(Bootstrap::AlreadyInitialized);
    }
    let (password, outcome) = match password {
        Some(p) => (p, Bootstrap::CreatedWithGivenPassword),
        None => {
            let p = generate_password();
            (p.clone(), Bootstrap::CreatedWithGeneratedPassword(p))
        }
    };
    let user = User {
        id: UserId::new(),
        username: ADMIN_USERNAME.to_owned(),
        role: Role::Admin,
        created_at: OffsetDateTime::now_utc(),
        password_hash: hash(&password).await,
        credential_epoch: 0,
        disabled: false,
    };
    let event = system_event(AuditAction::UserCreated, &user, "first start");
    match store.create_user_audited(&user, &event).await {
        Ok(()) => Ok(outcome),
        // Another process bootstrapped at the same moment.
        Err(StoreError::Conflict(Conflict::UsernameTaken(_))) => Ok(Bootstrap::AlreadyInitialized),
        Err(e) => Err(e.into()),
    }
}

/// Creates a user.
///
/// # Errors
/// [`AccountError::InvalidUsername`], [`AccountError::WeakPassword`],
/// [`AccountError::UsernameTaken`], or a store failure.
pub async fn create_user<S>(
    store: &S,
    username: &str,
    password: &Secret,
    role: Role,
) -> Result<User, AccountError>
where
    S: UserStore + UserAdminStore + ?Sized,
{
    validate_username(username).map_err(AccountError::InvalidUsername)?;
    check_password(password)?;
    let user = User {
        id: UserId::new(),
        username: username.to_owned(),
        role,
        created_at: OffsetDateTime::now_utc(),
        password_hash: hash(password).await,
        credential_epoch: 0,
        disabled: false,
    };
    let detail = format!("{} `{}`", user.role.as_str(), user.username);
    let event = system_event(AuditAction::UserCreated, &user, &detail);
    match store.create_user_audited(&user, &event).await {
        Ok(()) => Ok(user),
        Err(StoreError::Conflict(Conflict::UsernameTaken(_))) => {
            Err(AccountError::UsernameTaken(username.to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets a user's password and signs them out everywhere, in one store write
/// ([`UserStore::set_password_hash`] deletes the sessions and bumps the credential
/// epoch with the hash change), so a failure part-way cannot leave the new
/// password live beside old sessions, and a sign-in that checked the old password
/// before the write cannot create its session after it.
///
/// # Errors
/// [`AccountError::WeakPassword`], [`AccountError::NoSuchUser`], or a store failure.
pub async fn reset_password<S>(
    store: &S,
    username: &str,
    password: &Secret,
) -> Result<(), AccountError>
where
    S: UserStore + UserAdminStore + ?Sized,
{
    check_password(password)?;
    let user = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))?;
    let hashed = hash(password).await;
    let detail = format!("`{}`, signed out everywhere", user.username);
    let event = system_event(AuditAction::UserPasswordReset, &user, &detail);
    match store.set_password_hash(user.id, &hashed, &event).await {
        Ok(()) => Ok(()),
        // Deleted between the lookup and the write.
        Err(StoreError::NotFound) => Err(AccountError::NoSuchUser(username.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// The event of an account change made by the system (see the module
/// documentation), for the store write that makes it.
fn system_event(action: AuditAction, user: &User, detail: &str) -> AuditEvent {
    let event = AuditEvent::new(
        Actor::System,
        action,
        Some(user.id.to_string()),
        OffsetDateTime::now_utc(),
    );
    crate::audit::with_detail(event, Some(detail.to_owned()))
}
