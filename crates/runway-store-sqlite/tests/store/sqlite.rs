//! SQLite-specific behaviour: the file on disk, its journal mode, migrations, and
//! that a failed write is rolled back whole. Each test gets its own temp directory.

use std::path::Path;

use runway_core::agent::{Agent, AgentMetrics, RegistrationToken};
use runway_core::audit::{Actor, AuditAction, AuditEvent};
use runway_core::id::{AgentId, RegistrationTokenId, UserId};
use runway_core::job::{Job, JobSpec};
use runway_core::lifecycle::JobStatus;
use runway_core::secret::TokenHash;
use runway_core::store::{
    AgentStore, AuditQuery, AuditStore, JobStore, RegistrationTokenStore, StoreError, StoreHealth,
    UserStore,
};
use runway_core::user::{Role, User};
use runway_store_sqlite::{DB_FILE_NAME, SchemaTooNew, SqliteStore};
use rusqlite::Connection;
use time::OffsetDateTime;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_750_000_000_123_456_789).unwrap()
}

fn user(name: &str) -> User {
    User {
        id: UserId::new(),
        username: name.into(),
        role: Role::Admin,
        created_at: t0(),
        password_hash: "$argon2id$not-a-real-hash".into(),
    }
}

fn job() -> Job {
    let spec = JobSpec {
        name: "build".into(),
        script: "make".into(),
        env: [("A".to_owned(), "1".to_owned())].into(),
        labels: vec!["linux".into()],
        queue: "default".into(),
        priority: 5,
        timeout_seconds: 60,
        max_retries: 2,
    };
    Job::new(spec, UserId::new(), t0())
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn tables(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn user_version(conn: &Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn the_data_dir_is_created_with_the_database_file_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("data");
    let store = runway_store_sqlite::open_data_dir(&dir).unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    assert!(dir.join(DB_FILE_NAME).is_file());
}

#[tokio::test]
async fn the_database_file_is_in_wal_mode_with_the_current_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("runway.db");
    let _store = runway_store_sqlite::open(&path).unwrap();
    let conn = raw(&path);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(user_version(&conn), SqliteStore::schema_version());
}

#[tokio::test]
async fn reopening_a_database_keeps_everything_and_migrating_again_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ada = user("ada");
    let job = job();
    let schema_before = {
        let store = runway_store_sqlite::open_data_dir(tmp.path()).unwrap();
        store.create_user(&ada).await.unwrap();
        store.create_job(&job).await.unwrap();
        store
            .transition_job(job.id, JobStatus::Claimed, t0())
            .await
            .unwrap();
        tables(&raw(&tmp.path().join(DB_FILE_NAME)))
    };

    let store = runway_store_sqlite::open_data_dir(tmp.path()).unwrap();
    assert_eq!(store.get_user(ada.id).await.unwrap(), Some(ada));
    let detail = store.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(detail.job.status, JobStatus::Claimed);
    assert_eq!(detail.job.spec, job.spec);

    let conn = raw(&tmp.path().join(DB_FILE_NAME));
    assert_eq!(tables(&conn), schema_before);
    assert_eq!(user_version(&conn), SqliteStore::schema_version());
}

#[tokio::test]
async fn a_database_from_a_newer_runway_is_refused_with_an_error_that_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("runway.db");
    drop(runway_store_sqlite::open(&path).unwrap());
    let newer = SqliteStore::schema_version() + 1;
    raw(&path)
        .pragma_update(None, "user_version", newer)
        .unwrap();

    let err = runway_store_sqlite::open(&path).unwrap_err();
    let StoreError::Internal(source) = err else {
        panic!("expected an internal error, got {err:?}")
    };
    let too_new = source
        .downcast_ref::<SchemaTooNew>()
        .expect("the cause is SchemaTooNew");
    assert_eq!(too_new.found, newer);
    assert_eq!(too_new.known, SqliteStore::schema_version());
    let message = too_new.to_string();
    assert!(message.contains("newer"), "{message}");
    // Refusing must not have touched the file.
    assert_eq!(user_version(&raw(&path)), newer);
}

#[tokio::test]
async fn a_failed_migration_leaves_the_database_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("runway.db");
    // A stray table in the way makes the first migration fail half-way through.
    raw(&path)
        .execute_batch("CREATE TABLE jobs (unrelated TEXT);")
        .unwrap();

    let err = runway_store_sqlite::open(&path).unwrap_err();
    let StoreError::Internal(source) = err else {
        panic!("expected an internal error, got {err:?}")
    };
    assert!(source.to_string().contains("0001_initial"), "{source}");
    let conn = raw(&path);
    assert_eq!(
        tables(&conn),
        ["jobs"],
        "tables created before the failure stay"
    );
    assert_eq!(user_version(&conn), 0);
}

#[tokio::test]
async fn a_version_one_database_is_upgraded_in_place_and_gains_the_claim_index() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("runway.db");
    // A database as the first release left it: migration 1 only, with a job in it.
    let job = job();
    {
        let conn = raw(&path);
        conn.execute_batch(include_str!("../../migrations/0001_initial.sql"))
            .unwrap();
        conn.execute(
            "INSERT INTO jobs (id, name, script, env, labels, queue, priority, \
             timeout_seconds, max_retries, status, created_by, created_at, updated_at, \
             attempt_count) VALUES (?1, 'build', 'make', '{\"A\":\"1\"}', '[\"linux\"]', \
             'default', 5, 60, 2, 'queued', ?2, ?3, ?3, 0)",
            rusqlite::params![
                job.id.to_string(),
                job.created_by.to_string(),
                i64::try_from(t0().unix_timestamp_nanos()).unwrap(),
            ],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }

    let store = runway_store_sqlite::open(&path).unwrap();
    assert_eq!(store.get_job(job.id).await.unwrap().unwrap().job, job);
    let conn = raw(&path);
    assert_eq!(user_version(&conn), SqliteStore::schema_version());
    let claim_index: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'jobs_claimable'",
            [],
            |row| row.get(0),
        )
        .expect("migration 2 created jobs_claimable");
    assert!(
        claim_index.contains("WHERE status = 'queued'"),
        "{claim_index}"
    );
}

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes_even_from_another_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("runway.db");
    let store = runway_store_sqlite::open(&path).unwrap();
    let event = AuditEvent::new(Actor::System, AuditAction::UserCreated, None, t0());
    store.append_audit(&event).await.unwrap();

    let conn = raw(&path);
    for sql in [
        "UPDATE audit_events SET detail = 'rewritten'",
        "DELETE FROM audit_events",
    ] {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let listed = store.list_audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(listed.items, [event]);
}

#[tokio::test]
async fn a_failed_registration_leaves_no_agent_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let store = runway_store_sqlite::open_data_dir(tmp.path()).unwrap();
    let token = RegistrationToken {
        id: RegistrationTokenId::new(),
        description: None,
        created_by: UserId::new(),
        created_at: t0(),
        expires_at: None,
        token_hash: TokenHash::of("registration"),
    };
    store.create_registration_token(&token).await.unwrap();
    let agent = |name: &str| Agent {
        id: AgentId::new(),
        name: name.into(),
        region: None,
        labels: vec![],
        queue: "default".into(),
        capacity: 1,
        version: None,
        created_at: t0(),
        last_heartbeat_at: None,
        metrics: AgentMetrics::default(),
        registration_token_id: RegistrationTokenId::new(),
        // Both agents get the same token hash, which must be unique.
        token_hash: TokenHash::of("agent"),
    };
    store
        .register_agent(&token.token_hash, agent("first"), t0())
        .await
        .unwrap();

    let second = agent("second");
    let err = store
        .register_agent(&token.token_hash, second.clone(), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_agent(second.id).await.unwrap(), None);
    let count: i64 = raw(&tmp.path().join(DB_FILE_NAME))
        .query_row("SELECT COUNT(*) FROM agents", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_taken_username_is_a_conflict_naming_it_and_the_first_user_is_untouched() {
    let store = runway_store_sqlite::open_in_memory().unwrap();
    let first = user("ada");
    store.create_user(&first).await.unwrap();
    let err = store.create_user(&user("ada")).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m == "username `ada` is taken"),
        "{err:?}"
    );
    assert_eq!(store.user_by_username("ada").await.unwrap(), Some(first));
}

#[tokio::test]
async fn in_memory_stores_are_private_to_each_call() {
    let one = runway_store_sqlite::open_in_memory().unwrap();
    let two = runway_store_sqlite::open_in_memory().unwrap();
    one.create_user(&user("ada")).await.unwrap();
    assert!(one.has_users().await.unwrap());
    assert!(!two.has_users().await.unwrap());
}

#[tokio::test]
async fn corrupt_stored_values_are_internal_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let store = runway_store_sqlite::open_data_dir(tmp.path()).unwrap();
    let job = job();
    store.create_job(&job).await.unwrap();
    raw(&tmp.path().join(DB_FILE_NAME))
        .execute("UPDATE jobs SET status = 'exploded'", [])
        .unwrap();
    let err = store.get_job(job.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
}

#[tokio::test]
async fn a_transition_moves_the_latest_attempt_and_get_job_lists_attempts_oldest_first() {
    // Nothing creates attempts yet (claiming comes later), so they are written by hand.
    let tmp = tempfile::tempdir().unwrap();
    let store = runway_store_sqlite::open_data_dir(tmp.path()).unwrap();
    let job = job();
    store.create_job(&job).await.unwrap();
    store
        .transition_job(job.id, JobStatus::Claimed, t0())
        .await
        .unwrap();
    let agent = AgentId::new();
    let conn = raw(&tmp.path().join(DB_FILE_NAME));
    for (number, status) in [(2, "claimed"), (1, "lost")] {
        conn.execute(
            "INSERT INTO job_attempts (job_id, number, agent_id, status, claimed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![job.id.to_string(), number, agent.to_string(), status, 7_i64],
        )
        .unwrap();
    }

    store
        .transition_job(job.id, JobStatus::Running, t0())
        .await
        .unwrap();
    let detail = store.get_job(job.id).await.unwrap().unwrap();
    let attempts: Vec<_> = detail
        .attempts
        .iter()
        .map(|a| (a.number, a.status, a.agent_id))
        .collect();
    assert_eq!(
        attempts,
        [(1, JobStatus::Lost, agent), (2, JobStatus::Running, agent)]
    );
    assert_eq!(
        detail.attempts[0].claimed_at,
        OffsetDateTime::from_unix_timestamp_nanos(7).unwrap()
    );
}

/// Writers and inline readers hammer one store at once; no call may fail with a
/// busy or locked error, and every read sees a consistent job.
async fn reads_and_writes_interleave(store: SqliteStore) {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let job = job();
                store.create_job(&job).await.unwrap();
                store
                    .transition_job(job.id, JobStatus::Claimed, t0())
                    .await
                    .unwrap();
            }
        }));
    }
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let page = store
                    .list_jobs(&runway_core::store::JobQuery::default())
                    .await
                    .unwrap();
                for listed in page.items.iter().take(3) {
                    let detail = store.get_job(listed.id).await.unwrap().unwrap();
                    assert_eq!(detail.job.id, listed.id);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let claimed = store
        .list_jobs(&runway_core::store::JobQuery {
            status: Some(JobStatus::Claimed),
            page: runway_core::page::PageRequest {
                limit: 100,
                after: None,
            },
        })
        .await
        .unwrap();
    assert_eq!(claimed.items.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_interleave_on_a_file_without_busy_errors() {
    let tmp = tempfile::tempdir().unwrap();
    reads_and_writes_interleave(runway_store_sqlite::open_data_dir(tmp.path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_interleave_in_memory_without_locked_errors() {
    reads_and_writes_interleave(runway_store_sqlite::open_in_memory().unwrap()).await;
}
