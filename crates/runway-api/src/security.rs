//! What the browser is told to defend: security headers on every response, and CORS.
//!
//! Every response — JSON, error envelopes, the fallback's 404, CORS preflights, the
//! `/docs` page and its assets — gets:
//!
//! * `X-Content-Type-Options: nosniff`, so a JSON body or a log is never run as a
//!   script or rendered as HTML;
//! * `X-Frame-Options: DENY` and CSP `frame-ancestors 'none'`, so no page frames
//!   Runway to click through it;
//! * `Referrer-Policy: no-referrer`, so no URL (job ids, cursors) leaks to other sites;
//! * a `Content-Security-Policy`: for HTML, [`HTML_CSP`], which loads scripts,
//!   styles, fonts and API calls from Runway itself only (no inline script, no
//!   third-party origin); for everything else [`API_CSP`], which allows nothing, so
//!   a response opened in a tab runs nothing;
//! * `Strict-Transport-Security` when the public URL (`RUNWAY_PUBLIC_URL`) is
//!   `https://`: browsers then refuse plain HTTP to the host for a year. Over plain
//!   HTTP it would be ignored anyway, and a server reached by its IP on a laptop
//!   should not pin anything, so without an https public URL it is not sent.
//!
//! They are `tower_http::set_header` layers outside everything else (the request-id
//! and envelope middleware included), so they see the final status and content
//! type; a handler that sets a header of its own keeps it where noted.
//!
//! **CORS** is off unless origins are listed: no `Access-Control-*` header at all.
//! Listed origins (exact `scheme://host[:port]` strings, no wildcard, checked by
//! the configuration) may send credentials (`Access-Control-Allow-Credentials:
//! true`, so a dashboard on another origin can use the session cookie when there is
//! one); any other origin gets no grant, and the browser keeps its page out.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::middleware::X_REQUEST_ID;

/// The policy of every HTML page: everything from Runway's own origin, nothing
/// inline but images as `data:` URIs (the docs' stylesheet draws its icons so).
pub(crate) const HTML_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The policy of every other response: run nothing, load nothing, frame nowhere.
pub(crate) const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// A year, as browsers' HSTS preload lists expect at least.
const HSTS: &str = "max-age=31536000";

/// Whether `public_url` says the server is reached over TLS.
#[must_use]
pub(crate) fn serves_https(public_url: Option<&str>) -> bool {
    public_url.is_some_and(|url| {
        url.get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    })
}

/// The CSP for `response`: [`HTML_CSP`] for `text/html`, [`API_CSP`] otherwise.
fn csp_for(response: &Response) -> Option<HeaderValue> {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/html"))
        });
    Some(HeaderValue::from_static(if html {
        HTML_CSP
    } else {
        API_CSP
    }))
}

/// `router` with the security headers on every response. Call last, so the layers
/// wrap everything.
pub(crate) fn with_headers(router: Router, https: bool) -> Router {
    router
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            csp_for as fn(&Response) -> Option<HeaderValue>,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            https.then(|| HeaderValue::from_static(HSTS)),
        ))
}

/// The CORS layer for `origins`, or `None` when the list is empty (no CORS headers at
/// all: a same-origin deployment should not advertise anything). Origins that are not
/// valid header values are skipped with a warning.
pub(crate) fn cors(origins: Vec<String>) -> Option<CorsLayer> {
    let allowed: Vec<HeaderValue> = origins
        .into_iter()
        .filter_map(|o| match HeaderValue::from_str(o.trim()) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::warn!(origin = %o, "ignoring a CORS origin that is not a valid header value");
                None
            }
        })
        .collect();
    if allowed.is_empty() {
        return None;
    }
    // With credentials, the answer must name the one origin that asked (never `*`),
    // which `AllowOrigin::list` does; tower-http adds `Vary: Origin`. Credentials are
    // granted to the same list only: to any other origin the answer says nothing.
    let credentialed = allowed.clone();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_credentials(AllowCredentials::predicate(move |origin, _| {
                credentialed.contains(origin)
            }))
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, X_REQUEST_ID])
            .expose_headers([
                X_REQUEST_ID,
                header::ETAG,
                HeaderName::from_static("retry-after"),
            ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_origins_means_no_cors_layer() {
        assert!(cors(Vec::new()).is_none());
        assert!(cors(vec!["https://ci.example.com".into()]).is_some());
    }

    #[test]
    fn only_an_https_public_url_turns_hsts_on() {
        assert!(serves_https(Some("https://ci.example.com")));
        assert!(serves_https(Some("HTTPS://ci.example.com/runway")));
        assert!(!serves_https(Some("http://ci.example.com")));
        assert!(!serves_https(None));
    }

    #[test]
    fn html_gets_the_self_only_policy_and_anything_else_the_none_policy() {
        let html = Response::builder()
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(csp_for(&html).unwrap(), HTML_CSP);
        let json = Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(csp_for(&json).unwrap(), API_CSP);
        assert!(!HTML_CSP.contains("unsafe"), "{HTML_CSP}");
    }
}
