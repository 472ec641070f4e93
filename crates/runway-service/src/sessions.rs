//! Signing in, and managing one's own sessions (devices).
//!
//! Sign-in verifies the argon2id hash on a blocking thread: it takes tens of
//! milliseconds on purpose and would otherwise stall a runtime worker. At most
//! `concurrent_password_checks` verifications run at once; a sign-in that waits
//! longer than [`PASSWORD_CHECK_WAIT`] for a turn is shed with
//! [`ServiceError::Overloaded`], so a flood of guesses costs bounded memory and
//! CPU. An unknown username is verified against a dummy hash, so the response time
//! does not reveal which usernames exist, and both failures are the same
//! [`ServiceError::InvalidCredentials`].
//!
//! The session is created only if the user's credential epoch is still the one
//! read with the hash (`SessionStore::create_session`): a password reset or a
//! sign-out everywhere that lands while argon2 runs makes the sign-in fail with
//! [`ServiceError::InvalidCredentials`], as if it had started after the change, so
//! no session opened with an old password outlives the reset. A user holds at most
//! [`MAX_SESSIONS_PER_USER`](runway_core::session::MAX_SESSIONS_PER_USER)
//! sessions: a sign-in past that evicts the oldest, and
//! each eviction is audited as a revocation, written by the store with the
//! sign-in's own event (only the write knows which sessions it evicts).
//!
//! Before any of that, the abuse limits ([`crate::limits`]) admit the attempt:
//! an account or an address with too many recent failures is refused with
//! [`ServiceError::RateLimited`] without an argon2 check; a failure counts
//! against both, and a success clears the account's counter.
//!
//! Everything else acts only on the caller's own sessions: the store's
//! `revoke_session(user, id)` is scoped by user, so someone else's session id is
//! `NotFound` exactly like an unknown one.

use std::sync::Arc;
use std::time::Duration;

use runway_core::OffsetDateTime;
use runway_core::audit::{Actor, AuditAction, AuditEvent};
use runway_core::id::SessionId;
use runway_core::job::FieldError;
use runway_core::password::{NO_PASSWORD, dummy_hash, verify_password};
use runway_core::secret::{IssuedToken, Secret};
use runway_core::session::Session;
use runway_core::store::{Conflict, Store, StoreError};
use runway_core::user::{MAX_USERNAME_LEN, User};

use crate::accounts::MAX_PASSWORD_LEN;
use crate::audit::Caller;
use crate::error::{ServiceError, ServiceResult};
use crate::limits::Limits;

/// How long a sign-in waits for a free argon2 slot before it is shed.
pub const PASSWORD_CHECK_WAIT: Duration = Duration::from_secs(5);
/// The longest device name.
pub const MAX_DEVICE_NAME_LEN: usize = 100;

/// Where a sign-in comes from, as recorded on the session.
#[derive(Debug, Clone, Default)]
pub struct Device {
    /// What the user calls this device (blank means none).
    pub name: Option<String>,
    /// The client's `User-Agent`, already cut to length.
    pub user_agent: Option<String>,
    /// The client's address.
    pub ip: Option<String>,
}

/// Sessions: issuing them at sign-in and revoking them.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    ttl: time::Duration,
    idle_timeout: time::Duration,
    /// Permits for argon2id verifications; see the module docs.
    password_checks: Arc<tokio::sync::Semaphore>,
    /// Failed sign-ins per account and per address ([`crate::limits`]).
    limits: Limits,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .field("idle_timeout", &self.idle_timeout)
            .field(
                "password_checks_free",
                &self.password_checks.available_permits(),
            )
            .finish_non_exhaustive()
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl Sessions {
    /// Sessions on `store`, lasting `ttl` (absolute) and `idle_timeout` (unused),
    /// with at most `concurrent_password_checks` argon2 verifications at once,
    /// and password sign-ins held to `limits`.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        ttl: time::Duration,
        idle_timeout: time::Duration,
        concurrent_password_checks: usize,
        limits: Limits,
    ) -> Self {
        Self {
            store,
            ttl,
            idle_timeout,
            password_checks: Arc::new(tokio::sync::Semaphore::new(concurrent_password_checks)),
            limits,
        }
    }

    /// The abuse limits sign-ins are held to (the OIDC callback uses them too).
    #[must_use]
    pub const fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Checks the credentials and issues a session for `device`: the session and
    /// its token (shown once).
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a field out of bounds;
    /// [`ServiceError::RateLimited`] while the account or the address is locked
    /// out; [`ServiceError::InvalidCredentials`]; [`ServiceError::Overloaded`];
    /// store failures.
    pub async fn sign_in(
        &self,
        username: &str,
        password: Secret,
        device: Device,
        request_id: Option<String>,
    ) -> ServiceResult<(Session, Secret)> {
        // Characters, as the message and the OpenAPI document say (every real
        // username is ASCII, so this only decides which wrong ones get a 422).
        if username.is_empty() || username.chars().count() > MAX_USERNAME_LEN {
            return Err(FieldError::new(
                "username",
                format!("must be 1 to {MAX_USERNAME_LEN} characters"),
            )
            .into());
        }
        let password_len = password.expose().chars().count();
        if password_len == 0 || password_len > MAX_PASSWORD_LEN {
            return Err(FieldError::new(
                "password",
                format!("must be 1 to {MAX_PASSWORD_LEN} characters"),
            )
            .into());
        }
        // Checked before a blank name is dropped, so the rule is the same for every
        // name (the document's `maxLength` and pattern), blank or not.
        if let Some(d) = &device.name {
            check_text("device_name", d, MAX_DEVICE_NAME_LEN)?;
        }
        let mut device = device;
        device.name = device.name.filter(|d| !d.trim().is_empty());

        // Before any argon2 work: a locked-out guesser costs a few reads. The
        // limiter's reads and the user's run concurrently, so admission adds no
        // round trip to a sign-in.
        let (admission, user) = tokio::join!(
            self.limits
                .admit_sign_in(username, device.ip.as_deref(), request_id.as_deref()),
            self.store.user_by_username(username)
        );
        let admission = admission?;
        let user = user?;
        // A user without a password (OIDC only) costs the same dummy check as an
        // unknown one, and fails the same way.
        let stored_hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .filter(|h| h != NO_PASSWORD);
        let permit = tokio::time::timeout(
            PASSWORD_CHECK_WAIT,
            Arc::clone(&self.password_checks).acquire_owned(),
        )
        .await
        .map_err(|_elapsed| ServiceError::Overloaded)?
        .map_err(|_closed| ServiceError::Overloaded)?;
        let verified = match tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // An unknown user costs the same argon2 work as a known one.
            let hash = stored_hash.as_deref().unwrap_or_else(|| dummy_hash());
            verify_password(&password, hash)
        })
        .await
        {
            Ok(verified) => verified,
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        };
        let user = match user {
            Some(user) if verified => user,
            refused => {
                self.limits.sign_in_failed(admission).await;
                self.record_failed_sign_in(refused.as_ref(), &device, request_id)
                    .await;
                return Err(ServiceError::InvalidCredentials);
            }
        };

        let issued = self.issue(user, device, request_id).await?;
        self.limits.sign_in_succeeded(admission).await;
        Ok(issued)
    }

    /// Audits a refused password sign-in: against the user when the name is
    /// known, with no subject and no name when it is not (a password typed into
    /// the name field must not land in the log), and the client's address.
    async fn record_failed_sign_in(
        &self,
        user: Option<&User>,
        device: &Device,
        request_id: Option<String>,
    ) {
        let from = device.ip.as_deref().unwrap_or("an unknown address");
        let (subject, why) = match user {
            Some(user) if user.password_hash == NO_PASSWORD => (
                Some(user.id.to_string()),
                "no password (OpenID Connect only)",
            ),
            Some(user) => (Some(user.id.to_string()), "wrong password"),
            None => (None, "unknown username"),
        };
        let mut event = AuditEvent::new(
            Actor::System,
            AuditAction::SignInFailed,
            subject,
            OffsetDateTime::now_utc(),
        );
        if let Some(id) = request_id.filter(|id| !id.is_empty()) {
            event = event.with_request_id(id);
        }
        crate::audit::append(
            self.store.as_ref(),
            event,
            Some(format!("{why}, from {from}")),
        )
        .await;
    }

    /// Issues a session for `user`, already authenticated (by password in
    /// [`Self::sign_in`], by an issuer's ID token in [`crate::oidc`]), on
    /// `device`: the session and its token (shown once). Every sign-in creates
    /// its session here.
    ///
    /// # Errors
    /// [`ServiceError::AccountDisabled`] for a disabled user; store failures.
    pub async fn issue(
        &self,
        user: User,
        device: Device,
        request_id: Option<String>,
    ) -> ServiceResult<(Session, Secret)> {
        // After the password or the issuer vouched for them, so it tells a
        // guesser nothing; a disable racing this is the epoch check's to catch.
        if user.disabled {
            return Err(ServiceError::AccountDisabled);
        }
        let now = OffsetDateTime::now_utc();
        let id = SessionId::new();
        let issued = IssuedToken::session(id);
        let session = Session {
            id,
            user_id: user.id,
            username: user.username,
            role: user.role,
            device_name: device.name,
            user_agent: device.user_agent,
            ip: device.ip,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.ttl,
            idle_timeout_seconds: self.idle_timeout.whole_seconds(),
            token_hash: issued.hash,
            credential_epoch: user.credential_epoch,
        };
        // The store writes this with the session, and one `session.revoked` of
        // it for each session the sign-in evicts (`AuditEvent::of_eviction`).
        let event = Caller::user(&session, request_id).event(
            AuditAction::SessionCreated,
            session.id,
            session.device_name.as_ref().map(|d| format!("device: {d}")),
        );
        match self.store.create_session(&session, &event).await {
            Ok(_) => {}
            // The password was reset, or the user signed out everywhere or was
            // deleted, while the hash was being checked: the check was against
            // credentials that no longer hold.
            Err(StoreError::Conflict(Conflict::CredentialsChanged) | StoreError::NotFound) => {
                return Err(ServiceError::InvalidCredentials);
            }
            Err(err) => return Err(err.into()),
        }
        Ok((session, issued.plaintext))
    }

    /// Signs the session's device out. A session already gone (a concurrent
    /// sign-out) is the same outcome, not an error.
    ///
    /// # Errors
    /// Store failures.
    pub async fn sign_out(
        &self,
        session: &Session,
        request_id: Option<String>,
    ) -> ServiceResult<()> {
        let event = Caller::user(session, request_id).event(
            AuditAction::SessionRevoked,
            session.id,
            Some("signed out".into()),
        );
        match self
            .store
            .revoke_session(session.user_id, session.id, &event)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Revokes one of `me`'s sessions.
    ///
    /// # Errors
    /// `NotFound("session")` if it is not one of theirs; store failures.
    pub async fn revoke(
        &self,
        me: &Session,
        id: SessionId,
        request_id: Option<String>,
    ) -> ServiceResult<()> {
        let event = Caller::user(me, request_id).event(AuditAction::SessionRevoked, id, None);
        self.store
            .revoke_session(me.user_id, id, &event)
            .await
            .map_err(ServiceError::or_not_found("session"))?;
        Ok(())
    }

    /// Revokes all of `me`'s sessions, or all but this one; how many went. Sign-ins
    /// already past their password check cannot add a session afterwards (the
    /// store bumps the credential epoch in the same write).
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke_all(
        &self,
        me: &Session,
        keep_current: bool,
        request_id: Option<String>,
    ) -> ServiceResult<u64> {
        let keep = keep_current.then_some(me.id);
        // A template: the store fills in how many went (`of_revoked_all`).
        let event =
            Caller::user(me, request_id).event(AuditAction::SessionsRevokedAll, me.user_id, None);
        Ok(self
            .store
            .revoke_user_sessions(me.user_id, keep, &event)
            .await?)
    }
}
