//! Who the caller is, for the audit log, and reading the log back.
//!
//! The events themselves are written by `runway-service` (every mutation records
//! one as its last step; its `audit` module explains when and why after the
//! change). Handlers take the [`Audit`] extractor, which carries the request id,
//! and turn it into a [`Caller`] for the service with [`Audit::caller`].

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use runway_core::audit::{Actor, AuditAction, AuditEvent};
use runway_core::page::Cursor;
use runway_core::store::{AuditQuery, Store};
use runway_service::audit::Caller;
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
    /// The caller for a service call: `actor`, under this request's id.
    pub(crate) fn caller(&self, actor: Actor) -> Caller {
        Caller {
            actor,
            request_id: (!self.request_id.is_empty()).then(|| self.request_id.clone()),
        }
    }

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
        self.caller(actor)
            .record(self.store.as_ref(), action, subject, detail)
            .await;
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
