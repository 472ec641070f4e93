//! Job logs, in the database itself.
//!
//! ## Why a table and not files
//!
//! The contract asks for a chunk to be placed atomically with the log's size and
//! running CRC-32. In SQLite that is one transaction: the chunk's row in
//! `log_chunks` and the new `log_bytes` / `log_crc32` of its attempt commit
//! together, under the store's `synchronous=FULL`, or not at all. With files in the
//! data directory the bytes and the size would live in two places, and a crash
//! between the `write` (plus its fsync, plus the directory's) and the size update
//! leaves a file longer than the log it belongs to, to be reconciled at start-up.
//! The table also keeps one file to back up, and lets tests run `:memory:`. The
//! cost — a database that grows with its logs (up to 64 MiB an attempt) and needs
//! a retention policy one day — is the same for files.
//!
//! ## Layout
//!
//! A stored chunk is the new part of what an agent sent, written at the log's end
//! (`byte_offset` = the size before it), so an attempt's chunks tile its log with no
//! gap or overlap, in primary-key order. A read finds the chunk holding its first
//! byte with one seek (`max(byte_offset) <= offset`) and walks forward.
//!
//! ## Appending
//!
//! In one `BEGIN IMMEDIATE` transaction: read the attempt's size and CRC,
//! [`placement`] decides (a gap is `Conflict::LogOffset`, nothing new is
//! `Duplicate` and writes nothing, so it costs no commit), the cap is checked, then
//! the chunk is inserted and the attempt updated `WHERE log_bytes = <the size read>`.
//! Two racing appends at one offset are serialized by the write lock; the second
//! finds its bytes already there. A chunk that would end past the cap is refused
//! whole, and is decided without copying its bytes to the writer thread.

use async_trait::async_trait;
use runway_core::id::JobId;
use runway_core::log::{
    LOG_MARKER_ALLOWANCE, LOG_MAX_BYTES, LogAppend, LogChunk, LogSlice, LogSummary, crc32_append,
    placement,
};
use runway_core::store::{Conflict, LogStore, StoreError, StoreResult};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::SqliteStore;
use crate::error::store_error;
use crate::jobs::LostUpdate;
use crate::rows::{self, int};

/// The most bytes a log may hold: the cap plus the truncation marker's room.
const LOG_CAP: u64 = LOG_MAX_BYTES + LOG_MARKER_ALLOWANCE;

/// An attempt's log size and checksum, by the attempt's primary key.
pub(crate) const LOG_STATE: &str =
    "SELECT log_bytes, log_crc32 FROM job_attempts WHERE job_id = ?1 AND number = ?2";

/// The chunks holding bytes `?3 ..< ?4` of a log, in order, by the primary key.
pub(crate) const LOG_CHUNKS: &str = "SELECT byte_offset, data FROM log_chunks \
     WHERE job_id = ?1 AND attempt = ?2 AND byte_offset < ?4 AND byte_offset >= \
     (SELECT max(byte_offset) FROM log_chunks \
      WHERE job_id = ?1 AND attempt = ?2 AND byte_offset <= ?3) \
     ORDER BY byte_offset";

fn summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<LogSummary> {
    Ok(LogSummary {
        size: rows::get_u64(row, 0, "job_attempts.log_bytes")?,
        crc32: rows::get_u32(row, 1, "job_attempts.log_crc32")?,
    })
}

/// A stored chunk that does not start where the previous one ended: corrupt data.
fn torn(at: u64, found: u64) -> rusqlite::Error {
    rows::bad(
        0,
        "log_chunks.byte_offset",
        format!("the log continues at byte {at} but the next chunk starts at {found}"),
    )
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn append_log(
        &self,
        job: JobId,
        attempt: u32,
        chunk: &LogChunk,
    ) -> StoreResult<LogAppend> {
        let length = u64::try_from(chunk.data.len()).unwrap_or(u64::MAX);
        let fits = chunk
            .offset
            .checked_add(length)
            .is_some_and(|end| end <= LOG_CAP);
        // A chunk ending past the cap is refused (or is a gap) whatever its bytes.
        let chunk = LogChunk {
            seq: chunk.seq,
            offset: chunk.offset,
            data: if fits { chunk.data.clone() } else { Vec::new() },
        };
        self.db
            .write(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(store_error)?;
                let before = tx
                    .prepare_cached(LOG_STATE)
                    .and_then(|mut stmt| {
                        stmt.query_row(params![job.to_string(), attempt], summary)
                            .optional()
                    })
                    .map_err(store_error)?
                    .ok_or(StoreError::NotFound)?;
                let new = placement(before.size, &chunk)
                    .map_err(|expected| Conflict::LogOffset { expected })?;
                if !fits {
                    return Err(Conflict::LogFull.into());
                }
                if new.is_empty() {
                    return Ok(LogAppend::Duplicate { size: before.size });
                }
                let size = before.size + u64::try_from(new.len()).unwrap_or(u64::MAX);
                let crc = crc32_append(before.crc32, new);
                let (old_size, new_size) = (int(before.size)?, int(size)?);
                tx.prepare_cached(
                    "INSERT INTO log_chunks (job_id, attempt, byte_offset, seq, data) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        job.to_string(),
                        attempt,
                        old_size,
                        i64::try_from(chunk.seq).unwrap_or(i64::MAX),
                        new,
                    ])
                })
                .map_err(store_error)?;
                let changed = tx
                    .prepare_cached(
                        "UPDATE job_attempts SET log_bytes = ?3, log_crc32 = ?4 \
                         WHERE job_id = ?1 AND number = ?2 AND log_bytes = ?5",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![job.to_string(), attempt, new_size, crc, old_size,])
                    })
                    .map_err(store_error)?;
                if changed != 1 {
                    return Err(StoreError::internal(LostUpdate(job)));
                }
                tx.commit().map_err(store_error)?;
                Ok(LogAppend::Written { size })
            })
            .await
    }

    async fn read_log(
        &self,
        job: JobId,
        attempt: u32,
        offset: u64,
        max_bytes: usize,
    ) -> StoreResult<LogSlice> {
        let slice = self.db.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let Some(LogSummary { size, .. }) = tx
                .prepare_cached(LOG_STATE)?
                .query_row(params![job.to_string(), attempt], summary)
                .optional()?
            else {
                return Ok(None);
            };
            let end = size.min(offset.saturating_add(u64::try_from(max_bytes).unwrap_or(u64::MAX)));
            let mut data = Vec::new();
            if offset < end {
                data.reserve(usize::try_from(end - offset).unwrap_or(0));
                let bound = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                let mut stmt = tx.prepare_cached(LOG_CHUNKS)?;
                let mut chunks =
                    stmt.query(params![job.to_string(), attempt, bound(offset), bound(end)])?;
                // `at` is the offset of the next byte wanted.
                let mut at = offset;
                let mut chunk_end = None;
                while let Some(row) = chunks.next()? {
                    let start = rows::get_u64(row, 0, "log_chunks.byte_offset")?;
                    let bytes = row.get_ref(1)?.as_blob()?;
                    if chunk_end.is_some_and(|previous| previous != start) || start > at {
                        return Err(torn(at, start));
                    }
                    chunk_end = Some(start + u64::try_from(bytes.len()).unwrap_or(u64::MAX));
                    let from = usize::try_from(at - start).unwrap_or(usize::MAX);
                    let wanted = usize::try_from(end - at).unwrap_or(usize::MAX);
                    let part = bytes.get(from..).unwrap_or(&[]);
                    let part = &part[..part.len().min(wanted)];
                    data.extend_from_slice(part);
                    at += u64::try_from(part.len()).unwrap_or(0);
                    if at >= end {
                        break;
                    }
                }
                if at != end {
                    return Err(torn(at, chunk_end.unwrap_or(at)));
                }
            }
            drop(tx);
            let next_offset = offset + u64::try_from(data.len()).unwrap_or(0);
            Ok(Some(LogSlice {
                data,
                next_offset,
                size,
            }))
        })?;
        slice.ok_or(StoreError::NotFound)
    }

    async fn log_summary(&self, job: JobId, attempt: u32) -> StoreResult<LogSummary> {
        self.db
            .read(|conn| {
                conn.prepare_cached(LOG_STATE)?
                    .query_row(params![job.to_string(), attempt], summary)
                    .optional()
            })?
            .ok_or(StoreError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::query_plans::plan;

    #[test]
    fn a_log_read_seeks_its_first_chunk_and_walks_the_primary_key() {
        let plan = plan(
            LOG_CHUNKS,
            vec![
                Value::Text("job".into()),
                Value::Integer(1),
                Value::Integer(10),
                Value::Integer(20),
            ],
        );
        assert!(!plan.contains("SCAN"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        assert!(plan.contains("sqlite_autoindex_log_chunks_1"), "{plan}");
    }
}
