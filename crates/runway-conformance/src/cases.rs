//! The cases. Each is `pub async fn name<S: Store + 'static>(store: S)`, is handed a
//! fresh, empty store, and panics (via `assert!`) when the backend breaks a rule.
//!
//! Rules of thumb for writing one:
//!
//! * Compare whole records with `==`: a backend must give back exactly what it was
//!   given, to the nanosecond, so timestamps here carry nanoseconds on purpose.
//! * Pass explicit `now`s built from fixed instants, and test expiry at the boundary
//!   (`now == expires_at` is expired, 90 s after a heartbeat is offline).
//! * Never depend on creation order within a millisecond: ULIDs made in the same
//!   millisecond sort randomly, so "newest first" means "by id, descending", and the
//!   expected order is computed by sorting ids.
//! * The suite must pass unchanged on every backend: no SQL, no backend types.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

use runway_core::agent::{Agent, AgentMetrics, AgentStatus, RegistrationToken};
use runway_core::audit::{Actor, AuditAction, AuditEvent, limits as audit_limits};
use runway_core::id::{AgentId, AuditId, JobId, RegistrationTokenId, SessionId, UserId};
use runway_core::job::{Job, JobSpec};
use runway_core::lifecycle::{IllegalTransition, JobStatus};
use runway_core::page::{Cursor, Page, PageRequest};
use runway_core::secret::TokenHash;
use runway_core::session::Session;
use runway_core::store::{AgentQuery, AuditQuery, JobQuery, Store, StoreError};
use runway_core::user::{Role, User};
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------- fixtures

/// A fixed instant with nanoseconds, so truncation to seconds or micros shows up.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_750_000_000_123_456_789).expect("in range")
}

fn user(username: &str) -> User {
    User {
        id: UserId::new(),
        username: username.into(),
        role: Role::Member,
        created_at: t0(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
    }
}

fn session(user: &User, created_at: OffsetDateTime) -> Session {
    Session {
        id: SessionId::new(),
        user_id: user.id,
        username: user.username.clone(),
        role: user.role,
        device_name: Some("laptop".into()),
        user_agent: Some("Mozilla/5.0".into()),
        ip: Some("192.0.2.7".into()),
        created_at,
        last_seen_at: created_at,
        expires_at: created_at + Duration::days(7),
        idle_timeout_seconds: 86_400,
        token_hash: TokenHash::of(&format!("session-{}", SessionId::new())),
    }
}

fn registration_token(expires_at: Option<OffsetDateTime>) -> RegistrationToken {
    let id = RegistrationTokenId::new();
    RegistrationToken {
        id,
        description: Some("build farm".into()),
        created_by: UserId::new(),
        created_at: t0(),
        expires_at,
        token_hash: TokenHash::of(&format!("registration-{id}")),
    }
}

fn agent(name: &str, region: Option<&str>) -> Agent {
    let id = AgentId::new();
    Agent {
        id,
        name: name.into(),
        region: region.map(Into::into),
        labels: vec!["linux".into(), "docker".into()],
        queue: "default".into(),
        capacity: 2,
        version: Some("1.2.3".into()),
        created_at: t0(),
        last_heartbeat_at: None,
        metrics: AgentMetrics::default(),
        // Deliberately wrong: the store must fill it in from the token.
        registration_token_id: RegistrationTokenId::new(),
        token_hash: TokenHash::of(&format!("agent-{id}")),
    }
}

fn job(name: &str) -> Job {
    let spec = JobSpec {
        name: name.into(),
        script: "cargo test --workspace\necho \"done\" | tee log.txt".into(),
        env: BTreeMap::from([
            ("RUST_LOG".to_owned(), "debug".to_owned()),
            ("GREETING".to_owned(), "héllo \"wörld\"".to_owned()),
        ]),
        labels: vec!["linux".into()],
        queue: "default".into(),
        priority: -7,
        timeout_seconds: 900,
        max_retries: 1,
    };
    Job::new(spec, UserId::new(), t0())
}

/// Registers `agent` with a fresh token that never expires.
async fn register<S: Store>(store: &S, agent: Agent) -> Agent {
    let token = registration_token(None);
    store
        .create_registration_token(&token)
        .await
        .expect("create token");
    store
        .register_agent(&token.token_hash, agent, t0())
        .await
        .expect("register")
}

fn page(limit: u32, after: Option<Cursor>) -> PageRequest {
    PageRequest { limit, after }
}

/// Ids sorted newest first.
fn newest_first<T: Ord + Copy>(mut ids: Vec<T>) -> Vec<T> {
    ids.sort_by_key(|id| Reverse(*id));
    ids
}

fn agent_ids(page: &Page<Agent>) -> Vec<AgentId> {
    page.items.iter().map(|a| a.id).collect()
}

// ---------------------------------------------------------------- users

/// A created user is read back exactly, by id and by username; unknown ones are `None`.
pub async fn a_user_round_trips_by_id_and_by_username<S: Store + 'static>(store: S) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    assert_eq!(
        store.get_user(ada.id).await.expect("get"),
        Some(ada.clone())
    );
    assert_eq!(
        store.user_by_username("ada").await.expect("by name"),
        Some(ada)
    );
    assert_eq!(store.get_user(UserId::new()).await.expect("get"), None);
    assert_eq!(store.user_by_username("ADA").await.expect("by name"), None);
}

/// A second user with a taken username is a conflict naming it, and changes nothing.
pub async fn usernames_are_unique<S: Store + 'static>(store: S) {
    let first = user("grace");
    store.create_user(&first).await.expect("create");
    let second = user("grace");
    let err = store.create_user(&second).await.expect_err("duplicate");
    match err {
        StoreError::Conflict(message) => assert!(message.contains("grace"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.get_user(second.id).await.expect("get"), None);
    assert_eq!(
        store.user_by_username("grace").await.expect("by name"),
        Some(first)
    );
}

/// `set_password_hash` replaces the hash; an unknown user is `NotFound`.
pub async fn setting_a_password_hash_replaces_it<S: Store + 'static>(store: S) {
    let mut ada = user("ada");
    store.create_user(&ada).await.expect("create");
    store
        .set_password_hash(ada.id, "$argon2id$new")
        .await
        .expect("set");
    ada.password_hash = "$argon2id$new".into();
    assert_eq!(store.get_user(ada.id).await.expect("get"), Some(ada));
    let err = store
        .set_password_hash(UserId::new(), "$argon2id$x")
        .await
        .expect_err("unknown user");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// A password change deletes every session of that user, expired ones included,
/// and none of anyone else's.
pub async fn a_password_change_revokes_every_session_of_that_user_and_no_one_elses<
    S: Store + 'static,
>(
    store: S,
) {
    let (ada, bob) = (user("ada"), user("bob"));
    store.create_user(&ada).await.expect("create");
    store.create_user(&bob).await.expect("create");
    let mut adas = vec![session(&ada, t0() - Duration::days(30))];
    for _ in 0..3 {
        adas.push(session(&ada, t0()));
    }
    let bobs = session(&bob, t0());
    for s in adas.iter().chain([&bobs]) {
        store.create_session(s).await.expect("create");
    }

    store
        .set_password_hash(ada.id, "$argon2id$new")
        .await
        .expect("set");
    for s in &adas {
        assert_eq!(store.get_session(s.id).await.expect("get"), None);
    }
    assert_eq!(
        store.list_user_sessions(ada.id, t0()).await.expect("list"),
        []
    );
    assert_eq!(store.get_session(bobs.id).await.expect("get"), Some(bobs));
    assert_eq!(
        store.get_user(bob.id).await.expect("get"),
        Some(bob),
        "the other user's password is untouched"
    );
}

/// Changing the password of a user who does not exist is `NotFound` and deletes
/// nothing, not even sessions that name that user id.
pub async fn a_password_change_for_an_unknown_user_is_not_found_and_revokes_nothing<
    S: Store + 'static,
>(
    store: S,
) {
    let (ghost, ada) = (user("ghost"), user("ada"));
    store.create_user(&ada).await.expect("create");
    let ghosts = session(&ghost, t0());
    let adas = session(&ada, t0());
    store.create_session(&ghosts).await.expect("create");
    store.create_session(&adas).await.expect("create");

    let err = store
        .set_password_hash(ghost.id, "$argon2id$x")
        .await
        .expect_err("unknown user");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(
        store.get_session(ghosts.id).await.expect("get"),
        Some(ghosts)
    );
    assert_eq!(store.get_session(adas.id).await.expect("get"), Some(adas));
    assert_eq!(store.get_user(ghost.id).await.expect("get"), None);
}

/// `has_users` is false on an empty store and true once a user exists.
pub async fn has_users_is_false_until_the_first_user_exists<S: Store + 'static>(store: S) {
    assert!(!store.has_users().await.expect("has_users"));
    store.create_user(&user("admin")).await.expect("create");
    assert!(store.has_users().await.expect("has_users"));
}

// ---------------------------------------------------------------- sessions

/// A session is read back exactly, expired or not; an unknown id is `None`.
pub async fn a_session_round_trips_exactly<S: Store + 'static>(store: S) {
    let ada = user("ada");
    let mut s = session(&ada, t0());
    s.device_name = None;
    s.ip = None;
    store.create_session(&s).await.expect("create");
    assert_eq!(store.get_session(s.id).await.expect("get"), Some(s.clone()));

    let mut expired = session(&ada, t0() - Duration::days(30));
    expired.role = Role::Admin;
    store.create_session(&expired).await.expect("create");
    assert_eq!(
        store.get_session(expired.id).await.expect("get"),
        Some(expired),
        "get_session returns expired sessions; the caller checks is_active"
    );
    assert_eq!(
        store.get_session(SessionId::new()).await.expect("get"),
        None
    );
}

/// Touching moves `last_seen_at` and nothing else; touching a gone session is fine.
pub async fn touching_a_session_updates_last_seen_at<S: Store + 'static>(store: S) {
    let mut s = session(&user("ada"), t0());
    store.create_session(&s).await.expect("create");
    let later = t0() + Duration::minutes(5) + Duration::nanoseconds(42);
    store.touch_session(s.id, later).await.expect("touch");
    s.last_seen_at = later;
    assert_eq!(store.get_session(s.id).await.expect("get"), Some(s));
    store
        .touch_session(SessionId::new(), later)
        .await
        .expect("touching a missing session is not an error");
}

/// Touches that arrive out of order never move `last_seen_at` back: an older
/// `now` after a newer one (or the same one again) leaves the newer time.
pub async fn a_late_touch_with_an_older_time_leaves_the_newer_last_seen_at<S: Store + 'static>(
    store: S,
) {
    let mut s = session(&user("ada"), t0());
    store.create_session(&s).await.expect("create");
    let newer = t0() + Duration::minutes(10) + Duration::nanoseconds(7);
    let older = t0() + Duration::minutes(3);
    store.touch_session(s.id, newer).await.expect("touch");
    store
        .touch_session(s.id, older)
        .await
        .expect("a late touch is not an error");
    store
        .touch_session(s.id, newer - Duration::nanoseconds(1))
        .await
        .expect("a late touch is not an error");
    store
        .touch_session(s.id, newer)
        .await
        .expect("the same time again is not an error");
    s.last_seen_at = newer;
    assert_eq!(store.get_session(s.id).await.expect("get"), Some(s));
}

/// Only the user's sessions active at `now` are listed, newest first: absolutely
/// expired, idle-expired and other users' sessions are left out.
pub async fn listing_sessions_returns_only_the_users_active_sessions_newest_first<
    S: Store + 'static,
>(
    store: S,
) {
    let ada = user("ada");
    let bob = user("bob");
    let now = t0() + Duration::hours(2);

    let mut active = Vec::new();
    for minutes in [0, 10, 20] {
        let s = session(&ada, t0() + Duration::minutes(minutes));
        store.create_session(&s).await.expect("create");
        active.push(s);
    }
    let mut absolute = session(&ada, t0() - Duration::days(7));
    absolute.last_seen_at = now - Duration::minutes(1);
    let mut at_boundary = session(&ada, t0());
    at_boundary.expires_at = now;
    let mut idle = session(&ada, t0() - Duration::days(2));
    idle.last_seen_at = now - Duration::hours(25);
    let mut idle_at_boundary = session(&ada, t0() - Duration::days(2));
    idle_at_boundary.last_seen_at = now - Duration::seconds(idle_at_boundary.idle_timeout_seconds);
    let others = session(&bob, t0());
    for s in [&absolute, &at_boundary, &idle, &idle_at_boundary, &others] {
        store.create_session(s).await.expect("create");
    }

    let listed = store.list_user_sessions(ada.id, now).await.expect("list");
    let mut expected = active;
    expected.sort_by_key(|x| Reverse(x.id));
    assert_eq!(listed, expected);
    assert!(listed.iter().all(|s| s.is_active(now)));
    assert_eq!(
        store
            .list_user_sessions(UserId::new(), now)
            .await
            .expect("list"),
        []
    );
}

/// A user revokes one of their own sessions; the others stay.
pub async fn a_user_can_revoke_one_of_their_sessions<S: Store + 'static>(store: S) {
    let ada = user("ada");
    let (laptop, phone) = (session(&ada, t0()), session(&ada, t0()));
    store.create_session(&laptop).await.expect("create");
    store.create_session(&phone).await.expect("create");
    store
        .revoke_session(ada.id, phone.id)
        .await
        .expect("revoke");
    assert_eq!(store.get_session(phone.id).await.expect("get"), None);
    assert_eq!(
        store.get_session(laptop.id).await.expect("get"),
        Some(laptop)
    );
    let again = store.revoke_session(ada.id, phone.id).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
}

/// Revoking someone else's session is `NotFound`, and the session survives.
pub async fn revoking_another_users_session_is_not_found_and_it_survives<S: Store + 'static>(
    store: S,
) {
    let (ada, mallory) = (user("ada"), user("mallory"));
    let adas = session(&ada, t0());
    store.create_session(&adas).await.expect("create");
    let err = store
        .revoke_session(mallory.id, adas.id)
        .await
        .expect_err("not mallory's");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(store.get_session(adas.id).await.expect("get"), Some(adas));
}

/// "Sign out everywhere else" deletes every other session of that user, says how
/// many, and touches no one else's; without `keep` it deletes them all.
pub async fn revoking_all_sessions_but_one_returns_the_count_and_keeps_that_one<
    S: Store + 'static,
>(
    store: S,
) {
    let (ada, bob) = (user("ada"), user("bob"));
    let mut adas = Vec::new();
    for _ in 0..4 {
        let s = session(&ada, t0());
        store.create_session(&s).await.expect("create");
        adas.push(s);
    }
    // Expired sessions count too: they are still stored until revoked.
    let mut expired = session(&ada, t0() - Duration::days(30));
    expired.expires_at = t0() - Duration::days(1);
    store.create_session(&expired).await.expect("create");
    let bobs = session(&bob, t0());
    store.create_session(&bobs).await.expect("create");

    let keep = adas[1].clone();
    let deleted = store
        .revoke_user_sessions(ada.id, Some(keep.id))
        .await
        .expect("revoke all");
    assert_eq!(deleted, 4);
    for s in adas.iter().filter(|s| s.id != keep.id).chain([&expired]) {
        assert_eq!(store.get_session(s.id).await.expect("get"), None);
    }
    assert_eq!(store.get_session(keep.id).await.expect("get"), Some(keep));
    assert_eq!(store.get_session(bobs.id).await.expect("get"), Some(bobs));

    let deleted = store
        .revoke_user_sessions(ada.id, None)
        .await
        .expect("revoke all");
    assert_eq!(deleted, 1);
    assert_eq!(
        store.list_user_sessions(ada.id, t0()).await.expect("list"),
        []
    );
}

// ---------------------------------------------------------------- registration tokens

/// Tokens are read back exactly, newest first, and deleted one by one; deleting an
/// unknown or already deleted token is `NotFound`.
pub async fn registration_tokens_are_listed_newest_first_and_can_be_deleted<S: Store + 'static>(
    store: S,
) {
    assert_eq!(store.list_registration_tokens().await.expect("list"), []);
    let mut tokens = vec![
        registration_token(None),
        registration_token(Some(t0() + Duration::hours(1))),
        registration_token(Some(t0() - Duration::hours(1))),
    ];
    tokens[0].description = None;
    for t in &tokens {
        store.create_registration_token(t).await.expect("create");
    }
    tokens.sort_by_key(|x| Reverse(x.id));
    assert_eq!(
        store.list_registration_tokens().await.expect("list"),
        tokens,
        "expired tokens are listed too"
    );

    let gone = tokens.remove(1);
    store
        .delete_registration_token(gone.id)
        .await
        .expect("delete");
    assert_eq!(
        store.list_registration_tokens().await.expect("list"),
        tokens
    );
    let again = store.delete_registration_token(gone.id).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    let unknown = store
        .delete_registration_token(RegistrationTokenId::new())
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

// ---------------------------------------------------------------- agents

/// Registering with a usable token stores the agent with that token's id, and the
/// agent reads back exactly by id and by token hash.
pub async fn registering_with_a_usable_token_records_the_token_and_round_trips<
    S: Store + 'static,
>(
    store: S,
) {
    let token = registration_token(Some(t0() + Duration::seconds(1)));
    store
        .create_registration_token(&token)
        .await
        .expect("create token");
    let mut wanted = agent("builder-1", Some("eu-west-1"));
    wanted.metrics = AgentMetrics {
        cpu_percent: Some(12.5),
        memory_percent: None,
        disk_percent: Some(99.75),
        load_average: Some(0.1),
        running_jobs: Some(3),
    };
    let registered = store
        .register_agent(&token.token_hash, wanted.clone(), t0())
        .await
        .expect("register");
    wanted.registration_token_id = token.id;
    assert_eq!(registered, wanted);
    assert_eq!(
        store.get_agent(wanted.id).await.expect("get"),
        Some(wanted.clone())
    );
    assert_eq!(
        store
            .agent_by_token_hash(&wanted.token_hash)
            .await
            .expect("by hash"),
        Some(wanted)
    );
    assert_eq!(
        store
            .agent_by_token_hash(&TokenHash::of("nobody"))
            .await
            .expect("by hash"),
        None
    );
    assert_eq!(store.get_agent(AgentId::new()).await.expect("get"), None);
}

/// An unknown, expired (including exactly at its expiry) or deleted registration
/// token admits no one, and leaves no agent behind.
pub async fn registering_with_an_unknown_expired_or_deleted_token_is_not_found<
    S: Store + 'static,
>(
    store: S,
) {
    let now = t0() + Duration::hours(1);
    let expired = registration_token(Some(now - Duration::nanoseconds(1)));
    let at_boundary = registration_token(Some(now));
    let deleted = registration_token(None);
    for t in [&expired, &at_boundary, &deleted] {
        store.create_registration_token(t).await.expect("create");
    }
    store
        .delete_registration_token(deleted.id)
        .await
        .expect("delete");

    let unknown = TokenHash::of("never issued");
    for (what, hash) in [
        ("unknown", &unknown),
        ("expired", &expired.token_hash),
        ("expiring now", &at_boundary.token_hash),
        ("deleted", &deleted.token_hash),
    ] {
        let candidate = agent(what, None);
        let result = store.register_agent(hash, candidate.clone(), now).await;
        assert!(
            matches!(result, Err(StoreError::NotFound)),
            "{what} token: {result:?}"
        );
        assert_eq!(store.get_agent(candidate.id).await.expect("get"), None);
    }
    let listed = store
        .list_agents(&AgentQuery::default(), now)
        .await
        .expect("list");
    assert_eq!(listed.items, []);
}

/// A heartbeat stores its time and replaces the metrics; an unknown agent is
/// `NotFound`.
pub async fn a_heartbeat_records_its_time_and_metrics<S: Store + 'static>(store: S) {
    let registered = register(&store, agent("builder", None)).await;
    let at = t0() + Duration::seconds(30) + Duration::nanoseconds(7);
    let metrics = AgentMetrics {
        cpu_percent: Some(55.5),
        memory_percent: Some(20.25),
        disk_percent: Some(0.0),
        load_average: Some(1.75),
        running_jobs: Some(1),
    };
    let updated = store
        .record_heartbeat(registered.id, &metrics, at)
        .await
        .expect("heartbeat");
    let mut expected = registered.clone();
    expected.last_heartbeat_at = Some(at);
    expected.metrics = metrics;
    assert_eq!(updated, expected);
    assert_eq!(
        store.get_agent(registered.id).await.expect("get"),
        Some(expected.clone())
    );

    let sparse = AgentMetrics {
        running_jobs: Some(0),
        ..AgentMetrics::default()
    };
    let later = at + Duration::seconds(30);
    let updated = store
        .record_heartbeat(registered.id, &sparse, later)
        .await
        .expect("heartbeat");
    expected.last_heartbeat_at = Some(later);
    expected.metrics = sparse;
    assert_eq!(updated, expected, "metrics are those of the last heartbeat");

    let err = store
        .record_heartbeat(AgentId::new(), &AgentMetrics::default(), later)
        .await
        .expect_err("unknown agent");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// Agents filter by region and by health at `now`, with the same 90-second boundary
/// as `Agent::status`, and both filters combine.
pub async fn agents_are_listed_by_region_and_by_status_at_a_given_time<S: Store + 'static>(
    store: S,
) {
    let now = t0() + Duration::hours(1);
    let metrics = AgentMetrics::default();
    let mut ids = BTreeMap::new();
    for (name, region, heartbeat) in [
        (
            "online-eu",
            Some("eu-west-1"),
            Some(now - Duration::seconds(89)),
        ),
        ("online-us", Some("us-east-1"), Some(now)),
        // Exactly 90 s after its heartbeat an agent is offline.
        (
            "boundary-eu",
            Some("eu-west-1"),
            Some(now - Duration::seconds(90)),
        ),
        ("offline-none", None, Some(now - Duration::hours(1))),
        ("never-eu", Some("eu-west-1"), None),
        ("never-us", Some("us-east-1"), None),
    ] {
        let a = register(&store, agent(name, region)).await;
        if let Some(at) = heartbeat {
            store
                .record_heartbeat(a.id, &metrics, at)
                .await
                .expect("heartbeat");
        }
        ids.insert(name, a.id);
    }
    let names = |wanted: &[&str]| newest_first(wanted.iter().map(|n| ids[n]).collect());
    let list = |region: Option<&str>, status: Option<AgentStatus>| {
        let store = &store;
        let query = AgentQuery {
            region: region.map(Into::into),
            status,
            page: PageRequest::default(),
        };
        async move { store.list_agents(&query, now).await.expect("list") }
    };

    let all = list(None, None).await;
    assert_eq!(
        agent_ids(&all),
        names(&ids.keys().copied().collect::<Vec<_>>())
    );
    assert_eq!(all.next_cursor, None);

    let cases: [(Option<&str>, Option<AgentStatus>, &[&str]); 7] = [
        (None, Some(AgentStatus::Online), &["online-eu", "online-us"]),
        (
            None,
            Some(AgentStatus::Offline),
            &["boundary-eu", "offline-none"],
        ),
        (
            None,
            Some(AgentStatus::NeverConnected),
            &["never-eu", "never-us"],
        ),
        (
            Some("eu-west-1"),
            None,
            &["online-eu", "boundary-eu", "never-eu"],
        ),
        (Some("eu-west-1"), Some(AgentStatus::Online), &["online-eu"]),
        (Some("us-east-1"), Some(AgentStatus::Offline), &[]),
        (Some("ap-south-1"), None, &[]),
    ];
    for (region, status, expected) in cases {
        let page = list(region, status).await;
        assert_eq!(
            agent_ids(&page),
            names(expected),
            "region {region:?}, status {status:?}"
        );
        if let Some(status) = status {
            assert!(page.items.iter().all(|a| a.status(now) == status));
        }
    }
}

/// Seven agents read three at a time come out newest first, each exactly once, and
/// the last page has no cursor.
pub async fn agents_paginate_newest_first_without_duplicates_or_gaps<S: Store + 'static>(store: S) {
    let mut all = Vec::new();
    for i in 0..7 {
        all.push(
            register(&store, agent(&format!("builder-{i}"), Some("eu-west-1")))
                .await
                .id,
        );
    }
    let expected = newest_first(all);

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let query = AgentQuery {
            region: Some("eu-west-1".into()),
            status: None,
            page: page(3, cursor.take()),
        };
        let page = store.list_agents(&query, t0()).await.expect("list");
        sizes.push(page.items.len());
        seen.extend(agent_ids(&page));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(sizes.len() < 10, "pagination does not terminate");
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, expected);
}

/// A cursor the store did not issue is `InvalidCursor`, for agents and for jobs.
pub async fn a_garbage_cursor_is_rejected<S: Store + 'static>(store: S) {
    for garbage in ["garbage", "", "' OR 1=1 --", "\u{1F680}"] {
        let cursor = Some(Cursor(garbage.into()));
        let agents = store
            .list_agents(
                &AgentQuery {
                    page: page(10, cursor.clone()),
                    ..AgentQuery::default()
                },
                t0(),
            )
            .await;
        assert!(
            matches!(agents, Err(StoreError::InvalidCursor)),
            "agents, {garbage:?}: {agents:?}"
        );
        let jobs = store
            .list_jobs(&JobQuery {
                status: None,
                page: page(10, cursor),
            })
            .await;
        assert!(
            matches!(jobs, Err(StoreError::InvalidCursor)),
            "jobs, {garbage:?}: {jobs:?}"
        );
    }
}

// ---------------------------------------------------------------- jobs

/// A job reads back exactly, with no attempts; an unknown id is `None`.
pub async fn a_job_round_trips_exactly_with_no_attempts<S: Store + 'static>(store: S) {
    let j = job("unit tests");
    store.create_job(&j).await.expect("create");
    let detail = store.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!(detail.job, j);
    assert_eq!(detail.attempts, []);
    assert_eq!(store.get_job(JobId::new()).await.expect("get"), None);
}

/// Jobs are listed newest first and filter by status.
pub async fn jobs_are_listed_newest_first_and_filtered_by_status<S: Store + 'static>(store: S) {
    let jobs = [job("a"), job("b"), job("c")];
    for j in &jobs {
        store.create_job(j).await.expect("create");
    }
    let claimed = store
        .transition_job(jobs[1].id, JobStatus::Claimed, t0() + Duration::seconds(1))
        .await
        .expect("claim");

    let list = |status: Option<JobStatus>| {
        let store = &store;
        async move {
            store
                .list_jobs(&JobQuery {
                    status,
                    page: PageRequest::default(),
                })
                .await
                .expect("list")
        }
    };
    let all = list(None).await;
    let mut expected = vec![jobs[0].clone(), claimed.clone(), jobs[2].clone()];
    expected.sort_by_key(|x| Reverse(x.id));
    assert_eq!(all.items, expected, "whole records, newest first");
    assert_eq!(all.next_cursor, None);

    let queued = list(Some(JobStatus::Queued)).await;
    assert_eq!(
        queued.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        newest_first(vec![jobs[0].id, jobs[2].id])
    );
    assert_eq!(list(Some(JobStatus::Claimed)).await.items, [claimed]);
    assert_eq!(list(Some(JobStatus::Running)).await.items, []);
}

/// Twenty-five jobs read ten at a time come out newest first, each exactly once,
/// and the last page has no cursor.
pub async fn jobs_paginate_without_duplicates_or_gaps<S: Store + 'static>(store: S) {
    let mut ids = Vec::new();
    for i in 0..25 {
        let j = job(&format!("job {i}"));
        store.create_job(&j).await.expect("create");
        ids.push(j.id);
    }
    let expected = newest_first(ids);

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_jobs(&JobQuery {
                status: Some(JobStatus::Queued),
                page: page(10, cursor.take()),
            })
            .await
            .expect("list");
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|j| j.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(sizes.len() < 10, "pagination does not terminate");
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(seen, expected);

    // A page that ends exactly at the last item says there is no more.
    let first = store
        .list_jobs(&JobQuery {
            status: None,
            page: page(25, None),
        })
        .await
        .expect("list");
    assert_eq!(first.items.len(), 25);
    assert_eq!(first.next_cursor, None);
}

/// A legal transition changes the status and `updated_at`, and nothing else.
pub async fn a_legal_transition_updates_status_and_updated_at<S: Store + 'static>(store: S) {
    let j = job("deploy");
    store.create_job(&j).await.expect("create");
    let mut expected = j.clone();
    for (to, after) in [
        (JobStatus::Claimed, Duration::seconds(1)),
        (JobStatus::Running, Duration::seconds(2)),
        (
            JobStatus::Succeeded,
            Duration::minutes(3) + Duration::nanoseconds(1),
        ),
    ] {
        let at = t0() + after;
        let moved = store
            .transition_job(j.id, to, at)
            .await
            .expect("transition");
        expected.status = to;
        expected.updated_at = at;
        assert_eq!(moved, expected);
        let stored = store.get_job(j.id).await.expect("get").expect("exists");
        assert_eq!(stored.job, expected);
    }
}

/// An illegal transition is refused naming both states and changes nothing; a
/// terminal state never changes.
pub async fn an_illegal_transition_is_refused_naming_both_states<S: Store + 'static>(store: S) {
    let j = job("lint");
    store.create_job(&j).await.expect("create");
    let later = t0() + Duration::seconds(5);
    let err = store
        .transition_job(j.id, JobStatus::Succeeded, later)
        .await
        .expect_err("queued cannot succeed");
    match &err {
        StoreError::IllegalTransition(t) => {
            assert_eq!(
                *t,
                IllegalTransition {
                    from: JobStatus::Queued,
                    to: JobStatus::Succeeded
                }
            );
        }
        other => panic!("expected an illegal transition, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("queued") && message.contains("succeeded"),
        "{message}"
    );
    let unchanged = store.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!(unchanged.job, j);

    let canceled = store
        .transition_job(j.id, JobStatus::Canceled, later)
        .await
        .expect("cancel");
    for to in JobStatus::ALL {
        let result = store
            .transition_job(j.id, to, later + Duration::seconds(1))
            .await;
        match result {
            Err(StoreError::IllegalTransition(t)) => {
                assert_eq!(
                    t,
                    IllegalTransition {
                        from: JobStatus::Canceled,
                        to
                    }
                );
            }
            other => panic!("canceled -> {to}: {other:?}"),
        }
    }
    let stored = store.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!(stored.job, canceled);
}

/// Transitioning a job that does not exist is `NotFound`.
pub async fn transitioning_an_unknown_job_is_not_found<S: Store + 'static>(store: S) {
    let result = store
        .transition_job(JobId::new(), JobStatus::Claimed, t0())
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

/// Sixteen concurrent claims of one queued job: exactly one wins, the fifteen others
/// see `claimed → claimed` refused.
pub async fn exactly_one_of_sixteen_concurrent_claims_wins<S: Store + 'static>(store: S) {
    const RACERS: usize = 16;
    let store = Arc::new(store);
    let j = job("contested");
    store.create_job(&j).await.expect("create");
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        let at = t0() + Duration::milliseconds(i64::try_from(i).expect("small"));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.transition_job(j.id, JobStatus::Claimed, at).await
        }));
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    for task in tasks {
        match task.await.expect("task panicked") {
            Ok(job) => winners.push(job),
            Err(StoreError::IllegalTransition(t)) => {
                assert_eq!(
                    t,
                    IllegalTransition {
                        from: JobStatus::Claimed,
                        to: JobStatus::Claimed
                    }
                );
                losers += 1;
            }
            Err(other) => panic!("a racer failed with {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    assert_eq!(losers, RACERS - 1);
    let stored = store.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!(stored.job, winners[0], "the stored job is the winner's");
    assert_eq!(stored.job.status, JobStatus::Claimed);
}

// ---------------------------------------------------------------- audit log

/// An event by a user, with every optional field set and a nanosecond timestamp.
fn audit_event(action: AuditAction, at: OffsetDateTime) -> AuditEvent {
    AuditEvent::new(
        Actor::User {
            id: UserId::new(),
            username: "ada".into(),
        },
        action,
        Some(JobId::new().to_string()),
        at,
    )
    .with_request_id("req-0001")
    .with_detail("priority 5, queue \"default\", héllo")
    .expect("a short detail")
}

fn audit_query(limit: u32, after: Option<Cursor>) -> AuditQuery {
    AuditQuery {
        page: page(limit, after),
    }
}

fn audit_ids(page: &Page<AuditEvent>) -> Vec<AuditId> {
    page.items.iter().map(|e| e.id).collect()
}

/// Appended events come back newest first, whole; an empty log is an empty page.
pub async fn audit_events_are_listed_newest_first<S: Store + 'static>(store: S) {
    let empty = store
        .list_audit(&AuditQuery::default())
        .await
        .expect("list an empty log");
    assert_eq!(empty.items, []);
    assert_eq!(empty.next_cursor, None);

    let events: Vec<AuditEvent> = [
        AuditAction::UserCreated,
        AuditAction::SessionCreated,
        AuditAction::JobCreated,
        AuditAction::JobCanceled,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, action)| audit_event(action, t0() + Duration::seconds(i64::try_from(i).unwrap())))
    .collect();
    for event in &events {
        store.append_audit(event).await.expect("append");
    }
    let listed = store
        .list_audit(&AuditQuery::default())
        .await
        .expect("list");
    let mut expected = events.clone();
    expected.sort_by_key(|e| Reverse(e.id));
    assert_eq!(listed.items, expected);
    assert_eq!(listed.next_cursor, None);
}

/// Pages of 3 over 7 events: 3, 3, 1, no duplicates or gaps, and the last page
/// carries no cursor; a cursor that is not the store's is rejected.
pub async fn audit_events_paginate_without_duplicates_or_gaps<S: Store + 'static>(store: S) {
    let mut ids = Vec::new();
    for i in 0..7 {
        let event = audit_event(AuditAction::SessionRevoked, t0() + Duration::minutes(i));
        store.append_audit(&event).await.expect("append");
        ids.push(event.id);
    }
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_audit(&audit_query(3, after))
            .await
            .expect("page");
        sizes.push(page.items.len());
        seen.extend(audit_ids(&page));
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, newest_first(ids));

    let garbage = store
        .list_audit(&audit_query(3, Some(Cursor("not a cursor".into()))))
        .await;
    assert!(
        matches!(garbage, Err(StoreError::InvalidCursor)),
        "{garbage:?}"
    );
}

/// Users, agents and the system as actors, with and without the optional fields,
/// all read back exactly.
pub async fn audit_events_round_trip_every_actor_and_optional_field<S: Store + 'static>(store: S) {
    let by_agent = AuditEvent::new(
        Actor::Agent {
            id: AgentId::new(),
            name: "builder-7".into(),
        },
        AuditAction::AgentRegistered,
        Some(AgentId::new().to_string()),
        t0(),
    );
    let by_system = AuditEvent::new(
        Actor::System,
        AuditAction::UserPasswordReset,
        None,
        t0() + Duration::nanoseconds(1),
    );
    let by_user = audit_event(AuditAction::SessionsRevokedAll, t0())
        .with_detail("3 sessions")
        .expect("detail");
    let at_limits = AuditEvent::new(
        Actor::User {
            id: UserId::new(),
            username: "u".repeat(audit_limits::ACTOR_NAME_MAX),
        },
        AuditAction::RegistrationTokenDeleted,
        Some("s".repeat(audit_limits::SUBJECT_MAX)),
        t0(),
    )
    .with_request_id("r".repeat(audit_limits::REQUEST_ID_MAX))
    .with_detail("é".repeat(audit_limits::DETAIL_MAX))
    .expect("a detail at the limit");
    let events = [by_agent, by_system, by_user, at_limits];
    for event in &events {
        store.append_audit(event).await.expect("append");
    }
    let mut listed = store
        .list_audit(&AuditQuery::default())
        .await
        .expect("list")
        .items;
    listed.sort_by_key(|e| e.id);
    let mut expected = events.to_vec();
    expected.sort_by_key(|e| e.id);
    assert_eq!(listed, expected);
}

/// The log is append-only: a second event with a taken id is a conflict and the
/// first one is kept as it was.
pub async fn appending_an_audit_event_with_a_taken_id_is_a_conflict<S: Store + 'static>(store: S) {
    let first = audit_event(AuditAction::JobCreated, t0());
    store.append_audit(&first).await.expect("append");
    let mut rewrite = audit_event(AuditAction::JobCanceled, t0() + Duration::hours(1));
    rewrite.id = first.id;
    let err = store.append_audit(&rewrite).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let listed = store
        .list_audit(&AuditQuery::default())
        .await
        .expect("list");
    assert_eq!(listed.items, [first]);
}

/// An event past the limits (only possible by setting fields directly) is refused
/// as a bug on every backend, and nothing is stored.
pub async fn an_audit_event_past_its_limits_is_refused_and_not_stored<S: Store + 'static>(
    store: S,
) {
    let mut event = audit_event(AuditAction::JobCreated, t0());
    event.detail = Some("d".repeat(audit_limits::DETAIL_MAX + 1));
    let err = store.append_audit(&event).await.unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    let listed = store
        .list_audit(&AuditQuery::default())
        .await
        .expect("list");
    assert_eq!(listed.items, []);
}

// ---------------------------------------------------------------- health

/// The store answers a ping and names its backend.
pub async fn the_store_answers_a_ping<S: Store + 'static>(store: S) {
    store.ping().await.expect("ping");
    assert!(
        ["sqlite", "dynamodb"].contains(&store.backend()),
        "unexpected backend name {}",
        store.backend()
    );
}
