//! Listings that cap the bytes of their response, not only the count of items.
//!
//! A page holds at most 100 items, but an item's size is bounded only by its own
//! limits, and a Lambda response may not pass 6 MB (API Gateway refuses it, and
//! the client gets a 502 instead of its page). So every listing stops adding items
//! once the encoded response would pass [`ApiConfig::listing_max_bytes`]
//! (default [`LISTING_MAX_BYTES`], 1 MiB: far under the Lambda limit, and a page a
//! browser renders at once), and returns the cursor to continue from the first
//! item left out; a client that pages on gets every item exactly once.
//!
//! One implementation serves every listing:
//!
//! * [`capped`], for the listings the store pages (jobs, agents, the audit log):
//!   it reads the page, measures each item as it will be encoded, and if they do
//!   not all fit reads the page again with the limit set to the number that fit.
//!   The store's own cursor then names the last item kept, so the API never forges
//!   a backend's cursor (each store has its own encoding), and a filtered listing
//!   pages on exactly as it would with that limit. The second read happens only
//!   when a page is too big; each round lowers the limit, so it ends.
//! * [`capped_items`], for a listing the API pages itself over a list it already
//!   holds (registration tokens): the leading items that fit, and the id of the
//!   last one as the cursor.
//!
//! A single item is never split: a page always holds at least one item, so paging
//! always progresses. No item comes near the cap by its own limits (a job summary
//! or an audit event is a few KiB at most).
//!
//! A user's sessions are listed whole and uncapped: a user holds at most 50
//! (`MAX_SESSIONS_PER_USER`), each under 1 KiB by its field limits, so that
//! listing is bounded far below the cap by construction.
//!
//! [`ApiConfig::listing_max_bytes`]: crate::ApiConfig::listing_max_bytes

use runway_core::page::{Cursor, Page, PageRequest};
use serde::Serialize;

use crate::error::ApiError;

/// The default cap on a listing's response body, in bytes.
pub const LISTING_MAX_BYTES: usize = 1024 * 1024;

/// Bytes kept back for the page around the items: `{"items":[…],"next_cursor":"…"}`
/// with a sealed cursor of well under a hundred characters.
const ENVELOPE_BYTES: usize = 512;

/// How many of `items`, from the first, fit in `max_bytes` once encoded as a
/// JSON array inside a page; at least one.
fn fitting<T: Serialize>(items: &[T], max_bytes: usize) -> Result<usize, ApiError> {
    let budget = max_bytes.saturating_sub(ENVELOPE_BYTES);
    let mut used = 0_usize;
    for (n, item) in items.iter().enumerate() {
        let size = serde_json::to_vec(item)
            .map_err(|e| ApiError::Internal(Box::new(e)))?
            .len()
            // The comma before every item but the first.
            + usize::from(n > 0);
        used = used.saturating_add(size);
        if used > budget {
            return Ok(n.max(1));
        }
    }
    Ok(items.len())
}

/// A page of a store-paged listing, read with `fetch`, whose items fit in
/// `max_bytes` once encoded; see the module docs.
///
/// # Errors
/// Whatever `fetch` returns; `Internal` if an item does not encode.
pub(crate) async fn capped<T, F, Fut>(
    request: PageRequest,
    max_bytes: usize,
    mut fetch: F,
) -> Result<Page<T>, ApiError>
where
    T: Serialize,
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, ApiError>>,
{
    let mut request = request;
    loop {
        let page = fetch(request.clone()).await?;
        let fit = fitting(&page.items, max_bytes)?;
        if fit >= page.items.len() {
            return Ok(page);
        }
        // `fit` is below the page's length, itself at most the limit: each round
        // asks for fewer, and a page of one always fits.
        request.limit = u32::try_from(fit).unwrap_or(1);
    }
}

/// The leading `items` that fit in `max_bytes`, and the cursor after the last one
/// kept (`cursor_of` it) if any were left out.
///
/// # Errors
/// `Internal` if an item does not encode.
pub(crate) fn capped_items<T: Serialize>(
    mut items: Vec<T>,
    max_bytes: usize,
    cursor_of: impl Fn(&T) -> Cursor,
) -> Result<Page<T>, ApiError> {
    let fit = fitting(&items, max_bytes)?;
    if fit >= items.len() {
        return Ok(Page {
            items,
            next_cursor: None,
        });
    }
    items.truncate(fit);
    let next_cursor = items.last().map(cursor_of);
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_fit_until_the_next_would_pass_the_cap_and_one_always_fits() {
        let items = vec!["x".repeat(100); 10];
        // Each item encodes to 102 bytes, plus a comma after the first.
        assert_eq!(fitting(&items, ENVELOPE_BYTES + 102).unwrap(), 1);
        assert_eq!(fitting(&items, ENVELOPE_BYTES + 102 + 103).unwrap(), 2);
        assert_eq!(fitting(&items, ENVELOPE_BYTES + 102 + 103 - 1).unwrap(), 1);
        assert_eq!(fitting(&items, usize::MAX).unwrap(), 10);
        assert_eq!(fitting(&items, 0).unwrap(), 1);
        assert_eq!(fitting::<String>(&[], 0).unwrap(), 0);
    }

    #[tokio::test]
    async fn a_page_too_big_is_read_again_with_the_limit_that_fits() {
        let all: Vec<String> = (0..10).map(|n| format!("{n}{}", "y".repeat(99))).collect();
        let mut limits = Vec::new();
        let page = capped(
            PageRequest {
                limit: 10,
                after: None,
            },
            ENVELOPE_BYTES + 3 * 103,
            |request| {
                limits.push(request.limit);
                let all = all.clone();
                async move {
                    let n = request.limit as usize;
                    Ok(Page {
                        items: all[..n].to_vec(),
                        next_cursor: Some(Cursor(format!("after-{}", n - 1))),
                    })
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(limits, [10, 3]);
        assert_eq!(page.items, all[..3]);
        assert_eq!(page.next_cursor, Some(Cursor("after-2".into())));
    }
}
