//! Browser sessions: the `runway_session` cookie and its CSRF companion.
//!
//! A browser carries the same session token an API client sends as a bearer
//! token, in `runway_session`: `HttpOnly` (no script reads it), `SameSite=Lax`
//! (no cross-site subrequest or form POST carries it), `Path=/`, and `Secure`
//! unless the public URL (`RUNWAY_PUBLIC_URL`) is plain `http://` on `localhost`,
//! `127.0.0.1` or `[::1]`, the one case where a browser is on the same machine and
//! has no TLS to use ([`CookiePolicy::for_public_url`]).
//!
//! **CSRF.** `SameSite=Lax` already keeps the cookie off cross-site POSTs in
//! current browsers, but not off same-site ones (a sibling subdomain) nor in
//! every browser, so every state-changing request authenticated by the cookie
//! (any method but GET, HEAD and OPTIONS) must also send the header
//! `x-csrf-token` with the value of the `runway_csrf` cookie (double submit).
//! That cookie is not `HttpOnly`, so the dashboard's script reads it; another
//! site can neither read it nor set the header. Its value is derived from the
//! session token ([`csrf_token`], a SHA-256 under a fixed label), so nothing
//! extra is stored and the check is one hash; it reveals nothing about the
//! token. Requests with `Authorization: Bearer` never need it: a browser does
//! not add that header on its own, so it cannot be forged cross-site.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "runway_session";
/// The CSRF cookie, readable by scripts.
pub(crate) const CSRF_COOKIE: &str = "runway_csrf";
/// The header a cookie-authenticated write echoes the CSRF cookie in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// How the cookies are set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CookiePolicy {
    /// Whether the cookies carry `Secure`.
    pub(crate) secure: bool,
    /// Their `Max-Age`: the session's absolute lifetime.
    pub(crate) max_age_seconds: i64,
}

impl CookiePolicy {
    /// `Secure`, except for a plain-http loopback public URL.
    pub(crate) fn for_public_url(public_url: Option<&str>, max_age_seconds: i64) -> Self {
        Self {
            secure: !public_url.is_some_and(is_plain_http_loopback),
            max_age_seconds,
        }
    }

    fn attributes(self, http_only: bool, max_age: i64) -> String {
        let mut out = format!("; Path=/; Max-Age={max_age}; SameSite=Lax");
        if http_only {
            out.push_str("; HttpOnly");
        }
        if self.secure {
            out.push_str("; Secure");
        }
        out
    }

    /// The two `Set-Cookie` values that sign a browser in with `token`.
    pub(crate) fn sign_in(self, token: &str) -> [HeaderValue; 2] {
        let max_age = self.max_age_seconds;
        [
            format!("{SESSION_COOKIE}={token}{}", self.attributes(true, max_age)),
            format!(
                "{CSRF_COOKIE}={}{}",
                csrf_token(token),
                self.attributes(false, max_age)
            ),
        ]
        .map(|v| HeaderValue::try_from(v).unwrap_or_else(|_| HeaderValue::from_static("")))
    }

    /// The two `Set-Cookie` values that clear them.
    pub(crate) fn sign_out(self) -> [HeaderValue; 2] {
        [
            format!("{SESSION_COOKIE}={}", self.attributes(true, 0)),
            format!("{CSRF_COOKIE}={}", self.attributes(false, 0)),
        ]
        .map(|v| HeaderValue::try_from(v).unwrap_or_else(|_| HeaderValue::from_static("")))
    }
}

fn is_plain_http_loopback(url: &str) -> bool {
    if !url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
    {
        return false;
    }
    let authority = url
        .get(7..)
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default();
    let host = if authority.starts_with('[') {
        authority.split(']').next().map(|h| format!("{h}]"))
    } else {
        authority.split(':').next().map(str::to_owned)
    };
    matches!(
        host.map(|h| h.to_ascii_lowercase()).as_deref(),
        Some("localhost" | "127.0.0.1" | "[::1]")
    )
}

/// The CSRF value of a session token: base64url of SHA-256 of a fixed label and
/// the token.
pub(crate) fn csrf_token(session_token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"runway csrf v1\0")
        .chain_update(session_token.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_except_for_a_plain_http_loopback_public_url() {
        for (url, secure) in [
            (None, true),
            (Some("https://ci.example.com"), true),
            (Some("http://ci.example.com"), true),
            (Some("http://localhost.evil.example"), true),
            (Some("http://localhost:8080"), false),
            (Some("http://127.0.0.1:8080/runway"), false),
            (Some("http://[::1]:8080"), false),
            (Some("HTTP://LOCALHOST"), false),
        ] {
            assert_eq!(
                CookiePolicy::for_public_url(url, 60).secure,
                secure,
                "{url:?}"
            );
        }
    }

    #[test]
    fn the_session_cookie_is_http_only_and_the_csrf_cookie_is_not() {
        let [session, csrf] = CookiePolicy::for_public_url(None, 600).sign_in("rws_x_y");
        let (session, csrf) = (session.to_str().unwrap(), csrf.to_str().unwrap());
        assert_eq!(
            session,
            "runway_session=rws_x_y; Path=/; Max-Age=600; SameSite=Lax; HttpOnly; Secure"
        );
        assert!(csrf.starts_with(&format!("runway_csrf={}; ", csrf_token("rws_x_y"))));
        assert!(!csrf.contains("HttpOnly") && csrf.contains("Secure"));
        let [cleared, _] = CookiePolicy::for_public_url(None, 600).sign_out();
        assert!(
            cleared
                .to_str()
                .unwrap()
                .starts_with("runway_session=; Path=/; Max-Age=0")
        );
    }

    #[test]
    fn a_cookie_is_found_among_several_headers_and_pairs() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; runway_csrf=c"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("runway_session=s"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("s"));
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("c"));
        assert_eq!(cookie(&h, "b"), None);
        assert_ne!(csrf_token("a"), csrf_token("b"));
    }
}
