//! Personal API tokens: making, listing and revoking one's own
//! ([`runway_core::api_token`] has what they are and why).
//!
//! A token is made from a signed-in *session*, never from another token (a
//! leaked token must not be able to mint its own replacements), and carries that
//! session's credential epoch: the store creates it only if the user is still at
//! it, so a token asked for while an admin disables the user is refused
//! (`CredentialsChanged`, answered here as the session being stale). Each change
//! hands its audit event to the store, which writes both in one transaction.
//!
//! Authenticating with a token (one read by the id it embeds, then a
//! constant-time hash comparison and the expiry) is [`Tokens::authenticate`],
//! which the API's extractor calls on every request that carries one.

use std::sync::Arc;

use runway_core::OffsetDateTime;
use runway_core::api_token::{ApiToken, MAX_API_TOKEN_DAYS, MAX_API_TOKEN_NAME_LEN};
use runway_core::audit::AuditAction;
use runway_core::id::{ApiTokenId, UserId};
use runway_core::job::FieldError;
use runway_core::secret::{IssuedToken, Secret, TokenHash, api_token_id_of};
use runway_core::session::Session;
use runway_core::store::{Conflict, Store, StoreError};

use crate::audit::Caller;
use crate::error::{ServiceError, ServiceResult};

/// What a user asks for when making a token.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    /// What to call it (1–100 characters, no control characters).
    pub name: String,
    /// When it stops working; `None` for never.
    pub expires_at: Option<OffsetDateTime>,
    /// Whether it may call only `GET` and `HEAD` routes.
    pub read_only: bool,
}

/// Why a presented token does not authenticate.
#[derive(Debug, thiserror::Error)]
pub enum TokenAuthError {
    /// Malformed, unknown, revoked or with the wrong secret: all the same answer.
    #[error("the API token is unknown or revoked")]
    Unknown,
    /// It expired.
    #[error("the API token has expired")]
    Expired,
    /// The store failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Personal API tokens on one store.
#[derive(Clone)]
pub struct Tokens {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Tokens {
    /// Tokens on `store`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Makes a token for the user of `session`: the stored token and its
    /// plaintext, shown once.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad name or expiry;
    /// [`ServiceError::Conflict`] with `TooManyApiTokens`;
    /// [`ServiceError::InvalidCredentials`] if the user's credentials changed
    /// since the session was made (they must sign in again); store failures.
    pub async fn create(
        &self,
        session: &Session,
        new: NewToken,
        request_id: Option<String>,
    ) -> ServiceResult<(ApiToken, Secret)> {
        let now = OffsetDateTime::now_utc();
        let name = new.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_API_TOKEN_NAME_LEN {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {MAX_API_TOKEN_NAME_LEN} characters"),
            )
            .into());
        }
        if name.chars().any(char::is_control) {
            return Err(FieldError::new("name", "must not contain control characters").into());
        }
        if let Some(expires) = new.expires_at {
            if expires <= now {
                return Err(FieldError::new("expires_at", "must be in the future").into());
            }
            if expires > now + time::Duration::days(MAX_API_TOKEN_DAYS) {
                return Err(FieldError::new(
                    "expires_at",
                    format!("must be at most {MAX_API_TOKEN_DAYS} days from now"),
                )
                .into());
            }
        }
        let id = ApiTokenId::new();
        let issued = IssuedToken::api_token(id);
        let token = ApiToken {
            id,
            user_id: session.user_id,
            username: session.username.clone(),
            role: session.role,
            name,
            read_only: new.read_only,
            created_at: now,
            expires_at: new.expires_at,
            token_hash: issued.hash,
            credential_epoch: session.credential_epoch,
        };
        let scope = if token.read_only { ", read-only" } else { "" };
        let event = Caller::user(session, request_id).event(
            AuditAction::ApiTokenCreated,
            id,
            Some(format!("`{}`{scope}", token.name)),
        );
        match self.store.create_api_token(&token, &event).await {
            Ok(()) => Ok((token, issued.plaintext)),
            Err(StoreError::Conflict(Conflict::CredentialsChanged) | StoreError::NotFound) => {
                Err(ServiceError::InvalidCredentials)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The user's tokens, newest first (never their secrets: only hashes exist).
    ///
    /// # Errors
    /// Store failures.
    pub async fn list(&self, user: UserId) -> ServiceResult<Vec<ApiToken>> {
        Ok(self.store.list_api_tokens(user).await?)
    }

    /// Revokes one of the user of `session`'s tokens; it stops working at once.
    ///
    /// # Errors
    /// `NotFound("API token")` if it is not one of theirs; store failures.
    pub async fn revoke(
        &self,
        session: &Session,
        id: ApiTokenId,
        request_id: Option<String>,
    ) -> ServiceResult<()> {
        let event = Caller::user(session, request_id).event(AuditAction::ApiTokenRevoked, id, None);
        self.store
            .revoke_api_token(session.user_id, id, &event)
            .await
            .map_err(ServiceError::or_not_found("API token"))
    }

    /// The token `presented` stands for, if it is live at `now`: one read by the
    /// id it embeds, then a constant-time comparison of hashes.
    ///
    /// # Errors
    /// [`TokenAuthError`].
    pub async fn authenticate(
        &self,
        presented: &str,
        now: OffsetDateTime,
    ) -> Result<ApiToken, TokenAuthError> {
        let id = api_token_id_of(presented).ok_or(TokenAuthError::Unknown)?;
        let token = self
            .store
            .get_api_token(id)
            .await
            .map_err(ServiceError::from)?
            .ok_or(TokenAuthError::Unknown)?;
        if !token.token_hash.matches(&TokenHash::of(presented)) {
            return Err(TokenAuthError::Unknown);
        }
        if !token.is_active(now) {
            return Err(TokenAuthError::Expired);
        }
        Ok(token)
    }
}
