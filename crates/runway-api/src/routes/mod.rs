//! The endpoints, one module per group, plus the small helpers they share.
//!
//! Handlers are thin: extract (which authenticates and validates), call the narrow
//! store capability, shape the response. Response types live next to their handler
//! and derive `ToSchema`, so the OpenAPI document describes exactly what is sent.

use runway_core::page::{Cursor, MAX_LIMIT, PageRequest};
use runway_core::secret::Secret;
use runway_core::store::StoreError;
use serde::Serializer;

use crate::error::ApiError;

pub(crate) mod agent_protocol;
pub(crate) mod agents;
pub(crate) mod jobs;
pub(crate) mod registration_tokens;
pub(crate) mod sessions;
pub(crate) mod system;

/// Writes a freshly issued token into the one response that shows it. Keeping it a
/// [`Secret`] until then means `Debug` of the response never prints it.
pub(crate) fn expose_secret<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// Maps a store's `NotFound` to a 404 naming the kind of record; other errors as usual.
pub(crate) fn or_not_found(kind: &'static str) -> impl FnOnce(StoreError) -> ApiError {
    move |err| match err {
        StoreError::NotFound => ApiError::not_found(kind),
        other => other.into(),
    }
}

/// Builds a page request from query parameters; `limit` outside 1–100 is a 400
/// `invalid_query` like any other bad query value.
pub(crate) fn page_request(
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<PageRequest, ApiError> {
    let mut page = PageRequest::default();
    if let Some(limit) = limit {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::InvalidQuery(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {limit}"
            )));
        }
        page.limit = limit;
    }
    page.after = cursor.map(Cursor);
    Ok(page)
}

/// Checks an optional free-text field: at most `max` characters, no control characters.
pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::field(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_outside_1_to_100_is_an_invalid_query() {
        assert!(matches!(
            page_request(Some(0), None),
            Err(ApiError::InvalidQuery(_))
        ));
        assert!(matches!(
            page_request(Some(101), None),
            Err(ApiError::InvalidQuery(_))
        ));
        assert_eq!(page_request(Some(100), None).unwrap().limit, 100);
        assert_eq!(page_request(None, None).unwrap().limit, 50);
    }

    #[test]
    fn free_text_is_bounded_and_free_of_control_characters() {
        assert!(check_text("d", "laptop", 100).is_ok());
        assert!(check_text("d", &"x".repeat(101), 100).is_err());
        assert!(check_text("d", "a\nb", 100).is_err());
    }
}
