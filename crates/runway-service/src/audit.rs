//! Who is acting, and the audit record of what they did.
//!
//! Every mutation a person, an agent or the system makes records one
//! [`AuditEvent`]. The user-admin and API-token calls build it first
//! ([`Caller::event`]) and hand it to the store, which writes it in the same
//! transaction as the change. The others still append it once the change has
//! succeeded: who ([`Caller::actor`]), what, to which
//! object, under which request id. Service functions take a [`Caller`] and record
//! as their last step, so no front end can forget to.
//!
//! **Why after the mutation, not inside its transaction (yet).** Putting the event
//! in the same write would make every store method take an event, and on DynamoDB
//! turn every single-item write into a `TransactWriteItems`. Appending afterwards
//! means a crash between the two writes loses that one event; a failed append is
//! logged at ERROR with the action, subject and request id and the call still
//! succeeds, because the change has happened and an error would invite a retry that
//! repeats it. Writing both in one transaction is tracked as its own piece of work.
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

    /// A user authenticated by a session or an API token.
    #[must_use]
    pub fn principal(principal: &Principal, request_id: Option<String>) -> Self {
        Self {
            actor: principal.into(),
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

    /// The event of `action` on `subject` by this caller, now, with an optional
    /// note, for a store method that writes it in the same transaction as the
    /// change (every new mutating store method does). A note out of bounds is a
    /// bug; it is logged and dropped rather than failing the change.
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
    /// secret). See the module documentation for why a failure is logged, not
    /// returned.
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

/// `event` with `detail`, or without it if the note is out of bounds (a bug in
/// the note, not a reason to lose the event: logged).
fn with_detail(event: AuditEvent, detail: Option<String>) -> AuditEvent {
    match detail {
        None => event,
        Some(detail) => match event.clone().with_detail(detail) {
            Ok(with) => with,
            Err(err) => {
                tracing::error!(audit.action = event.action.as_str(), error = %err, "audit detail refused");
                event
            }
        },
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
            "could not append to the audit log; the change itself was made"
        );
    }
}
