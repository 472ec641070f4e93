//! Connections: one writer, a pool of readers, and the migrations.
//!
//! SQLite allows one writer at a time per database file. Rather than let several
//! connections race for the write lock (and spin in `busy_timeout`), every write
//! goes through a single connection behind a `std::sync::Mutex`, inside
//! `tokio::task::spawn_blocking`: a commit in `synchronous=FULL` waits for an fsync,
//! which must not stall an async worker thread. The mutex is a std one, not a Tokio
//! one, because it is only ever held on a blocking thread and nothing awaits while
//! holding it.
//!
//! Reads go to a small pool of `query_only` connections and run directly on the
//! calling task. In WAL mode readers never block the writer nor each other, and a
//! point read by primary key with a cached statement takes about 2 µs (measured in
//! a release build on 2 cores: ~500,000 `get_session`/s from four tasks), while a
//! hop to a blocking thread and back costs more than the query itself. Session
//! validation runs on every request, so this is the hot path. Listings run inline
//! too: their limit is at most 100 rows. So do the reaper's scans, log reads (at
//! most the `max_bytes` asked for) and a claim's first look for a job
//! (`dispatch.rs`), which lets an idle agent's poll skip the writer entirely. The price is that a read which does have to
//! wait (another process holding an exclusive lock, i.e. `busy_timeout`) stalls one
//! async worker for that time; with one writer in this process and WAL that does not
//! happen in normal operation. A commit, by contrast, costs an fsync (~2 ms on the
//! same machine), which is why writes always leave the async workers.
//!
//! In-memory databases (tests) are a named shared-cache database seen by all these
//! connections. Shared cache has table-level locks instead of WAL snapshots, so
//! rusqlite's `unlock_notify` feature makes a reader wait for the writer's commit
//! rather than fail with `SQLITE_LOCKED`.
//!
//! The readers live in [`MAX_IDLE_READERS`] slots, each a `Mutex<Option<Connection>>`
//! opened lazily. A read takes the first slot it can `try_lock`, starting from one
//! fixed per thread, so each runtime worker normally finds "its" slot free and the
//! lock is two uncontended atomic operations. A single `Mutex<Vec<Connection>>`
//! popped and pushed around every read, as before, was contended by the workers on
//! every request: profiling session validation showed futex wake-ups costing about
//! a quarter as much as the query itself. If every slot is busy, the read opens a
//! connection of its own and closes it afterwards, so a burst never waits and does
//! not leave a pile of idle file handles behind.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use runway_core::store::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{MigrationFailed, NotWal, SchemaTooNew, store_error};

/// How long a connection waits for another process's lock before giving up with
/// `SQLITE_BUSY` (which callers see as "unavailable, retry").
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reader slots: read connections kept open (more are opened for a burst, then closed).
const MAX_IDLE_READERS: usize = 8;

/// Statements each connection keeps prepared (one per distinct SQL text).
const STATEMENT_CACHE: usize = 64;

/// The embedded migrations, in order. Migration `n` (1-based) moves the database
/// from `user_version = n - 1` to `n`. Never edit a shipped migration: add one.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../migrations/0001_initial.sql"),
    ),
    (
        "0002_claimable_jobs",
        include_str!("../migrations/0002_claimable_jobs.sql"),
    ),
    (
        "0003_audit_events",
        include_str!("../migrations/0003_audit_events.sql"),
    ),
    (
        "0004_running_jobs",
        include_str!("../migrations/0004_running_jobs.sql"),
    ),
    (
        "0005_job_retries",
        include_str!("../migrations/0005_job_retries.sql"),
    ),
    ("0006_oidc", include_str!("../migrations/0006_oidc.sql")),
    (
        "0007_credential_epochs",
        include_str!("../migrations/0007_credential_epochs.sql"),
    ),
    (
        "0008_audit_filters",
        include_str!("../migrations/0008_audit_filters.sql"),
    ),
    (
        "0009_api_tokens",
        include_str!("../migrations/0009_api_tokens.sql"),
    ),
    (
        "0010_user_admin",
        include_str!("../migrations/0010_user_admin.sql"),
    ),
    (
        "0011_abuse_limits",
        include_str!("../migrations/0011_abuse_limits.sql"),
    ),
];

/// The schema version this build writes.
pub(crate) fn latest_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Where the database lives.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    /// A file on disk.
    File(PathBuf),
    /// A named shared-cache in-memory database (a `file:` URI).
    Memory(String),
}

impl Location {
    fn open(&self, create: bool) -> rusqlite::Result<Connection> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        match self {
            // No SQLITE_OPEN_URI: a path is a path, even if it starts with `file:`.
            Self::File(path) => Connection::open_with_flags(path, flags),
            Self::Memory(uri) => {
                Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
            }
        }
    }
}

/// The connections of one database.
#[derive(Debug)]
pub(crate) struct Db {
    location: Location,
    /// The only connection that writes. Also keeps an in-memory database alive.
    writer: Mutex<Connection>,
    /// Read-only connections, one per slot, opened on first use.
    readers: Vec<Mutex<Option<Connection>>>,
}

/// The reader slot a thread tries first: threads are numbered as they first read.
fn home_slot() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|slot| *slot)
}

/// Locks a mutex, ignoring poison.
///
/// A panic while the writer was held happened inside a `rusqlite::Transaction`,
/// whose `Drop` rolls it back, so the connection is in a clean state; the reader
/// pool is a plain `Vec`. Refusing all further work would turn one bug into an
/// outage.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Db {
    /// Opens (creating if needed) the database and migrates it.
    pub(crate) fn open(location: Location) -> StoreResult<Self> {
        let mut writer = location.open(true).map_err(store_error)?;
        configure_writer(&writer, &location).map_err(|e| match e {
            Setup::Sqlite(e) => store_error(e),
            Setup::Other(e) => e,
        })?;
        migrate(&mut writer)?;
        Ok(Self {
            location,
            writer: Mutex::new(writer),
            readers: (0..MAX_IDLE_READERS).map(|_| Mutex::new(None)).collect(),
        })
    }

    /// Runs `f` on a pooled read-only connection, on the calling thread.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        let slots = self.readers.len();
        let home = home_slot();
        for offset in 0..slots {
            let slot = &self.readers[(home + offset) % slots];
            let mut guard = match slot.try_lock() {
                Ok(guard) => guard,
                // A panic inside an earlier read: the connection itself is fine.
                Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            let conn = match guard.as_mut() {
                Some(conn) => conn,
                None => guard.insert(self.open_reader().map_err(store_error)?),
            };
            return f(conn).map_err(store_error);
        }
        // Every slot is in use: a connection for this read only.
        let conn = self.open_reader().map_err(store_error)?;
        f(&conn).map_err(store_error)
    }

    /// Runs `f` on the writer connection, on a blocking thread.
    pub(crate) async fn write<T, F>(self: &std::sync::Arc<Self>, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let db = std::sync::Arc::clone(self);
        match tokio::task::spawn_blocking(move || f(&mut lock(&db.writer))).await {
            Ok(result) => result,
            // A bug in a write closure panics in the caller, as inline code would.
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => Err(StoreError::internal(err)),
        }
    }

    fn open_reader(&self) -> rusqlite::Result<Connection> {
        let conn = self.location.open(false)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }
}

enum Setup {
    Sqlite(rusqlite::Error),
    Other(StoreError),
}

impl From<rusqlite::Error> for Setup {
    fn from(err: rusqlite::Error) -> Self {
        Self::Sqlite(err)
    }
}

/// The writer's pragmas. Durability is chosen here; see the crate docs for why
/// `synchronous=FULL` rather than `NORMAL`.
fn configure_writer(conn: &Connection, location: &Location) -> Result<(), Setup> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
    // An in-memory database has no WAL (it reports `memory`); a file must have one.
    if matches!(location, Location::File(_)) && !mode.eq_ignore_ascii_case("wal") {
        return Err(Setup::Other(StoreError::internal(NotWal(mode))));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // A job's secrets are deleted when it is final; without this, SQLite only
    // unlinks the bytes and they stay in free space and freelist pages.
    conn.pragma_update(None, "secure_delete", true)?;
    Ok(())
}

/// Brings the schema up to [`latest_version`] in one transaction, or refuses a
/// database written by a newer build.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(store_error)?;
    let known = latest_version();
    if found > known {
        return Err(StoreError::internal(SchemaTooNew { found, known }));
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(index).unwrap_or(i64::MAX) + 1;
        if version > found {
            tx.execute_batch(sql)
                .map_err(|source| StoreError::internal(MigrationFailed { name, source }))?;
        }
    }
    if found < known {
        tx.pragma_update(None, "user_version", known)
            .map_err(store_error)?;
    }
    tx.commit().map_err(store_error)
}
