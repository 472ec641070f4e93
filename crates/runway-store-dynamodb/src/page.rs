//! Cursors, and listings through a `KEYS_ONLY` GSI.
//!
//! ## Cursors
//!
//! A cursor is the base64url (no padding) of the last id returned. It is opaque to
//! clients; what makes it robust is that it is a *position*, not a DynamoDB
//! `LastEvaluatedKey`: the next page is the key condition `id < :before` on the same
//! index, so a cursor stays valid when the item it names has been deleted, and a
//! page costs the same however deep it is. Anything that does not decode to a ULID
//! is [`StoreError::InvalidCursor`].
//!
//! ## Listing
//!
//! [`DynamoStore::list_index`] is every newest-first listing (jobs, agents, a
//! user's sessions):
//!
//! 1. `Query` the index, newest first (`ScanIndexForward=false`), for ids below the
//!    cursor; the index is `KEYS_ONLY`, so this reads ids only;
//! 2. `BatchGetItem` those ids with `ConsistentRead=true`, in chunks of 100,
//!    retrying `UnprocessedKeys` with backoff;
//! 3. apply the caller's filter to the fresh items, in code;
//! 4. repeat from the last id the index returned until `limit + 1` items passed
//!    (one extra, to know whether a next page exists) or the index is exhausted.
//!
//! GSIs are eventually consistent, so the index may still list an item that was
//! deleted or has moved on (a job that left `queued`): step 2 drops the first and
//! step 3 the second, because the filter is checked again on the item itself. An
//! item written a moment ago may be missing from the index for a moment; that is
//! the one visible effect of eventual consistency, and the reason point reads by id
//! or token never go through a GSI.
//!
//! Filters that drop items (agent status, the audit log's action) read the index in
//! chunks of 100 ids (one `BatchGetItem`), so a sparse filter needs few round trips;
//! the cursor is the last item *returned*, so reading ahead never skips anything.
//! Such listings are bounded ([`DynamoStore::list_index_bounded`]): a page examines
//! at most [`EXAMINE_MAX`] index entries, and if it runs out before it is full, its
//! cursor is the last id *examined* instead, so a filter that matches nothing costs
//! ten reads of 100 per page rather than the whole table, and the client pages on.
//!
//! A time range (the audit log) narrows the key condition to an id range
//! ([`Seek::within`]): ids are ULIDs, stamped with the time they were made.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use runway_core::page::{Cursor, EXAMINE_MAX, MAX_LIMIT, Page, PageRequest};
use runway_core::store::{StoreError, StoreResult};
use ulid::Ulid;

use crate::DynamoStore;
use crate::error::{RETRY_AFTER, sdk_error};
use crate::items::{Item, string};

/// `BatchGetItem` takes at most this many keys.
const BATCH_GET_MAX: usize = 100;
/// Retries of `UnprocessedKeys` before giving up as unavailable.
const UNPROCESSED_RETRIES: u32 = 8;

/// A decoded page request.
#[derive(Debug)]
pub(crate) struct Seek {
    /// Items to return, 1 to [`MAX_LIMIT`].
    pub(crate) limit: usize,
    /// Only ids below this one (canonical ULID text).
    pub(crate) before: Option<String>,
    /// Only ids at or above this one: the floor of a time range.
    pub(crate) lowest: Option<String>,
}

impl Seek {
    pub(crate) fn new(page: &PageRequest) -> StoreResult<Self> {
        let before = page.after.as_ref().map(decode_cursor).transpose()?;
        let limit = usize::try_from(page.limit.clamp(1, MAX_LIMIT)).unwrap_or(1);
        Ok(Self {
            limit,
            before,
            lowest: None,
        })
    }

    /// Narrows the seek to ids in `[lowest, below)` (a time range's id range),
    /// keeping the cursor's bound if it is lower.
    pub(crate) fn within(mut self, lowest: Option<Ulid>, below: Option<Ulid>) -> Self {
        if let Some(below) = below.map(|id| id.to_string())
            && self.before.as_ref().is_none_or(|before| below < *before)
        {
            self.before = Some(below);
        }
        self.lowest = lowest.map(|id| id.to_string());
        self
    }

    /// [`Seek::finish`] for a bounded listing: when the listing stopped at its
    /// budget with no extra item, the cursor is the last id it examined, so the
    /// next page goes on from there.
    pub(crate) fn finish_bounded<T>(
        &self,
        listed: Bounded<T>,
        id_of: impl Fn(&T) -> String,
    ) -> Page<T> {
        let mut page = self.finish(listed.items, id_of);
        if page.next_cursor.is_none() {
            page.next_cursor = listed.examined_up_to.as_deref().map(encode_cursor);
        }
        page
    }

    /// Trims the extra item and sets the cursor from the last item kept.
    pub(crate) fn finish<T>(&self, mut items: Vec<T>, id_of: impl Fn(&T) -> String) -> Page<T> {
        let next_cursor = if items.len() > self.limit {
            items.truncate(self.limit);
            items.last().map(|last| encode_cursor(&id_of(last)))
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// The cursor for a position after `id`.
pub(crate) fn encode_cursor(id: &str) -> Cursor {
    Cursor(URL_SAFE_NO_PAD.encode(id))
}

/// The id a cursor stands for, or `InvalidCursor`.
pub(crate) fn decode_cursor(cursor: &Cursor) -> StoreResult<String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(&cursor.0)
        .map_err(|_| StoreError::InvalidCursor)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| StoreError::InvalidCursor)?;
    Ulid::from_string(text)
        .map(|ulid| ulid.to_string())
        .map_err(|_| StoreError::InvalidCursor)
}

/// Which index to list, and by what partition.
#[derive(Debug)]
pub(crate) struct IndexQuery<'a> {
    /// The full table name.
    pub(crate) table: &'a str,
    /// The index name.
    pub(crate) index: &'static str,
    /// The index's partition key attribute and the value to list.
    pub(crate) partition: (&'static str, AttributeValue),
    /// The table's key, which is the index's sort key (a ULID id).
    pub(crate) id: &'static str,
    /// Whether the caller's filter may drop items (read ahead in bigger chunks).
    pub(crate) filtered: bool,
}

/// What a bounded listing found.
#[derive(Debug)]
pub(crate) struct Bounded<T> {
    /// Up to `limit + 1` items that passed the filter.
    pub(crate) items: Vec<T>,
    /// Set when the listing ran out of budget before the index did: the last id
    /// examined, where the next page starts.
    pub(crate) examined_up_to: Option<String>,
}

/// `BatchGetItem` kept returning `UnprocessedKeys`: the table is throttling.
#[derive(Debug, thiserror::Error)]
#[error("BatchGetItem left keys unprocessed after {UNPROCESSED_RETRIES} retries")]
pub(crate) struct Unprocessed;

/// The id in `item`'s `attribute`, if it is a string.
pub(crate) fn id_in(item: &Item, attribute: &str) -> Option<String> {
    match item.get(attribute) {
        Some(AttributeValue::S(id)) => Some(id.clone()),
        _ => None,
    }
}

impl DynamoStore {
    /// Up to `seek.limit + 1` items from `query`'s index, newest first, fetched
    /// consistently and kept only if `keep` says so. See the module docs.
    pub(crate) async fn list_index<T>(
        &self,
        query: &IndexQuery<'_>,
        seek: &Seek,
        decode: impl Fn(Item) -> StoreResult<T>,
        keep: impl Fn(&T) -> bool,
    ) -> StoreResult<Vec<T>> {
        Ok(self
            .scan_index(query, seek, decode, keep, usize::MAX)
            .await?
            .items)
    }

    /// [`DynamoStore::list_index`] that examines at most [`EXAMINE_MAX`] index
    /// entries: for filters that may drop most items, so that no request reads
    /// without bound. Finish the page with [`Seek::finish_bounded`].
    pub(crate) async fn list_index_bounded<T>(
        &self,
        query: &IndexQuery<'_>,
        seek: &Seek,
        decode: impl Fn(Item) -> StoreResult<T>,
        keep: impl Fn(&T) -> bool,
    ) -> StoreResult<Bounded<T>> {
        self.scan_index(query, seek, decode, keep, EXAMINE_MAX)
            .await
    }

    async fn scan_index<T>(
        &self,
        query: &IndexQuery<'_>,
        seek: &Seek,
        decode: impl Fn(Item) -> StoreResult<T>,
        keep: impl Fn(&T) -> bool,
        budget: usize,
    ) -> StoreResult<Bounded<T>> {
        let wanted = seek.limit + 1;
        let mut out = Vec::with_capacity(wanted);
        let mut before = seek.before.clone();
        let mut examined = 0_usize;
        loop {
            let chunk = if query.filtered {
                BATCH_GET_MAX
            } else {
                wanted - out.len()
            }
            .min(budget - examined);
            let (ids, exhausted) = self
                .index_ids(query, before.as_deref(), seek.lowest.as_deref(), chunk)
                .await?;
            examined += ids.len();
            let mut items = self.batch_get(query.table, query.id, &ids).await?;
            for id in &ids {
                if let Some(item) = items.remove(id) {
                    let value = decode(item)?;
                    if keep(&value) {
                        out.push(value);
                    }
                }
            }
            match ids.last() {
                Some(last) if !exhausted && out.len() < wanted => {
                    before = Some(last.clone());
                    if examined >= budget {
                        out.truncate(wanted);
                        return Ok(Bounded {
                            items: out,
                            examined_up_to: before,
                        });
                    }
                }
                _ => break,
            }
        }
        out.truncate(wanted);
        Ok(Bounded {
            items: out,
            examined_up_to: None,
        })
    }

    /// Up to `limit` ids from the index below `before`, newest first, and whether
    /// the index has no more.
    async fn index_ids(
        &self,
        query: &IndexQuery<'_>,
        before: Option<&str>,
        lowest: Option<&str>,
        limit: usize,
    ) -> StoreResult<(Vec<String>, bool)> {
        let (partition_attribute, partition_value) = &query.partition;
        let mut request = self
            .client
            .query()
            .table_name(query.table)
            .index_name(query.index)
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .expression_attribute_names("#pk", *partition_attribute)
            .expression_attribute_values(":pk", partition_value.clone());
        // A key condition has one bound on the sort key, or BETWEEN (inclusive at
        // both ends): `id < before` becomes `id <= the ULID just below it`.
        request = match (before, lowest) {
            (Some(before), None) => request
                .key_condition_expression("#pk = :pk AND #id < :before")
                .expression_attribute_names("#id", query.id)
                .expression_attribute_values(":before", string(before)),
            (None, Some(lowest)) => request
                .key_condition_expression("#pk = :pk AND #id >= :lowest")
                .expression_attribute_names("#id", query.id)
                .expression_attribute_values(":lowest", string(lowest)),
            (Some(before), Some(lowest)) => {
                let Some(highest) = just_below(before) else {
                    return Ok((Vec::new(), true));
                };
                if highest.as_str() < lowest {
                    return Ok((Vec::new(), true));
                }
                request
                    .key_condition_expression("#pk = :pk AND #id BETWEEN :lowest AND :highest")
                    .expression_attribute_names("#id", query.id)
                    .expression_attribute_values(":lowest", string(lowest))
                    .expression_attribute_values(":highest", string(highest))
            }
            (None, None) => request.key_condition_expression("#pk = :pk"),
        };
        let output = request.send().await.map_err(sdk_error)?;
        let ids = output
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| id_in(item, query.id))
            .collect();
        Ok((ids, output.last_evaluated_key.is_none()))
    }

    /// Reads `ids` from `table` (key attribute `key`) with strongly consistent
    /// reads; ids with no item are simply missing from the map.
    pub(crate) async fn batch_get(
        &self,
        table: &str,
        key: &'static str,
        ids: &[String],
    ) -> StoreResult<HashMap<String, Item>> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_MAX) {
            let keys = chunk
                .iter()
                .map(|id| HashMap::from([(key.to_owned(), string(id))]))
                .collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(StoreError::internal)?;
            let mut retries = 0;
            loop {
                let mut output = self
                    .client
                    .batch_get_item()
                    .request_items(table, request)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                let items = output
                    .responses
                    .as_mut()
                    .and_then(|responses| responses.remove(table))
                    .unwrap_or_default();
                for item in items {
                    if let Some(id) = id_in(&item, key) {
                        found.insert(id, item);
                    }
                }
                match output
                    .unprocessed_keys
                    .and_then(|mut unprocessed| unprocessed.remove(table))
                {
                    Some(rest) if !rest.keys().is_empty() => {
                        retries += 1;
                        if retries > UNPROCESSED_RETRIES {
                            return Err(StoreError::unavailable(Unprocessed, Some(RETRY_AFTER)));
                        }
                        let backoff = Duration::from_millis(25 << retries.min(5));
                        tokio::time::sleep(backoff).await;
                        request = rest;
                    }
                    _ => break,
                }
            }
        }
        Ok(found)
    }
}

/// The greatest ULID below `id`, as text; `None` below the smallest.
fn just_below(id: &str) -> Option<String> {
    let ulid = Ulid::from_string(id).ok()?;
    u128::from(ulid)
        .checked_sub(1)
        .map(|below| Ulid::from(below).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seek(limit: u32, after: Option<Cursor>) -> StoreResult<Seek> {
        Seek::new(&PageRequest { limit, after })
    }

    #[test]
    fn a_cursor_round_trips_to_the_id_it_was_made_from() {
        let id = Ulid::new().to_string();
        let cursor = encode_cursor(&id);
        assert_ne!(cursor.0, id, "the cursor is opaque, not the id itself");
        assert!(
            cursor
                .0
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{cursor:?} is URL-safe"
        );
        assert_eq!(decode_cursor(&cursor).unwrap(), id);
    }

    #[test]
    fn a_cursor_that_is_not_base64_of_an_id_is_invalid() {
        for garbage in [
            "garbage!",
            "",
            "' OR 1=1 --",
            "\u{1F680}",
            // Valid base64url of text that is not a ULID.
            "aGVsbG8",
            // Valid base64url of bytes that are not UTF-8.
            "__8",
        ] {
            let result = decode_cursor(&Cursor(garbage.into()));
            assert!(
                matches!(result, Err(StoreError::InvalidCursor)),
                "{garbage:?}: {result:?}"
            );
        }
        // A bare id (what the SQLite backend issues) is not a cursor here.
        let bare = Ulid::new().to_string();
        assert!(matches!(
            decode_cursor(&Cursor(bare)),
            Err(StoreError::InvalidCursor)
        ));
    }

    #[test]
    fn a_time_range_narrows_the_seek_but_never_widens_the_cursor() {
        let (low, mid, high) = (
            Ulid::from_parts(10, 0),
            Ulid::from_parts(20, 0),
            Ulid::from_parts(30, 0),
        );
        let cursor = encode_cursor(&mid.to_string());
        let narrowed = seek(5, Some(cursor.clone()))
            .unwrap()
            .within(Some(low), Some(high));
        assert_eq!(
            narrowed.before,
            Some(mid.to_string()),
            "the cursor is lower"
        );
        assert_eq!(narrowed.lowest, Some(low.to_string()));
        let below = seek(5, Some(cursor)).unwrap().within(None, Some(low));
        assert_eq!(below.before, Some(low.to_string()), "the range is lower");
        assert_eq!(just_below(&Ulid::nil().to_string()), None);
        assert_eq!(
            just_below(&high.to_string()),
            Some(Ulid::from(u128::from(high) - 1).to_string())
        );
    }

    #[test]
    fn limits_are_clamped_to_between_one_and_a_hundred() {
        for (asked, got) in [(0, 1), (1, 1), (100, 100), (5000, 100)] {
            assert_eq!(seek(asked, None).unwrap().limit, got);
        }
    }

    #[test]
    fn a_full_page_plus_one_yields_a_cursor_at_the_last_item_kept() {
        let ids: Vec<String> = (0..3).map(|_| Ulid::new().to_string()).collect();
        let s = seek(2, None).unwrap();
        let page = s.finish(ids.clone(), Clone::clone);
        assert_eq!(page.items, ids[..2]);
        let cursor = page.next_cursor.expect("a next page");
        assert_eq!(decode_cursor(&cursor).unwrap(), ids[1]);
        let next = seek(2, Some(cursor)).unwrap();
        assert_eq!(next.before.as_deref(), Some(ids[1].as_str()));
        assert_eq!(s.finish(ids[..2].to_vec(), Clone::clone).next_cursor, None);
    }
}
