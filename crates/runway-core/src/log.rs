//! Job logs: what one attempt's output is, and how it is appended and read.
//!
//! A log is the bytes an attempt's script wrote (stdout and stderr interleaved, as
//! the agent captured them), addressed by byte offset. The agent sends it in chunks
//! of at most [`CHUNK_MAX_BYTES`], each naming the offset of its first byte, so:
//!
//! * a chunk resent after a lost response lands on bytes the store already has and
//!   is acknowledged again without being written twice ([`LogAppend::Duplicate`]);
//! * a chunk that would leave a hole is refused with the offset the store expects
//!   ([`crate::store::Conflict::LogOffset`], 416 on the wire);
//! * a chunk that overlaps the end (part resend, part new) keeps only its new tail.
//!
//! The store also keeps a running CRC-32 of the log, so `finish` can be checked
//! against the agent's count and checksum without reading the bytes back (on S3
//! that would be one GET per chunk).

/// The largest chunk the server accepts, in bytes.
pub const CHUNK_MAX_BYTES: usize = 256 * 1024;
/// The largest log of one attempt. The agent writes a truncation marker below this
/// and sends nothing more; the store refuses bytes past it.
pub const LOG_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Room above [`LOG_MAX_BYTES`] for the agent's truncation marker line.
pub const LOG_MARKER_ALLOWANCE: u64 = 4 * 1024;

/// One chunk of log from an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// The agent's sequence number of the chunk, from 0; kept for diagnosis, the
    /// offset is what places it.
    pub seq: u64,
    /// Byte offset of `data[0]` in the whole log.
    pub offset: u64,
    /// The bytes, at most [`CHUNK_MAX_BYTES`].
    pub data: Vec<u8>,
}

impl LogChunk {
    /// The offset just past the chunk.
    #[must_use]
    pub fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// What an accepted chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAppend {
    /// New bytes were stored; the log now ends at `size`.
    Written {
        /// The log's size after the write.
        size: u64,
    },
    /// Every byte was already there (a resend); nothing was written.
    Duplicate {
        /// The log's size.
        size: u64,
    },
}

impl LogAppend {
    /// The log's size after the call: where the next chunk starts.
    #[must_use]
    pub const fn size(self) -> u64 {
        match self {
            Self::Written { size } | Self::Duplicate { size } => size,
        }
    }
}

/// How a store must place `chunk` on a log that is `size` bytes long: the part of
/// the chunk to write (possibly empty), or the offset it should have started at.
/// Both backends call this, so they agree on resends and overlaps by construction.
///
/// # Errors
/// The expected offset (`size`) if the chunk starts past the end.
pub fn placement(size: u64, chunk: &LogChunk) -> Result<&[u8], u64> {
    if chunk.offset > size {
        return Err(size);
    }
    let skip = usize::try_from(size - chunk.offset).unwrap_or(usize::MAX);
    Ok(chunk.data.get(skip..).unwrap_or(&[]))
}

/// The running CRC-32 (IEEE) after appending `bytes` to a log whose CRC is `crc`.
#[must_use]
pub fn crc32_append(crc: u32, bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(crc);
    hasher.update(bytes);
    hasher.finalize()
}

/// A log's size and checksum so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogSummary {
    /// Bytes stored.
    pub size: u64,
    /// CRC-32 (IEEE) of those bytes.
    pub crc32: u32,
}

/// Bytes read from a log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSlice {
    /// The bytes from the requested offset (possibly none).
    pub data: Vec<u8>,
    /// The offset just past `data`: where to read next.
    pub next_offset: u64,
    /// The log's size when it was read.
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64, data: &[u8]) -> LogChunk {
        LogChunk {
            seq: 0,
            offset,
            data: data.to_vec(),
        }
    }

    #[test]
    fn a_chunk_at_the_end_is_written_whole() {
        assert_eq!(placement(3, &chunk(3, b"abc")), Ok(&b"abc"[..]));
        assert_eq!(placement(0, &chunk(0, b"")), Ok(&b""[..]));
    }

    #[test]
    fn a_resent_chunk_writes_nothing_and_an_overlap_writes_only_its_tail() {
        assert_eq!(placement(6, &chunk(3, b"abc")), Ok(&b""[..]));
        assert_eq!(placement(100, &chunk(3, b"abc")), Ok(&b""[..]));
        assert_eq!(placement(4, &chunk(3, b"abc")), Ok(&b"bc"[..]));
    }

    #[test]
    fn a_chunk_past_the_end_names_the_offset_expected() {
        assert_eq!(placement(3, &chunk(5, b"abc")), Err(3));
    }

    #[test]
    fn the_running_checksum_equals_the_checksum_of_the_whole() {
        let whole = crc32fast::hash(b"hello, world");
        let running = crc32_append(crc32_append(0, b"hello, "), b"world");
        assert_eq!(running, whole);
        assert_eq!(crc32_append(0, b""), 0);
    }
}
