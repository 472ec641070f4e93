//! Jobs as users see them: submit, list, inspect, cancel, retry.
//!
//! The rules (validation, the cancel's read-decide-write loop, who may retry what,
//! why a job waits) are `runway-service`'s ([`runway_service::jobs`]). Listings
//! return summaries, without the script and environment (a page of 100 jobs with
//! 64 KiB scripts would be megabytes); one job returns its spec and its attempts.
//! Secrets are never returned by any of them; one job shows their names
//! (`secret_names`), which is what a retry must supply again.
//!
//! A retry answers 200 with the job as the retry left it, not 202: the change it
//! asks for (back in the queue, budget reset, secrets stored) is complete when the
//! answer is sent; running the new attempt is the job's ordinary life, which the
//! client follows with `GET` as after a submission.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use runway_core::OffsetDateTime;
use runway_core::id::{JobId, UserId};
use runway_core::job::{Attempt, Job, JobSecrets, JobSpec};
use runway_core::lifecycle::JobStatus;
use runway_core::page::Cursor;
use runway_core::store::JobQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Listing, page_request};
use crate::AppState;
use crate::audit::Audit;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, IdPath, OptionalJson};
use crate::listing::capped;

/// A job in a listing: everything but its script and environment.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobSummary {
    /// Stable id; sorts by creation time.
    id: JobId,
    /// The job's name.
    name: String,
    /// Where the job is in its life.
    status: JobStatus,
    /// The queue it waits in.
    queue: String,
    /// Labels an agent must have.
    labels: Vec<String>,
    /// Higher runs first.
    priority: i32,
    /// Wall-clock limit of one attempt.
    timeout_seconds: u32,
    /// Automatic retries of a lost attempt.
    max_retries: u32,
    /// Who submitted it.
    created_by: UserId,
    /// When it was submitted.
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// When its status last changed.
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    /// How many attempts it has had.
    attempt_count: u32,
}

impl From<Job> for JobSummary {
    fn from(job: Job) -> Self {
        Self {
            id: job.id,
            name: job.spec.name,
            status: job.status,
            queue: job.spec.queue,
            labels: job.spec.labels,
            priority: job.spec.priority,
            timeout_seconds: job.spec.timeout_seconds,
            max_retries: job.spec.max_retries,
            created_by: job.created_by,
            created_at: job.created_at,
            updated_at: job.updated_at,
            attempt_count: job.attempt_count,
        }
    }
}

/// One job: its spec (without secrets), its attempts, and why it waits.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobView {
    /// The job.
    #[serde(flatten)]
    job: Job,
    /// Every attempt, oldest first: agent, status, exit code, times, log size.
    attempts: Vec<Attempt>,
    /// For a queued job that no online agent can run: why, e.g. "no online agent
    /// pulls from queue `gpu`". Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_reason: Option<String>,
}

impl From<runway_service::jobs::JobView> for JobView {
    fn from(view: runway_service::jobs::JobView) -> Self {
        Self {
            job: view.detail.job,
            attempts: view.detail.attempts,
            waiting_reason: view.waiting_reason,
        }
    }
}

/// What a retry may carry. The whole body is optional: no body, an empty body and
/// `{}` all mean "no secrets", which is right for a job submitted without any.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryRequest {
    /// The job's secrets again, name → value: exactly the names in its
    /// `secret_names`, each checked as at submission. Their values were deleted
    /// when the job finished, so a job submitted with secrets cannot be retried
    /// without them. Never returned by any API.
    #[serde(default)]
    #[schema(write_only, schema_with = runway_core::job::schema::secrets)]
    secrets: JobSecrets,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobPage {
    /// The jobs, as summaries.
    items: Vec<JobSummary>,
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
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Submits a job; it waits in its queue for an agent.
#[utoipa::path(post, path = "/jobs", tag = "jobs",
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
    CurrentUser { user, .. }: CurrentUser,
    ApiJson(spec): ApiJson<JobSpec>,
) -> Result<Response, ApiError> {
    let job = state
        .service
        .submit_job(&audit.caller((&user).into()), user.user_id, spec)
        .await?;
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
#[utoipa::path(get, path = "/jobs", tag = "jobs",
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
    let request = page_request(Listing::Jobs, q.limit, q.cursor)?;
    let page = capped(request, state.listing_max_bytes, |page| {
        let query = JobQuery {
            status: q.status,
            page,
        };
        let store = &state.store;
        async move {
            let page = store.list_jobs(&query).await?;
            Ok(page.map(JobSummary::from))
        }
    })
    .await?;
    Ok(Json(JobPage {
        items: page.items,
        next_cursor: Listing::Jobs.seal(page.next_cursor),
    }))
}

/// One job with its attempts, oldest attempt first.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    _user: CurrentUser,
    IdPath(id): IdPath<JobId>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.service.job(id).await?.into()))
}

/// Cancels a job: `canceled` at once if queued, `canceling` if an agent holds it.
/// Members may cancel their own jobs, admins any.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job")),
    responses(
        (status = 200, description = "The job after the cancel", body = Job),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "A member's cancel of a job someone else submitted", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job is already finished or canceling (`illegal_transition`)", body = ErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    audit: Audit,
    CurrentUser { user, .. }: CurrentUser,
    IdPath(id): IdPath<JobId>,
) -> Result<Json<Job>, ApiError> {
    let job = state
        .service
        .cancel_job(
            &audit.caller((&user).into()),
            runway_service::jobs::Requester::of(&user),
            id,
        )
        .await?;
    Ok(Json(job))
}

/// Retries a finished job (succeeded, failed, canceled, timed out, lost or
/// expired): it goes back to its queue and its next claim is a new attempt, with
/// every earlier attempt kept. A job submitted with secrets needs each of them
/// again. Members may retry their own jobs, admins any.
#[utoipa::path(post, path = "/jobs/{id}/retry", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job")),
    request_body(content = Option<RetryRequest>,
        description = "Optional: with no body the job is retried without secrets"),
    responses(
        (status = 200, description = "Queued again, with its attempts so far", body = JobView),
        (status = 400, description = "The body is not JSON (`invalid_json`)", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "A member's retry of a job someone else submitted", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job is not finished or another retry re-queued it first (`illegal_transition`), or it has no room for more attempts (`conflict`)", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 415, description = "A body not sent as `application/json`", body = ErrorBody),
        (status = 422, description = "A secret the job was submitted with is missing (named), one it was not is given, a value is out of range, or an unknown field", body = ErrorBody)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    audit: Audit,
    CurrentUser { user, .. }: CurrentUser,
    IdPath(id): IdPath<JobId>,
    OptionalJson(req): OptionalJson<RetryRequest>,
) -> Result<Json<JobView>, ApiError> {
    let view = state
        .service
        .retry_job(
            &audit.caller((&user).into()),
            runway_service::jobs::Requester::of(&user),
            id,
            req.secrets,
        )
        .await?;
    Ok(Json(view.into()))
}
