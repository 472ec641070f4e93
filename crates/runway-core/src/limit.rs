//! Abuse-limit counters: how many recent attempts one key has seen.
//!
//! The policy (how many attempts, what backoff, which requests) lives in
//! `runway_service::limits`; the store only keeps counters
//! ([`LimitStore`](crate::store::LimitStore)). They live in the store and not in
//! memory because on Lambda every instance serves one request at a time and
//! shares nothing with the others: an in-process counter would count to one.
//!
//! A [`LimitKey`] is a scope and the SHA-256 of the value it limits (a username, an
//! address, a token): a username may be a password typed into the wrong field,
//! and a registration token is a credential, so no value is ever stored in clear.

use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

/// The longest key a store must accept: a scope of up to 32 bytes, `:` and 64
/// hex digits.
pub const MAX_KEY_LEN: usize = 97;

/// What a counter counts, and of what: `scope:<sha256 hex of the value>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LimitKey(String);

impl LimitKey {
    /// The key for `value` in `scope` (a short constant such as `signin_ip`).
    ///
    /// # Panics
    /// If `scope` is empty, longer than 32 bytes or holds a character other than
    /// a lowercase ASCII letter, digit or `_`: scopes are constants in code.
    #[must_use]
    pub fn new(scope: &'static str, value: &str) -> Self {
        assert!(
            !scope.is_empty()
                && scope.len() <= 32
                && scope
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "a limit scope is a short snake_case constant"
        );
        let digest = Sha256::digest(value.as_bytes());
        let mut key = String::with_capacity(scope.len() + 1 + 64);
        key.push_str(scope);
        key.push(':');
        for byte in digest {
            use std::fmt::Write as _;
            let _ = write!(key, "{byte:02x}");
        }
        Self(key)
    }

    /// The stored form.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Shows the scope only: the hash is of a value that may be a secret.
impl std::fmt::Debug for LimitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scope = self.0.split(':').next().unwrap_or_default();
        write!(f, "LimitKey({scope}:…)")
    }
}

/// One counter as the store holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts counted since the counter (re)started.
    pub count: u32,
    /// When the latest one was counted.
    pub last_at: OffsetDateTime,
    /// When the counter is forgotten: `last_at` plus the window it was counted
    /// in. Expired at `now >= expires_at`.
    pub expires_at: OffsetDateTime,
}

impl Attempts {
    /// Whether the counter still counts at `now`.
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_its_scope_and_the_hash_of_the_value_never_the_value() {
        let key = LimitKey::new("signin_account", "hunter2");
        assert!(key.as_str().starts_with("signin_account:"));
        assert!(!key.as_str().contains("hunter2"));
        assert_eq!(key.as_str().len(), "signin_account:".len() + 64);
        assert!(key.as_str().len() <= MAX_KEY_LEN);
        assert_eq!(key, LimitKey::new("signin_account", "hunter2"));
        assert_ne!(key, LimitKey::new("signin_ip", "hunter2"));
        assert!(!format!("{key:?}").contains(&key.as_str()[20..]));
    }
}
