//! A job's log, from its pipe to the server.
//!
//! ```text
//!  job's pipe ──read──► LogWriter: Masker → cap → spool file ──► Uploader ──PUT logs──► server
//!  (reader task)                         (state dir)   progress    (its own task)
//! ```
//!
//! - [`mask`]: secret values become `***`, even when split across reads.
//! - [`spool`]: the masked log, capped at `log_max_bytes` with a visible marker, as
//!   a file; its size and CRC-32 are what `finish` reports.
//! - [`upload`]: chunks of the file, with seq and offset, resent from wherever the
//!   server says.

pub(crate) mod mask;
pub(crate) mod spool;
pub(crate) mod upload;

pub(crate) use mask::Masker;
pub(crate) use spool::LogWriter;
pub(crate) use upload::{UploadError, Uploader};
