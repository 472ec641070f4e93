//! SQLite-specific behaviour: the file on disk, its journal mode, migrations, that
//! a failed write is rolled back whole, and what only the raw tables can show (a
//! final job's secrets are gone from disk, a log filled to its cap byte for byte).
//! Each test gets its own temp directory.

use runway_conformance::audit_event;
use std::path::Path;

use runway_core::agent::{Agent, AgentMetrics, AgentState, RegistrationToken};
use runway_core::audit::{Actor, AuditAction, AuditEvent};
use runway_core::id::{AgentId, JobId, RegistrationTokenId, SessionId, UserId};
use runway_core::job::{Job, JobSecrets, JobSpec};
use runway_core::lifecycle::{AttemptEnd, JobStatus};
use runway_core::log::{
    CHUNK_MAX_BYTES, LOG_MARKER_ALLOWANCE, LOG_MAX_BYTES, LogAppend, LogChunk, LogSummary,
    crc32_append,
};
use runway_core::secret::TokenHash;
use runway_core::session::Session;
use runway_core::store::{
    AgentStore, AuditQuery, AuditStore, Claim, ClaimRequest, Conflict, DispatchStore, JobStore,
    LogStore, RecordKind, RegistrationTokenStore, SessionStore, StoreError, StoreHealth, UserStore,
};
use runway_core::user::{Role, User};
use runway_store_sqlite::{DB_FILE_NAME, SchemaTooNew, SqliteStore};
use rusqlite::Connection;
use time::{Duration, OffsetDateTime};

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
        credential_epoch: 0,
        disabled: false,
    }
}

fn session(user: &User, created_at: OffsetDateTime) -> Session {
    Session {
        id: SessionId::new(),
        user_id: user.id,
        username: user.username.clone(),
        role: user.role,
        device_name: None,
        user_agent: None,
        ip: None,
        created_at,
        last_seen_at: created_at,
        expires_at: created_at + Duration::days(7),
        idle_timeout_seconds: 86_400,
        token_hash: TokenHash::of(&format!("s-{}", SessionId::new())),
        credential_epoch: user.credential_epoch,
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
        secrets: JobSecrets::default(),
    };
    Job::new(spec, UserId::new(), t0())
}

fn secret_job() -> Job {
    let mut j = job();
    j.spec.secrets = [("DEPLOY_KEY".to_owned(), "s3cr3t".to_owned())]
        .into_iter()
        .collect();
    j
}

fn registration_token(max_uses: Option<u32>) -> RegistrationToken {
    RegistrationToken {
        id: RegistrationTokenId::new(),
        description: None,
        created_by: UserId::new(),
        created_at: t0(),
        expires_at: None,
        max_uses,
        uses: 0,
        token_hash: TokenHash::of(&format!("registration-{}", ulid::Ulid::new())),
    }
}

fn agent(name: &str) -> Agent {
    let id = AgentId::new();
    Agent {
        id,
        name: name.into(),
        region: None,
        labels: vec!["linux".into()],
        queue: "default".into(),
        capacity: 4,
        state: AgentState::Active,
        version: None,
        created_at: t0(),
        last_heartbeat_at: None,
        metrics: AgentMetrics::default(),
        registration_token_id: RegistrationTokenId::new(),
        token_hash: TokenHash::of(&format!("agent-{id}")),
    }
}

/// Registers an agent with capacity 4 on the default queue.
async fn runner(store: &SqliteStore) -> Agent {
    let token = registration_token(None);
    store
        .create_registration_token(&token, &audit_event())
        .await
        .unwrap();
    store
        .register_agent(&token.token_hash, agent("runner"), t0(), &audit_event())
        .await
        .unwrap()
}

async fn claim(store: &SqliteStore, agent: &Agent) -> Option<Claim> {
    let request = ClaimRequest {
        agent: agent.clone(),
        job_token: TokenHash::of(&format!("job-{}", ulid::Ulid::new())),
        lease_expires_at: t0() + Duration::minutes(2),
    };
    store
        .claim_job(&request, t0(), &audit_event())
        .await
        .unwrap()
}

/// The raw `secrets` column of a job.
fn stored_secrets(path: &Path, id: JobId) -> Option<String> {
    raw(path)
        .query_row(
            "SELECT secrets FROM jobs WHERE id = ?1",
            [id.to_string()],
            |row| row.get(0),
        )
        .unwrap()
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
        store.create_job(&job, &audit_event()).await.unwrap();
        let agent = runner(&store).await;
        claim(&store, &agent).await.expect("the job");
        let chunk = LogChunk {
            seq: 0,
            offset: 0,
            data: b"building\n".to_vec(),
        };
        store.append_log(job.id, 1, &chunk).await.unwrap();
        tables(&raw(&tmp.path().join(DB_FILE_NAME)))
    };

    let store = runway_store_sqlite::open_data_dir(tmp.path()).unwrap();
    assert_eq!(store.get_user(ada.id).await.unwrap(), Some(ada));
    let detail = store.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(detail.job.status, JobStatus::Claimed);
    assert_eq!(detail.job.spec, job.spec);
    assert_eq!(detail.attempts.len(), 1);
    let log = store.read_log(job.id, 1, 0, 100).await.unwrap();
    assert_eq!(log.data, b"building\n");

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
    assert!(
        claim_index.contains("labels"),
        "migration 4 rebuilt it with the labels: {claim_index}"
    );
}

#[tokio::test]
async fn a_version_three_database_keeps_its_agents_and_tokens_active_and_unlimited() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("runway.db");
    let (token, agent) = (registration_token(None), agent("old"));
    {
        let conn = raw(&path);
        for sql in [
            include_str!("../../migrations/0001_initial.sql"),
            include_str!("../../migrations/0002_claimable_jobs.sql"),
            include_str!("../../migrations/0003_audit_events.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute(
            "INSERT INTO registration_tokens (id, created_by, created_at, token_hash) \
             VALUES (?1, ?2, 0, ?3)",
            rusqlite::params![
                token.id.to_string(),
                token.created_by.to_string(),
                token.token_hash.as_str()
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO agents (id, name, labels, queue, capacity, created_at, \
             registration_token_id, token_hash) VALUES (?1, 'old', '[]', 'default', 1, 0, ?2, ?3)",
            rusqlite::params![
                agent.id.to_string(),
                token.id.to_string(),
                agent.token_hash.as_str()
            ],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
    }

    let store = runway_store_sqlite::open(&path).unwrap();
    let upgraded = store.get_agent(agent.id).await.unwrap().expect("kept");
    assert_eq!(upgraded.state, AgentState::Active);
    let tokens = store.list_registration_tokens().await.unwrap();
    assert_eq!(
        tokens
            .iter()
            .map(|t| (t.max_uses, t.uses))
            .collect::<Vec<_>>(),
        [(None, 0)]
    );
    let registered = store
        .register_agent(&token.token_hash, self::agent("new"), t0(), &audit_event())
        .await
        .unwrap();
    assert_eq!(registered.registration_token_id, token.id);
}

#[tokio::test]
async fn a_version_four_database_keeps_the_secret_names_of_jobs_that_still_have_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("runway.db");
    let (waiting, finished) = (JobId::new(), JobId::new());
    {
        let conn = raw(&path);
        for sql in [
            include_str!("../../migrations/0001_initial.sql"),
            include_str!("../../migrations/0002_claimable_jobs.sql"),
            include_str!("../../migrations/0003_audit_events.sql"),
            include_str!("../../migrations/0004_running_jobs.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        for (id, status, secrets) in [
            (waiting, "queued", Some(r#"{"Z_KEY":"z","A_KEY":"a"}"#)),
            (finished, "failed", None),
        ] {
            conn.execute(
                "INSERT INTO jobs (id, name, script, env, labels, queue, priority, \
                 timeout_seconds, max_retries, status, created_by, created_at, updated_at, \
                 attempt_count, secrets) VALUES (?1, 'deploy', 'make', '{}', '[]', \
                 'default', 0, 60, 2, ?2, ?3, 0, 0, 0, ?4)",
                rusqlite::params![id.to_string(), status, UserId::new().to_string(), secrets],
            )
            .unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
    }

    let store = runway_store_sqlite::open(&path).unwrap();
    let job = |id| {
        let store = &store;
        async move { store.get_job(id).await.unwrap().unwrap().job }
    };
    let upgraded = job(waiting).await;
    assert_eq!(
        upgraded.secret_names,
        ["A_KEY", "Z_KEY"],
        "sorted, from the secrets"
    );
    assert_eq!(upgraded.retried_at_attempt, 0);
    // A job already final had lost its secrets, names and all.
    assert_eq!(job(finished).await.secret_names, Vec::<String>::new());
}

#[tokio::test]
async fn a_version_five_database_keeps_its_sessions_at_epoch_zero_and_a_reset_still_revokes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("runway.db");
    let (ada, session) = (UserId::new(), SessionId::new());
    {
        let conn = raw(&path);
        for sql in [
            include_str!("../../migrations/0001_initial.sql"),
            include_str!("../../migrations/0002_claimable_jobs.sql"),
            include_str!("../../migrations/0003_audit_events.sql"),
            include_str!("../../migrations/0004_running_jobs.sql"),
            include_str!("../../migrations/0005_job_retries.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute(
            "INSERT INTO users (id, username, role, created_at, password_hash) \
             VALUES (?1, 'ada', 'member', 0, '$argon2id$old')",
            [ada.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO sessions (id, user_id, username, role, created_at, last_seen_at, \
             expires_at, idle_timeout_seconds, token_hash) \
             VALUES (?1, ?2, 'ada', 'member', 0, 0, ?3, 86400, 'h')",
            rusqlite::params![session.to_string(), ada.to_string(), i64::MAX],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 5).unwrap();
    }

    let store = runway_store_sqlite::open(&path).unwrap();
    let user = store.get_user(ada).await.unwrap().unwrap();
    assert_eq!(user.credential_epoch, 0);
    let kept = store.get_session(session).await.unwrap().expect("kept");
    assert_eq!(kept.credential_epoch, 0);
    store
        .set_password_hash(ada, "$argon2id$new", &audit_event())
        .await
        .unwrap();
    assert_eq!(store.get_session(session).await.unwrap(), None);
    assert_eq!(
        store.get_user(ada).await.unwrap().unwrap().credential_epoch,
        1
    );
}

#[tokio::test]
async fn the_purge_deletes_expired_session_rows_in_batches_and_keeps_active_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("runway.db");
    let store = runway_store_sqlite::open(&path).unwrap();
    let ada = user("ada");
    store.create_user(&ada).await.unwrap();
    let now = t0() + Duration::days(2);
    let mut expired = Vec::new();
    for _ in 0..5 {
        // Idle for two days with a one-day idle timeout.
        let s = session(&ada, t0());
        store.create_session(&s, &audit_event()).await.unwrap();
        expired.push(s.id);
    }
    let mut active = session(&ada, t0());
    active.last_seen_at = now - Duration::minutes(1);
    store.create_session(&active, &audit_event()).await.unwrap();

    assert_eq!(store.purge_expired_sessions(now, 3).await.unwrap(), 3);
    assert_eq!(store.purge_expired_sessions(now, 3).await.unwrap(), 2);
    assert_eq!(store.purge_expired_sessions(now, 3).await.unwrap(), 0);
    let rows: i64 = raw(&path)
        .query_row("SELECT count(*) FROM sessions", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 1, "the rows are gone, not merely expired");
    assert_eq!(store.get_session(active.id).await.unwrap(), Some(active));
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
    let token = registration_token(Some(5));
    store
        .create_registration_token(&token, &audit_event())
        .await
        .unwrap();
    let agent = |name: &str| Agent {
        // Both agents get the same token hash, which must be unique.
        token_hash: TokenHash::of("agent"),
        ..agent(name)
    };
    store
        .register_agent(&token.token_hash, agent("first"), t0(), &audit_event())
        .await
        .unwrap();

    let second = agent("second");
    let err = store
        .register_agent(&token.token_hash, second.clone(), t0(), &audit_event())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Exists(RecordKind::Agent))
        ),
        "{err:?}"
    );
    assert_eq!(store.get_agent(second.id).await.unwrap(), None);
    let count: i64 = raw(&tmp.path().join(DB_FILE_NAME))
        .query_row("SELECT COUNT(*) FROM agents", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 1);
    let uses: Vec<u32> = store
        .list_registration_tokens()
        .await
        .unwrap()
        .iter()
        .map(|t| t.uses)
        .collect();
    assert_eq!(
        uses,
        [1],
        "the failed registration's use was rolled back with it"
    );
}

#[tokio::test]
async fn a_taken_username_is_a_conflict_naming_it_and_the_first_user_is_untouched() {
    let store = runway_store_sqlite::open_in_memory().unwrap();
    let first = user("ada");
    store.create_user(&first).await.unwrap();
    let err = store.create_user(&user("ada")).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(Conflict::UsernameTaken(name)) if name == "ada"),
        "{err:?}"
    );
    let mut same_id = user("grace");
    same_id.id = first.id;
    let err = store.create_user(&same_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Exists(RecordKind::User))
        ),
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
    store.create_job(&job, &audit_event()).await.unwrap();
    raw(&tmp.path().join(DB_FILE_NAME))
        .execute("UPDATE jobs SET status = 'exploded'", [])
        .unwrap();
    let err = store.get_job(job.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
}

#[tokio::test]
async fn a_transition_moves_only_the_current_attempt_and_get_job_lists_attempts_oldest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let store = runway_store_sqlite::open_data_dir(tmp.path()).unwrap();
    let job = job();
    store.create_job(&job, &audit_event()).await.unwrap();
    let agent = runner(&store).await;
    claim(&store, &agent).await.expect("attempt 1");
    store
        .end_attempt(job.id, 1, AttemptEnd::Abandoned, None, t0(), &audit_event())
        .await
        .unwrap();
    claim(&store, &agent).await.expect("attempt 2");
    store
        .transition_job(job.id, JobStatus::Canceling, t0(), &audit_event())
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
        [
            (1, JobStatus::Lost, agent.id),
            (2, JobStatus::Canceling, agent.id)
        ],
        "the cancel moved attempt 2 and left the lost attempt 1 as it was"
    );
}

#[tokio::test]
async fn a_final_job_has_no_secrets_left_on_disk_and_a_requeued_one_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(DB_FILE_NAME);
    let store = runway_store_sqlite::open_data_dir(tmp.path()).unwrap();
    let agent = runner(&store).await;
    let (ended, canceled, expired, aborted) =
        (secret_job(), secret_job(), secret_job(), secret_job());
    for j in [&ended, &canceled, &expired, &aborted] {
        store.create_job(j, &audit_event()).await.unwrap();
        assert_eq!(
            stored_secrets(&path, j.id).as_deref(),
            Some(r#"{"DEPLOY_KEY":"s3cr3t"}"#)
        );
    }
    store
        .transition_job(canceled.id, JobStatus::Canceled, t0(), &audit_event())
        .await
        .unwrap();
    store
        .transition_job(expired.id, JobStatus::Expired, t0(), &audit_event())
        .await
        .unwrap();

    // Lost and re-queued: still there for the next claim.
    assert_eq!(claim(&store, &agent).await.unwrap().job.id, ended.id);
    store
        .end_attempt(
            ended.id,
            1,
            AttemptEnd::Abandoned,
            None,
            t0(),
            &audit_event(),
        )
        .await
        .unwrap();
    assert!(stored_secrets(&path, ended.id).is_some());
    assert_eq!(claim(&store, &agent).await.unwrap().job.id, ended.id);
    store
        .start_attempt(ended.id, 2, t0(), t0(), &audit_event())
        .await
        .unwrap();
    store
        .end_attempt(
            ended.id,
            2,
            AttemptEnd::Reported(JobStatus::Succeeded),
            Some(0),
            t0(),
            &audit_event(),
        )
        .await
        .unwrap();
    // Held, then moved straight to a final state by a transition.
    assert_eq!(claim(&store, &agent).await.unwrap().job.id, aborted.id);
    store
        .transition_job(aborted.id, JobStatus::Failed, t0(), &audit_event())
        .await
        .unwrap();

    for j in [&ended, &canceled, &expired, &aborted] {
        assert_eq!(stored_secrets(&path, j.id), None, "{}", j.spec.name);
    }
    let plain = job();
    store.create_job(&plain, &audit_event()).await.unwrap();
    assert_eq!(stored_secrets(&path, plain.id), None, "no secrets, no JSON");
}

#[tokio::test]
async fn a_log_fills_to_exactly_its_cap_and_then_refuses_a_single_byte() {
    let store = runway_store_sqlite::open_in_memory().unwrap();
    let job = job();
    store.create_job(&job, &audit_event()).await.unwrap();
    let agent = runner(&store).await;
    claim(&store, &agent).await.expect("the job");

    let cap = LOG_MAX_BYTES + LOG_MARKER_ALLOWANCE;
    // Byte `n` of the log is `n % 256`; chunks are a multiple of 256 bytes long, so
    // every one starts with the same bytes.
    let block: Vec<u8> = (0..CHUNK_MAX_BYTES).map(|i| i as u8).collect();
    let mut crc = 0;
    let mut offset = 0;
    let mut seq = 0;
    while offset < cap {
        let len = usize::try_from(cap - offset).unwrap().min(CHUNK_MAX_BYTES);
        let data = block[..len].to_vec();
        crc = crc32_append(crc, &data);
        let chunk = LogChunk { seq, offset, data };
        offset += len as u64;
        assert_eq!(
            store.append_log(job.id, 1, &chunk).await.unwrap(),
            LogAppend::Written { size: offset }
        );
        seq += 1;
    }
    assert_eq!(offset, cap);
    let one_more = LogChunk {
        seq,
        offset: cap,
        data: b"!".to_vec(),
    };
    let err = store.append_log(job.id, 1, &one_more).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Conflict::LogFull)),
        "{err:?}"
    );
    // A resend of the last byte is still acknowledged: it adds nothing.
    let last = LogChunk {
        seq: seq - 1,
        offset: cap - 1,
        data: vec![((cap - 1) % 256) as u8],
    };
    assert_eq!(
        store.append_log(job.id, 1, &last).await.unwrap(),
        LogAppend::Duplicate { size: cap }
    );
    assert_eq!(
        store.log_summary(job.id, 1).await.unwrap(),
        LogSummary {
            size: cap,
            crc32: crc
        }
    );
    let tail = store
        .read_log(job.id, 1, cap - 3, CHUNK_MAX_BYTES)
        .await
        .unwrap();
    assert_eq!(
        tail.data,
        [(cap - 3) as u8, (cap - 2) as u8, (cap - 1) as u8]
    );
}

#[tokio::test]
async fn a_chunk_and_the_logs_size_commit_together_or_not_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(DB_FILE_NAME);
    let store = runway_store_sqlite::open_data_dir(tmp.path()).unwrap();
    let job = job();
    store.create_job(&job, &audit_event()).await.unwrap();
    let agent = runner(&store).await;
    claim(&store, &agent).await.expect("the job");
    let chunk = |offset: u64, data: &[u8]| LogChunk {
        seq: 0,
        offset,
        data: data.to_vec(),
    };
    store
        .append_log(job.id, 1, &chunk(0, b"abc"))
        .await
        .unwrap();
    // Another connection holds a chunk row where the next append will write.
    raw(&path)
        .execute(
            "INSERT INTO log_chunks (job_id, attempt, byte_offset, seq, data) \
             VALUES (?1, 1, 3, 9, x'00')",
            [job.id.to_string()],
        )
        .unwrap();
    let err = store
        .append_log(job.id, 1, &chunk(3, b"def"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    assert_eq!(
        store.log_summary(job.id, 1).await.unwrap(),
        LogSummary {
            size: 3,
            crc32: crc32_append(0, b"abc")
        },
        "the size did not move without its chunk"
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
                store.create_job(&job, &audit_event()).await.unwrap();
                store
                    .transition_job(job.id, JobStatus::Claimed, t0(), &audit_event())
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

#[tokio::test]
async fn a_final_jobs_secrets_are_not_left_behind_in_the_database_file() {
    let tmp = tempfile::tempdir().unwrap();
    // Big enough to spill the row onto overflow pages, which a delete frees whole.
    let canary = |i: usize| format!("canary-{i:02}-{}", "x".repeat(3000));
    let mut j = job();
    j.spec.secrets = (0..20)
        .map(|i| (format!("SECRET_{i}"), canary(i)))
        .collect();
    {
        let store = runway_store_sqlite::open_data_dir(tmp.path()).unwrap();
        store.create_job(&j, &audit_event()).await.unwrap();
        let agent = runner(&store).await;
        claim(&store, &agent).await.expect("the job");
        store
            .end_attempt(
                j.id,
                1,
                AttemptEnd::Reported(JobStatus::Failed),
                None,
                t0(),
                &audit_event(),
            )
            .await
            .unwrap();
    }
    // The last connection closed, so the WAL was checkpointed into the file and
    // removed: the file is all there is.
    let bytes = std::fs::read(tmp.path().join(DB_FILE_NAME)).unwrap();
    for i in 0..20 {
        let needle = format!("canary-{i:02}-");
        let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!found, "secret {i} is still in runway.db");
    }
}
