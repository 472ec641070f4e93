//! # runway-store-sqlite
//!
//! The embedded store: every `runway_core::store` trait on one SQLite file,
//! `<data dir>/runway.db`. This is what `runway serve` uses on one machine.
//!
//! ## Durability
//!
//! * **WAL mode.** Readers see a consistent snapshot and never block the writer, and
//!   a commit appends to the log instead of rewriting pages in place.
//! * **`synchronous=FULL`.** Every commit fsyncs the WAL before it returns, so a write
//!   the server has acknowledged survives a power cut or kernel panic, not just a
//!   process crash. `NORMAL` (the usual WAL pairing) only fsyncs at checkpoints: it
//!   keeps the database uncorrupted, but the last transactions before a power loss
//!   can roll back — a session that was issued, a job that was accepted, a status
//!   change an agent was told about would silently vanish. Runway promises that
//!   nothing acknowledged is lost, and its writes are few and small (sign-ins, job
//!   submissions, transitions, heartbeats, claims, log chunks), so one fsync per
//!   commit is an easy price; each store call is one transaction, so one commit.
//!   An audited change inserts its audit event in that same transaction
//!   (`audit.rs`), so it costs one fsync, not two, and the event is exactly as
//!   durable as the change.
//! * **`foreign_keys=ON`**, `busy_timeout` of 5 s for other processes (a `sqlite3`
//!   shell, a backup) holding a lock.
//! * **`secure_delete=ON`** on the writer, so that what is deleted is overwritten
//!   with zeros rather than left in free space: a final job's secrets are gone from
//!   the database file, not merely unlinked (a test reads the file to check). The
//!   price is zeroing what a write frees, and writing the freelist pages a
//!   shrinking write leaves behind; Runway's deletes are few and small. The bytes
//!   can outlive the delete in the WAL until its frames are overwritten or the
//!   last connection closes (which checkpoints and removes it), and in any backup.
//! * **Private files.** The data directory is `0700`, the database and its `-wal`
//!   and `-shm` files `0600`, whatever the umask; wider ones are tightened
//!   (`files.rs`).
//! * **Migrations** are embedded (`migrations/NNNN_name.sql`), tracked by
//!   `PRAGMA user_version` and applied in one transaction, so a crash mid-upgrade
//!   leaves the old schema intact. A database from a newer Runway is refused
//!   ([`SchemaTooNew`]) rather than misread.
//!
//! ## Concurrency
//!
//! One writer connection behind a mutex, used on a blocking thread (commits fsync);
//! a pool of `query_only` readers used inline on the calling task, because a point
//! read by primary key with a cached statement is cheaper than a hop to a blocking
//! thread. Details and the trade-off are in `db.rs`.
//!
//! ## Invariants
//!
//! Each rule is one statement or one `BEGIN IMMEDIATE` transaction on the single
//! writer, never a read on one connection followed by a blind write:
//!
//! * unique usernames: a UNIQUE index, whose violation becomes
//!   `Conflict::UsernameTaken`;
//! * a password change: the new hash, the credential epoch's bump and the
//!   deletion of all the user's sessions share a transaction, so no old session
//!   outlives the old password; signing out everywhere bumps the epoch the same
//!   way;
//! * creating a session: the check that the user is still at the epoch the
//!   sign-in read, the eviction past 50 sessions and the insert share a
//!   transaction, so a sign-in that raced a credential change is refused
//!   (`accounts.rs`);
//! * registering an agent: one `UPDATE` finds the token by hash, usable at `now`
//!   (unexpired, `uses < max_uses`), and counts the use; the agent's insert shares
//!   its transaction, so a token deleted concurrently cannot admit it and a token
//!   with one use left admits exactly one of two racing registrations;
//! * rotating or deleting an agent: one statement on its row, so the old token
//!   stops resolving in the commit that acknowledges it;
//! * job transitions: read the status, `lifecycle::check`, then
//!   `UPDATE … WHERE id = ? AND status = ?`, with the current attempt, in one
//!   transaction;
//! * a user's retry: the same with `lifecycle::check_retry`, writing `queued`, the
//!   supplied secrets and the fresh automatic-retry budget in one `UPDATE`
//!   conditional on the final status read, so one of two racing retries wins;
//! * claiming: the agent's state and capacity, the candidate walk in claim order
//!   and the label check, the job's `queued → claimed` and the new attempt, in one
//!   transaction, so a job is claimed exactly once and an agent never holds more
//!   than `capacity` (`dispatch.rs`);
//! * an attempt is held exactly while its `lease_expires_at` is set, and every
//!   start, renewal and end is conditional on the attempt being the job's latest
//!   and held (`Conflict::NotHeld` otherwise);
//! * a job's secrets are a column only the claim reads, set to NULL (and, with
//!   `secure_delete`, zeroed) by the write that makes the job final, and set again
//!   only by a user's retry; their names (`secret_names`, never a value) stay;
//! * a log chunk, the log's size and its CRC-32 commit together (`logs.rs`);
//! * an admin's change to a user, creating or revoking an API token: the change,
//!   its audit event and (for a disable, a new role or a delete) the deletion of
//!   every session and API token share a transaction, and "at least one enabled
//!   admin" is counted inside it (`users.rs`, `api_tokens.rs`).
//!
//! ## Layout
//!
//! `db.rs` connections, pool and migrations · `error.rs` the mapping to
//! `StoreError` · `rows.rs` column encodings · `accounts.rs` users and sessions ·
//! `users.rs` users as admins manage them · `api_tokens.rs` personal API tokens ·
//! `oidc.rs` pending OIDC logins and issuer identities · `agents.rs` registration
//! tokens and agents · `jobs.rs` jobs, pagination and
//! transitions · `dispatch.rs` claiming, leases, ending attempts and the reaper's
//! reads · `logs.rs` job logs · `audit.rs` the append-only audit log ·
//! `limits.rs` abuse-limit counters (one upsert per attempt, expired rows purged
//! by the reaper).

#![forbid(unsafe_code)]

mod accounts;
mod agents;
mod api_tokens;
mod audit;
mod db;
mod dispatch;
mod error;
mod files;
mod jobs;
mod limits;
mod logs;
mod oidc;
mod page;
mod rows;
mod users;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use runway_core::store::{StoreHealth, StoreResult};

pub use error::SchemaTooNew;
pub use files::{DIR_MODE, FILE_MODE, PermissionFix};

use crate::db::{Db, Location};

/// The database file's name inside the data directory.
pub const DB_FILE_NAME: &str = "runway.db";

/// The SQLite implementation of every store trait. Cheap to clone: clones share
/// the same connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: Arc<Db>,
}

/// Opens the database at `path`, creating the file (`0600`) and its parent
/// directory (`0700`) if missing, and migrating it to the current schema. The file
/// and its `-wal` and `-shm` companions are made `0600` if they were wider; an
/// existing parent directory is left as it is (see [`open_data_dir`]).
///
/// # Errors
/// [`runway_core::store::StoreError::Unavailable`] if the file cannot be created or
/// opened; `Internal` (with [`SchemaTooNew`] as its source) if it was written by a
/// newer Runway; `Internal` for anything else.
pub fn open(path: &Path) -> StoreResult<SqliteStore> {
    files::create_private_file(path).map_err(unavailable)?;
    let db = Db::open(Location::File(path.to_path_buf()))?;
    files::secure_companions(path).map_err(unavailable)?;
    Ok(SqliteStore::new(db))
}

/// Opens `dir/runway.db`, after [`secure_data_dir`].
///
/// # Errors
/// As [`open`], and if the directory cannot be created.
pub fn open_data_dir(dir: &Path) -> StoreResult<SqliteStore> {
    secure_data_dir(dir).map_err(unavailable)?;
    open(&dir.join(DB_FILE_NAME))
}

/// Makes `dir` a private data directory: creates it `0700` (with any missing
/// parents) and `runway.db` in it `0600` if missing, and tightens the directory,
/// the database and its `-wal` and `-shm` files if others can read them. Returns
/// what it tightened (or could not), for the caller to log; [`open_data_dir`] calls
/// it too, so calling it first only adds the report.
///
/// # Errors
/// If the directory or the file cannot be created, or `dir` is not a directory.
pub fn secure_data_dir(dir: &Path) -> std::io::Result<Vec<PermissionFix>> {
    files::secure_dir(dir, DB_FILE_NAME)
}

/// A file-system error on the way to opening the database: retryable, as a full
/// disk or a missing mount is.
fn unavailable(err: std::io::Error) -> runway_core::store::StoreError {
    runway_core::store::StoreError::unavailable(err, Some(std::time::Duration::from_secs(1)))
}

/// A fresh, private in-memory database, for tests. It lives as long as the
/// returned store (or any clone of it).
///
/// # Errors
/// `Internal` if SQLite cannot create it.
pub fn open_in_memory() -> StoreResult<SqliteStore> {
    // A named shared-cache database, unique to this call, so that the writer and the
    // pooled readers (separate connections) all see the same data.
    let uri = format!("file:runway-{}?mode=memory&cache=shared", ulid::Ulid::new());
    Db::open(Location::Memory(uri)).map(SqliteStore::new)
}

impl SqliteStore {
    fn new(db: Db) -> Self {
        Self { db: Arc::new(db) }
    }

    /// The schema version this build migrates databases to.
    #[must_use]
    pub fn schema_version() -> i64 {
        db::latest_version()
    }
}

#[async_trait]
impl StoreHealth for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.read(|conn| {
            conn.prepare_cached("SELECT 1")?
                .query_row([], |row| row.get::<_, i64>(0))
        })?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod query_plans {
    //! Every listing must be served by an index in `id DESC` order: a sort in a
    //! temporary B-tree would read the whole table for each page.

    use runway_core::agent::AgentStatus;
    use runway_core::lifecycle::JobStatus;
    use runway_core::page::{Cursor, PageRequest};
    use runway_core::store::{AgentQuery, JobQuery};
    use rusqlite::params_from_iter;
    use rusqlite::types::Value;
    use time::OffsetDateTime;

    use crate::page::Seek;

    /// SQLite's plan for `sql` with `values`, its steps joined by `; `.
    pub(crate) fn plan(sql: &str, values: Vec<Value>) -> String {
        let store = crate::open_in_memory().unwrap();
        store
            .db
            .read(|conn| {
                conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
                    .query_map(params_from_iter(values), |row| row.get::<_, String>(3))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap()
            .join("; ")
    }

    fn pages() -> [PageRequest; 2] {
        [
            PageRequest::default(),
            PageRequest {
                limit: 10,
                after: Some(Cursor(ulid::Ulid::new().to_string())),
            },
        ]
    }

    #[test]
    fn agent_listings_never_sort_and_region_filters_use_their_index() {
        let statuses = [
            None,
            Some(AgentStatus::Online),
            Some(AgentStatus::Offline),
            Some(AgentStatus::NeverConnected),
        ];
        for region in [None, Some("eu-west-1".to_owned())] {
            for status in statuses {
                for page in pages() {
                    let query = AgentQuery {
                        region: region.clone(),
                        status,
                        page,
                    };
                    let seek = Seek::new(&query.page).unwrap();
                    let (sql, values) =
                        crate::agents::list_sql(&query, &seek, OffsetDateTime::UNIX_EPOCH).unwrap();
                    let plan = plan(&sql, values);
                    assert!(!plan.contains("TEMP B-TREE"), "{query:?}: {plan}");
                    if region.is_some() {
                        assert!(plan.contains("agents_by_region"), "{query:?}: {plan}");
                    }
                }
            }
        }
    }

    #[test]
    fn job_listings_never_sort_and_status_filters_use_their_index() {
        for status in [None, Some(JobStatus::Running)] {
            for page in pages() {
                let query = JobQuery { status, page };
                let seek = Seek::new(&query.page).unwrap();
                let (sql, values) = crate::jobs::list_sql(&query, &seek);
                let plan = plan(&sql, values);
                assert!(!plan.contains("TEMP B-TREE"), "{query:?}: {plan}");
                if status.is_some() {
                    assert!(plan.contains("jobs_by_status"), "{query:?}: {plan}");
                }
            }
        }
    }

    #[test]
    fn the_session_purge_reads_only_expired_rows_through_the_expiry_index() {
        let plan = plan(
            crate::accounts::EXPIRED_SESSIONS,
            vec![Value::Integer(0), Value::Integer(100)],
        );
        assert!(plan.contains("sessions_by_expiry"), "{plan}");
        assert!(!plan.contains("SCAN sessions"), "{plan}");
    }

    #[test]
    fn a_users_sessions_are_listed_through_the_user_index_without_sorting() {
        let plan = plan(
            &crate::accounts::SESSIONS_OF_USER,
            vec![Value::Text("u".into()), Value::Integer(0)],
        );
        assert!(plan.contains("sessions_by_user"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
