//! Extractors whose rejections are [`ApiError`]s, so malformed input gets the
//! envelope and a precise code instead of axum's plain-text rejection.
//!
//! * [`ApiJson`] reads the body itself (still bounded by `DefaultBodyLimit`),
//!   parses it into a `serde_json::Value` and reads that with `serde_path_to_error`,
//!   so a wrong type is reported with the path of the field (`capacity: invalid
//!   type…`), which `serde_json` alone does not say.
//!   Syntax errors are 400 `invalid_json`; well-formed JSON of the wrong shape is 422
//!   `validation_failed`, and so is a body that is not an object (serde would read
//!   an array as a struct's fields in order); a float with no fractional part is
//!   read as an integer, as JSON Schema counts it (see `from_value`).
//! * [`OptionalJson`] is the same for endpoints whose body may be left out (or be
//!   `null`).
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

/// A JSON body that may be absent (an empty body, or `null`, means `T::default()`).
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

/// Parses `bytes` as JSON, or a 400 `invalid_json`.
fn parse_value(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::InvalidJson(format!("the body is not valid JSON: {e}")))
}

/// Reads `value` as `T`, telling the client which field is wrong.
///
/// Two rules make the body mean exactly what the OpenAPI document says:
///
/// * It must be an object: serde's derived `Deserialize` of a struct also
///   accepts an array of its fields in order (`["ci", "make"]` for
///   `{"name": "ci", "script": "make"}`), a second spelling the document does not
///   describe and no client should come to rely on. Anything else is a 422 saying
///   what it is.
/// * A number with no fractional part is an integer, as JSON Schema says (`21.0`
///   is a valid `"type": "integer"`), where serde would refuse it for a `u32`.
fn from_value<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, ApiError> {
    let kind = match &value {
        serde_json::Value::Object(_) => None,
        serde_json::Value::Array(_) => Some("an array"),
        serde_json::Value::String(_) => Some("a string"),
        serde_json::Value::Number(_) => Some("a number"),
        serde_json::Value::Bool(_) => Some("a boolean"),
        serde_json::Value::Null => Some("null"),
    };
    if let Some(kind) = kind {
        return Err(ApiError::Validation(format!(
            "the body must be a JSON object, not {kind}"
        )));
    }
    integral_floats_to_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." {
            ApiError::Validation(inner.to_string())
        } else {
            ApiError::Validation(format!("{path}: {inner}"))
        }
    })
}

/// Rewrites every float with no fractional part that fits a 64-bit integer as
/// that integer, in place.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
            {
                // The value is integral and the bounds are exact powers of two, so
                // each cast below is exact.
                let integer = if (-(2f64.powi(63))..2f64.powi(63)).contains(&f) {
                    Some(serde_json::Number::from(f as i64))
                } else if (0.0..2f64.powi(64)).contains(&f) {
                    Some(serde_json::Number::from(f as u64))
                } else {
                    None
                };
                if let Some(integer) = integer {
                    *n = integer;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// Parses `bytes` as `T`: syntax errors are 400 `invalid_json`, the rest 422 (see
/// [`from_value`]).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    from_value(parse_value(bytes)?)
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
        // The document declares these bodies nullable: `null` is no body too.
        match parse_value(&bytes)? {
            serde_json::Value::Null => Ok(Self(T::default())),
            value => from_value(value).map(Self),
        }
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

    #[test]
    fn a_body_that_is_json_but_not_an_object_is_a_validation_error_naming_what_it_is() {
        // serde would read this array as the struct's fields in order.
        for (body, kind) in [
            (&br#"["a", 1]"#[..], "an array"),
            (b" \n[]", "an array"),
            (b"\"a\"", "a string"),
            (b"7", "a number"),
            (b"-1.5", "a number"),
            (b"true", "a boolean"),
            (b"null", "null"),
        ] {
            let Err(ApiError::Validation(m)) = parse_json::<Probe>(body) else {
                panic!("{} was not refused", String::from_utf8_lossy(body))
            };
            assert_eq!(m, format!("the body must be a JSON object, not {kind}"));
        }
        for broken in [&b"[1,"[..], b"", b"  ", b"nul", br#"{"name":"a"} x"#] {
            assert!(
                matches!(parse_json::<Probe>(broken), Err(ApiError::InvalidJson(_))),
                "{}",
                String::from_utf8_lossy(broken)
            );
        }
        assert!(parse_json::<Probe>(b" {\"name\":\"a\",\"capacity\":1}").is_ok());
    }

    #[derive(Debug, serde::Deserialize)]
    struct Numbers {
        small: u32,
        negative: i32,
        big: u64,
        real: f64,
    }

    #[test]
    fn an_integral_float_is_read_as_the_integer_json_schema_says_it_is() {
        let n: Numbers = parse_json(
            br#"{"small": 21.0, "negative": -215.0, "big": 1.8446744073709549568e19, "real": 2.0}"#,
        )
        .unwrap();
        assert_eq!((n.small, n.negative, n.real), (21, -215, 2.0));
        assert_eq!(n.big, 18_446_744_073_709_549_568);
        let Err(ApiError::Validation(m)) =
            parse_json::<Numbers>(br#"{"small": 2.5, "negative": 0, "big": 0, "real": 0}"#)
        else {
            panic!("a fraction was accepted for an integer")
        };
        assert!(m.starts_with("small:"), "{m}");
        let Err(ApiError::Validation(m)) = parse_json::<Numbers>(
            br#"{"small": 4294967296.0, "negative": 0, "big": 0, "real": 0}"#,
        ) else {
            panic!("an integer out of range was accepted")
        };
        assert!(m.starts_with("small:"), "{m}");
    }
}
