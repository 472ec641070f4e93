//! Registration tokens: what an admin hands to a new build agent.
//!
//! The rules of a new token live here, for the API and for `runway dev` alike:
//! a description of at most [`MAX_DESCRIPTION_LEN`] characters, at most
//! [`MAX_USES`] uses, and an expiry in the future and at most 10 years away,
//! 7 days unless asked otherwise (a leaked token nobody remembers is the
//! commonest way into a build fleet, so "never" must be asked for explicitly).
//!
//! Creating one is two steps, so that the caller can count the attempt against
//! an abuse limit in between ([`crate::limits::Limits::check_token_creation`]):
//! [`check`] turns what was asked into a [`CheckedToken`] (a typo in a field is
//! not an attempt), and [`create`] issues the secret and stores the token with
//! its audit event in one transaction, as [`delete`] does its deletion.

use runway_core::OffsetDateTime;
use runway_core::agent::{REGISTRATION_TOKEN_DEFAULT_TTL, RegistrationToken};
use runway_core::audit::AuditAction;
use runway_core::id::{RegistrationTokenId, UserId};
use runway_core::job::FieldError;
use runway_core::secret::{IssuedToken, Secret, TokenKind};
use runway_core::store::{RegistrationTokenStore, StoreError};

use crate::audit::Caller;
use crate::error::{ServiceError, ServiceResult};

/// The longest description.
pub const MAX_DESCRIPTION_LEN: usize = 200;

/// The most uses a token may be given.
pub const MAX_USES: u32 = 10_000;

/// The furthest `expires_at` accepted. Every store keeps timestamps as 64-bit
/// nanoseconds, which end in 2262; a token meant to live forever has none.
const MAX_TOKEN_LIFETIME: time::Duration = time::Duration::days(3650);

/// What an admin asks for.
#[derive(Debug, Clone, Default)]
pub struct NewRegistrationToken {
    /// What the token is for; blank is none.
    pub description: Option<String>,
    /// `None`: the default (7 days); `Some(None)`: never; `Some(Some(t))`: at `t`.
    pub expires_at: Option<Option<OffsetDateTime>>,
    /// How many agents it may register; `None` for no limit.
    pub max_uses: Option<u32>,
}

/// A [`NewRegistrationToken`] that passed [`check`], with its times settled.
#[derive(Debug, Clone)]
pub struct CheckedToken {
    description: Option<String>,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    max_uses: Option<u32>,
}

/// Checks `new` at `now`.
///
/// # Errors
/// [`ServiceError::Invalid`] naming the field out of bounds.
pub fn check(new: NewRegistrationToken, now: OffsetDateTime) -> ServiceResult<CheckedToken> {
    // Checked before a blank one is dropped, so every description meets the same
    // rule (the document's `maxLength` and pattern), blank or not.
    if let Some(d) = &new.description {
        if d.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
            )
            .into());
        }
        if d.chars().any(char::is_control) {
            return Err(
                FieldError::new("description", "must not contain control characters").into(),
            );
        }
    }
    let description = new.description.filter(|d| !d.trim().is_empty());
    if let Some(max) = new.max_uses
        && !(1..=MAX_USES).contains(&max)
    {
        return Err(FieldError::new(
            "max_uses",
            format!("must be between 1 and {MAX_USES}, got {max}; omit it for no limit"),
        )
        .into());
    }
    let expires_at = match new.expires_at {
        None => Some(now + REGISTRATION_TOKEN_DEFAULT_TTL),
        Some(explicit) => explicit,
    };
    if let Some(at) = expires_at {
        if at <= now {
            return Err(FieldError::new("expires_at", "must be in the future").into());
        }
        if at > now + MAX_TOKEN_LIFETIME {
            return Err(FieldError::new(
                "expires_at",
                "must be at most 10 years away; send null for a token that never expires",
            )
            .into());
        }
    }
    Ok(CheckedToken {
        description,
        created_at: now,
        // Stored and echoed in UTC whatever offset the caller wrote it in.
        expires_at: expires_at.map(|at| at.to_offset(time::UtcOffset::UTC)),
        max_uses: new.max_uses,
    })
}

/// Issues the token `checked` describes, made by `created_by`, and stores it with
/// `caller`'s `registration_token.created` event in one transaction: the stored
/// record and its plaintext, shown once.
///
/// # Errors
/// Store failures (a taken event id is a `Conflict`, and nothing is stored).
pub async fn create<S>(
    store: &S,
    caller: &Caller,
    created_by: UserId,
    checked: CheckedToken,
) -> ServiceResult<(RegistrationToken, Secret)>
where
    S: RegistrationTokenStore + ?Sized,
{
    let issued = IssuedToken::new(TokenKind::Registration);
    let token = RegistrationToken {
        id: RegistrationTokenId::new(),
        description: checked.description,
        created_by,
        created_at: checked.created_at,
        expires_at: checked.expires_at,
        max_uses: checked.max_uses,
        uses: 0,
        token_hash: issued.hash,
    };
    let event = caller.event(AuditAction::RegistrationTokenCreated, token.id, None);
    store.create_registration_token(&token, &event).await?;
    Ok((token, issued.plaintext))
}

/// Deletes token `id` with `caller`'s `registration_token.deleted` event, in one
/// transaction. Agents it admitted keep working.
///
/// # Errors
/// [`ServiceError::NotFound`] if there is no such token; store failures.
pub async fn delete<S>(store: &S, caller: &Caller, id: RegistrationTokenId) -> ServiceResult<()>
where
    S: RegistrationTokenStore + ?Sized,
{
    let event = caller.event(AuditAction::RegistrationTokenDeleted, id, None);
    match store.delete_registration_token(id, &event).await {
        Err(StoreError::NotFound) => Err(ServiceError::NotFound("registration token")),
        other => Ok(other?),
    }
}
