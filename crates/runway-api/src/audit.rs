//! Writing the audit log from the handlers, and reading it back.
//!
//! Every mutation that a person or an agent makes through the API, and every
//! account change made by `runway admin` or the first start, appends one
//! [`AuditEvent`] once it has succeeded: who (the session's user, the agent, or the
//! system), what, to which object, and under which request id. Handlers take the
//! [`Audit`] extractor, which carries the store and the request id, and call
//! [`Audit::record`] as their last step.
//!
//! **Why after the mutation, not inside its transaction.** Putting the event in the
//! same write would make every store method take an event, and on DynamoDB turn
//! every single-item write into a `TransactWriteItems` at twice the write units.
//! The price of appending afterwards is that a crash between the two writes loses
//! that one event. A failed append is never silent: it is logged at ERROR with the
//! action, subject and request id, and the request still succeeds, because the
//! change it reports has already happened and an error would invite a retry that
//! repeats it.
//!
//! **What is not recorded:** heartbeats and `last_seen_at` refreshes. They are
//! bookkeeping that happens every few seconds per agent or session, not decisions
//! anyone needs to audit, and they would bury the events that matter.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use runway_core::OffsetDateTime;
use runway_core::audit::{Actor, AuditAction, AuditEvent};
use runway_core::page::Cursor;
use runway_core::store::{AuditQuery, AuditStore, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::middleware::RequestId;
use crate::routes::{Listing, page_request};

/// The audit log as a handler sees it: the store, and this request's id.
#[derive(Clone)]
pub(crate) struct Audit {
    store: Arc<dyn Store>,
    request_id: String,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl FromRequestParts<AppState> for Audit {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            store: Arc::clone(&state.store),
            request_id: RequestId::of(parts).to_owned(),
        })
    }
}

impl Audit {
    /// Appends `actor` did `action` to `subject` (an id), now.
    pub(crate) async fn record(
        &self,
        actor: Actor,
        action: AuditAction,
        subject: impl std::fmt::Display,
    ) {
        self.record_with(actor, action, subject, None).await;
    }

    /// [`Audit::record`] with a short note written by server code (never a secret).
    pub(crate) async fn record_with(
        &self,
        actor: Actor,
        action: AuditAction,
        subject: impl std::fmt::Display,
        detail: Option<String>,
    ) {
        let mut event = AuditEvent::new(
            actor,
            action,
            Some(subject.to_string()),
            OffsetDateTime::now_utc(),
        );
        if !self.request_id.is_empty() {
            event = event.with_request_id(self.request_id.clone());
        }
        append(self.store.as_ref(), event, detail).await;
    }
}

/// Appends `event` with `detail`, logging (never returning) a failure: the change
/// it describes has already been made. See the module documentation.
pub(crate) async fn append<S>(store: &S, event: AuditEvent, detail: Option<String>)
where
    S: AuditStore + ?Sized,
{
    let event = match detail {
        None => event,
        Some(detail) => match event.clone().with_detail(detail) {
            Ok(with) => with,
            Err(err) => {
                // A bug in the note, not a reason to lose the event.
                tracing::error!(audit.action = event.action.as_str(), error = %err, "audit detail refused");
                event
            }
        },
    };
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

/// Query parameters of the audit log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditListQuery {
    /// Page size, 1–100 (default 50); anything else is a 400 `invalid_query`.
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// Events, newest first.
    items: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<Cursor>,
}

/// The audit log, newest first: every mutation made through the API or by
/// `runway admin`, with who made it and the request id.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    security(("bearer" = [])),
    params(AuditListQuery),
    responses(
        (status = 200, description = "A page of events", body = AuditPage),
        (status = 400, description = "A bad query parameter or cursor", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<AuditListQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let query = AuditQuery {
        page: page_request(Listing::Audit, q.limit, q.cursor)?,
    };
    let page = state.store.list_audit(&query).await?;
    Ok(Json(AuditPage {
        items: page.items,
        next_cursor: Listing::Audit.seal(page.next_cursor),
    }))
}
