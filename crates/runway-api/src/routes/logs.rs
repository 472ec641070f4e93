//! Reading a job's log: by offset, or followed live as server-sent events.
//!
//! * `GET /api/v1/jobs/{id}/log?attempt=N&offset=B` returns up to 1 MiB of the
//!   attempt's log from byte `B` as `text/plain; charset=utf-8`, with
//!   `x-log-next-offset` (where to read next) and `x-log-complete` (`true` once the
//!   attempt has ended and the read reached its end: nothing more will ever come).
//!   The attempt defaults to the latest.
//! * `GET /api/v1/jobs/{id}/log/stream` sends the same bytes as SSE events whose
//!   `id` is the byte offset just past the event's data, so a reconnecting
//!   `EventSource` resumes exactly where it stopped (`Last-Event-ID`, or
//!   `?offset=`). A last `event: end` says the log is complete. Events are cut at
//!   UTF-8 boundaries so a character is never split between two of them, and
//!   carriage returns become newlines (SSE cannot carry a bare CR).
//!
//! Served locally, the stream stays open and wakes when any log grows (a
//! `watch` channel the service bumps on every append and every end), with a
//! keep-alive comment every 15 s. On Lambda an HTTP API cannot stream a response,
//! so the endpoint sends what there is, then `retry: 1000`, and ends: the browser
//! reconnects a second later from the last id. That is polling, but behind the
//! same URL and client code.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use runway_core::id::JobId;
use runway_service::dispatch::Service;
use runway_service::jobs::LOG_READ_MAX_BYTES;
use serde::Deserialize;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, IdPath};

/// `x-log-complete`.
pub(crate) const LOG_COMPLETE_HEADER: &str = "x-log-complete";
/// How much one SSE event carries at most.
const EVENT_MAX_BYTES: usize = 64 * 1024;
/// How long a live stream waits for growth before checking again.
const IDLE_RECHECK: Duration = Duration::from_secs(15);
/// What a non-live stream tells `EventSource` to wait before reconnecting.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Which attempt, and from where.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// The attempt (1 for the first); default the latest.
    attempt: Option<u32>,
    /// The byte offset to read from; default 0.
    offset: Option<u64>,
}

/// A job's log from a byte offset, as plain text.
#[utoipa::path(get, path = "/jobs/{id}/log", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job"), LogQuery),
    responses(
        (status = 200, description = "Up to 1 MiB of the log from `offset`", content_type = "text/plain; charset=utf-8", body = String,
            headers(
                ("x-log-next-offset" = u64, description = "Where the next read starts"),
                ("x-log-complete" = bool, description = "The attempt ended and nothing is left to read"))),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "No such job or attempt", body = ErrorBody)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    _user: CurrentUser,
    IdPath(id): IdPath<JobId>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    let read = state
        .service
        .read_log(id, q.attempt, q.offset.unwrap_or(0), LOG_READ_MAX_BYTES)
        .await?;
    let mut response = Body::from(read.slice.data).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        runway_protocol::LOG_NEXT_OFFSET_HEADER,
        HeaderValue::from(read.slice.next_offset),
    );
    headers.insert(
        LOG_COMPLETE_HEADER,
        HeaderValue::from_static(if read.complete { "true" } else { "false" }),
    );
    if let Some(attempt) = read.attempt {
        headers.insert("x-log-attempt", HeaderValue::from(attempt));
    }
    Ok(response)
}

/// Text for one event from `data`, and how many bytes of `data` it covers: cut at
/// the last whole UTF-8 character unless the log is complete (then the tail goes
/// out, replaced where invalid). `None` when only part of a character is there yet.
fn event_text(data: &[u8], complete: bool) -> Option<(String, usize)> {
    let (text, used) = match std::str::from_utf8(data) {
        Ok(text) => (text.to_owned(), data.len()),
        Err(e) if e.error_len().is_none() && !complete => {
            let valid = e.valid_up_to();
            if valid == 0 {
                return None;
            }
            (String::from_utf8_lossy(&data[..valid]).into_owned(), valid)
        }
        Err(_) => (String::from_utf8_lossy(data).into_owned(), data.len()),
    };
    Some((text.replace("\r\n", "\n").replace('\r', "\n"), used))
}

struct Follow {
    service: Service,
    job: JobId,
    attempt: Option<u32>,
    offset: u64,
    live: bool,
    growth: tokio::sync::watch::Receiver<u64>,
    done: bool,
}

/// The next event of a follow, or `None` when the stream ends.
async fn next_event(mut f: Follow) -> Option<(Result<Event, Infallible>, Follow)> {
    if f.done {
        return None;
    }
    loop {
        f.growth.borrow_and_update();
        let read = match f
            .service
            .read_log(f.job, f.attempt, f.offset, EVENT_MAX_BYTES)
            .await
        {
            Ok(read) => read,
            Err(err) => {
                tracing::warn!(job.id = %f.job, error = %err, "a log stream could not read the log");
                f.done = true;
                let event = Event::default().event("error").data(err.to_string());
                return Some((Ok(event), f));
            }
        };
        // Pin the attempt once it is known, so a retry does not splice another
        // attempt's bytes onto this one's offsets.
        if f.attempt.is_none() {
            f.attempt = read.attempt;
        }
        let complete = read.complete;
        if let Some((text, used)) = event_text(&read.slice.data, complete)
            && used > 0
        {
            f.offset += used as u64;
            let event = Event::default().id(f.offset.to_string()).data(text);
            return Some((Ok(event), f));
        }
        if complete {
            f.done = true;
            let event = Event::default()
                .event("end")
                .id(f.offset.to_string())
                .data("the log is complete");
            return Some((Ok(event), f));
        }
        if !f.live || f.service.is_closing() {
            f.done = true;
            return Some((Ok(Event::default().retry(RECONNECT_AFTER)), f));
        }
        // Wake on any log's growth; an idle stream re-checks now and then anyway,
        // and the keep-alive comment keeps proxies from closing it.
        let _ = tokio::time::timeout(IDLE_RECHECK, f.growth.changed()).await;
    }
}

/// One event of a log stream, as the OpenAPI document describes each event of
/// `text/event-stream` (the stream itself is written by axum's `Sse`, in
/// [`next_event`]; a `retry:` line with no data is not an event).
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "only its schema is used")]
pub(crate) struct LogStreamEvent {
    /// `message` for log text, `end` once the log is complete (the stream then
    /// closes), `error` if reading the log failed.
    event: LogStreamEventKind,
    /// The log text (or the end or error notice).
    data: String,
    /// The byte offset after this event's data: send it as `Last-Event-ID`
    /// to resume.
    #[schema(pattern = "^[0-9]+$")]
    id: Option<String>,
    /// Reconnect after this many milliseconds.
    retry: Option<u32>,
}

/// The kinds of [`LogStreamEvent`].
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[expect(dead_code, reason = "only its schema is used")]
pub(crate) enum LogStreamEventKind {
    /// Log text.
    Message,
    /// The log is complete.
    End,
    /// The log could not be read.
    Error,
}

/// A job's log as server-sent events, resumable by byte offset.
#[utoipa::path(get, path = "/jobs/{id}/log/stream", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job"), LogQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this byte offset (beats `offset`)")),
    responses(
        (status = 200, description = "Events: `id` is the byte offset after the event's data; `event: end` closes a complete log", content_type = "text/event-stream", body = LogStreamEvent),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "No such job or attempt", body = ErrorBody)))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    _user: CurrentUser,
    IdPath(id): IdPath<JobId>,
    ApiQuery(q): ApiQuery<LogQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                ApiError::InvalidQuery(format!(
                    "Last-Event-ID must be a byte offset, got `{}`",
                    v.chars().take(40).collect::<String>()
                ))
            })
        })
        .transpose()?;
    // Fail before the stream starts for a job or attempt that does not exist.
    state.service.read_log(id, q.attempt, 0, 0).await?;
    let follow = Follow {
        growth: state.service.log_growth(),
        service: state.service.clone(),
        job: id,
        attempt: q.attempt,
        offset: resume.or(q.offset).unwrap_or(0),
        live: state.live_log_streams,
        done: false,
    };
    Ok(Sse::new(stream::unfold(follow, next_event)).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_never_splits_a_character_until_the_log_is_complete() {
        let data = "añ".as_bytes();
        // "a" and the first byte of "ñ".
        assert_eq!(event_text(&data[..2], false), Some(("a".into(), 1)));
        assert_eq!(event_text(&data[1..2], false), None);
        assert_eq!(event_text(data, false), Some(("añ".into(), 3)));
        // Complete: the dangling byte goes out as a replacement character.
        assert_eq!(event_text(&data[..2], true), Some(("a\u{fffd}".into(), 2)));
    }

    #[test]
    fn carriage_returns_become_newlines() {
        assert_eq!(
            event_text(b"10%\r20%\r\ndone\n", false),
            Some(("10%\n20%\ndone\n".into(), 14))
        );
    }
}
