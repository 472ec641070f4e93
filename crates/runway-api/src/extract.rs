//! Extractors whose rejections are [`ApiError`]s, so malformed input gets the
//! envelope and a precise code instead of axum's plain-text rejection.
//!
//! * [`ApiJson`] reads the body itself (still bounded by `DefaultBodyLimit`) and
//!   parses it with `serde_path_to_error`, so a wrong type is reported with the path
//!   of the field (`capacity: invalid type…`), which `serde_json` alone does not say.
//!   Syntax errors are 400 `invalid_json`; well-formed JSON of the wrong shape is 422
//!   `validation_failed`.
//! * [`OptionalJson`] is the same for endpoints whose body may be left out.
//! * [`Octets`] is a raw `application/octet-stream` body (log chunks), with the
//!   same 413 and 415 answers.
//! * [`ApiQuery`] maps a bad query string to 400 `invalid_query`.
//! * [`IdPath`] parses a ULID path segment; a malformed id is a 404, because no record
//!   can have it, which is what the client needs to know.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// A JSON body, or an [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

/// A JSON body that may be absent (an empty body means `T::default()`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

/// Whether the request declares a JSON body: `application/json` or `application/*+json`,
/// with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

fn body_error(rejection: &BytesRejection, limit_hint: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(limit_hint)
    } else {
        ApiError::InvalidJson("the request body could not be read".into())
    }
}

/// Parses `bytes` as `T`, telling syntax errors from shape errors.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut *de);
    let value = parsed.map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                if path == "." {
                    ApiError::Validation(inner.to_string())
                } else {
                    ApiError::Validation(format!("{path}: {inner}"))
                }
            }
            _ => ApiError::InvalidJson(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    // Trailing characters after the value are a syntax error too.
    de.end()
        .map_err(|e| ApiError::InvalidJson(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Reads the body, bounded by `DefaultBodyLimit` in size and by the body-read
/// timeout in time (all of it, not between chunks: a trickle does not hold the
/// request open); the state knows both for the messages (axum keeps its own copy
/// of the limit private). Every body extractor reads through here.
async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    tokio::time::timeout(state.body_read_timeout, Bytes::from_request(req, state))
        .await
        .map_err(|_| ApiError::BodyTimeout(state.body_read_timeout.as_secs()))?
        .map_err(|r| body_error(&r, state.max_body_bytes))
}

impl<T> FromRequest<AppState> for ApiJson<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(JSON));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(Self)
    }
}

/// The media type JSON bodies are declared with.
const JSON: &str = "application/json";
/// The media type raw bodies are declared with.
const OCTET_STREAM: &str = "application/octet-stream";

/// A raw `application/octet-stream` body, or an [`ApiError`].
#[derive(Debug, Clone, Default)]
pub struct Octets(pub Bytes);

impl FromRequest<AppState> for Octets {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let declared = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(OCTET_STREAM));
        if !declared {
            return Err(ApiError::UnsupportedMediaType(OCTET_STREAM));
        }
        read_body(req, state).await.map(Self)
    }
}

impl<T> FromRequest<AppState> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let declared = is_json(req.headers());
        let bytes = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        if !declared {
            return Err(ApiError::UnsupportedMediaType(JSON));
        }
        parse_json(&bytes).map(Self)
    }
}

/// A query string, or a 400 `invalid_query`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Self(q))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let text = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::InvalidQuery(format!("invalid query string: {text}"))
            })
    }
}

/// One id from the path; a malformed id is a 404.
#[derive(Debug, Clone, Copy)]
pub struct IdPath<T>(pub T);

impl<T, S> FromRequestParts<S> for IdPath<T>
where
    T: FromStr + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("record"))?;
        raw.parse()
            .map(Self)
            .map_err(|_| ApiError::not_found("record (the id is not a valid ULID)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn json_content_types_are_recognised_with_parameters_and_suffixes() {
        assert!(is_json(&headers("application/json")));
        assert!(is_json(&headers("Application/JSON; charset=utf-8")));
        assert!(is_json(&headers("application/problem+json")));
        assert!(!is_json(&headers("text/json")));
        assert!(!is_json(&headers("text/plain")));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialized")]
    struct Probe {
        name: String,
        capacity: u32,
    }

    #[test]
    fn a_syntax_error_is_invalid_json_and_a_shape_error_names_the_field() {
        assert!(matches!(
            parse_json::<Probe>(b"{\"name\":"),
            Err(ApiError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_json::<Probe>(br#"{"name":"a","capacity":1} x"#),
            Err(ApiError::InvalidJson(_))
        ));
        let Err(ApiError::Validation(m)) = parse_json::<Probe>(br#"{"name":"a","capacity":"x"}"#)
        else {
            panic!("expected a validation error")
        };
        assert!(m.starts_with("capacity:"), "{m}");
        let Err(ApiError::Validation(m)) =
            parse_json::<Probe>(br#"{"name":"a","capacity":1,"colour":2}"#)
        else {
            panic!("expected a validation error")
        };
        assert!(m.contains("colour"), "{m}");
        let Err(ApiError::Validation(m)) = parse_json::<Probe>(br#"{"name":"a"}"#) else {
            panic!("expected a validation error")
        };
        assert!(m.contains("capacity"), "{m}");
    }
}
