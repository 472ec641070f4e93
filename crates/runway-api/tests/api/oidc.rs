//! Sign-in through a real OpenID provider, driven over HTTP as a browser would:
//! Runway's login redirects to the provider, the test follows the redirects and
//! posts the provider's login form (carrying the provider's cookies), and brings
//! the provider's redirect back to Runway's callback. The provider is npm
//! `oidc-provider` (tests/oidc/provider.mjs), started by `scripts/oidc-provider.sh
//! run`, which `make test` wraps around `cargo test`; without it these tests fail,
//! saying so. Runway is the in-process router over a fresh SQLite store per test.
//!
//! Also here: the session cookie and its CSRF rule, which need no provider.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use runway_api::ApiConfig;
use runway_core::oidc::OidcIdentity;
use runway_core::user::Role;
use runway_service::oidc::OidcSettings;
use serde_json::json;

use crate::app::{ADMIN_PASSWORD, TestApp, TestResponse};

/// The public URL of every Runway here; the provider has its callback registered.
const PUBLIC_URL: &str = "https://runway.example.test";
const CALLBACK: &str = "https://runway.example.test/api/v1/auth/oidc/callback";

fn env_issuer(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run these tests with a real OpenID provider, \
             `scripts/oidc-provider.sh run cargo test -p runway-api` (as `make test` does)"
        )
    })
}

fn issuer() -> String {
    env_issuer("RUNWAY_TEST_OIDC_ISSUER")
}

fn settings(issuer: String) -> OidcSettings {
    OidcSettings {
        issuer_url: issuer,
        client_id: "runway".into(),
        client_secret: Some(runway_core::secret::Secret::new(
            "runway-test-client-secret",
        )),
        redirect_url: CALLBACK.into(),
        allowed_email_domains: vec![],
        admin_emails: vec![],
        admin_group: None,
    }
}

async fn app_with(settings: OidcSettings) -> TestApp {
    TestApp::with_config(ApiConfig {
        public_url: Some(PUBLIC_URL.into()),
        oidc: Some(settings),
        ..ApiConfig::default()
    })
    .await
}

/// A browser at the provider: follows nothing by itself, keeps the provider's
/// cookies.
struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends the request and returns the `Location` of the redirect it must answer.
    async fn redirect(&mut self, request: reqwest::RequestBuilder, base: &str) -> String {
        let response = request
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .expect("the provider answers");
        for value in response.headers().get_all(header::SET_COOKIE) {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            panic!(
                "expected a redirect from the provider, got {status}: {}",
                response.text().await.unwrap_or_default()
            );
        };
        if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            location
        }
    }
}

/// Runway's login (to `return_to`), the provider's authorization endpoint
/// (after `tamper` had its way with the URL), its login form as `account`, and
/// back: the path and query of the callback the provider sent the browser to.
async fn through_the_provider(
    app: &TestApp,
    return_to: &str,
    account: &str,
    tamper: impl FnOnce(String) -> String,
) -> String {
    let login = app
        .get(
            &format!("/api/v1/auth/oidc/login?return_to={}", urlencode(return_to)),
            None,
        )
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{:?}", login.body);
    let authorize = tamper(login.header("location").to_owned());
    let base = authorize.split('/').take(3).collect::<Vec<_>>().join("/");
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(authorize.contains("nonce=") && authorize.contains("state="));

    let mut browser = Browser::new();
    let form = browser.redirect(browser.http.get(&authorize), &base).await;
    assert!(form.contains("/interaction/"), "{form}");
    let resume = browser
        .redirect(
            browser
                .http
                .post(format!("{form}/login"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(format!("login={account}")),
            &base,
        )
        .await;
    let callback = browser.redirect(browser.http.get(&resume), &base).await;
    callback
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("the provider sent the browser elsewhere: {callback}"))
        .to_owned()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn set_cookies(r: &TestResponse) -> Vec<String> {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The value a `Set-Cookie` gives cookie `name`.
fn cookie_value(r: &TestResponse, name: &str) -> String {
    set_cookies(r)
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", set_cookies(r)))
        .to_owned()
}

/// A request carrying the browser's two Runway cookies, and optionally the CSRF header.
fn with_cookies(
    method: Method,
    path: &str,
    session: &str,
    csrf: Option<&str>,
) -> axum::http::request::Builder {
    let mut b = Request::builder().method(method).uri(path).header(
        header::COOKIE,
        format!("runway_session={session}; runway_csrf=x"),
    );
    if let Some(csrf) = csrf {
        b = b.header("x-csrf-token", csrf);
    }
    b
}

async fn finish(app: &TestApp, callback: &str) -> TestResponse {
    app.get(callback, None).await
}

#[tokio::test]
async fn a_first_oidc_sign_in_provisions_a_member_sets_the_cookies_and_returns_to_where_it_started()
{
    let app = app_with(settings(issuer())).await;
    let info = app.get("/api/v1/info", None).await.json();
    assert_eq!(info["auth_methods"], json!(["password", "oidc"]));

    let callback = through_the_provider(&app, "/jobs?status=running", "ada", |u| u).await;
    let r = finish(&app, &callback).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("location"), "/jobs?status=running");
    let cookies = set_cookies(&r);
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let session_cookie = cookies
        .iter()
        .find(|c| c.starts_with("runway_session="))
        .unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }
    let csrf_cookie = cookies
        .iter()
        .find(|c| c.starts_with("runway_csrf="))
        .unwrap();
    assert!(!csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("Secure"));

    // The cookie alone authenticates a read.
    let token = cookie_value(&r, "runway_session");
    let me = app
        .send(
            with_cookies(Method::GET, "/api/v1/auth/session", &token, None)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["user"]["username"], "ada@example.com");
    assert_eq!(me.json()["user"]["role"], "member");

    // Found by issuer and subject; a second sign-in is the same user.
    let identity = OidcIdentity {
        issuer: issuer(),
        subject: "ada".into(),
    };
    let user = app
        .store
        .user_by_oidc_identity(&identity)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.role, Role::Member);
    let again = finish(&app, &through_the_provider(&app, "/", "ada", |u| u).await).await;
    assert_eq!(again.header("location"), "/");
    let token = cookie_value(&again, "runway_session");
    let me = app.get("/api/v1/auth/session", Some(&token)).await.json();
    assert_eq!(me["user"]["id"], user.id.to_string());

    // An OIDC user has no password to sign in with.
    app.post_json(
        "/api/v1/auth/sessions",
        None,
        &json!({"username": "ada@example.com", "password": "anything at all"}),
    )
    .await
    .assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn a_listed_admin_email_and_a_member_of_the_admin_group_become_admins_and_others_members() {
    let app = app_with(OidcSettings {
        admin_emails: vec!["boss@example.com".into()],
        admin_group: Some("ci-admins".into()),
        ..settings(issuer())
    })
    .await;
    for (account, role) in [("boss", "admin"), ("root", "admin"), ("ada", "member")] {
        let r = finish(&app, &through_the_provider(&app, "/", account, |u| u).await).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{account}: {:?}", r.body);
        let token = cookie_value(&r, "runway_session");
        let me = app.get("/api/v1/auth/session", Some(&token)).await.json();
        assert_eq!(me["user"]["role"], role, "{account}");
    }
}

#[tokio::test]
async fn a_callback_with_a_state_runway_never_issued_is_refused() {
    let app = app_with(settings(issuer())).await;
    let callback = through_the_provider(&app, "/", "ada", |u| u).await;
    let (before, after) = callback.split_once("state=").unwrap();
    let rest = after
        .split_once('&')
        .map(|(_, r)| format!("&{r}"))
        .unwrap_or_default();
    let forged = format!("{before}state=forged-state{rest}");
    finish(&app, &forged)
        .await
        .assert_error(400, "oidc_state_invalid");
    // The real state still works: a wrong one consumed nothing.
    assert_eq!(finish(&app, &callback).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_replayed_callback_and_a_replayed_code_are_refused() {
    let app = app_with(settings(issuer())).await;
    let first = through_the_provider(&app, "/", "ada", |u| u).await;
    assert_eq!(finish(&app, &first).await.status, StatusCode::SEE_OTHER);
    finish(&app, &first)
        .await
        .assert_error(400, "oidc_state_invalid");

    // The used code with a fresh, valid state: the provider refuses it.
    let second = through_the_provider(&app, "/", "ada", |u| u).await;
    let code_of = |cb: &str| {
        cb.split(['?', '&'])
            .find_map(|p| p.strip_prefix("code="))
            .unwrap()
            .to_owned()
    };
    let replay = second.replace(&code_of(&second), &code_of(&first));
    finish(&app, &replay)
        .await
        .assert_error(400, "oidc_code_rejected");
}

#[tokio::test]
async fn an_id_token_carrying_another_nonce_is_refused() {
    let app = app_with(settings(issuer())).await;
    let callback = through_the_provider(&app, "/", "ada", |url| {
        let (before, after) = url.split_once("nonce=").unwrap();
        let rest = after
            .split_once('&')
            .map(|(_, r)| format!("&{r}"))
            .unwrap_or_default();
        format!("{before}nonce=a-nonce-of-the-attackers{rest}")
    })
    .await;
    let message = finish(&app, &callback)
        .await
        .assert_error(401, "oidc_id_token_invalid");
    assert!(message.contains("nonce"), "{message}");
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    let app = app_with(settings(env_issuer("RUNWAY_TEST_OIDC_EXPIRED_ISSUER"))).await;
    let callback = through_the_provider(&app, "/", "ada", |u| u).await;
    let message = finish(&app, &callback)
        .await
        .assert_error(401, "oidc_id_token_invalid");
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test]
async fn with_allowed_domains_only_verified_emails_of_those_domains_get_in() {
    let app = app_with(OidcSettings {
        allowed_email_domains: vec!["example.com".into()],
        ..settings(issuer())
    })
    .await;
    for account in ["eve", "una"] {
        let callback = through_the_provider(&app, "/", account, |u| u).await;
        let r = finish(&app, &callback).await;
        r.assert_error(403, "oidc_not_allowed");
        assert!(set_cookies(&r).is_empty());
    }
    let ok = finish(&app, &through_the_provider(&app, "/", "ada", |u| u).await).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_issuer_that_is_not_there_or_not_openid_connect_is_a_502() {
    for unknown in [
        "http://127.0.0.1:1".to_owned(),
        format!("{}/not-an-issuer", issuer()),
    ] {
        let app = app_with(settings(unknown.clone())).await;
        app.get("/api/v1/auth/oidc/login", None)
            .await
            .assert_error(502, "oidc_issuer_unavailable");
    }
}

#[tokio::test]
async fn a_return_to_that_leaves_the_server_is_refused() {
    let app = app_with(settings(issuer())).await;
    for bad in [
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "evil",
        "\\\\evil",
    ] {
        app.get(
            &format!("/api/v1/auth/oidc/login?return_to={}", urlencode(bad)),
            None,
        )
        .await
        .assert_error(400, "invalid_return_to");
    }
}

#[tokio::test]
async fn without_an_issuer_the_oidc_routes_are_404_and_info_lists_only_passwords() {
    let app = TestApp::new().await;
    app.get("/api/v1/auth/oidc/login", None)
        .await
        .assert_error(404, "oidc_not_configured");
    app.get("/api/v1/auth/oidc/callback?code=a&state=b", None)
        .await
        .assert_error(404, "oidc_not_configured");
    let info = app.get("/api/v1/info", None).await.json();
    assert_eq!(info["auth_methods"], json!(["password"]));
}

#[tokio::test]
async fn a_cookie_authenticated_write_needs_the_csrf_header_and_a_bearer_one_does_not() {
    let app = TestApp::with_config(ApiConfig {
        public_url: Some("http://localhost:8080".into()),
        ..ApiConfig::default()
    })
    .await;
    let r = app
        .post_json(
            "/api/v1/auth/sessions",
            None,
            &json!({"username": "admin", "password": ADMIN_PASSWORD, "set_cookie": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // A plain-http localhost public URL: the cookies lose `Secure`, nothing else.
    assert!(
        set_cookies(&r)
            .iter()
            .all(|c| !c.contains("Secure") && c.contains("SameSite=Lax"))
    );
    let token = cookie_value(&r, "runway_session");
    let csrf = cookie_value(&r, "runway_csrf");
    let job = json!({"name": "csrf", "script": "true"}).to_string();
    let submit = |csrf: Option<&str>| {
        with_cookies(Method::POST, "/api/v1/jobs", &token, csrf)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(job.clone()))
            .unwrap()
    };
    app.send(submit(None))
        .await
        .assert_error(403, "csrf_failed");
    app.send(submit(Some("not-the-value")))
        .await
        .assert_error(403, "csrf_failed");
    assert_eq!(
        app.send(submit(Some(&csrf))).await.status,
        StatusCode::CREATED
    );
    // The same token as a bearer needs no CSRF header.
    assert_eq!(
        app.post_json(
            "/api/v1/jobs",
            Some(&token),
            &json!({"name": "bearer", "script": "true"})
        )
        .await
        .status,
        StatusCode::CREATED
    );
    // Reads need none either; sign-out is a write, and clears both cookies.
    let read = with_cookies(Method::GET, "/api/v1/jobs", &token, None)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(read).await.status, StatusCode::OK);
    let out = with_cookies(Method::DELETE, "/api/v1/auth/session", &token, None)
        .body(Body::empty())
        .unwrap();
    app.send(out).await.assert_error(403, "csrf_failed");
    let out = with_cookies(Method::DELETE, "/api/v1/auth/session", &token, Some(&csrf))
        .body(Body::empty())
        .unwrap();
    let out = app.send(out).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let cleared = set_cookies(&out);
    assert_eq!(cleared.len(), 2);
    assert!(
        cleared.iter().all(|c| c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    app.get("/api/v1/auth/session", Some(&token))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn a_disabled_user_is_refused_at_the_oidc_callback_and_let_in_once_enabled() {
    let app = app_with(settings(issuer())).await;
    let first = finish(&app, &through_the_provider(&app, "/", "ada", |u| u).await).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    let identity = OidcIdentity {
        issuer: issuer(),
        subject: "ada".into(),
    };
    let ada = app
        .store
        .user_by_oidc_identity(&identity)
        .await
        .unwrap()
        .unwrap();
    let admin = app.admin_token().await;
    let path = format!("/api/v1/users/{}", ada.id);
    let disable = |disabled: bool| {
        TestApp::request(Method::PATCH, &path, Some(&admin))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({ "disabled": disabled }).to_string()))
            .unwrap()
    };
    assert_eq!(app.send(disable(true)).await.status, StatusCode::OK);
    let refused = finish(&app, &through_the_provider(&app, "/", "ada", |u| u).await).await;
    refused.assert_error(403, "account_disabled");
    assert!(set_cookies(&refused).is_empty(), "no session cookie");
    assert_eq!(app.send(disable(false)).await.status, StatusCode::OK);
    let back = finish(&app, &through_the_provider(&app, "/", "ada", |u| u).await).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
}
