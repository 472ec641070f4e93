//! Who the caller is, for the audit log, and reading the log back.
//!
//! The events themselves are written by `runway-service` (every mutation hands
//! its event to the store, which writes both in one transaction; its `audit`
//! module explains why). Handlers take the [`Audit`] extractor, which carries the request id,
//! and turn it into a [`Caller`] for the service with [`Audit::caller`].

use std::convert::Infallible;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use runway_core::audit::{Actor, ActorFilter, AuditAction, AuditEvent, AuditFilter, limits};
use runway_core::page::Cursor;
use runway_core::store::AuditQuery;
use runway_service::audit::Caller;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::listing::capped;
use crate::middleware::RequestId;
use crate::routes::{Listing, page_request};

/// This request's id, as a handler turns it into a [`Caller`].
#[derive(Clone)]
pub(crate) struct Audit {
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
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
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
}

/// Query parameters of the audit log. Every filter that is given must match.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditListQuery {
    /// Only events made by this actor: a user's or an agent's id, or `system`.
    #[param(pattern = "^([0-9A-HJKMNP-TV-Z]{26}|system)$")]
    actor: Option<String>,
    /// Only events of this action, e.g. `job.canceled`.
    action: Option<AuditAction>,
    /// Only events about this object (its id, exactly).
    #[param(min_length = 1, max_length = 128)]
    subject: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<OffsetDateTime>,
    /// Only events before this instant (RFC 3339); must be after `since`.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<OffsetDateTime>,
    /// Page size, 1–100 (default 50); anything else is a 400 `invalid_query`.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl AuditListQuery {
    /// The store's filter, or a 400 saying which parameter is wrong.
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        let actor = self
            .actor
            .as_deref()
            .map(|actor| {
                ActorFilter::parse(actor).ok_or_else(|| {
                    ApiError::InvalidQuery(
                        "`actor` must be a user's or an agent's id, or `system`".into(),
                    )
                })
            })
            .transpose()?;
        if let Some(subject) = &self.subject
            && (subject.is_empty() || subject.chars().count() > limits::SUBJECT_MAX)
        {
            return Err(ApiError::InvalidQuery(format!(
                "`subject` must be 1 to {} characters",
                limits::SUBJECT_MAX
            )));
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            return Err(ApiError::InvalidQuery(
                "`until` must be after `since`".into(),
            ));
        }
        Ok(AuditFilter {
            actor,
            action: self.action,
            subject: self.subject.clone(),
            since: self.since.map(storable),
            until: self.until.map(storable),
        })
    }
}

/// `at`, moved into the range the stores can hold (i64 nanoseconds since the
/// epoch: 1677 to 2262). No event lies outside it, so a bound moved to its edge
/// selects the same events, where the store would fail on the bound itself.
fn storable(at: OffsetDateTime) -> OffsetDateTime {
    let nanos = at
        .unix_timestamp_nanos()
        .clamp(i64::MIN.into(), i64::MAX.into());
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(at)
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// Events, newest first.
    items: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; absent on the last page. A filtered
    /// page can hold fewer events than `limit`, or none, and still have one: each
    /// page examines a bounded number of events.
    next_cursor: Option<Cursor>,
}

/// The audit log, newest first: every mutation made through the API or by
/// `runway admin`, with who made it and the request id. Filters narrow it by
/// actor, action, subject and time; a cursor keeps the filters it was made with
/// only if they are sent again.
#[utoipa::path(get, path = "/audit", tag = "audit",
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
    let filter = q.filter()?;
    let request = page_request(Listing::Audit, q.limit, q.cursor)?;
    let page = capped(request, state.listing_max_bytes, |page| {
        let query = AuditQuery {
            page,
            filter: filter.clone(),
        };
        let store = &state.store;
        async move { Ok(store.list_audit(&query).await?) }
    })
    .await?;
    Ok(Json(AuditPage {
        items: page.items,
        next_cursor: Listing::Audit.seal(page.next_cursor),
    }))
}
