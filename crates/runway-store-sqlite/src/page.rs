//! Cursor pagination over ULID primary keys.
//!
//! Listings are `ORDER BY id DESC` (ids are ULIDs, so newest first) and a page
//! continues with `id < cursor`: a keyset seek on the primary key or on an index
//! ending in `id`, so page 1,000 costs the same as page 1 and rows inserted
//! meanwhile never shift a page. We fetch `limit + 1` rows to learn whether another
//! page exists without a second query. The cursor is the last returned id; callers
//! treat it as opaque, and anything that is not a ULID is `InvalidCursor`.

use runway_core::page::{Cursor, MAX_LIMIT, Page, PageRequest};
use runway_core::store::{StoreError, StoreResult};
use rusqlite::types::Value;
use ulid::Ulid;

/// A decoded page request.
#[derive(Debug)]
pub(crate) struct Seek {
    /// Rows to return, 1 to [`MAX_LIMIT`].
    pub(crate) limit: usize,
    /// Only ids below this one (canonical ULID text).
    pub(crate) before: Option<String>,
}

impl Seek {
    pub(crate) fn new(page: &PageRequest) -> StoreResult<Self> {
        let before = page
            .after
            .as_ref()
            .map(|Cursor(text)| {
                Ulid::from_string(text)
                    .map(|ulid| ulid.to_string())
                    .map_err(|_| StoreError::InvalidCursor)
            })
            .transpose()?;
        let limit = usize::try_from(page.limit.clamp(1, MAX_LIMIT)).unwrap_or(1);
        Ok(Self { limit, before })
    }

    /// The SQL `LIMIT`: one more than the page, to see whether there is a next one.
    fn fetch(&self) -> i64 {
        i64::try_from(self.limit)
            .unwrap_or(i64::MAX)
            .saturating_add(1)
    }

    /// Completes a newest-first listing: adds the cursor bound to `conditions`, binds
    /// it and the `LIMIT` after `values`, and returns the statement over `table`.
    pub(crate) fn select(
        &self,
        columns: &str,
        table: &str,
        mut conditions: Vec<&'static str>,
        values: &mut Vec<Value>,
    ) -> String {
        if let Some(before) = &self.before {
            conditions.push("id < ?");
            values.push(Value::Text(before.clone()));
        }
        values.push(Value::Integer(self.fetch()));
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        format!("SELECT {columns} FROM {table} {filter} ORDER BY id DESC LIMIT ?")
    }

    /// Trims the extra row and sets the cursor from the last item kept.
    pub(crate) fn finish<T>(&self, mut items: Vec<T>, id_of: impl Fn(&T) -> String) -> Page<T> {
        let next_cursor = if items.len() > self.limit {
            items.truncate(self.limit);
            items.last().map(|last| Cursor(id_of(last)))
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped_to_between_one_and_a_hundred() {
        for (asked, got) in [(0, 1), (1, 1), (100, 100), (5000, 100)] {
            let seek = Seek::new(&PageRequest {
                limit: asked,
                after: None,
            })
            .unwrap();
            assert_eq!(seek.limit, got);
        }
    }

    #[test]
    fn a_cursor_that_is_not_an_id_is_invalid() {
        let err = Seek::new(&PageRequest {
            limit: 10,
            after: Some(Cursor("'; DROP TABLE jobs; --".into())),
        })
        .unwrap_err();
        assert!(matches!(err, StoreError::InvalidCursor));
    }

    #[test]
    fn a_full_page_plus_one_yields_a_cursor_at_the_last_item_kept() {
        let seek = Seek::new(&PageRequest {
            limit: 2,
            after: None,
        })
        .unwrap();
        let page = seek.finish(vec![3, 2, 1], ToString::to_string);
        assert_eq!(page.items, [3, 2]);
        assert_eq!(page.next_cursor, Some(Cursor("2".into())));
        let last = seek.finish(vec![1, 0], ToString::to_string);
        assert_eq!(last.next_cursor, None);
    }
}
