//! Password hashing with argon2id.
//!
//! Parameters are argon2's defaults for argon2id (19 MiB, 2 passes, 1 lane), the
//! OWASP minimum. Hashing runs for tens of milliseconds on purpose, so callers in an
//! async context must run it on a blocking thread (`tokio::task::spawn_blocking`).
//! The PHC string keeps its parameters, so they can be raised later without
//! invalidating existing hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use rand::rngs::OsRng;

use crate::secret::Secret;

/// The shortest password `create-user` and `reset-password` accept.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Hashes a password into a PHC string (`$argon2id$v=19$…`).
///
/// # Panics
/// Only if argon2 rejects its own default parameters, which would be a bug.
#[must_use]
pub fn hash_password(password: &Secret) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .expect("argon2 default parameters are valid")
        .to_string()
}

/// Checks a password against a stored PHC string. A malformed hash never matches.
#[must_use]
pub fn verify_password(password: &Secret, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The stored "hash" of a user who has no password: one who signs in only
/// through OpenID Connect. It is not a PHC string, so no password matches it
/// ([`verify_password`] is false for it).
pub const NO_PASSWORD: &str = "!no-password";

/// A hash of a password nobody knows, verified against when a username does not
/// exist so that a failed login takes the same time either way.
#[must_use]
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&Secret::new(
            crate::secret::IssuedToken::new(crate::secret::TokenKind::Agent)
                .plaintext
                .expose(),
        ))
    })
}

/// A random password for the first admin, 24 URL-safe characters.
#[must_use]
pub fn generate_password() -> Secret {
    let token = crate::secret::IssuedToken::new(crate::secret::TokenKind::Registration);
    Secret::new(&token.plaintext.expose()[4..28])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let hash = hash_password(&Secret::new("correct horse battery"));
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(
            &Secret::new("correct horse battery"),
            &hash
        ));
        assert!(!verify_password(
            &Secret::new("correct horse battery!"),
            &hash
        ));
    }

    #[test]
    fn a_malformed_stored_hash_never_verifies() {
        assert!(!verify_password(&Secret::new("x"), "not a phc string"));
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = generate_password();
        assert_eq!(a.expose().len(), 24);
        assert_ne!(a, generate_password());
    }
}
