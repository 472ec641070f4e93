//! DynamoDB-specific behaviour: the tables `create_tables` makes (compared with
//! `schema()` through `DescribeTable`), TTL and lazy expiry, the raw item shapes
//! that make conditions and sparse indexes work, and the mapping of an unreachable
//! endpoint to `Unavailable`.

use runway_conformance::audit_event;
use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, KeyType, ProjectionType, ScalarAttributeType, TimeToLiveStatus,
};
use runway_core::agent::{Agent, AgentMetrics, AgentState, AgentStatus, RegistrationToken};
use runway_core::id::{AgentId, RegistrationTokenId, SessionId, UserId};
use runway_core::job::{Job, JobSpec};
use runway_core::lifecycle::{AttemptEnd, JobStatus};
use runway_core::limit::LimitKey;
use runway_core::page::PageRequest;
use runway_core::secret::TokenHash;
use runway_core::session::{MAX_SESSIONS_PER_USER, Session};
use runway_core::store::{
    AgentQuery, AgentStore, Conflict, DispatchStore, JobStore, LimitStore, RecordKind,
    RegistrationTokenStore, SessionStore, StoreError, StoreHealth, UserStore,
};
use runway_core::user::{Role, User};
use runway_store_dynamodb::{
    AttributeKind, DynamoStore, KeyAttribute, Projection, TableSpec, schema,
};
use time::{Duration, OffsetDateTime};

use crate::support::{
    LEASE, at, claim, config, fixture, fresh_store, loader, raw_item, registration_token, runner,
    t0, unique_prefix,
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
        credential_epoch: 0,
    }
}

/// A new user called `name`, at credential epoch 0.
fn user_named(name: &str) -> User {
    User {
        id: UserId::new(),
        username: name.into(),
        role: Role::Member,
        created_at: t0(),
        password_hash: "$argon2id$old".into(),
        credential_epoch: 0,
        disabled: false,
    }
}

/// The id of a new user, stored, who can sign in.
async fn new_user(store: &DynamoStore) -> UserId {
    let user = user_named(&format!("u-{}", UserId::new()));
    store.create_user(&user).await.expect("create user");
    user.id
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
            credential_epoch: 0,
            disabled: false,
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
    let user = new_user(&store).await;
    let now = t0() + Duration::hours(3);
    // Idle for three hours with a one-hour idle timeout: expired at t0 + 1 h.
    let expired = session(user, t0());
    let active = session(user, now - Duration::minutes(5));
    store
        .create_session(&expired, &audit_event())
        .await
        .expect("create");
    store
        .create_session(&active, &audit_event())
        .await
        .expect("create");

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
    let s = session(new_user(&store).await, t0());
    store
        .create_session(&s, &audit_event())
        .await
        .expect("create");
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
    store
        .create_job(&job, &audit_event())
        .await
        .expect("create");
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
    store
        .create_job(&job, &audit_event())
        .await
        .expect("create");
    let first = runner(&store, "default", &[], 1).await;
    let second = runner(&store, "default", &[], 1).await;
    claim(&store, &first, at(1)).await.expect("first claim");
    store
        .end_attempt(
            job.id,
            1,
            AttemptEnd::Abandoned,
            None,
            at(2),
            &audit_event(),
        )
        .await
        .expect("lost and re-queued");
    claim(&store, &second, at(3)).await.expect("second claim");

    let moved = store
        .transition_job(job.id, JobStatus::Canceling, at(9), &audit_event())
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
        .create_registration_token(&token, &audit_event())
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
        .register_agent(&token.token_hash, agent.clone(), t0(), &audit_event())
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
        .delete_registration_token(token.id, &audit_event())
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
        .create_registration_token(&token, &audit_event())
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
            .register_agent(&token.token_hash, agent, t0(), &audit_event())
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
async fn the_user_item_keeps_its_session_ids_and_a_password_change_empties_them_in_one_transaction()
{
    let f = fixture().await;
    let ada = user_named("ada");
    f.store.create_user(&ada).await.expect("create");
    let mut ids = Vec::new();
    for _ in 0..MAX_SESSIONS_PER_USER {
        let s = session(ada.id, t0());
        f.store
            .create_session(&s, &audit_event())
            .await
            .expect("create");
        ids.push(s.id.to_string());
    }
    let item = raw_item(&f.store, "users", "user_id", ada.id.to_string())
        .await
        .expect("user");
    let Some(AttributeValue::M(map)) = item.get("sessions") else {
        panic!("no sessions map: {item:?}");
    };
    assert_eq!(
        map.keys().cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect()
    );
    assert_eq!(
        item.get("session_version"),
        Some(&AttributeValue::N(MAX_SESSIONS_PER_USER.to_string()))
    );

    // One read of the user, then one transaction of 51 actions: nothing a Lambda
    // could be stopped in the middle of.
    let before = f.proxy.traffic();
    f.store
        .set_password_hash(ada.id, "$argon2id$new", &audit_event())
        .await
        .expect("set");
    let after = f.proxy.traffic();
    let count = |traffic: &runway_moto_proxy::Traffic, op: &str| {
        traffic.operations.get(op).map_or(0, |o| o.requests)
    };
    assert_eq!(
        count(&after, "TransactWriteItems") - count(&before, "TransactWriteItems"),
        1
    );
    assert_eq!(count(&after, "GetItem") - count(&before, "GetItem"), 1);
    assert_eq!(after.total().requests - before.total().requests, 2);

    for id in &ids {
        assert_eq!(
            raw_item(&f.store, "sessions", "session_id", id.clone()).await,
            None
        );
    }
    let item = raw_item(&f.store, "users", "user_id", ada.id.to_string())
        .await
        .expect("user");
    assert_eq!(
        item.get("sessions"),
        Some(&AttributeValue::M(Default::default()))
    );
    assert_eq!(
        item.get("credential_epoch"),
        Some(&AttributeValue::N("1".into()))
    );
    assert_eq!(
        item.get("password_hash"),
        Some(&AttributeValue::S("$argon2id$new".into()))
    );
}

#[tokio::test]
async fn a_session_or_user_from_before_credential_epochs_is_handled_and_the_old_session_is_dead() {
    let store = fresh_store().await;
    // Written as the previous version wrote them: no epoch, no sessions map, and a
    // session that no map lists.
    let ada = user_named("ada");
    store.create_user(&ada).await.expect("create");
    store
        .client()
        .update_item()
        .table_name(format!("{}users", store.table_prefix()))
        .key("user_id", AttributeValue::S(ada.id.to_string()))
        .update_expression("REMOVE credential_epoch")
        .send()
        .await
        .expect("strip the epoch");
    let old = session(ada.id, t0());
    let mut item: std::collections::HashMap<String, AttributeValue> = [
        ("session_id", AttributeValue::S(old.id.to_string())),
        ("user_id", AttributeValue::S(ada.id.to_string())),
        ("username", AttributeValue::S("ada".into())),
        ("role", AttributeValue::S("member".into())),
        ("idle_timeout_seconds", AttributeValue::N("3600".into())),
        (
            "token_hash",
            AttributeValue::S(old.token_hash.as_str().into()),
        ),
        ("ttl", AttributeValue::N("4000000000".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for at in ["created_at", "last_seen_at"] {
        item.insert(at.into(), AttributeValue::N("1750000000123456789".into()));
    }
    item.insert(
        "expires_at".into(),
        AttributeValue::N("1750604800123456789".into()),
    );
    store
        .client()
        .put_item()
        .table_name(format!("{}sessions", store.table_prefix()))
        .set_item(Some(item))
        .send()
        .await
        .expect("an old session");

    assert_eq!(
        store.get_session(old.id).await.expect("get"),
        None,
        "no revocation could reach it, so it is not accepted"
    );
    let read = store.get_user(ada.id).await.expect("get").expect("ada");
    assert_eq!(read.credential_epoch, 0, "an absent epoch is 0");
    let new = session(ada.id, t0());
    store
        .create_session(&new, &audit_event())
        .await
        .expect("the first sign-in makes the map");
    assert_eq!(
        store.list_user_sessions(ada.id, t0()).await.expect("list"),
        [new]
    );
    assert_eq!(
        store
            .revoke_user_sessions(ada.id, None, &audit_event())
            .await
            .expect("revoke"),
        1
    );
    assert_eq!(
        store
            .get_user(ada.id)
            .await
            .expect("get")
            .expect("ada")
            .credential_epoch,
        1
    );
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
    let event = audit_event();
    store.create_job(&job, &event).await.expect("create");
    // The SDK's retry of the same transaction (moto ignores its idempotency
    // token): the job and its event are already there, and they are ours.
    store
        .create_job(&job, &event)
        .await
        .expect("the retried create");
    let mut other = job_named("deploy");
    other.id = job.id;
    let err = store.create_job(&other, &audit_event()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(Conflict::Exists(RecordKind::Job))),
        "{err:?}"
    );
    assert_eq!(store.get_job(job.id).await.unwrap().unwrap().job, job);

    let user = new_user(&store).await;
    let s = session(user, t0());
    store
        .create_session(&s, &audit_event())
        .await
        .expect("create");
    store
        .create_session(&s, &audit_event())
        .await
        .expect("the retried create");
    let mut impostor = session(user, t0());
    impostor.id = s.id;
    let err = store
        .create_session(&impostor, &audit_event())
        .await
        .unwrap_err();
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
    store
        .create_job(&job, &audit_event())
        .await
        .expect("create");
    let at = t0() + Duration::seconds(5);
    let first = store
        .transition_job(job.id, JobStatus::Canceled, at, &audit_event())
        .await
        .expect("cancel");
    // The same call again (what the SDK's retry amounts to): our write, not a race lost.
    let again = store
        .transition_job(job.id, JobStatus::Canceled, at, &audit_event())
        .await
        .expect("the retried cancel");
    assert_eq!(again, first);
    // Anyone else asking for the same move later is refused as the lifecycle says.
    let later = store
        .transition_job(
            job.id,
            JobStatus::Canceled,
            at + Duration::seconds(1),
            &audit_event(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(later, StoreError::IllegalTransition(_)),
        "{later:?}"
    );
}

#[tokio::test]
async fn an_abuse_counter_item_carries_its_ttl_and_only_the_hash_of_what_it_counts() {
    let store = fresh_store().await;
    let typed = "hunter2-typed-as-a-username";
    let key = LimitKey::new("signin_account", typed);
    let window = std::time::Duration::from_secs(900);
    for _ in 0..2 {
        store
            .record_attempt(&key, t0(), window)
            .await
            .expect("count");
    }
    let item = raw_item(
        &store,
        "abuse_counters",
        "limit_key",
        key.as_str().to_owned(),
    )
    .await
    .expect("item");
    assert_eq!(item.get("attempts"), Some(&AttributeValue::N("2".into())));
    let expected = (t0() + Duration::seconds(900)).unix_timestamp() + 1;
    assert_eq!(
        item.get("ttl"),
        Some(&AttributeValue::N(expected.to_string()))
    );
    assert!(!format!("{item:?}").contains(typed));
    // Cleared: the item is gone, not zeroed.
    store.clear_attempts(&key).await.expect("clear");
    assert!(
        raw_item(
            &store,
            "abuse_counters",
            "limit_key",
            key.as_str().to_owned()
        )
        .await
        .is_none()
    );
}
