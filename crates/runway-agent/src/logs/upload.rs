//! The uploader: sends the spool to `PUT jobs/{id}/logs` in chunks.
//!
//! It runs as its own task, separate from the pipe reader, and reads only the
//! spool file, so however slow or absent the server is, the job's output keeps
//! being read and spooled. The client retries a chunk until the server answers;
//! log output simply accumulates in the spool meanwhile and goes out in full
//! chunks once the server is back.
//!
//! **When a chunk goes out:** as soon as `log_chunk_max_bytes` (at most 256 KiB)
//! is pending, or `log_flush_interval_ms` after the oldest unsent byte was seen, or
//! at once when the log is closed. So output reaches the server within about a
//! flush interval of being written, and a chatty job sends full chunks, not one
//! request per line.
//!
//! **Offsets and seq:** a chunk carries `offset` (its first byte's position in the
//! whole log) and `seq` (its position in the chain of chunks that make up the log,
//! from 0). The server's answer says where the next chunk must start: `LogAck`'s
//! `next_offset` on 200, `x-log-next-offset` on 416, and `FinishPending` on a 202
//! from `finish` ([`Uploader::rewind`]). The uploader always follows it and
//! resends from there, reading the spool again. The seq for a resent chunk is the
//! number of accepted chunks that start before its offset, so a resent chunk gets
//! the seq it had the first time and the server's `(seq, offset)` pairs stay
//! consistent.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::time::Duration;

use runway_protocol::Timings;
use tokio::sync::watch;
use tokio::time::Instant;

use super::spool::Progress;
use crate::backoff::Backoff;
use crate::client::{ClientError, JobApi, LogPut};

/// The protocol's largest chunk, whatever the server's timings say.
pub(crate) const CHUNK_MAX: u64 = 256 * 1024;
/// A flush interval of 0 would spin; this is the shortest honoured.
const FLUSH_MIN: Duration = Duration::from_millis(10);

/// Where chunks go: the server ([`JobApi`]), or a fake in tests.
pub(crate) trait ChunkSink {
    fn put(
        &self,
        seq: u64,
        offset: u64,
        bytes: &[u8],
    ) -> impl Future<Output = Result<LogPut, ClientError>> + Send;
}

impl ChunkSink for JobApi {
    fn put(
        &self,
        seq: u64,
        offset: u64,
        bytes: &[u8],
    ) -> impl Future<Output = Result<LogPut, ClientError>> + Send {
        self.put_log(seq, offset, bytes)
    }
}

/// Why the upload stopped before the whole log was sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    /// The server says the job is not ours (401/404/409 on a chunk).
    #[error("log upload stopped")]
    JobGone(#[source] ClientError),
    /// The spool cannot be read.
    #[error("cannot read the log spool")]
    Spool(#[source] io::Error),
}

/// Uploads one attempt's spool.
#[derive(Debug)]
pub(crate) struct Uploader<S> {
    sink: S,
    spool: File,
    progress: watch::Receiver<Progress>,
    timings: watch::Receiver<Timings>,
    /// The next byte to send: where the server's log ends, as far as we know.
    pos: u64,
    /// Offsets of the accepted chunks, by seq.
    starts: Vec<u64>,
    /// The writer went away without closing (its task died): treat as closed.
    writer_gone: bool,
    /// For answers that are neither success nor "job gone" (a server bug).
    backoff: Backoff,
    buf: Vec<u8>,
}

impl<S: ChunkSink> Uploader<S> {
    /// `spool` is a read handle on the file [`super::LogWriter`] writes.
    pub(crate) fn new(
        sink: S,
        spool: File,
        progress: watch::Receiver<Progress>,
        timings: watch::Receiver<Timings>,
    ) -> Self {
        Self {
            sink,
            spool,
            progress,
            timings,
            pos: 0,
            starts: Vec::new(),
            writer_gone: false,
            backoff: Backoff::new(),
            buf: Vec::new(),
        }
    }

    /// Sends until the log is closed and the server has all of it.
    pub(crate) async fn run(&mut self) -> Result<(), UploadError> {
        let mut pending_since: Option<Instant> = None;
        loop {
            let progress = *self.progress.borrow_and_update();
            let closed = progress.closed || self.writer_gone;
            if self.pos >= progress.written {
                pending_since = None;
                if closed {
                    return Ok(());
                }
                if self.progress.changed().await.is_err() {
                    self.writer_gone = true;
                }
                continue;
            }
            let timings = *self.timings.borrow();
            let chunk_max = chunk_max(&timings);
            let pending = progress.written - self.pos;
            let due = *pending_since.get_or_insert_with(Instant::now) + flush_interval(&timings);
            if !closed && pending < chunk_max && Instant::now() < due {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    changed = self.progress.changed() => {
                        if changed.is_err() {
                            self.writer_gone = true;
                        }
                    }
                }
                continue;
            }
            self.send(pending.min(chunk_max), progress.written).await?;
        }
    }

    /// The server wants the log again from `offset` (a `finish` answered 202).
    pub(crate) fn rewind(&mut self, offset: u64) {
        let progress = *self.progress.borrow();
        self.move_to(offset, progress);
    }

    async fn send(&mut self, len: u64, written: u64) -> Result<(), UploadError> {
        let offset = self.pos;
        let len = usize::try_from(len).expect("a chunk is at most 256 KiB");
        self.buf.resize(len, 0);
        self.spool
            .read_exact_at(&mut self.buf, offset)
            .map_err(UploadError::Spool)?;
        let seq = self.seq_for(offset);
        match self.sink.put(seq, offset, &self.buf).await {
            Ok(LogPut::Accepted { next_offset }) => {
                self.starts.push(offset);
                self.backoff.reset();
                self.move_to(
                    next_offset,
                    Progress {
                        written,
                        closed: false,
                    },
                );
            }
            Ok(LogPut::Mismatch {
                next_offset: Some(next),
            }) => {
                tracing::info!(
                    log.offset = offset,
                    log.next_offset = next,
                    "the server wants the log from another offset; resending from there"
                );
                self.move_to(
                    next,
                    Progress {
                        written,
                        closed: false,
                    },
                );
            }
            Ok(LogPut::Mismatch { next_offset: None }) => {
                let delay = self.backoff.next_delay();
                tracing::warn!(
                    log.offset = offset,
                    retry_in_ms = delay.as_millis() as u64,
                    "a log chunk got 416 without an x-log-next-offset header; retrying"
                );
                tokio::time::sleep(delay).await;
            }
            Err(err @ ClientError::JobGone(_)) => return Err(UploadError::JobGone(err)),
            Err(err) => {
                let delay = self.backoff.next_delay();
                tracing::error!(
                    log.offset = offset,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %crate::Chain(&err),
                    "a log chunk was refused; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
        Ok(())
    }

    /// The seq of a chunk starting at `offset`: how many accepted chunks start
    /// before it. Forgets the chunks from `offset` on, which are being replaced.
    fn seq_for(&mut self, offset: u64) -> u64 {
        let seq = self.starts.partition_point(|&start| start < offset);
        self.starts.truncate(seq);
        seq as u64
    }

    fn move_to(&mut self, offset: u64, progress: Progress) {
        if offset > progress.written {
            // The server claims bytes the agent never wrote: a server bug. Send
            // what is left from our end; `finish` reports the true size and crc.
            tracing::error!(
                log.next_offset = offset,
                log.written = progress.written,
                "the server's log is longer than the agent's; ignoring its offset"
            );
            self.pos = progress.written;
        } else {
            self.pos = offset;
        }
    }
}

/// The chunk size to use: the server's, within the protocol's 256 KiB.
fn chunk_max(timings: &Timings) -> u64 {
    match timings.log_chunk_max_bytes {
        0 => CHUNK_MAX,
        n => n.min(CHUNK_MAX),
    }
}

fn flush_interval(timings: &Timings) -> Duration {
    Duration::from_millis(timings.log_flush_interval_ms.into()).max(FLUSH_MIN)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::client::ServerMessage;
    use crate::logs::mask::Masker;
    use crate::logs::spool::LogWriter;
    use crate::testutil::timings;

    /// A server's log in memory: appends a chunk that starts at its end, answers
    /// 416 with its end otherwise, like the contract says.
    #[derive(Debug, Default)]
    struct FakeLog {
        log: Vec<u8>,
        puts: Vec<(u64, u64, usize, Duration)>,
        /// After this many puts, lose the log back to this length, once.
        forget_after: Option<(usize, usize)>,
        gone: bool,
    }

    #[derive(Debug, Clone)]
    struct Sink(Arc<Mutex<FakeLog>>, Instant);

    impl ChunkSink for Sink {
        fn put(
            &self,
            seq: u64,
            offset: u64,
            bytes: &[u8],
        ) -> impl Future<Output = Result<LogPut, ClientError>> + Send {
            let mut server = self.0.lock().unwrap();
            server
                .puts
                .push((seq, offset, bytes.len(), self.1.elapsed()));
            if let Some((after, to)) = server.forget_after
                && server.puts.len() > after
            {
                server.log.truncate(to);
                server.forget_after = None;
            }
            let answer = if server.gone {
                Err(ClientError::JobGone(ServerMessage {
                    status: reqwest::StatusCode::CONFLICT,
                    code: None,
                    message: String::new(),
                    request_id: None,
                }))
            } else if offset != server.log.len() as u64 {
                Ok(LogPut::Mismatch {
                    next_offset: Some(server.log.len() as u64),
                })
            } else {
                server.log.extend_from_slice(bytes);
                Ok(LogPut::Accepted {
                    next_offset: server.log.len() as u64,
                })
            };
            std::future::ready(answer)
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        writer: LogWriter,
        uploader: Uploader<Sink>,
        server: Arc<Mutex<FakeLog>>,
        spool_path: std::path::PathBuf,
        _timings: watch::Sender<Timings>,
    }

    fn fixture(timings: Timings) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let spool_path = dir.path().join("log");
        let (writer, progress) = LogWriter::create(&spool_path, Masker::new([]), 1 << 30).unwrap();
        let (timings_tx, timings_rx) = watch::channel(timings);
        let server = Arc::new(Mutex::new(FakeLog::default()));
        let uploader = Uploader::new(
            Sink(Arc::clone(&server), Instant::now()),
            File::open(&spool_path).unwrap(),
            progress,
            timings_rx,
        );
        Fixture {
            _dir: dir,
            writer,
            uploader,
            server,
            spool_path,
            _timings: timings_tx,
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn a_log_goes_out_in_chunks_of_at_most_256_kib_with_seq_and_byte_offsets() {
        let mut f = fixture(timings());
        let data = pattern(600 * 1024);
        f.writer.write(&data).unwrap();
        f.writer.close().unwrap();
        f.uploader.run().await.unwrap();
        let server = f.server.lock().unwrap();
        let chunks: Vec<(u64, u64, usize)> =
            server.puts.iter().map(|&(s, o, l, _)| (s, o, l)).collect();
        assert_eq!(
            chunks,
            [(0, 0, 262_144), (1, 262_144, 262_144), (2, 524_288, 90_112)]
        );
        assert_eq!(server.log, data);
        assert_eq!(server.log, std::fs::read(&f.spool_path).unwrap());
    }

    #[tokio::test]
    async fn a_smaller_chunk_size_from_the_server_is_followed() {
        let mut f = fixture(Timings {
            log_chunk_max_bytes: 1000,
            ..timings()
        });
        f.writer.write(&pattern(2500)).unwrap();
        f.writer.close().unwrap();
        f.uploader.run().await.unwrap();
        let server = f.server.lock().unwrap();
        let offsets: Vec<u64> = server.puts.iter().map(|p| p.1).collect();
        assert_eq!(offsets, [0, 1000, 2000]);
    }

    #[tokio::test]
    async fn after_a_416_the_log_is_resent_from_the_servers_offset_with_that_chunks_seq() {
        let mut f = fixture(Timings {
            log_chunk_max_bytes: 100,
            ..timings()
        });
        // The server loses chunks 1 and 2 (bytes 100..300) after accepting the
        // third; the fourth put gets 416 naming offset 100.
        f.server.lock().unwrap().forget_after = Some((3, 100));
        let data = pattern(450);
        f.writer.write(&data).unwrap();
        f.writer.close().unwrap();
        f.uploader.run().await.unwrap();
        let server = f.server.lock().unwrap();
        let chunks: Vec<(u64, u64)> = server.puts.iter().map(|&(s, o, _, _)| (s, o)).collect();
        assert_eq!(
            chunks,
            [
                (0, 0),
                (1, 100),
                (2, 200),
                (3, 300),
                (1, 100),
                (2, 200),
                (3, 300),
                (4, 400)
            ]
        );
        assert_eq!(server.log, data);
    }

    #[tokio::test]
    async fn a_rewind_after_a_finish_202_resends_the_tail_with_the_same_seqs() {
        let mut f = fixture(Timings {
            log_chunk_max_bytes: 4,
            ..timings()
        });
        f.writer.write(b"0123456789").unwrap();
        f.writer.close().unwrap();
        f.uploader.run().await.unwrap();
        // `finish` answered 202 {next_offset: 4}: the server has only chunk 0.
        f.server.lock().unwrap().log.truncate(4);
        f.uploader.rewind(4);
        f.uploader.run().await.unwrap();
        let server = f.server.lock().unwrap();
        assert_eq!(server.log, b"0123456789");
        let chunks: Vec<(u64, u64, usize)> =
            server.puts.iter().map(|&(s, o, l, _)| (s, o, l)).collect();
        assert_eq!(
            chunks,
            [(0, 0, 4), (1, 4, 4), (2, 8, 2), (1, 4, 4), (2, 8, 2)]
        );
    }

    #[tokio::test]
    async fn a_job_gone_answer_stops_the_upload() {
        let mut f = fixture(timings());
        f.server.lock().unwrap().gone = true;
        f.writer.write(b"abc").unwrap();
        f.writer.close().unwrap();
        let err = f.uploader.run().await.unwrap_err();
        assert!(matches!(err, UploadError::JobGone(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_few_bytes_go_out_one_flush_interval_after_they_were_written() {
        let f = fixture(Timings {
            log_flush_interval_ms: 500,
            ..timings()
        });
        let Fixture {
            mut writer,
            mut uploader,
            server,
            _dir,
            _timings,
            ..
        } = f;
        let task = tokio::spawn(async move { uploader.run().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.write(b"hello\n").unwrap();
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(
            server.lock().unwrap().puts.is_empty(),
            "sent before the interval"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        {
            let server = server.lock().unwrap();
            assert_eq!(server.log, b"hello\n", "not sent within the interval");
            let sent_at = server.puts[0].3;
            assert!(
                sent_at >= Duration::from_millis(600) && sent_at < Duration::from_millis(620),
                "{sent_at:?}"
            );
        }
        // The job is still running: the uploader waits for more.
        assert!(!task.is_finished());
        // A full chunk does not wait for the interval.
        writer.write(&pattern(CHUNK_MAX as usize)).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(server.lock().unwrap().puts.len(), 2);
        writer.close().unwrap();
        task.await.unwrap().unwrap();
        assert_eq!(server.lock().unwrap().log.len(), 6 + CHUNK_MAX as usize);
    }
}
