//! Who is acting, and the audit record of what they did.
//!
//! Every mutation a person, an agent or the system makes writes one
//! [`AuditEvent`]: who ([`Caller::actor`]), what, to which object, under which
//! request id. Service functions take a [`Caller`], build the event before the
//! write ([`Caller::event`]) and hand it to the store method that makes the
//! change, so no front end can forget it.
//!
//! **In the same transaction as the change.** Every audited store method takes
//! its event as its last parameter and writes both in one SQLite transaction or
//! one DynamoDB `TransactWriteItems` (the event's put conditional on its id being
//! free): the change and its event commit together or not at all. A client that
//! half-closes the connection, a crash or a throttled audit table can no longer
//! leave a change without its event; the price is that a failed event write fails
//! the change (an error the caller sees and may retry), and that on DynamoDB a
//! write that was one item is a transaction of two (`docs/dynamodb.md`). The
//! earlier design, appending after the change and only logging a failure, is
//! what this replaced.
//!
//! This holds for every change: jobs, dispatch and agents, API tokens, users
//! (the users API, `runway admin`, first start, an issuer's first sign-in),
//! registration tokens, sign-ins, sign-outs, session revocations, sign-outs
//! everywhere and password resets.
//!
//! Because the event is built before the write, its detail says what was asked
//! and what was read, never what only the write learns; where the store alone
//! knows a part the service hands it a template and the store fills it in: which
//! job a claim got (`AuditEvent::of_claim`), which token admitted an agent
//! (`AuditEvent::of_registration`), which sessions a sign-in at the bound evicted
//! (one `session.revoked` each, `AuditEvent::of_eviction`), how many sessions a
//! sign-out everywhere deleted (`AuditEvent::of_revoked_all`).
//!
//! [`Caller::record`] (an append of its own) is left for events that have no
//! change of their own: a refused sign-in, an agent saying it is leaving. A
//! failure there is logged at ERROR, not returned.
//!
//! **What is not recorded:** heartbeats, lease renewals, log chunks and
//! `last_seen_at` refreshes: bookkeeping every few seconds per agent, job or
//! session, not decisions anyone audits, and they would bury the events that do.

use runway_core::OffsetDateTime;
use runway_core::agent::Agent;
use runway_core::audit::{Actor, AuditAction, AuditEvent};
use runway_core::session::Session;
use runway_core::store::AuditStore;
use runway_core::user::Principal;

/// Who is making a call, and under which request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user, agent or the system.
    pub actor: Actor,
    /// The request id, to find the request's log lines from the event.
    pub request_id: Option<String>,
}

impl Caller {
    /// The system itself (first start, `runway admin`, the reaper).
    #[must_use]
    pub const fn system() -> Self {
        Self {
            actor: Actor::System,
            request_id: None,
        }
    }

    /// A signed-in user.
    #[must_use]
    pub fn user(session: &Session, request_id: Option<String>) -> Self {
        Self {
            actor: session.into(),
            request_id,
        }
    }

    /// An agent.
    #[must_use]
    pub fn agent(agent: &Agent, request_id: Option<String>) -> Self {
        Self {
            actor: agent.into(),
            request_id,
        }
    }

    /// A user authenticated by a session or an API token.
    #[must_use]
    pub fn principal(principal: &Principal, request_id: Option<String>) -> Self {
        Self {
            actor: principal.into(),
            request_id,
        }
    }

    /// The event of `action` on `subject` by this caller, now, with an optional
    /// note (server text, never a secret), for the store method that makes the
    /// change. A note out of bounds is a bug: it is logged and left off rather
    /// than fail the change.
    #[must_use]
    pub fn event(
        &self,
        action: AuditAction,
        subject: impl std::fmt::Display,
        detail: Option<String>,
    ) -> AuditEvent {
        let mut event = AuditEvent::new(
            self.actor.clone(),
            action,
            Some(subject.to_string()),
            OffsetDateTime::now_utc(),
        );
        if let Some(id) = self.request_id.as_deref().filter(|id| !id.is_empty()) {
            event = event.with_request_id(id.to_owned());
        }
        with_detail(event, detail)
    }

    /// Appends `action` on `subject` with an optional note (server text, never a
    /// secret), for an event that has no change of its own (see the module
    /// documentation); a failure is logged, not returned.
    pub async fn record<S>(
        &self,
        store: &S,
        action: AuditAction,
        subject: impl std::fmt::Display,
        detail: Option<String>,
    ) where
        S: AuditStore + ?Sized,
    {
        let mut event = AuditEvent::new(
            self.actor.clone(),
            action,
            Some(subject.to_string()),
            OffsetDateTime::now_utc(),
        );
        if let Some(id) = self.request_id.as_deref().filter(|id| !id.is_empty()) {
            event = event.with_request_id(id.to_owned());
        }
        append(store, event, detail).await;
    }
}

/// Appends `event` with `detail`, logging (never returning) a failure.
pub async fn append<S>(store: &S, event: AuditEvent, detail: Option<String>)
where
    S: AuditStore + ?Sized,
{
    let event = with_detail(event, detail);
    if let Err(err) = store.append_audit(&event).await {
        tracing::error!(
            audit.action = event.action.as_str(),
            audit.subject = event.subject.as_deref(),
            audit.actor = event.actor.kind(),
            request_id = event.request_id.as_deref(),
            error = %err,
            "could not append to the audit log"
        );
    }
}

/// `event` with `detail`, or without it if it is out of bounds (logged).
pub(crate) fn with_detail(event: AuditEvent, detail: Option<String>) -> AuditEvent {
    match detail {
        None => event,
        Some(detail) => match event.clone().with_detail(detail) {
            Ok(with) => with,
            Err(err) => {
                // A bug in the note, not a reason to lose the event.
                tracing::error!(audit.action = event.action.as_str(), error = %err, "audit detail refused");
                event
            }
        },
    }
}
