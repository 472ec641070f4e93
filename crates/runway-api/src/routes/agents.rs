//! Agents as users see them: listed and fetched, each with its health derived at
//! read time (an agent that died silently shows `offline` without anyone writing);
//! and, for admins, paused, resumed, drained and deleted.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use runway_core::OffsetDateTime;
use runway_core::agent::{Agent, AgentState, AgentStatus};
use runway_core::id::AgentId;
use runway_core::page::Cursor;
use runway_core::store::AgentQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Listing, page_request};
use crate::AppState;
use crate::audit::Audit;
use crate::auth::{AdminUser, CurrentUser};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, IdPath};
use crate::listing::capped;

/// An agent with its health at the time of the request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentView {
    #[serde(flatten)]
    agent: Agent,
    /// Health, derived from the last heartbeat.
    status: AgentStatus,
}

impl AgentView {
    pub(crate) fn at(agent: Agent, now: OffsetDateTime) -> Self {
        let status = agent.status(now);
        Self { agent, status }
    }
}

/// A page of agents, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AgentPage {
    /// The agents.
    items: Vec<AgentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<Cursor>,
}

/// Filters and paging for the agent list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AgentListQuery {
    /// Only agents in this region (a label: 1 to 64 of letters, digits and
    /// `. _ - : / =`).
    #[param(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._:/=-]+$")]
    region: Option<String>,
    /// Only agents with this health.
    status: Option<AgentStatus>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists agents, newest first.
#[utoipa::path(get, path = "/agents", tag = "agents",
    security(("bearer" = [])),
    params(AgentListQuery),
    responses(
        (status = 200, description = "A page of agents", body = AgentPage),
        (status = 400, description = "A bad query parameter or cursor", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiQuery(q): ApiQuery<AgentListQuery>,
) -> Result<Json<AgentPage>, ApiError> {
    if let Some(region) = &q.region {
        runway_core::job::validate_label("region", region)
            .map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    }
    let request = page_request(Listing::Agents, q.limit, q.cursor)?;
    let now = OffsetDateTime::now_utc();
    let page = capped(request, state.listing_max_bytes, |page| {
        let query = AgentQuery {
            region: q.region.clone(),
            status: q.status,
            page,
        };
        let store = &state.store;
        async move {
            let page = store.list_agents(&query, now).await?;
            Ok(page.map(|a| AgentView::at(a, now)))
        }
    })
    .await?;
    Ok(Json(AgentPage {
        items: page.items,
        next_cursor: Listing::Agents.seal(page.next_cursor),
    }))
}

/// One agent.
#[utoipa::path(get, path = "/agents/{id}", tag = "agents",
    security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent")),
    responses(
        (status = 200, description = "The agent", body = AgentView),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    _user: CurrentUser,
    IdPath(id): IdPath<AgentId>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = state
        .store
        .get_agent(id)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    Ok(Json(AgentView::at(agent, OffsetDateTime::now_utc())))
}

async fn set_state(
    state: &AppState,
    audit: &Audit,
    admin: &AdminUser,
    id: AgentId,
    to: AgentState,
) -> Result<Json<AgentView>, ApiError> {
    let caller = audit.caller((&admin.0.user).into());
    let agent = state.service.set_agent_state(&caller, id, to).await?;
    Ok(Json(AgentView::at(agent, OffsetDateTime::now_utc())))
}

/// Pauses an agent: it claims nothing until resumed and keeps running what it has.
#[utoipa::path(post, path = "/agents/{id}/pause", tag = "agents",
    security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent")),
    responses(
        (status = 200, description = "The agent, paused", body = AgentView),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody)))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    audit: Audit,
    admin: AdminUser,
    IdPath(id): IdPath<AgentId>,
) -> Result<Json<AgentView>, ApiError> {
    set_state(&state, &audit, &admin, id, AgentState::Paused).await
}

/// Resumes a paused or draining agent: it claims jobs again.
#[utoipa::path(post, path = "/agents/{id}/resume", tag = "agents",
    security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent")),
    responses(
        (status = 200, description = "The agent, active", body = AgentView),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody)))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    audit: Audit,
    admin: AdminUser,
    IdPath(id): IdPath<AgentId>,
) -> Result<Json<AgentView>, ApiError> {
    set_state(&state, &audit, &admin, id, AgentState::Active).await
}

/// Drains an agent: it claims nothing, finishes what it has, then disconnects.
#[utoipa::path(post, path = "/agents/{id}/drain", tag = "agents",
    security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent")),
    responses(
        (status = 200, description = "The agent, draining", body = AgentView),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody)))]
pub(crate) async fn drain(
    State(state): State<AppState>,
    audit: Audit,
    admin: AdminUser,
    IdPath(id): IdPath<AgentId>,
) -> Result<Json<AgentView>, ApiError> {
    set_state(&state, &audit, &admin, id, AgentState::Draining).await
}

/// Deletes an agent: its token stops working at once, and the jobs it held are
/// lost (and retried while retries remain).
#[utoipa::path(delete, path = "/agents/{id}", tag = "agents",
    security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    audit: Audit,
    AdminUser(admin): AdminUser,
    IdPath(id): IdPath<AgentId>,
) -> Result<StatusCode, ApiError> {
    let caller = audit.caller((&admin.user).into());
    state.service.delete_agent(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
