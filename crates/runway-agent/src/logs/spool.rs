//! The log spool: the job's (masked, capped) log as a file, written by the pipe
//! reader and read back by the uploader.
//!
//! The file is the single record of "the log": the uploader can resend from any
//! offset after a 416 or a 202, a slow or absent server never blocks the reader
//! (the job keeps running and its output keeps landing here), and memory stays
//! flat whatever the job prints. It lives in the state directory (0700), not in
//! the workspace, where the job could delete or overwrite it.
//!
//! [`LogWriter`] applies, in order: masking ([`Masker`]), then the cap. At
//! `log_max_bytes` it writes [`truncation_marker`] (counted inside the cap, so the
//! log never exceeds it) and drops everything after; the caller keeps draining
//! the pipe so the job never blocks on a full pipe. It also keeps the running
//! CRC-32 of exactly the bytes in the file, which are exactly the bytes the
//! uploader sends, for `finish`.
//!
//! Writes are plain blocking `write`s to a local file (page cache, no fsync): a
//! few microseconds each, and the spool only has to survive until `finish` is
//! accepted, not a machine crash, after which the job is lost and retried anyway.
//! Progress is published on a `watch` channel; the uploader never reads past it.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::Path;

use tokio::sync::watch;

use super::mask::Masker;

/// How far the spool has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Bytes in the file, all of them final.
    pub(crate) written: u64,
    /// The writer is closed: `written` is the log's final size.
    pub(crate) closed: bool,
}

/// The log as it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogTotals {
    pub(crate) bytes: u64,
    pub(crate) crc32: u32,
    pub(crate) truncated: bool,
}

/// The line written at the cap; `\n` first so it starts on a line of its own.
pub(crate) fn truncation_marker(max_bytes: u64) -> String {
    format!("\n[runway-agent] log truncated at {max_bytes} bytes; the job keeps running\n")
}

/// Masks, caps and spools one attempt's log.
#[derive(Debug)]
pub(crate) struct LogWriter {
    masker: Masker,
    file: File,
    max_bytes: u64,
    written: u64,
    truncated: bool,
    /// A write failed: the file may hold part of it past `written`, so nothing
    /// more is appended (the log ends at `written`).
    broken: bool,
    /// The last byte given to the masker, to start agent notes on a new line.
    last_input: Option<u8>,
    crc: crc32fast::Hasher,
    progress: watch::Sender<Progress>,
    scratch: Vec<u8>,
}

impl LogWriter {
    /// Creates (truncating) the spool at `path`.
    pub(crate) fn create(
        path: &Path,
        masker: Masker,
        max_bytes: u64,
    ) -> io::Result<(Self, watch::Receiver<Progress>)> {
        let file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let (progress, receiver) = watch::channel(Progress::default());
        Ok((
            Self {
                masker,
                file,
                max_bytes,
                written: 0,
                truncated: false,
                broken: false,
                last_input: None,
                crc: crc32fast::Hasher::new(),
                progress,
                scratch: Vec::new(),
            },
            receiver,
        ))
    }

    /// The job's output, as read from its pipe.
    pub(crate) fn write(&mut self, output: &[u8]) -> io::Result<()> {
        if let Some(&last) = output.last() {
            self.last_input = Some(last);
        }
        let mut masked = std::mem::take(&mut self.scratch);
        masked.clear();
        self.masker.feed(output, &mut masked);
        let result = self.append(&masked);
        self.scratch = masked;
        result
    }

    /// A line from the agent itself (`[runway-agent] …`), on a line of its own. It
    /// goes through the masker like the job's output, so it keeps its place in
    /// the stream.
    pub(crate) fn note(&mut self, message: &str) -> io::Result<()> {
        let newline = if matches!(self.last_input, None | Some(b'\n')) {
            ""
        } else {
            "\n"
        };
        self.write(format!("{newline}[runway-agent] {message}\n").as_bytes())
    }

    /// Flushes what the masker held back and marks the log final.
    pub(crate) fn close(&mut self) -> io::Result<LogTotals> {
        let mut rest = Vec::new();
        self.masker.finish(&mut rest);
        let result = self.append(&rest);
        self.progress.send_modify(|p| p.closed = true);
        result.map(|()| self.totals())
    }

    pub(crate) fn totals(&self) -> LogTotals {
        LogTotals {
            bytes: self.written,
            crc32: self.crc.clone().finalize(),
            truncated: self.truncated,
        }
    }

    /// Writes masked bytes within the cap.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.truncated || self.broken || bytes.is_empty() {
            return Ok(());
        }
        let marker = truncation_marker(self.max_bytes);
        let marker_len = u64::try_from(marker.len()).unwrap_or(u64::MAX);
        let budget = self
            .max_bytes
            .saturating_sub(marker_len)
            .saturating_sub(self.written);
        let fits = usize::try_from(budget).map_or(bytes.len(), |b| b.min(bytes.len()));
        self.put(&bytes[..fits])?;
        if fits < bytes.len() {
            // A cap smaller than the marker itself gets as much of it as fits.
            let room = self.max_bytes.saturating_sub(self.written);
            let room = usize::try_from(room).map_or(marker.len(), |r| r.min(marker.len()));
            self.put(&marker.as_bytes()[..room])?;
            self.truncated = true;
        }
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let Err(err) = self.file.write_all(bytes) {
            self.broken = true;
            return Err(err);
        }
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        let written = self.written;
        self.progress.send_modify(|p| p.written = written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &tempfile::TempDir, secrets: &[&str], max: u64) -> LogWriter {
        let (writer, _progress) = LogWriter::create(
            &dir.path().join("log"),
            Masker::new(secrets.iter().copied()),
            max,
        )
        .unwrap();
        writer
    }

    fn spooled(dir: &tempfile::TempDir) -> Vec<u8> {
        std::fs::read(dir.path().join("log")).unwrap()
    }

    #[test]
    fn at_the_cap_a_visible_marker_is_written_inside_the_budget_and_nothing_after() {
        let dir = tempfile::tempdir().unwrap();
        let max = 200;
        let mut log = writer(&dir, &[], max);
        for _ in 0..10 {
            log.write(&[b'x'; 50]).unwrap();
        }
        let totals = log.close().unwrap();
        let bytes = spooled(&dir);
        let marker = truncation_marker(max);
        assert_eq!(bytes.len() as u64, max);
        assert!(bytes.ends_with(marker.as_bytes()));
        assert!(marker.contains("log truncated at 200 bytes; the job keeps running"));
        assert_eq!(
            &bytes[..max as usize - marker.len()],
            vec![b'x'; max as usize - marker.len()]
        );
        assert!(totals.truncated);
        assert_eq!(totals.bytes, max);
        assert_eq!(totals.crc32, crc32fast::hash(&bytes));
    }

    #[test]
    fn a_log_that_fits_under_the_cap_has_no_marker() {
        let dir = tempfile::tempdir().unwrap();
        let max = 200;
        let room = max as usize - truncation_marker(max).len();
        let mut log = writer(&dir, &[], max);
        log.write(&vec![b'y'; room]).unwrap();
        let totals = log.close().unwrap();
        assert!(!totals.truncated);
        assert_eq!(spooled(&dir), vec![b'y'; room]);
    }

    #[test]
    fn secrets_are_masked_before_they_reach_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = writer(&dir, &["hunter22"], 1 << 20);
        log.write(b"the password is hun").unwrap();
        log.write(b"ter22, ok\n").unwrap();
        let totals = log.close().unwrap();
        let bytes = spooled(&dir);
        assert_eq!(bytes, b"the password is ***, ok\n");
        assert_eq!(totals.crc32, crc32fast::hash(&bytes));
        assert_eq!(totals.bytes, bytes.len() as u64);
    }

    #[test]
    fn agent_notes_start_on_a_line_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = writer(&dir, &[], 1 << 20);
        log.note("first").unwrap();
        log.write(b"no newline").unwrap();
        log.note("canceled").unwrap();
        log.close().unwrap();
        assert_eq!(
            String::from_utf8(spooled(&dir)).unwrap(),
            "[runway-agent] first\nno newline\n[runway-agent] canceled\n"
        );
    }

    #[test]
    fn after_a_failed_write_nothing_more_is_appended_so_offsets_stay_true() {
        // Every write to /dev/full fails with ENOSPC.
        let (mut log, progress) =
            LogWriter::create(Path::new("/dev/full"), Masker::new([]), 1 << 20).unwrap();
        assert!(log.write(b"lost").is_err());
        log.write(b"more").unwrap();
        log.note("a note").unwrap();
        let totals = log.close().unwrap();
        assert_eq!(totals.bytes, 0);
        assert_eq!(totals.crc32, crc32fast::hash(b""));
        assert_eq!(
            *progress.borrow(),
            Progress {
                written: 0,
                closed: true
            }
        );
    }

    #[test]
    fn progress_reports_bytes_written_and_then_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, progress) =
            LogWriter::create(&dir.path().join("log"), Masker::new([]), 1 << 20).unwrap();
        log.write(b"12345").unwrap();
        assert_eq!(
            *progress.borrow(),
            Progress {
                written: 5,
                closed: false
            }
        );
        log.close().unwrap();
        assert_eq!(
            *progress.borrow(),
            Progress {
                written: 5,
                closed: true
            }
        );
    }
}
