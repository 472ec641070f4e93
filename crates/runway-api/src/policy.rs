//! The authorization matrix, in one place: for every route, who may call it.
//!
//! [`ROUTES`] is the single table. The authentication extractors (`auth.rs`)
//! look the request's route up in it (by axum's `MatchedPath` and the method)
//! and enforce what it says, so a handler cannot be more permissive than its row;
//! a route missing from the table is a 500 (a bug, and a test calls every route).
//! `docs/http-api.md` holds the same table as [`markdown_table`] renders it, and a
//! test keeps the two equal; another checks that the router serves exactly these
//! routes and that the OpenAPI document lists them.
//!
//! What each [`Access`] means, for each kind of caller:
//!
//! | caller | `User` | `OwnerOrAdmin` | `Session` | `Admin` |
//! |---|---|---|---|---|
//! | no token, an unknown, expired or revoked session or token | 401 | 401 | 401 | 401 |
//! | a member's session | yes | own records (else 403) | yes | 403 |
//! | an admin's session | yes | yes | yes | yes |
//! | an API token (`rwp_`) | yes | as its user | 403 `session_required` | as its user |
//! | a read-only API token | `GET`/`HEAD` only (else 403 `read_only_token`) | same | 403 | same |
//! | an agent, registration or job token | 401 | 401 | 401 | 401 |
//!
//! A disabled user has no session or token left (disabling deletes them), so they
//! get the 401 of a revoked one; signing in again is a 403 `account_disabled`.
//! `Agent`, `Registration` and `Job` routes accept only their own kind of token
//! (401 for any other, a user's included), and a job token only for its own job.
//! "Own records" is the one rule the table cannot decide from the route alone
//! (whose job is it?): the service applies it (`runway_service::jobs`) and the
//! table marks where.

use axum::http::Method;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Anyone,
    /// Any signed-in user, by a session or an API token.
    User,
    /// Any signed-in user, but a member only on their own records (jobs they
    /// submitted); admins on every one.
    OwnerOrAdmin,
    /// A signed-in user by a session only: managing sessions and API tokens. An
    /// API token cannot mint, list or revoke credentials.
    Session,
    /// A signed-in admin (a session or an API token of an admin).
    Admin,
    /// A registered agent (`rwa_`).
    Agent,
    /// A registration token (`rwr_`).
    Registration,
    /// The job token (`rwj_`) of an attempt of the job in the path.
    Job,
}

impl Access {
    /// The column of the documented table.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Anyone => "anyone",
            Self::User => "user",
            Self::OwnerOrAdmin => "member (own) or admin",
            Self::Session => "user, by session",
            Self::Admin => "admin",
            Self::Agent => "agent",
            Self::Registration => "registration token",
            Self::Job => "job token (its job)",
        }
    }

    /// Whether a person (a session or an API token) authenticates here.
    #[must_use]
    pub const fn is_for_users(self) -> bool {
        matches!(
            self,
            Self::User | Self::OwnerOrAdmin | Self::Session | Self::Admin
        )
    }
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The method, lowercase (`get`; `HEAD` follows `get`).
    pub method: &'static str,
    /// The route as the router has it, `{id}` and all.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

impl Rule {
    /// Whether a read-only API token may call it: only `GET` (and so `HEAD`).
    #[must_use]
    pub fn read_only_token_ok(&self) -> bool {
        self.access.is_for_users() && self.access != Access::Session && self.method == "get"
    }
}

const fn rule(method: &'static str, path: &'static str, access: Access) -> Rule {
    Rule {
        method,
        path,
        access,
    }
}

/// Every route the router serves, besides `/openapi.json` and `/docs`.
pub const ROUTES: &[Rule] = &[
    rule("get", "/health", Access::Anyone),
    rule("get", "/ready", Access::Anyone),
    rule("get", "/api/v1/info", Access::Anyone),
    rule("post", "/api/v1/auth/sessions", Access::Anyone),
    rule("get", "/api/v1/auth/oidc/login", Access::Anyone),
    rule("get", "/api/v1/auth/oidc/callback", Access::Anyone),
    rule("get", "/api/v1/auth/sessions", Access::Session),
    rule("get", "/api/v1/auth/session", Access::Session),
    rule("delete", "/api/v1/auth/session", Access::Session),
    rule("delete", "/api/v1/auth/sessions/{id}", Access::Session),
    rule("post", "/api/v1/auth/sessions/revoke-all", Access::Session),
    rule("post", "/api/v1/auth/tokens", Access::Session),
    rule("get", "/api/v1/auth/tokens", Access::Session),
    rule("delete", "/api/v1/auth/tokens/{id}", Access::Session),
    rule("post", "/api/v1/users", Access::Admin),
    rule("get", "/api/v1/users", Access::Admin),
    rule("get", "/api/v1/users/{id}", Access::Admin),
    rule("patch", "/api/v1/users/{id}", Access::Admin),
    rule("delete", "/api/v1/users/{id}", Access::Admin),
    rule("get", "/api/v1/users/{id}/sessions", Access::Admin),
    rule(
        "delete",
        "/api/v1/users/{id}/sessions/{session_id}",
        Access::Admin,
    ),
    rule("post", "/api/v1/registration-tokens", Access::Admin),
    rule("get", "/api/v1/registration-tokens", Access::Admin),
    rule("delete", "/api/v1/registration-tokens/{id}", Access::Admin),
    rule("get", "/api/v1/agents", Access::User),
    rule("get", "/api/v1/agents/{id}", Access::User),
    rule("delete", "/api/v1/agents/{id}", Access::Admin),
    rule("post", "/api/v1/agents/{id}/pause", Access::Admin),
    rule("post", "/api/v1/agents/{id}/resume", Access::Admin),
    rule("post", "/api/v1/agents/{id}/drain", Access::Admin),
    rule("post", "/api/v1/jobs", Access::User),
    rule("get", "/api/v1/jobs", Access::User),
    rule("get", "/api/v1/jobs/{id}", Access::User),
    rule("post", "/api/v1/jobs/{id}/cancel", Access::OwnerOrAdmin),
    rule("post", "/api/v1/jobs/{id}/retry", Access::OwnerOrAdmin),
    rule("get", "/api/v1/jobs/{id}/log", Access::User),
    rule("get", "/api/v1/jobs/{id}/log/stream", Access::User),
    rule("get", "/api/v1/audit", Access::Admin),
    rule("post", "/agent/v1/register", Access::Registration),
    rule("post", "/agent/v1/heartbeat", Access::Agent),
    rule("get", "/agent/v1/config", Access::Agent),
    rule("post", "/agent/v1/jobs/claim", Access::Agent),
    rule("post", "/agent/v1/jobs/{id}/start", Access::Job),
    rule("post", "/agent/v1/jobs/{id}/lease", Access::Job),
    rule("put", "/agent/v1/jobs/{id}/logs", Access::Job),
    rule("post", "/agent/v1/jobs/{id}/finish", Access::Job),
    rule("post", "/agent/v1/token/rotate", Access::Agent),
    rule("post", "/agent/v1/disconnect", Access::Agent),
];

/// The row of `path` (the route template) with `method`; `HEAD` is `GET`'s.
#[must_use]
pub fn lookup(method: &Method, path: &str) -> Option<&'static Rule> {
    let method = if method == Method::HEAD {
        "get".to_owned()
    } else {
        method.as_str().to_ascii_lowercase()
    };
    ROUTES
        .iter()
        .find(|rule| rule.path == path && rule.method == method)
}

/// The matrix as the Markdown table in `docs/http-api.md`.
#[must_use]
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| method | route | who may call it | read-only API token |\n|---|---|---|---|\n",
    );
    for rule in ROUTES {
        let read_only = if !rule.access.is_for_users() {
            "—"
        } else if rule.read_only_token_ok() {
            "yes"
        } else {
            "no"
        };
        out.push_str(&format!(
            "| {} | `{}` | {} | {read_only} |\n",
            rule.method.to_ascii_uppercase(),
            rule.path,
            rule.access.as_str()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_one_rule() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    (a.method, a.path) != (b.method, b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn head_follows_get_and_unknown_routes_have_no_rule() {
        assert_eq!(
            lookup(&Method::HEAD, "/api/v1/jobs").map(|r| r.access),
            Some(Access::User)
        );
        assert!(lookup(&Method::GET, "/api/v1/nope").is_none());
        assert!(lookup(&Method::PATCH, "/api/v1/jobs").is_none());
    }

    #[test]
    fn a_read_only_token_may_only_read_and_never_manage_credentials() {
        let read = lookup(&Method::GET, "/api/v1/jobs").unwrap();
        let write = lookup(&Method::POST, "/api/v1/jobs").unwrap();
        let tokens = lookup(&Method::GET, "/api/v1/auth/tokens").unwrap();
        assert!(read.read_only_token_ok());
        assert!(!write.read_only_token_ok());
        assert!(!tokens.read_only_token_ok());
    }
}
