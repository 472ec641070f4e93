//! OpenID Connect sign-in, as the stores see it.
//!
//! Two records, each behind a narrow trait of its own in [`crate::store`]:
//!
//! * a [`PendingLogin`] lives from the redirect to the issuer until its callback
//!   (at most [`LOGIN_TTL`]). It is in the store, not in the process's memory,
//!   because on Lambda the callback may reach another instance than the login
//!   did. It is keyed by the SHA-256 of the `state` parameter, like every token
//!   Runway keeps, and it is consumed exactly once: a conditional delete that
//!   returns the record, so a replayed callback finds nothing;
//! * an [`OidcIdentity`] is who an issuer says a user is: the pair (`iss`, `sub`),
//!   which the OpenID Connect spec makes stable and unique. Users are found by it,
//!   never by their email, which an issuer may let people change or reuse.

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::secret::{Secret, TokenHash};

/// How long a sign-in at the issuer may take, from the redirect to the callback.
pub const LOGIN_TTL: Duration = Duration::minutes(10);

/// The longest `return_to` path kept for after the sign-in.
pub const MAX_RETURN_TO_LEN: usize = 2048;

/// What the callback needs to finish a sign-in that the login started.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The SHA-256 of the `state` sent to the issuer (the key).
    pub state_hash: TokenHash,
    /// The `nonce` the ID token must carry.
    pub nonce: Secret,
    /// The PKCE code verifier, sent with the code to the token endpoint.
    pub pkce_verifier: Secret,
    /// The same-origin path to send the browser to afterwards, already checked
    /// ([`safe_return_to`]).
    pub return_to: String,
    /// When the login started.
    pub created_at: OffsetDateTime,
    /// After this the callback is refused.
    pub expires_at: OffsetDateTime,
}

impl PendingLogin {
    /// Whether the callback may still use it at `now`.
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("state_hash", &self.state_hash)
            .field("return_to", &self.return_to)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Who an issuer says a user is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OidcIdentity {
    /// The issuer's identifier (`iss`), exactly as in its ID tokens.
    pub issuer: String,
    /// The subject (`sub`), unique and never reassigned within the issuer.
    pub subject: String,
}

/// `return_to` if it is a path on this server, else `/`.
///
/// Only a path that starts with exactly one `/` is kept: `//host/…` and `/\host`
/// are taken by browsers as another host, and anything with a scheme or a
/// backslash, a control character or a length past [`MAX_RETURN_TO_LEN`] is
/// refused. Returns `None` for such a value, so the caller can say so.
#[must_use]
pub fn safe_return_to(return_to: Option<&str>) -> Option<String> {
    let Some(path) = return_to.filter(|p| !p.is_empty()) else {
        return Some("/".to_owned());
    };
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && path.len() <= MAX_RETURN_TO_LEN
        && !path.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths_are_kept_as_return_to() {
        assert_eq!(safe_return_to(None).as_deref(), Some("/"));
        assert_eq!(safe_return_to(Some("")).as_deref(), Some("/"));
        assert_eq!(
            safe_return_to(Some("/jobs/01J?x=1#top")).as_deref(),
            Some("/jobs/01J?x=1#top")
        );
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "jobs",
            "/a\nb",
            "/ a",
        ] {
            assert_eq!(safe_return_to(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(
            safe_return_to(Some(&format!("/{}", "a".repeat(2048)))),
            None
        );
    }

    #[test]
    fn a_pending_logins_debug_output_hides_its_nonce_and_verifier() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let login = PendingLogin {
            state_hash: TokenHash::of("state"),
            nonce: Secret::new("the-nonce"),
            pkce_verifier: Secret::new("the-verifier"),
            return_to: "/".into(),
            created_at: now,
            expires_at: now + LOGIN_TTL,
        };
        let printed = format!("{login:?}");
        assert!(!printed.contains("the-nonce") && !printed.contains("the-verifier"));
        assert!(login.is_live(now) && !login.is_live(now + LOGIN_TTL));
    }
}
