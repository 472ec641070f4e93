//! Jobs as users see them: submit, list, inspect, cancel.
//!
//! Cancelling asks the lifecycle table ([`cancel_target`]) what a cancel means in the
//! job's current state, then lets the store apply it with a write conditional on that
//! state, so a job that finished in between gets a 409 instead of being overwritten.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use runway_core::OffsetDateTime;
use runway_core::audit::AuditAction;
use runway_core::id::JobId;
use runway_core::job::{Job, JobDetail, JobSpec};
use runway_core::lifecycle::{IllegalTransition, JobStatus, cancel_target};
use runway_core::page::Cursor;
use runway_core::store::{JobQuery, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Listing, or_not_found, page_request};
use crate::AppState;
use crate::audit::Audit;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, IdPath};

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobPage {
    /// The jobs.
    items: Vec<Job>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<Cursor>,
}

/// Filters and paging for the job list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobListQuery {
    /// Only jobs in this status.
    status: Option<JobStatus>,
    /// Page size, 1–100 (default 50); anything else is a 400 `invalid_query`.
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Submits a job; it waits in its queue for an agent.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs",
    security(("bearer" = [])),
    request_body = JobSpec,
    responses(
        (status = 201, description = "Queued", body = Job,
            headers(("Location" = String, description = "The job's URL"))),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 422, description = "A field is missing or out of range", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    audit: Audit,
    CurrentUser { session }: CurrentUser,
    ApiJson(spec): ApiJson<JobSpec>,
) -> Result<Response, ApiError> {
    spec.validate()
        .map_err(|e| ApiError::Validation(e.to_string()))?;
    let job = Job::new(spec, session.user_id, OffsetDateTime::now_utc());
    state.store.create_job(&job).await?;
    audit
        .record((&session).into(), AuditAction::JobCreated, job.id)
        .await;
    let location = HeaderValue::try_from(format!("/api/v1/jobs/{}", job.id))
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(job),
    )
        .into_response())
}

/// Lists jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    security(("bearer" = [])),
    params(JobListQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "A bad query parameter or cursor", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiQuery(q): ApiQuery<JobListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let query = JobQuery {
        status: q.status,
        page: page_request(Listing::Jobs, q.limit, q.cursor)?,
    };
    let page = state.store.list_jobs(&query).await?;
    Ok(Json(JobPage {
        items: page.items,
        next_cursor: Listing::Jobs.seal(page.next_cursor),
    }))
}

/// One job with its attempts, oldest attempt first.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job")),
    responses(
        (status = 200, description = "The job", body = JobDetail),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    _user: CurrentUser,
    IdPath(id): IdPath<JobId>,
) -> Result<Json<JobDetail>, ApiError> {
    state
        .store
        .get_job(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("job"))
}

/// Cancels a job: `canceled` at once if queued, `canceling` if an agent holds it.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job")),
    responses(
        (status = 200, description = "The job after the cancel", body = Job),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job is already finished or canceling (`illegal_transition`)", body = ErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    audit: Audit,
    CurrentUser { session }: CurrentUser,
    IdPath(id): IdPath<JobId>,
) -> Result<Json<Job>, ApiError> {
    // The target depends on the status (queued → canceled, claimed or running →
    // canceling), and an agent may move the job between the read and the write. The
    // store's conditional write then refuses, and the cancel is worked out again
    // from the new status; a handful of rounds is plenty, since every move is
    // forward.
    let mut attempts_left = 4;
    loop {
        let detail = state
            .store
            .get_job(id)
            .await?
            .ok_or_else(|| ApiError::not_found("job"))?;
        let from = detail.job.status;
        let Some(to) = cancel_target(from) else {
            return Err(ApiError::IllegalTransition(
                IllegalTransition {
                    from,
                    to: JobStatus::Canceled,
                }
                .to_string(),
            ));
        };
        match state
            .store
            .transition_job(id, to, OffsetDateTime::now_utc())
            .await
        {
            Ok(job) => {
                audit
                    .record_with(
                        (&session).into(),
                        AuditAction::JobCanceled,
                        id,
                        Some(format!("{from} → {}", job.status)),
                    )
                    .await;
                return Ok(Json(job));
            }
            Err(StoreError::IllegalTransition(t)) if t.from != from && attempts_left > 1 => {
                attempts_left -= 1;
            }
            Err(err) => return Err(or_not_found("job")(err)),
        }
    }
}
