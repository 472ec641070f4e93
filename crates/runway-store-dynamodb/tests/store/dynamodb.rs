//! DynamoDB-specific behaviour: the tables `create_tables` makes (compared with
//! `schema()` through `DescribeTable`), TTL and lazy expiry, the raw item shapes
//! that make conditions and sparse indexes work, and the mapping of an unreachable
//! endpoint to `Unavailable`.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, KeyType, ProjectionType, ScalarAttributeType, TimeToLiveStatus,
};
use runway_core::agent::{Agent, AgentMetrics, AgentState, AgentStatus, RegistrationToken};
use runway_core::id::{AgentId, RegistrationTokenId, SessionId, UserId};
use runway_core::job::{Job, JobSpec};
use runway_core::lifecycle::{AttemptEnd, JobStatus};
use runway_core::page::PageRequest;
use runway_core::secret::TokenHash;
use runway_core::session::Session;
use runway_core::store::{
    AgentQuery, AgentStore, Conflict, DispatchStore, JobStore, RecordKind, RegistrationTokenStore,
    SessionStore, StoreError, StoreHealth, UserStore,
};
use runway_core::user::{Role, User};
use runway_store_dynamodb::{
    AttributeKind, DynamoStore, KeyAttribute, Projection, TableSpec, schema,
};
use time::{Duration, OffsetDateTime};

use crate::support::{
    LEASE, at, claim, config, fresh_store, loader, raw_item, registration_token, runner, t0,
    unique_prefix,
};

fn session(user: UserId, created_at: OffsetDateTime) -> Session {
    Session {
        id: SessionId::new(),
        user_id: user,
        username: "ada".into(),
        role: Role::Member,
        device_name: None,
        user_agent: Some("curl/8".into()),
        ip: None,
        created_at,
        last_seen_at: created_at,
        expires_at: created_at + Duration::days(7),
        idle_timeout_seconds: 3600,
        token_hash: TokenHash::of(&format!("s-{}", SessionId::new())),
    }
}

fn scalar(kind: AttributeKind) -> ScalarAttributeType {
    match kind {
        AttributeKind::String => ScalarAttributeType::S,
        AttributeKind::Number => ScalarAttributeType::N,
    }
}

/// `(name, HASH|RANGE)` pairs of a spec's key, for comparison with DescribeTable.
fn keys(partition: &KeyAttribute, sort: Option<&KeyAttribute>) -> Vec<(String, KeyType)> {
    let mut keys = vec![(partition.name.to_owned(), KeyType::Hash)];
    keys.extend(sort.map(|s| (s.name.to_owned(), KeyType::Range)));
    keys
}

fn key_attributes(spec: &TableSpec) -> BTreeSet<(String, ScalarAttributeType)> {
    let mut all = vec![&spec.partition_key];
    all.extend(&spec.sort_key);
    for index in &spec.indexes {
        all.push(&index.partition_key);
        all.extend(&index.sort_key);
    }
    all.into_iter()
        .map(|k| (k.name.to_owned(), scalar(k.kind)))
        .collect()
}

#[tokio::test]
async fn create_tables_is_idempotent_and_the_store_answers_as_dynamodb() {
    let store = fresh_store().await;
    store.create_tables().await.expect("a second call is fine");
    store.ping().await.expect("ping");
    assert_eq!(store.backend(), "dynamodb");
    store
        .create_user(&User {
            id: UserId::new(),
            username: "ada".into(),
            role: Role::Admin,
            created_at: t0(),
            password_hash: "h".into(),
        })
        .await
        .expect("create user");
    store
        .create_tables()
        .await
        .expect("a third call, with data");
    assert!(store.has_users().await.expect("has users"), "data survives");
}

#[tokio::test]
async fn the_tables_created_match_the_schema_key_for_key_and_index_for_index() {
    let store = fresh_store().await;
    let client = store.client();
    for spec in schema() {
        let name = format!("{}{}", store.table_prefix(), spec.suffix);
        let table = client
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .expect("describe")
            .table
            .expect("a table");

        let described_keys: Vec<_> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
            .collect();
        assert_eq!(
            described_keys,
            keys(&spec.partition_key, spec.sort_key.as_ref()),
            "{name}"
        );
        let described_attributes: BTreeSet<_> = table
            .attribute_definitions()
            .iter()
            .map(|a| (a.attribute_name().to_owned(), a.attribute_type().clone()))
            .collect();
        assert_eq!(described_attributes, key_attributes(&spec), "{name}");
        assert_eq!(
            table
                .billing_mode_summary()
                .and_then(|b| b.billing_mode().cloned()),
            Some(BillingMode::PayPerRequest),
            "{name}"
        );

        let mut described_indexes: Vec<_> = table
            .global_secondary_indexes()
            .iter()
            .map(|index| {
                let keys: Vec<_> = index
                    .key_schema()
                    .iter()
                    .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
                    .collect();
                let projection = index
                    .projection()
                    .and_then(|p| p.projection_type().cloned());
                (
                    index.index_name().unwrap_or_default().to_owned(),
                    keys,
                    projection,
                )
            })
            .collect();
        described_indexes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut expected_indexes: Vec<_> = spec
            .indexes
            .iter()
            .map(|index| {
                let projection = match index.projection {
                    Projection::KeysOnly => ProjectionType::KeysOnly,
                    Projection::All => ProjectionType::All,
                    Projection::Include(_) => ProjectionType::Include,
                };
                (
                    index.name.to_owned(),
                    keys(&index.partition_key, index.sort_key.as_ref()),
                    Some(projection),
                )
            })
            .collect();
        expected_indexes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(described_indexes, expected_indexes, "{name}");

        let ttl = client
            .describe_time_to_live()
            .table_name(&name)
            .send()
            .await
            .expect("describe ttl")
            .time_to_live_description
            .expect("a ttl description");
        match spec.ttl_attribute {
            Some(attribute) => {
                assert_eq!(ttl.attribute_name(), Some(attribute), "{name}");
                assert_eq!(
                    ttl.time_to_live_status(),
                    Some(&TimeToLiveStatus::Enabled),
                    "{name}"
                );
            }
            None => assert_ne!(
                ttl.time_to_live_status(),
                Some(&TimeToLiveStatus::Enabled),
                "{name}"
            ),
        }
    }
}

#[tokio::test]
async fn an_expired_session_whose_item_still_exists_is_not_listed() {
    let store = fresh_store().await;
    let user = UserId::new();
    let now = t0() + Duration::hours(3);
    // Idle for three hours with a one-hour idle timeout: expired at t0 + 1 h.
    let expired = session(user, t0());
    let active = session(user, now - Duration::minutes(5));
    store.create_session(&expired).await.expect("create");
    store.create_session(&active).await.expect("create");

    let item = raw_item(&store, "sessions", "session_id", expired.id.to_string())
        .await
        .expect("TTL deletes lazily: the item is still there");
    let ttl = expired.effective_expiry().unix_timestamp() + 1;
    assert_eq!(
        item.get("ttl"),
        Some(&AttributeValue::N(ttl.to_string())),
        "ttl is the effective expiry in epoch seconds, rounded up"
    );
    assert_eq!(
        store.list_user_sessions(user, now).await.expect("list"),
        [active]
    );
    let read = store
        .get_session(expired.id)
        .await
        .expect("get")
        .expect("returned, for the caller to judge");
    assert!(!read.is_active(now));
}

#[tokio::test]
async fn touching_a_session_moves_its_ttl_with_the_idle_expiry() {
    let store = fresh_store().await;
    let s = session(UserId::new(), t0());
    store.create_session(&s).await.expect("create");
    let later = t0() + Duration::minutes(30);
    store.touch_session(s.id, later).await.expect("touch");
    let item = raw_item(&store, "sessions", "session_id", s.id.to_string())
        .await
        .expect("item");
    let expected = (later + Duration::hours(1)).unix_timestamp() + 1;
    assert_eq!(
        item.get("ttl"),
        Some(&AttributeValue::N(expected.to_string()))
    );
}

#[tokio::test]
async fn a_jobs_attempts_live_in_its_item_and_timestamps_are_nanosecond_numbers() {
    let store = fresh_store().await;
    let job = job_named("build");
    store.create_job(&job).await.expect("create");
    let item = raw_item(&store, "jobs", "job_id", job.id.to_string())
        .await
        .expect("item");
    assert_eq!(item.get("attempts"), Some(&AttributeValue::L(vec![])));
    assert_eq!(
        item.get("created_at"),
        Some(&AttributeValue::N("1750000000123456789".into()))
    );

    let agent = runner(&store, "default", &[], 1).await;
    let c = claim(&store, &agent, at(1)).await.expect("a claim");
    let item = raw_item(&store, "jobs", "job_id", job.id.to_string())
        .await
        .expect("item");
    assert_eq!(
        item.get("status"),
        Some(&AttributeValue::S("claimed".into()))
    );
    let Some(AttributeValue::L(attempts)) = item.get("attempts") else {
        panic!("attempts is a list: {item:?}");
    };
    let [AttributeValue::M(attempt)] = attempts.as_slice() else {
        panic!("one attempt: {attempts:?}");
    };
    assert_eq!(attempt["number"], AttributeValue::N("1".into()));
    assert_eq!(
        attempt["claimed_at"],
        AttributeValue::N("1750000001123456789".into())
    );
    assert_eq!(
        attempt["lease_expires_at"],
        AttributeValue::N((at(1) + LEASE).unix_timestamp_nanos().to_string())
    );
    assert_eq!(attempt["log_bytes"], AttributeValue::N("0".into()));
    assert_eq!(
        attempt["job_token_hash"],
        AttributeValue::S(c.attempt.job_token_hash.as_str().into()),
        "only the hash of the job token is stored"
    );
    assert!(!attempt.contains_key("started_at"), "absent, not NULL");
}

#[tokio::test]
async fn a_transition_moves_the_latest_attempt_with_the_job_and_keeps_the_history() {
    let store = fresh_store().await;
    let job = job_named("retried");
    store.create_job(&job).await.expect("create");
    let first = runner(&store, "default", &[], 1).await;
    let second = runner(&store, "default", &[], 1).await;
    claim(&store, &first, at(1)).await.expect("first claim");
    store
        .end_attempt(job.id, 1, AttemptEnd::Abandoned, None, at(2))
        .await
        .expect("lost and re-queued");
    claim(&store, &second, at(3)).await.expect("second claim");

    let moved = store
        .transition_job(job.id, JobStatus::Canceling, at(9))
        .await
        .expect("cancel");
    assert_eq!(moved.status, JobStatus::Canceling);
    assert_eq!(moved.attempt_count, 2);
    let detail = store.get_job(job.id).await.expect("get").expect("exists");
    let statuses: Vec<_> = detail
        .attempts
        .iter()
        .map(|a| (a.number, a.agent_id, a.status))
        .collect();
    assert_eq!(
        statuses,
        [
            (1, first.id, JobStatus::Lost),
            (2, second.id, JobStatus::Canceling)
        ]
    );
    assert_eq!(detail.job, moved);
}

#[tokio::test]
async fn tokens_resolve_through_lookup_items_written_with_their_records() {
    let store = fresh_store().await;
    let token = RegistrationToken {
        token_hash: TokenHash::of("rwr_x"),
        ..registration_token(None)
    };
    store
        .create_registration_token(&token)
        .await
        .expect("token");
    let agent = Agent {
        id: AgentId::new(),
        name: "b".into(),
        region: None,
        labels: vec![],
        queue: "default".into(),
        capacity: 1,
        state: AgentState::Active,
        version: None,
        created_at: t0(),
        last_heartbeat_at: None,
        metrics: AgentMetrics::default(),
        registration_token_id: RegistrationTokenId::new(),
        token_hash: TokenHash::of("rwa_x"),
    };
    store
        .register_agent(&token.token_hash, agent.clone(), t0())
        .await
        .expect("register");
    let lookup = raw_item(
        &store,
        "lookups",
        "lookup_key",
        format!("agent_token#{}", agent.token_hash.as_str()),
    )
    .await
    .expect("the agent's lookup item");
    assert_eq!(
        lookup.get("target_id"),
        Some(&AttributeValue::S(agent.id.to_string()))
    );
    let stored = raw_item(&store, "agents", "agent_id", agent.id.to_string())
        .await
        .expect("agent item");
    assert!(
        !stored.contains_key("region"),
        "no region attribute, so the agent stays out of the sparse by_region index"
    );

    store
        .delete_registration_token(token.id)
        .await
        .expect("delete");
    assert!(
        raw_item(
            &store,
            "lookups",
            "lookup_key",
            format!("registration_token#{}", token.token_hash.as_str()),
        )
        .await
        .is_none(),
        "the token's lookup item goes with it"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported_as_unavailable_with_a_retry_hint() {
    // Port 9 on loopback: nothing listens there, so the connection is refused.
    let store = DynamoStore::connect_with(
        &config("http://127.0.0.1:9".into(), unique_prefix()),
        loader(),
    )
    .await
    .expect("connecting makes no request");
    match store.ping().await {
        Err(StoreError::Unavailable { retry_after, .. }) => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(1)));
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_store_on_tables_that_do_not_exist_fails_as_internal_not_unavailable() {
    let store = DynamoStore::connect_with(
        &config(crate::support::endpoint(), unique_prefix()),
        loader(),
    )
    .await
    .expect("connect");
    let err = store.ping().await.expect_err("no tables");
    let StoreError::Internal(source) = err else {
        panic!("a missing table is a deployment bug, not an outage: {err:?}");
    };
    let chain = format!("{source:?}");
    assert!(chain.contains("ResourceNotFoundException"), "{chain}");
}

#[tokio::test]
async fn a_health_filter_reads_ahead_past_many_non_matching_agents_without_skipping_any() {
    let store = fresh_store().await;
    let token = registration_token(None);
    store
        .create_registration_token(&token)
        .await
        .expect("token");
    let now = t0() + Duration::hours(1);
    let mut online = Vec::new();
    // 3 online agents among 120, more than one 100-id chunk of the index.
    for i in 0..120 {
        let id = AgentId::new();
        let agent = Agent {
            id,
            name: format!("builder-{i}"),
            region: Some("eu-west-1".into()),
            labels: vec![],
            queue: "default".into(),
            capacity: 1,
            state: AgentState::Active,
            version: None,
            created_at: t0(),
            last_heartbeat_at: None,
            metrics: AgentMetrics::default(),
            registration_token_id: token.id,
            token_hash: TokenHash::of(&format!("rwa_{id}")),
        };
        store
            .register_agent(&token.token_hash, agent, t0())
            .await
            .expect("register");
        if i % 50 == 0 {
            store
                .record_heartbeat(id, &AgentMetrics::default(), now)
                .await
                .expect("heartbeat");
            online.push(id);
        }
    }
    online.sort_by(|a, b| b.cmp(a));

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_agents(
                &AgentQuery {
                    region: Some("eu-west-1".into()),
                    status: Some(AgentStatus::Online),
                    page: PageRequest {
                        limit: 2,
                        after: cursor.take(),
                    },
                },
                now,
            )
            .await
            .expect("list");
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|a| a.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(sizes.len() < 5, "pagination does not terminate");
    }
    assert_eq!(sizes, [2, 1]);
    assert_eq!(seen, online);
}

#[tokio::test]
async fn signing_out_everywhere_pages_through_more_sessions_than_one_index_page() {
    let store = fresh_store().await;
    let user = UserId::new();
    for _ in 0..130 {
        store
            .create_session(&session(user, t0()))
            .await
            .expect("create");
    }
    let keep = session(user, t0());
    store.create_session(&keep).await.expect("create");
    assert_eq!(
        store
            .list_user_sessions(user, t0())
            .await
            .expect("list")
            .len(),
        131
    );
    let deleted = store
        .revoke_user_sessions(user, Some(keep.id))
        .await
        .expect("revoke");
    assert_eq!(deleted, 130);
    assert_eq!(
        store.list_user_sessions(user, t0()).await.expect("list"),
        [keep]
    );
}

#[tokio::test]
async fn a_password_change_revokes_more_sessions_than_one_transaction_holds() {
    // 100 sessions need two transactions (99 deletes and the check, then the hash
    // and the last delete). Two stores, so that each table holds only 100 items:
    // moto copies the whole table for every action of a transaction, and a bigger
    // one outgrows the store's 2 s attempt timeout on a busy machine.
    const SESSIONS: usize = 100;
    let sessions_of = async |store: &DynamoStore, user: UserId| {
        for _ in 0..SESSIONS {
            store
                .create_session(&session(user, t0()))
                .await
                .expect("create");
        }
    };

    // Under an id with no user, every session survives the refused change, those
    // the earlier transaction (with its check on the user) would delete included.
    let store = fresh_store().await;
    let ghost = UserId::new();
    sessions_of(&store, ghost).await;
    let err = store
        .set_password_hash(ghost, "$argon2id$x")
        .await
        .expect_err("no such user");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(
        store
            .list_user_sessions(ghost, t0())
            .await
            .expect("list")
            .len(),
        SESSIONS
    );

    let store = fresh_store().await;
    let ada = User {
        id: UserId::new(),
        username: "ada".into(),
        role: Role::Member,
        created_at: t0(),
        password_hash: "$argon2id$old".into(),
    };
    store.create_user(&ada).await.expect("create");
    sessions_of(&store, ada.id).await;
    store
        .set_password_hash(ada.id, "$argon2id$new")
        .await
        .expect("set");
    assert_eq!(
        store.list_user_sessions(ada.id, t0()).await.expect("list"),
        []
    );
    let user = store.get_user(ada.id).await.expect("get").expect("user");
    assert_eq!(user.password_hash, "$argon2id$new");
}

#[tokio::test]
async fn an_endpoint_that_accepts_but_never_answers_is_unavailable_within_the_call_timeout() {
    // Accepts every connection and holds it open without reading or writing: the
    // stalled server that, without timeouts, would hang a call until the Lambda died.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let store = DynamoStore::connect_with(&config(endpoint, unique_prefix()), loader())
        .await
        .expect("connecting makes no request");

    let started = std::time::Instant::now();
    let result = store.get_session(SessionId::new()).await;
    let elapsed = started.elapsed();
    silent.abort();
    match result {
        Err(StoreError::Unavailable { retry_after, .. }) => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(1)));
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(
        elapsed < std::time::Duration::from_secs(15),
        "the call took {elapsed:?}"
    );
}

/// A queued job named `name`, submitted at [`t0`].
fn job_named(name: &str) -> Job {
    Job::new(
        JobSpec {
            name: name.into(),
            script: "make".into(),
            env: Default::default(),
            labels: vec![],
            queue: "default".into(),
            priority: 0,
            timeout_seconds: 60,
            max_retries: 2,
            secrets: Default::default(),
        },
        UserId::new(),
        t0(),
    )
}

#[tokio::test]
async fn a_create_whose_retry_finds_its_own_item_succeeds_and_a_different_item_still_conflicts() {
    let store = fresh_store().await;
    let job = job_named("deploy");
    store.create_job(&job).await.expect("create");
    // The SDK's retry of the same PutItem: the item is already there, and it is ours.
    store.create_job(&job).await.expect("the retried create");
    let mut other = job_named("deploy");
    other.id = job.id;
    let err = store.create_job(&other).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Conflict::Exists(RecordKind::Job))),
        "{err:?}"
    );
    assert_eq!(store.get_job(job.id).await.unwrap().unwrap().job, job);

    let user = UserId::new();
    let s = session(user, t0());
    store.create_session(&s).await.expect("create");
    store.create_session(&s).await.expect("the retried create");
    let mut impostor = session(user, t0());
    impostor.id = s.id;
    let err = store.create_session(&impostor).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Exists(RecordKind::Session))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_transition_whose_retry_finds_its_own_write_returns_it_instead_of_a_conflict() {
    let store = fresh_store().await;
    let job = job_named("deploy");
    store.create_job(&job).await.expect("create");
    let at = t0() + Duration::seconds(5);
    let first = store
        .transition_job(job.id, JobStatus::Canceled, at)
        .await
        .expect("cancel");
    // The same call again (what the SDK's retry amounts to): our write, not a race lost.
    let again = store
        .transition_job(job.id, JobStatus::Canceled, at)
        .await
        .expect("the retried cancel");
    assert_eq!(again, first);
    // Anyone else asking for the same move later is refused as the lifecycle says.
    let later = store
        .transition_job(job.id, JobStatus::Canceled, at + Duration::seconds(1))
        .await
        .unwrap_err();
    assert!(
        matches!(later, StoreError::IllegalTransition(_)),
        "{later:?}"
    );
}
