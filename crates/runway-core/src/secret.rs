//! Tokens and secrets.
//!
//! Runway hands out four kinds of bearer token — session, agent, registration and
//! job — each with a short prefix so a leaked token is recognisable in a scanner and
//! a log line (`rws_`, `rwa_`, `rwr_`, `rwj_`). Every token carries 256 bits from the operating
//! system's CSPRNG. Only the SHA-256 of a token is ever stored: a token is already
//! high-entropy, so a slow password hash would add latency to every request without
//! adding safety.
//!
//! A session token also embeds its session id (`rws_<ulid>_<secret>`) so that
//! validating it is one strongly consistent read by primary key on every backend,
//! followed by a constant-time comparison of hashes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::id::SessionId;

/// A string that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where the value is really needed.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

/// The SHA-256 of a token, as 64 lowercase hex characters. This is what stores keep.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(String);

impl TokenHash {
    /// Hashes a presented token.
    #[must_use]
    pub fn of(token: &str) -> Self {
        let digest = Sha256::digest(token.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            use fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
        }
        Self(hex)
    }

    /// Rebuilds a hash read back from a store.
    #[must_use]
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The hex form, for writing to a store.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares two hashes in time independent of where they differ.
    #[must_use]
    pub fn matches(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not the secret, but a prefix is all anyone needs to correlate.
        write!(f, "TokenHash({}…)", &self.0[..self.0.len().min(8)])
    }
}

/// The kinds of bearer token Runway issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A user's session (`rws_`).
    Session,
    /// An agent's credential (`rwa_`).
    Agent,
    /// An admin-created registration token (`rwr_`).
    Registration,
    /// The credential of one claimed attempt of one job (`rwj_`). It is only ever
    /// presented on a route that names its job, so it need not embed the job id:
    /// the job's attempt record holds its hash.
    Job,
}

impl TokenKind {
    /// The prefix every token of this kind starts with.
    #[must_use]
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Session => "rws_",
            Self::Agent => "rwa_",
            Self::Registration => "rwr_",
            Self::Job => "rwj_",
        }
    }
}

fn random_part() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A freshly minted token: the plaintext (shown once) and the hash (stored).
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// Returned to the caller exactly once.
    pub plaintext: Secret,
    /// Kept by the store.
    pub hash: TokenHash,
}

impl IssuedToken {
    fn from_plaintext(plaintext: String) -> Self {
        let hash = TokenHash::of(&plaintext);
        Self {
            plaintext: Secret(plaintext),
            hash,
        }
    }

    /// A new agent, registration or job token.
    ///
    /// # Panics
    /// If asked for a session token: those must embed their id, see [`Self::session`].
    #[must_use]
    pub fn new(kind: TokenKind) -> Self {
        assert!(kind != TokenKind::Session, "session tokens embed their id");
        Self::from_plaintext(format!("{}{}", kind.prefix(), random_part()))
    }

    /// A new session token for the session `id`.
    #[must_use]
    pub fn session(id: SessionId) -> Self {
        Self::from_plaintext(format!(
            "{}{id}_{}",
            TokenKind::Session.prefix(),
            random_part()
        ))
    }
}

/// Extracts the session id from a presented session token, if it has the right shape.
/// The caller must still compare the token's hash with the stored one.
#[must_use]
pub fn session_id_of(token: &str) -> Option<SessionId> {
    let rest = token.strip_prefix(TokenKind::Session.prefix())?;
    let (id, secret) = rest.split_at_checked(26)?;
    let secret = secret.strip_prefix('_')?;
    if secret.len() != 43 {
        return None;
    }
    id.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_and_display() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn a_token_hash_is_64_hex_characters_and_never_the_token() {
        let t = IssuedToken::new(TokenKind::Agent);
        assert!(t.plaintext.expose().starts_with("rwa_"));
        assert_eq!(t.hash.as_str().len(), 64);
        assert!(t.hash.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!t.hash.as_str().contains(t.plaintext.expose()));
        assert_eq!(TokenHash::of(t.plaintext.expose()), t.hash);
    }

    #[test]
    fn tokens_carry_at_least_128_bits_and_differ_every_time() {
        let a = IssuedToken::new(TokenKind::Registration);
        let b = IssuedToken::new(TokenKind::Registration);
        assert_ne!(a.plaintext, b.plaintext);
        // 43 base64url characters encode 256 bits.
        assert_eq!(a.plaintext.expose().len(), "rwr_".len() + 43);
    }

    #[test]
    fn a_session_token_names_its_session() {
        let id = SessionId::new();
        let t = IssuedToken::session(id);
        assert_eq!(session_id_of(t.plaintext.expose()), Some(id));
    }

    #[test]
    fn malformed_session_tokens_name_no_session() {
        let id = SessionId::new();
        for bad in [
            String::new(),
            "rws_".into(),
            format!("rws_{id}"),
            format!("rws_{id}_short"),
            format!("rwa_{id}_{}", "x".repeat(43)),
            format!("rws_{}_{}", "U".repeat(26), "x".repeat(43)),
            "rws_é".into(),
        ] {
            assert_eq!(session_id_of(&bad), None, "{bad}");
        }
    }

    #[test]
    fn hash_comparison_tells_equal_from_different() {
        let a = TokenHash::of("a");
        assert!(a.matches(&TokenHash::of("a")));
        assert!(!a.matches(&TokenHash::of("b")));
        assert!(!a.matches(&TokenHash::from_stored(String::new())));
    }
}
