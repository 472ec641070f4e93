//! Signing in through an OpenID Connect issuer: the authorization code flow with
//! PKCE (S256), `state` and `nonce`, against any compliant issuer.
//!
//! [`Oidc::begin`] discovers the issuer (its metadata and signing keys, cached
//! for [`DISCOVERY_TTL`]), draws a fresh state, nonce and PKCE verifier, stores
//! them as a [`PendingLogin`] keyed by the state's SHA-256, and returns the
//! issuer's authorization URL. [`Oidc::finish`] takes that login out of the store
//! (once: a replayed callback finds nothing), exchanges the code with the
//! verifier, verifies the ID token with the `openidconnect` crate (signature
//! against the issuer's JWKS, issuer, audience, expiry, nonce), applies the
//! allow-list, finds the user by (issuer, subject) or provisions them, and issues
//! a session through [`Sessions::issue`], like a password sign-in.
//!
//! Why the pending login is in the store and not in a signed cookie or in memory:
//! on Lambda the callback may reach another instance, and a cookie would need a
//! server key to sign it and could not be consumed exactly once.
//!
//! Rules that a reviewer should find here:
//!
//! * **Email is a claim, not an identity.** Users are found by (`iss`, `sub`);
//!   the email only names a new user and decides the allow-list and the admin
//!   list. With `RUNWAY_OIDC_ALLOWED_EMAIL_DOMAINS` set, and for admin-by-email,
//!   `email_verified` must be true: an issuer that lets people type any address
//!   must not make them an admin or let them in.
//! * **The role is decided once,** at the first sign-in (admin if the verified
//!   email is listed or the `groups` claim holds the admin group, member
//!   otherwise); later sign-ins keep the stored role.
//! * **Nothing secret is logged or returned:** the nonce and verifier stay in the
//!   store, and a failure names the check that failed, never a token.
//! * The HTTP client never follows redirects (the crate's advice against SSRF)
//!   and is bounded in time.
//!
//! The `groups` claim is read from the payload of the same ID token after the
//! crate verified it (the crate's standard claims type has no field for it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    TokenResponse as _,
};
use runway_core::OffsetDateTime;
use runway_core::audit::AuditAction;
use runway_core::id::UserId;
use runway_core::oidc::{LOGIN_TTL, OidcIdentity, PendingLogin, safe_return_to};
use runway_core::password::NO_PASSWORD;
use runway_core::secret::{Secret, TokenHash};
use runway_core::session::Session;
use runway_core::store::{BoxError, Conflict, RecordKind, Store, StoreError};
use runway_core::user::{MAX_USERNAME_LEN, Role, User};
use tokio::sync::RwLock;

use crate::audit::Caller;
use crate::error::{ServiceError, ServiceResult};
use crate::sessions::{Device, Sessions};

/// How long the issuer's metadata and keys are reused before they are fetched
/// again (which also picks up a rotated signing key).
pub const DISCOVERY_TTL: Duration = Duration::from_secs(600);
/// How long one request to the issuer may take.
const ISSUER_TIMEOUT: Duration = Duration::from_secs(10);

/// How this server signs people in through an issuer.
#[derive(Clone)]
pub struct OidcSettings {
    /// The issuer's identifier, e.g. `https://accounts.example.com`.
    pub issuer_url: String,
    /// This server's client id at the issuer.
    pub client_id: String,
    /// Its client secret; `None` for a public client (PKCE alone).
    pub client_secret: Option<Secret>,
    /// Where the issuer sends the browser back: `{public_url}/api/v1/auth/oidc/callback`.
    pub redirect_url: String,
    /// Email domains let in (lowercase); empty lets every verified or unverified
    /// address in.
    pub allowed_email_domains: Vec<String>,
    /// Verified emails (lowercase) whose first sign-in makes an admin.
    pub admin_emails: Vec<String>,
    /// A `groups` claim value whose first sign-in makes an admin.
    pub admin_group: Option<String>,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("redirect_url", &self.redirect_url)
            .field("allowed_email_domains", &self.allowed_email_domains)
            .field("admin_emails", &self.admin_emails)
            .field("admin_group", &self.admin_group)
            .finish()
    }
}

/// Why an OIDC sign-in failed, in the domain's words. The API gives each a
/// status and a code.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// This server has no issuer configured.
    #[error("sign-in through OpenID Connect is not configured on this server")]
    NotConfigured,
    /// `return_to` is not a path on this server.
    #[error("return_to must be a path on this server, starting with a single `/`")]
    BadReturnTo,
    /// The state is unknown, expired (ten minutes) or already used.
    #[error("this sign-in is unknown, has expired or was already used; sign in again")]
    UnknownState,
    /// The issuer sent the browser back with an error instead of a code.
    #[error("the issuer did not sign you in (`{0}`); sign in again")]
    Denied(String),
    /// The issuer refused the code (wrong, expired, used, or not for this verifier).
    #[error("the issuer refused the authorization code; sign in again")]
    CodeRejected,
    /// The ID token failed a check; which one is named.
    #[error("the ID token was rejected: {0}")]
    InvalidIdToken(&'static str),
    /// The person is not let in; the reason is named.
    #[error("{0}")]
    NotAllowed(&'static str),
    /// The issuer could not be reached, or answered with something that is not
    /// OpenID Connect.
    #[error("the OpenID Connect issuer could not be reached or gave an invalid answer")]
    IssuerUnavailable(#[source] BoxError),
}

/// A finished sign-in: the session, its token (for the cookie) and where to go.
#[derive(Debug)]
pub struct OidcSignIn {
    /// The new session.
    pub session: Session,
    /// Its token, to be put in the cookie.
    pub token: Secret,
    /// The same-origin path the login started from.
    pub return_to: String,
}

type Metadata = Arc<CoreProviderMetadata>;

/// OIDC sign-in for one issuer. Cheap to clone: clones share the HTTP client and
/// the cached discovery.
#[derive(Clone)]
pub struct Oidc {
    settings: Arc<OidcSettings>,
    store: Arc<dyn Store>,
    sessions: Sessions,
    http: reqwest::Client,
    discovered: Arc<RwLock<Option<(Instant, Metadata)>>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// Sign-in through the issuer in `settings`, on `store`, issuing sessions with
    /// `sessions`. Makes no request: the issuer is discovered on the first login.
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS roots at all).
    pub fn new(
        settings: OidcSettings,
        store: Arc<dyn Store>,
        sessions: Sessions,
    ) -> Result<Self, BoxError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ISSUER_TIMEOUT)
            .build()?;
        Ok(Self {
            settings: Arc::new(settings),
            store,
            sessions,
            http,
            discovered: Arc::new(RwLock::new(None)),
        })
    }

    /// The settings, for `/api/v1/info` and the cookie's attributes.
    #[must_use]
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    async fn metadata(&self) -> Result<Metadata, OidcError> {
        if let Some((at, metadata)) = self.discovered.read().await.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(Arc::clone(metadata));
        }
        let issuer = IssuerUrl::new(self.settings.issuer_url.clone())
            .map_err(|e| OidcError::IssuerUnavailable(e.into()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::IssuerUnavailable(e.into()))?;
        let metadata = Arc::new(metadata);
        *self.discovered.write().await = Some((Instant::now(), Arc::clone(&metadata)));
        Ok(metadata)
    }

    fn client(
        &self,
        metadata: &CoreProviderMetadata,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let redirect = RedirectUrl::new(self.settings.redirect_url.clone())
            .map_err(|e| OidcError::IssuerUnavailable(e.into()))?;
        Ok(CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_owned())),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in that comes back to `return_to` (a path on this server;
    /// default `/`): stores the pending login and returns the issuer's
    /// authorization URL to redirect the browser to.
    ///
    /// # Errors
    /// [`OidcError::BadReturnTo`]; [`OidcError::IssuerUnavailable`]; store failures.
    pub async fn begin(&self, return_to: Option<&str>) -> ServiceResult<String> {
        let return_to = safe_return_to(return_to).ok_or(OidcError::BadReturnTo)?;
        let metadata = self.metadata().await?;
        let client = self.client(&metadata)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        if self.settings.admin_group.is_some() {
            request = request.add_scope(Scope::new("groups".into()));
        }
        let (url, state, nonce) = request.url();
        let now = OffsetDateTime::now_utc();
        self.store
            .create_oidc_login(&PendingLogin {
                state_hash: TokenHash::of(state.secret()),
                nonce: Secret::new(nonce.secret().clone()),
                pkce_verifier: Secret::new(verifier.secret().clone()),
                return_to,
                created_at: now,
                expires_at: now + LOGIN_TTL,
            })
            .await?;
        Ok(url.to_string())
    }

    /// Finishes the sign-in the issuer sent back with `code` and `state`, on
    /// `device`.
    ///
    /// The address's sign-in limit applies ([`crate::limits`]): a locked-out
    /// address is refused before the state is even looked at, and a callback
    /// refused for its state, code, ID token or policy counts as a failure.
    ///
    /// # Errors
    /// [`ServiceError::RateLimited`]; every [`OidcError`] but `NotConfigured`;
    /// `Conflict(UsernameTaken)` when a new user's name (their email) belongs to
    /// another account; store failures.
    pub async fn finish(
        &self,
        state: &str,
        code: &str,
        device: Device,
        request_id: Option<String>,
    ) -> ServiceResult<OidcSignIn> {
        let limits = self.sessions.limits();
        let ip = device.ip.clone();
        limits
            .admit_sign_in_from(ip.as_deref(), request_id.as_deref())
            .await?;
        let result = self.finish_admitted(state, code, device, request_id).await;
        // A callback the issuer or Runway refused counts against the address; an
        // issuer that is down is not the caller's failure.
        if let Err(ServiceError::Oidc(
            OidcError::UnknownState
            | OidcError::CodeRejected
            | OidcError::InvalidIdToken(_)
            | OidcError::NotAllowed(_),
        )) = &result
        {
            limits.sign_in_failed_from(ip.as_deref()).await;
        }
        result
    }

    async fn finish_admitted(
        &self,
        state: &str,
        code: &str,
        device: Device,
        request_id: Option<String>,
    ) -> ServiceResult<OidcSignIn> {
        let now = OffsetDateTime::now_utc();
        let login = self
            .store
            .take_oidc_login(&TokenHash::of(state), now)
            .await?
            .ok_or(OidcError::UnknownState)?;
        let metadata = self.metadata().await?;
        let client = self.client(&metadata)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::IssuerUnavailable(e.into()))?
            .set_pkce_verifier(PkceCodeVerifier::new(
                login.pkce_verifier.expose().to_owned(),
            ))
            .request_async(&self.http)
            .await
            .map_err(|err| match err {
                RequestTokenError::ServerResponse(_) => OidcError::CodeRejected,
                other => OidcError::IssuerUnavailable(other.into()),
            })?;
        let id_token = response
            .id_token()
            .ok_or(OidcError::InvalidIdToken("the issuer sent no ID token"))?;
        let nonce = Nonce::new(login.nonce.expose().to_owned());
        let claims = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .map_err(|err| OidcError::InvalidIdToken(rejection(&err)))?;
        let identity = OidcIdentity {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
        };
        let email = claims.email().map(|e| e.as_str().to_ascii_lowercase());
        let verified = claims.email_verified() == Some(true);
        self.check_allowed(email.as_deref(), verified)?;

        let user = match self.store.user_by_oidc_identity(&identity).await? {
            Some(user) => user,
            None => {
                let email = email.ok_or(OidcError::NotAllowed(
                    "the issuer sent no email address, which Runway names new users by",
                ))?;
                let groups = groups_of(&id_token.to_string());
                let role = self.first_role(&email, verified, &groups);
                self.provision(&identity, &email, role, request_id.clone())
                    .await?
            }
        };
        let device = Device {
            name: Some("signed in with OpenID Connect".into()),
            ..device
        };
        let (session, token) = self.sessions.issue(user, device, request_id).await?;
        Ok(OidcSignIn {
            session,
            token,
            return_to: login.return_to,
        })
    }

    fn check_allowed(&self, email: Option<&str>, verified: bool) -> Result<(), OidcError> {
        let allowed = &self.settings.allowed_email_domains;
        if allowed.is_empty() {
            return Ok(());
        }
        let Some(email) = email else {
            return Err(OidcError::NotAllowed(
                "the issuer sent no email address, and this server lets in only some domains",
            ));
        };
        if !verified {
            return Err(OidcError::NotAllowed(
                "the issuer has not verified this email address",
            ));
        }
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        if allowed.iter().any(|d| d == domain) {
            Ok(())
        } else {
            Err(OidcError::NotAllowed(
                "this email domain may not sign in to this server",
            ))
        }
    }

    fn first_role(&self, email: &str, verified: bool, groups: &[String]) -> Role {
        let listed = verified && self.settings.admin_emails.iter().any(|e| e == email);
        let in_group = self
            .settings
            .admin_group
            .as_ref()
            .is_some_and(|g| groups.contains(g));
        if listed || in_group {
            Role::Admin
        } else {
            Role::Member
        }
    }

    async fn provision(
        &self,
        identity: &OidcIdentity,
        email: &str,
        role: Role,
        request_id: Option<String>,
    ) -> ServiceResult<User> {
        let user = User {
            id: UserId::new(),
            username: username_from_email(email),
            role,
            created_at: OffsetDateTime::now_utc(),
            password_hash: NO_PASSWORD.to_owned(),
            credential_epoch: 0,
            disabled: false,
        };
        let caller = Caller {
            actor: runway_core::audit::Actor::System,
            request_id,
        };
        let detail = format!(
            "{} `{}`, first sign-in through {}",
            user.role.as_str(),
            user.username,
            identity.issuer
        );
        let event = caller.event(AuditAction::UserCreated, user.id, Some(detail));
        match self.store.create_oidc_user(&user, identity, &event).await {
            Ok(()) => Ok(user),
            // The same person's other first sign-in won the race: theirs is the user.
            Err(StoreError::Conflict(Conflict::Exists(RecordKind::OidcIdentity))) => self
                .store
                .user_by_oidc_identity(identity)
                .await?
                .ok_or(ServiceError::NotFound("user")),
            Err(err) => Err(err.into()),
        }
    }
}

/// Which check an ID token failed, in words fit for the client.
fn rejection(err: &ClaimsVerificationError) -> &'static str {
    match err {
        ClaimsVerificationError::Expired(_) => "it has expired",
        ClaimsVerificationError::InvalidAudience(_) => "it is not meant for this server",
        ClaimsVerificationError::InvalidIssuer(_) => "it is not from the configured issuer",
        ClaimsVerificationError::InvalidNonce(_) => "its nonce does not match this sign-in",
        ClaimsVerificationError::SignatureVerification(_) => {
            "its signature does not verify against the issuer's keys"
        }
        _ => "it is not valid",
    }
}

/// The `groups` claim of a JWT whose signature has been verified: an array of
/// strings, or nothing.
fn groups_of(jwt: &str) -> Vec<String> {
    let payload = jwt
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    payload
        .as_ref()
        .and_then(|p| p.get("groups"))
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A new user's name: their email, with every character a username may not hold
/// replaced by `_`, cut to the longest username.
fn username_from_email(email: &str) -> String {
    email
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_USERNAME_LEN)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_users_name_is_their_email_made_a_valid_username() {
        assert_eq!(username_from_email("ada@example.com"), "ada@example.com");
        assert_eq!(
            username_from_email("ada+ci@example.com"),
            "ada_ci@example.com"
        );
        let long = format!("{}@example.com", "a".repeat(80));
        assert_eq!(username_from_email(&long).len(), MAX_USERNAME_LEN);
        assert!(runway_core::user::validate_username(&username_from_email("é ü@x")).is_ok());
    }

    #[test]
    fn groups_are_read_from_the_payload_and_anything_else_is_no_groups() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"1","groups":["ci-admins","dev",3]}"#);
        assert_eq!(groups_of(&format!("h.{payload}.s")), ["ci-admins", "dev"]);
        assert!(groups_of("not a jwt").is_empty());
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"1"}"#);
        assert!(groups_of(&format!("h.{none}.s")).is_empty());
    }
}
