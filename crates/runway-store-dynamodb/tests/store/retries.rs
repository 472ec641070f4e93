//! Writes whose response was lost.
//!
//! The SDK retries a request that failed with a 5xx or a timeout, and a write can
//! have landed before its response was lost. The retry then meets the store's own
//! write: a condition fails on it, a use is counted twice, a claim moves on to the
//! next job. On DynamoDB a retried `TransactWriteItems` is caught by its
//! idempotency token (the SDK sets `ClientRequestToken` once per call); moto
//! ignores the token, so here every retry reaches the store's own recognition,
//! which is what these tests check. The proxy (`runway-moto-proxy`) lets the
//! request reach moto, then answers with a 500 instead of moto's response: once,
//! or for every attempt the SDK makes, when the call fails although it landed.

use runway_conformance::audit_event;
use runway_core::job::JobSecrets;
use runway_core::lifecycle::{AttemptEnd, JobStatus};
use runway_core::log::{LogAppend, LogChunk};
use runway_core::store::{
    AgentStore, DispatchStore, JobStore, LogStore, RegistrationTokenStore, StoreError,
};

use crate::support::{
    LEASE, agent, at, claim, claim_request, fixture, held_set, job, raw_job, registration_token,
    runner, s, t0,
};

#[tokio::test]
async fn a_claim_whose_response_was_lost_returns_that_job_and_not_the_next_one() {
    let f = fixture().await;
    let (first, second) = (job("default", 0, &[]), job("default", 0, &[]));
    f.store
        .create_job(&first, &audit_event())
        .await
        .expect("create");
    f.store
        .create_job(&second, &audit_event())
        .await
        .expect("create");
    let agent = runner(&f.store, "default", &[], 2).await;
    let request = claim_request(&agent, t0());

    f.proxy.lose_next("TransactWriteItems", "list_append");
    let c = f
        .store
        .claim_job(&request, t0(), &audit_event())
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(f.proxy.lost(), 1, "the response was lost");
    assert_eq!(c.job.id, first.id);
    assert_eq!(c.attempt.job_token_hash, request.job_token);
    assert_eq!(
        raw_job(&f.store, second.id).await.get("status"),
        Some(&s("queued")),
        "the retry did not go on to claim another job"
    );
    assert_eq!(
        held_set(&f.store, agent.id).await,
        [format!("{}#1", first.id)]
    );
}

#[tokio::test]
async fn a_claim_that_landed_although_every_attempt_failed_is_returned_not_orphaned() {
    let f = fixture().await;
    let j = job("default", 0, &[]);
    f.store
        .create_job(&j, &audit_event())
        .await
        .expect("create");
    let agent = runner(&f.store, "default", &[], 1).await;
    let request = claim_request(&agent, t0());

    // The first attempt claims the job; its retries fail on that write. Every
    // answer is lost, so the SDK gives up with a 500.
    f.proxy.lose_next_n("TransactWriteItems", "list_append", 3);
    let c = f
        .store
        .claim_job(&request, t0(), &audit_event())
        .await
        .expect("claim")
        .expect("the job it claimed");
    assert_eq!(f.proxy.lost(), 3, "every attempt's answer was lost");
    assert_eq!(c.job.id, j.id);
    assert_eq!(c.attempt.job_token_hash, request.job_token);
    assert_eq!(held_set(&f.store, agent.id).await, [format!("{}#1", j.id)]);
}

#[tokio::test]
async fn an_end_whose_response_was_lost_returns_the_ended_job_instead_of_not_held() {
    let f = fixture().await;
    let j = job("default", 0, &[]);
    f.store
        .create_job(&j, &audit_event())
        .await
        .expect("create");
    let agent = runner(&f.store, "default", &[], 1).await;
    claim(&f.store, &agent, t0()).await.expect("a claim");
    f.store
        .start_attempt(j.id, 1, at(1) + LEASE, at(1), &audit_event())
        .await
        .expect("start");

    f.proxy.lose_next("TransactWriteItems", "finished_at");
    let ended = f
        .store
        .end_attempt(
            j.id,
            1,
            AttemptEnd::Reported(JobStatus::Succeeded),
            Some(0),
            at(5),
            &audit_event(),
        )
        .await
        .expect("the retried end is ours");
    assert_eq!(f.proxy.lost(), 1);
    assert_eq!(ended.status, JobStatus::Succeeded);
    assert_eq!(held_set(&f.store, agent.id).await, Vec::<String>::new());
    // A second, separate call is another matter: the attempt is no longer held.
    let again = f
        .store
        .end_attempt(
            j.id,
            1,
            AttemptEnd::Reported(JobStatus::Succeeded),
            Some(0),
            at(5),
            &audit_event(),
        )
        .await;
    assert!(
        matches!(
            again,
            Err(StoreError::Conflict(runway_core::store::Conflict::NotHeld))
        ),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_registration_whose_response_was_lost_uses_its_token_once() {
    let f = fixture().await;
    let token = registration_token(Some(2));
    f.store
        .create_registration_token(&token, &audit_event())
        .await
        .expect("token");

    f.proxy.lose_next("TransactWriteItems", "max_uses");
    let first = f
        .store
        .register_agent(
            &token.token_hash,
            agent("default", &[], 1),
            t0(),
            &audit_event(),
        )
        .await
        .expect("the retried registration is ours");
    assert_eq!(f.proxy.lost(), 1);
    assert_eq!(f.store.get_agent(first.id).await.expect("get"), Some(first));
    let tokens = f.store.list_registration_tokens().await.expect("list");
    assert_eq!(tokens[0].uses, 1, "one registration, one use");

    f.store
        .register_agent(
            &token.token_hash,
            agent("default", &[], 1),
            t0(),
            &audit_event(),
        )
        .await
        .expect("the second use");
    let third = f
        .store
        .register_agent(
            &token.token_hash,
            agent("default", &[], 1),
            t0(),
            &audit_event(),
        )
        .await;
    assert!(matches!(third, Err(StoreError::NotFound)), "{third:?}");
}

#[tokio::test]
async fn a_log_append_whose_response_was_lost_is_written_once_and_reported_written() {
    let f = fixture().await;
    let j = job("default", 0, &[]);
    f.store
        .create_job(&j, &audit_event())
        .await
        .expect("create");
    let agent = runner(&f.store, "default", &[], 1).await;
    claim(&f.store, &agent, t0()).await.expect("a claim");
    let chunk = |offset, data: &[u8]| LogChunk {
        seq: 0,
        offset,
        data: data.to_vec(),
    };
    f.store
        .append_log(j.id, 1, &chunk(0, b"hello, "))
        .await
        .expect("append");

    f.proxy.lose_next("UpdateItem", "log_bytes");
    let appended = f
        .store
        .append_log(j.id, 1, &chunk(7, b"world"))
        .await
        .expect("append");
    assert_eq!(f.proxy.lost(), 1);
    assert_eq!(appended, LogAppend::Written { size: 12 });
    let log = f.store.read_log(j.id, 1, 0, 1024).await.expect("read");
    assert_eq!(log.data, b"hello, world");
    let summary = f.store.log_summary(j.id, 1).await.expect("summary");
    assert_eq!(summary.crc32, crc32fast_hash(b"hello, world"));
}

#[tokio::test]
async fn a_delete_whose_response_was_lost_is_not_reported_as_not_found() {
    let f = fixture().await;
    let agent = runner(&f.store, "default", &[], 1).await;
    f.proxy.lose_next("TransactWriteItems", "\"Delete\"");
    f.store
        .delete_agent(agent.id, &audit_event())
        .await
        .expect("the retried delete is ours");
    assert_eq!(f.proxy.lost(), 1);
    assert_eq!(f.store.get_agent(agent.id).await.expect("get"), None);
    assert!(matches!(
        f.store.delete_agent(agent.id, &audit_event()).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn a_transition_whose_response_was_lost_returns_it_instead_of_a_conflict() {
    let f = fixture().await;
    let j = job("default", 0, &[]);
    f.store
        .create_job(&j, &audit_event())
        .await
        .expect("create");
    f.proxy.lose_next("TransactWriteItems", "canceled");
    let canceled = f
        .store
        .transition_job(j.id, JobStatus::Canceled, at(3), &audit_event())
        .await
        .expect("the retried cancel is ours");
    assert_eq!(f.proxy.lost(), 1);
    assert_eq!(canceled.status, JobStatus::Canceled);
}

#[tokio::test]
async fn a_users_retry_whose_response_was_lost_returns_it_instead_of_a_conflict() {
    let f = fixture().await;
    let j = job("default", 0, &[]);
    f.store
        .create_job(&j, &audit_event())
        .await
        .expect("create");
    f.store
        .transition_job(j.id, JobStatus::Canceled, at(1), &audit_event())
        .await
        .expect("cancel");
    f.proxy
        .lose_next("TransactWriteItems", "retried_at_attempt");
    let retried = f
        .store
        .retry_job(j.id, &JobSecrets::default(), at(3), &audit_event())
        .await
        .expect("the retried retry is ours");
    assert_eq!(f.proxy.lost(), 1, "the response was lost");
    assert_eq!(
        (retried.status, retried.updated_at),
        (JobStatus::Queued, at(3))
    );
    // A second, separate retry is another matter: the job is no longer final.
    let again = f
        .store
        .retry_job(j.id, &JobSecrets::default(), at(4), &audit_event())
        .await;
    assert!(
        matches!(again, Err(StoreError::IllegalTransition(_))),
        "{again:?}"
    );
}

/// The CRC-32 (IEEE) of `bytes`, as `crc32_append` from nothing computes it.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    runway_core::log::crc32_append(0, bytes)
}

#[tokio::test]
async fn a_sign_in_whose_response_was_lost_keeps_its_session_instead_of_a_conflict() {
    use runway_core::session::Session;
    use runway_core::store::{SessionStore, UserStore};
    use runway_core::user::{Role, User};

    let f = fixture().await;
    let ada = User {
        id: runway_core::id::UserId::new(),
        username: "ada".into(),
        role: Role::Member,
        created_at: t0(),
        password_hash: "$argon2id$h".into(),
        credential_epoch: 0,
        disabled: false,
    };
    f.store.create_user(&ada).await.expect("create");
    let session = Session {
        id: runway_core::id::SessionId::new(),
        user_id: ada.id,
        username: ada.username.clone(),
        role: ada.role,
        device_name: None,
        user_agent: None,
        ip: None,
        created_at: t0(),
        last_seen_at: t0(),
        expires_at: t0() + time::Duration::days(7),
        idle_timeout_seconds: 3600,
        token_hash: runway_core::secret::TokenHash::of("lost"),
        credential_epoch: 0,
    };

    // The put, the user's map entry and its conditions land; the answer is lost and
    // the SDK's retry meets its own session.
    f.proxy.lose_next("TransactWriteItems", "token_hash");
    assert_eq!(
        f.store
            .create_session(&session, &audit_event())
            .await
            .expect("ours"),
        Vec::<runway_core::id::SessionId>::new()
    );
    assert_eq!(f.proxy.lost(), 1, "the response was lost");
    assert_eq!(
        f.store.get_session(session.id).await.expect("get"),
        Some(session.clone())
    );
    assert_eq!(
        f.store
            .list_user_sessions(ada.id, t0())
            .await
            .expect("list"),
        [session]
    );
}
