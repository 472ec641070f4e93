//! Cursor pagination.
//!
//! A cursor is opaque to clients and to the API layer: each backend encodes its own
//! position in it (SQLite the last id seen, DynamoDB its `LastEvaluatedKey`), and
//! rejects a cursor it cannot decode with [`crate::store::StoreError::InvalidCursor`].

use serde::Serialize;
use utoipa::ToSchema;

/// Most items in one page.
pub const MAX_LIMIT: u32 = 100;
/// Items in a page when no limit is given.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most records a filtered listing examines for one page. A filter that drops
/// most records (agents by health, the audit log by action) would otherwise read
/// without bound looking for a full page; instead the page ends early, possibly
/// empty, with a cursor at the last record examined, and the client follows it.
pub const EXAMINE_MAX: usize = 1_000;

/// An opaque position in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct Cursor(pub String);

/// Which page to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items, 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// Continue after this position; `None` for the first page.
    pub after: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// One page of a listing. `next_cursor` is the only sign that more may follow: a
/// page of a filtered listing can be short, or empty, and still have one.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Pass this back as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// Maps the items, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}
