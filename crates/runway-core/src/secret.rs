//! Tokens and secrets.
//!
//! Runway hands out five kinds of bearer token — session, personal API token,
//! agent, registration and job — each with a short prefix so a leaked token is
//! recognisable in a scanner and a log line (`rws_`, `rwp_`, `rwa_`, `rwr_`,
//! `rwj_`). Every token carries 256 bits from the operating system's CSPRNG. Only the SHA-256 of a token is ever stored: a token is already
//! high-entropy, so a slow password hash would add latency to every request without
//! adding safety.
//!
//! A session token also embeds its session id (`rws_<ulid>_<secret>`) so that
//! validating it is one strongly consistent read by primary key on every backend,
//! followed by a constant-time comparison of hashes.
//!
//! ## Personal API tokens
//!
//! A personal API token lives for months in CI variables and dotfiles, so it is the
//! token most likely to leak into a public repository; its shape is made for
//! secret scanners. It is exactly 79 characters of `[0-9A-Za-z_]`:
//!
//! ```text
//! rwp_ <token id: 26 ULID characters> <secret: 43 base62> <checksum: 6 base62>
//! ```
//!
//! matched by `\brwp_[0-9A-HJKMNP-TV-Z]{26}[0-9A-Za-z]{49}\b` (docs/security.md).
//! Base62 rather than base64url keeps `-` and `_` out of the body, so the match
//! has clean word boundaries. The checksum is the CRC-32 of everything before it,
//! as 6 base62 digits, most significant first: a scanner can tell a real token
//! from a random string of the same shape without asking Runway, and
//! [`api_token_id_of`] refuses a mistyped one before any store read. 43 base62
//! characters carry 256 bits. Like a session token, it embeds its id, so
//! validation is one read by key.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::id::{ApiTokenId, SessionId};

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
    /// A user's personal API token (`rwp_`); see the module docs for its shape.
    ApiToken,
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
            Self::ApiToken => "rwp_",
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
    /// If asked for a session or API token: those embed their id, see
    /// [`Self::session`] and [`Self::api_token`].
    #[must_use]
    pub fn new(kind: TokenKind) -> Self {
        assert!(
            !matches!(kind, TokenKind::Session | TokenKind::ApiToken),
            "session and API tokens embed their id"
        );
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

    /// A new personal API token for the token `id` (see the module docs).
    #[must_use]
    pub fn api_token(id: ApiTokenId) -> Self {
        use rand::Rng as _;
        let secret: String = rand::rngs::OsRng
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(API_TOKEN_SECRET_LEN)
            .map(char::from)
            .collect();
        let body = format!("{}{id}{secret}", TokenKind::ApiToken.prefix());
        let checksum = base62_checksum(&body);
        Self::from_plaintext(format!("{body}{checksum}"))
    }
}

/// Base62 characters of an API token's secret: 43 × log2(62) ≈ 256 bits.
const API_TOKEN_SECRET_LEN: usize = 43;
/// Base62 digits of an API token's checksum (62^6 > 2^32).
const API_TOKEN_CHECKSUM_LEN: usize = 6;
/// The length of every API token.
pub const API_TOKEN_LEN: usize = 4 + 26 + API_TOKEN_SECRET_LEN + API_TOKEN_CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The CRC-32 of `body` as 6 base62 digits, most significant first.
fn base62_checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut digits = [b'0'; API_TOKEN_CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(n % 62) as usize];
        n /= 62;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

/// Extracts the token id from a presented API token, if it has the right shape
/// and checksum. The caller must still compare the token's hash with the stored one.
#[must_use]
pub fn api_token_id_of(token: &str) -> Option<ApiTokenId> {
    if token.len() != API_TOKEN_LEN || !token.starts_with(TokenKind::ApiToken.prefix()) {
        return None;
    }
    let (body, checksum) = token.split_at_checked(API_TOKEN_LEN - API_TOKEN_CHECKSUM_LEN)?;
    let rest = &body[TokenKind::ApiToken.prefix().len()..];
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) || base62_checksum(body) != checksum {
        return None;
    }
    rest.get(..26)?.parse().ok()
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
    fn an_api_token_has_the_documented_shape_and_names_its_id() {
        let id = ApiTokenId::new();
        let t = IssuedToken::api_token(id);
        let token = t.plaintext.expose();
        assert_eq!(token.len(), API_TOKEN_LEN);
        assert_eq!(API_TOKEN_LEN, 79);
        assert!(token.starts_with(&format!("rwp_{id}")));
        assert!(
            token[4..].bytes().all(|b| b.is_ascii_alphanumeric()),
            "{token}"
        );
        assert_eq!(api_token_id_of(token), Some(id));
        assert_ne!(
            IssuedToken::api_token(id).plaintext,
            t.plaintext,
            "the secret part differs every time"
        );
    }

    #[test]
    fn an_api_token_with_a_wrong_checksum_or_shape_names_no_token() {
        let id = ApiTokenId::new();
        let token = IssuedToken::api_token(id).plaintext.expose().to_owned();
        // One character of the secret changed: the checksum no longer matches.
        let mut typo = token.clone().into_bytes();
        typo[40] = if typo[40] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        for bad in [
            String::new(),
            "rwp_".into(),
            typo,
            format!("{token}x"),
            token[..78].to_owned(),
            token.replacen("rwp_", "rws_", 1),
            format!("rwp_{}", "_".repeat(75)),
        ] {
            assert_eq!(api_token_id_of(&bad), None, "{bad}");
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
