//! Job logs: the bytes in S3, the index in the job item.
//!
//! A DynamoDB write unit is 1 KB, so a GB of logs would cost ~$0.63 in writes
//! there against cents in S3 PUTs; the bytes therefore go to S3, one immutable
//! object per accepted chunk, and DynamoDB keeps only the index: each attempt's
//! `log_bytes` (the log's size) and `log_crc32` (its running CRC-32), two fields of
//! the attempt inside the job item.
//!
//! ## Keys
//!
//! `<log_prefix><job id>/<attempt>/<start>-<end>-<crc before>-<crc after>`: the
//! chunk's first and past-the-end offsets as 20 zero-padded digits (so the keys of
//! an attempt list in offset order), and the log's CRC-32 before and after the chunk
//! as 8 hex digits. A key names the state of the log it continues (`start`, `crc
//! before`) and the state it leaves (`end`, `crc after`).
//!
//! ## Appending
//!
//! 1. Read the attempt's `log_bytes` and `log_crc32` (consistent `GetItem`).
//! 2. [`placement`] decides: a gap is `Conflict::LogOffset`, a resend of bytes
//!    already there is `Duplicate`, past the cap is `Conflict::LogFull`; otherwise
//!    the new bytes are `data`, from offset `size`.
//! 3. `PutObject` of `data` under its key.
//! 4. `UpdateItem SET #attempts[i].#log_bytes = :end, #attempts[i].#log_crc32 =
//!    :crc` with `ConditionExpression: #attempts[i].#log_bytes = :size`. If another
//!    append got there first the condition fails and the call starts again at 1
//!    (now past the other chunk, it may have only a tail left, or nothing).
//!
//! The object is written **before** the index, so the index never counts bytes
//! that are not in S3; a crash between 3 and 4 leaves an object nobody reads, and
//! the agent's resend writes the same key with the same bytes again.
//!
//! ## The race between the PUT and the index, and why reads cannot see a loser
//!
//! Two appends that read the same size both PUT, and only one advances the index.
//! The loser's object stays in S3. Objects are never deleted or overwritten with
//! other bytes, so the reader must tell the loser's object apart, and a key of
//! `<start>-<end>` would not be enough: a loser of the same length but other bytes
//! would even overwrite the winner's object. With both CRCs in the key, the loser's
//! key differs from the winner's (unless their bytes are equal, when either is
//! right), and the index's `(size, crc)` names exactly one chain of objects:
//!
//! * the last object of the log is the one with `end = size` and `crc after = crc`;
//! * the one before it is the one with `end = its start` and `crc after = its crc
//!   before`; and so on back to the offset being read.
//!
//! A loser's object is never on that chain (its `crc after` is a log state that
//! never became the index), so it is never read. The alternatives were a unique
//! suffix per PUT with the current object recorded in the index (an index entry per
//! chunk, which grows the job item and its write cost with the log), or S3's
//! conditional `If-None-Match` PUT (the first PUT to land wins the key even when it
//! loses the index race, and its bytes would need a GET to be compared).
//!
//! ## Reading by offset
//!
//! Read the index; `ListObjectsV2` of the attempt's keys from `offset − 256 KiB`
//! (a chunk is at most [`CHUNK_MAX_BYTES`], so no object that covers `offset`
//! starts earlier), walk the chain back from `(size, crc)` to the object that
//! covers `offset`, then ranged `GetObject`s forward until `max_bytes`. Objects
//! past `size` (an append in flight, a loser) are ignored. A live tail, reading
//! from near the end, lists a handful of keys; a read from 0 lists one page per
//! 1,000 chunks.
//!
//! ## Cost
//!
//! An append is a `GetItem` (⌈s/4⌉ RCU for a job item of s KB), a PUT
//! ($0.005 per 1,000), and an `UpdateItem` (⌈s⌉ WCU, no index written: no key
//! changes). A 64 MiB log in 256 KiB chunks is 256 of each. A read is a `GetItem`,
//! one LIST ($0.005 per 1,000) and a GET per object touched ($0.0004 per 1,000).
//! `log_summary` is the `GetItem` alone, so `finish` never reads bytes back.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_s3::primitives::ByteStream;
use runway_core::id::JobId;
use runway_core::log::{
    CHUNK_MAX_BYTES, LOG_MARKER_ALLOWANCE, LOG_MAX_BYTES, LogAppend, LogChunk, LogSlice,
    LogSummary, crc32_append, placement,
};
use runway_core::store::{Conflict, LogStore, StoreError, StoreResult};

use crate::DynamoStore;
use crate::error::{RETRY_AFTER, is_condition_failure, sdk_error};
use crate::expr::Expr;
use crate::items::{AttemptItem, Item, from_item, number, string};
use crate::jobs::{Contention, MAX_ROUNDS};
use crate::schema::JOB_ID;

/// Where the logs go: the bucket and the key prefix.
#[derive(Debug, Clone)]
pub(crate) struct LogBucket {
    pub(crate) bucket: String,
    pub(crate) prefix: String,
}

/// No bucket was configured, so there is nowhere to keep logs.
#[derive(Debug, thiserror::Error)]
#[error(
    "no S3 bucket is configured for job logs: set RUNWAY_LOG_BUCKET (the store's \
     `log_bucket` setting) to the bucket Terraform created"
)]
pub struct NoLogBucket;

/// The index names bytes that S3 does not have: a bug or a deleted object.
#[derive(Debug, thiserror::Error)]
#[error("the log of job {job} attempt {attempt} has no object for bytes up to {end} in S3")]
struct MissingLogObject {
    job: JobId,
    attempt: u32,
    end: u64,
}

/// One object of a log, from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChunkKey {
    start: u64,
    end: u64,
    crc_before: u32,
    crc_after: u32,
}

impl ChunkKey {
    /// The key's last part: `<start>-<end>-<crc before>-<crc after>`.
    fn name(&self) -> String {
        format!(
            "{:020}-{:020}-{:08x}-{:08x}",
            self.start, self.end, self.crc_before, self.crc_after
        )
    }

    fn parse(name: &str) -> Option<Self> {
        let mut parts = name.split('-');
        let key = Self {
            start: parts.next()?.parse().ok()?,
            end: parts.next()?.parse().ok()?,
            crc_before: u32::from_str_radix(parts.next()?, 16).ok()?,
            crc_after: u32::from_str_radix(parts.next()?, 16).ok()?,
        };
        (parts.next().is_none() && key.start < key.end).then_some(key)
    }
}

/// The objects that make up the log from the one covering `offset` to `size`,
/// in order: the chain the index's `(size, crc)` names (module docs). `None` if a
/// link is missing.
fn chain(objects: &[ChunkKey], offset: u64, size: u64, crc: u32) -> Option<Vec<&ChunkKey>> {
    let mut chain = Vec::new();
    let (mut end, mut crc_after) = (size, crc);
    while end > offset {
        // Several objects can end in the same state only when they hold the same
        // bytes (a loser whose chunk equals the winner's and its tail): any will do,
        // and the shortest skips least.
        let link = objects
            .iter()
            .filter(|o| o.end == end && o.crc_after == crc_after)
            .max_by_key(|o| o.start)?;
        chain.push(link);
        end = link.start;
        crc_after = link.crc_before;
    }
    chain.reverse();
    Some(chain)
}

impl DynamoStore {
    fn log_bucket(&self) -> StoreResult<&LogBucket> {
        self.logs
            .as_deref()
            .ok_or_else(|| StoreError::internal(NoLogBucket))
    }

    /// The attempt's log index (inside the attempt), `NotFound` without one.
    async fn log_index(&self, job: JobId, attempt: u32) -> StoreResult<AttemptItem> {
        let index = usize::try_from(attempt.checked_sub(1).ok_or(StoreError::NotFound)?)
            .map_err(|_| StoreError::NotFound)?;
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.jobs)
            .key(JOB_ID, string(job.to_string()))
            .consistent_read(true)
            // `attempts` is no reserved word, and moto refuses an alias that is
            // only used with an index (`#attempts[0]`) as unused.
            .projection_expression(format!("attempts[{index}]"))
            .send()
            .await
            .map_err(sdk_error)?;
        attempt_in(output.item, attempt).ok_or(StoreError::NotFound)?
    }

    /// `<prefix><job>/<attempt>/`.
    fn attempt_prefix(logs: &LogBucket, job: JobId, attempt: u32) -> String {
        format!("{}{job}/{attempt}/", logs.prefix)
    }

    /// The objects of the attempt's log that start at `from` or later and before
    /// `size`, in key order.
    async fn log_objects(
        &self,
        logs: &LogBucket,
        prefix: &str,
        from: u64,
        size: u64,
    ) -> StoreResult<Vec<ChunkKey>> {
        let mut objects = Vec::new();
        let mut token = None;
        loop {
            let output = self
                .s3
                .list_objects_v2()
                .bucket(&logs.bucket)
                .prefix(prefix)
                .start_after(format!("{prefix}{from:020}"))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(sdk_error)?;
            let mut past_end = false;
            for object in output.contents() {
                let Some(key) = object
                    .key()
                    .and_then(|k| k.strip_prefix(prefix))
                    .and_then(ChunkKey::parse)
                else {
                    continue;
                };
                if key.start >= size {
                    past_end = true;
                    break;
                }
                objects.push(key);
            }
            match output.next_continuation_token {
                Some(next) if !past_end && output.is_truncated == Some(true) => {
                    token = Some(next);
                }
                _ => return Ok(objects),
            }
        }
    }
}

/// Attempt `number` from a `GetItem` projected to `#attempts[number − 1]`.
fn attempt_in(item: Option<Item>, number: u32) -> Option<StoreResult<AttemptItem>> {
    let mut item = item?;
    let AttributeValue::L(mut list) = item.remove("attempts")? else {
        return None;
    };
    let AttributeValue::M(attempt) = list.pop()? else {
        return None;
    };
    let attempt = from_item::<AttemptItem>("jobs", attempt);
    match attempt {
        Ok(a) if a.number == number => Some(Ok(a)),
        Ok(_) => None,
        Err(err) => Some(Err(err)),
    }
}

#[async_trait]
impl LogStore for DynamoStore {
    async fn append_log(
        &self,
        job: JobId,
        attempt: u32,
        chunk: &LogChunk,
    ) -> StoreResult<LogAppend> {
        let logs = self.log_bucket()?;
        let prefix = Self::attempt_prefix(logs, job, attempt);
        for _ in 0..MAX_ROUNDS {
            let index = self.log_index(job, attempt).await?;
            let (size, crc_before) = (index.log_bytes, index.log_crc32);
            let data =
                placement(size, chunk).map_err(|expected| Conflict::LogOffset { expected })?;
            if data.is_empty() {
                return Ok(LogAppend::Duplicate { size });
            }
            let end = size + data.len() as u64;
            if end > LOG_MAX_BYTES + LOG_MARKER_ALLOWANCE {
                return Err(Conflict::LogFull.into());
            }
            let key = ChunkKey {
                start: size,
                end,
                crc_before,
                crc_after: crc32_append(crc_before, data),
            };
            self.s3
                .put_object()
                .bucket(&logs.bucket)
                .key(format!("{prefix}{}", key.name()))
                .content_type("application/octet-stream")
                .body(ByteStream::from(data.to_vec()))
                .send()
                .await
                .map_err(sdk_error)?;

            let i = usize::try_from(attempt - 1).map_err(StoreError::internal)?;
            let mut e = Expr::new();
            let bytes = e.element("attempts", i, "log_bytes");
            let crc = e.element("attempts", i, "log_crc32");
            let number_path = e.element("attempts", i, "number");
            e.set(bytes.clone(), number(end));
            e.set(crc, number(key.crc_after));
            let read = e.value(number(size));
            let this = e.value(number(attempt));
            e.condition(&format!("{bytes} = {read} AND {number_path} = {this}"));
            let result = self
                .client
                .update_item()
                .table_name(&self.tables.jobs)
                .key(JOB_ID, string(job.to_string()))
                .set_update_expression(e.update_expression())
                .set_condition_expression(e.condition_expression())
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(_) => return Ok(LogAppend::Written { size: end }),
                Err(err) if is_condition_failure(&err) => {
                    // Our own write, retried by the SDK after its response was lost,
                    // or an identical resend that won: the log ends where ours would.
                    let old = match err.as_service_error() {
                        Some(
                            aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(e),
                        ) => e.item().cloned(),
                        _ => None,
                    };
                    let landed = old
                        .and_then(|item| from_item::<crate::items::JobItem>("jobs", item).ok())
                        .and_then(|item| item.attempt(attempt).map(|a| (a.log_bytes, a.log_crc32)));
                    if landed == Some((end, key.crc_after)) {
                        return Ok(LogAppend::Written { size: end });
                    }
                }
                Err(err) => return Err(sdk_error(err)),
            }
        }
        Err(StoreError::unavailable(Contention(job), Some(RETRY_AFTER)))
    }

    async fn read_log(
        &self,
        job: JobId,
        attempt: u32,
        offset: u64,
        max_bytes: usize,
    ) -> StoreResult<LogSlice> {
        let logs = self.log_bucket()?;
        let index = self.log_index(job, attempt).await?;
        let (size, crc) = (index.log_bytes, index.log_crc32);
        let wanted = (max_bytes as u64).min(size.saturating_sub(offset));
        if wanted == 0 {
            return Ok(LogSlice {
                data: Vec::new(),
                next_offset: offset,
                size,
            });
        }
        let prefix = Self::attempt_prefix(logs, job, attempt);
        let from = offset.saturating_sub(CHUNK_MAX_BYTES as u64);
        let objects = self.log_objects(logs, &prefix, from, size).await?;
        let missing = || {
            StoreError::internal(MissingLogObject {
                job,
                attempt,
                end: size,
            })
        };
        let chain = chain(&objects, offset, size, crc).ok_or_else(missing)?;
        let until = offset + wanted;
        let mut data = Vec::with_capacity(usize::try_from(wanted).unwrap_or(0));
        for object in chain {
            let (first, last) = (object.start.max(offset), object.end.min(until));
            if first >= last {
                continue;
            }
            let output = self
                .s3
                .get_object()
                .bucket(&logs.bucket)
                .key(format!("{prefix}{}", object.name()))
                .range(format!(
                    "bytes={}-{}",
                    first - object.start,
                    last - object.start - 1
                ))
                .send()
                .await
                .map_err(sdk_error)?;
            let bytes = output
                .body
                .collect()
                .await
                .map_err(|e| StoreError::unavailable(e, Some(RETRY_AFTER)))?
                .into_bytes();
            if bytes.len() as u64 != last - first {
                return Err(missing());
            }
            data.extend_from_slice(&bytes);
        }
        Ok(LogSlice {
            next_offset: offset + data.len() as u64,
            data,
            size,
        })
    }

    async fn log_summary(&self, job: JobId, attempt: u32) -> StoreResult<LogSummary> {
        // Only the index is read, but a store that cannot append has no log to sum.
        self.log_bucket()?;
        let index = self.log_index(job, attempt).await?;
        Ok(LogSummary {
            size: index.log_bytes,
            crc32: index.log_crc32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(start: u64, end: u64, crc_before: u32, crc_after: u32) -> ChunkKey {
        ChunkKey {
            start,
            end,
            crc_before,
            crc_after,
        }
    }

    #[test]
    fn a_key_names_both_offsets_zero_padded_and_both_checksums_in_hex() {
        let k = key(5, 262_149, 0xdead_beef, 0x1);
        assert_eq!(
            k.name(),
            "00000000000000000005-00000000000000262149-deadbeef-00000001"
        );
        assert_eq!(ChunkKey::parse(&k.name()), Some(k));
        for garbage in ["", "1-2-3", "5-5-0-0", "x-1-0-0", "1-2-0-0-9"] {
            assert_eq!(ChunkKey::parse(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn keys_sort_by_their_start_offset() {
        let mut names =
            [key(300, 400, 0, 0), key(20, 300, 0, 0), key(0, 20, 0, 0)].map(|k| k.name());
        names.sort();
        assert!(names[0].starts_with("00000000000000000000-"));
        assert!(names[2].starts_with("00000000000000000300-"));
    }

    #[test]
    fn the_chain_from_the_index_skips_a_losers_object_of_the_same_range() {
        let log = b"hello, world";
        let c5 = crc32_append(0, &log[..5]);
        let c12 = crc32_append(c5, &log[5..]);
        let loser = crc32_append(c5, b"XXXXXXX");
        let objects = [key(0, 5, 0, c5), key(5, 12, c5, loser), key(5, 12, c5, c12)];
        let chain = chain(&objects, 0, 12, c12).expect("a chain");
        assert_eq!(chain, [&objects[0], &objects[2]]);
        // From the middle, only what covers the offset onwards.
        assert_eq!(chain_from(&objects, 7, c12), [&objects[2]]);
    }

    fn chain_from(objects: &[ChunkKey], offset: u64, crc: u32) -> Vec<&ChunkKey> {
        chain(objects, offset, 12, crc).expect("a chain")
    }

    #[test]
    fn a_missing_link_is_no_chain() {
        let objects = [key(5, 12, 7, 9)];
        assert!(chain(&objects, 0, 12, 9).is_none());
        assert_eq!(chain(&objects, 12, 12, 9), Some(vec![]));
    }
}
