//! The cases. Each is `pub async fn name<S: Backend>(store: S)`, is handed a
//! fresh, empty store, and panics (via `assert!`) when the backend breaks a rule.
//!
//! Rules of thumb for writing one:
//!
//! * Compare whole records with `==`: a backend must give back exactly what it was
//!   given, to the nanosecond, so timestamps here carry nanoseconds on purpose.
//! * Pass explicit `now`s built from fixed instants, and test expiry at the boundary
//!   (`now == expires_at` is expired, 90 s after a heartbeat is offline).
//! * "Newest first" means "by id, descending", and the expected order is computed by
//!   sorting ids. Ids come from one monotonic generator per process, so records made
//!   one after another here have increasing ids even within a millisecond; the claim
//!   cases rely on that for "oldest first".
//! * Time never passes by itself: every `now`, lease and deadline is an instant
//!   built here, so expiry is tested without a sleep.
//! * The suite must pass unchanged on every backend: no SQL, no backend types.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

use runway_core::agent::{Agent, AgentMetrics, AgentState, AgentStatus, RegistrationToken};
use runway_core::api_token::{ApiToken, MAX_API_TOKENS_PER_USER};
use runway_core::audit::{
    Actor, ActorFilter, AuditAction, AuditEvent, AuditFilter, limits as audit_limits,
};
use runway_core::id::{
    AgentId, ApiTokenId, AuditId, JobId, RegistrationTokenId, SessionId, UserId,
};
use runway_core::job::{Attempt, Job, JobDetail, JobSecrets, JobSpec};
use runway_core::lifecycle::{AttemptEnd, IllegalTransition, JobStatus};
use runway_core::limit::{Attempts, LimitKey};
use runway_core::log::{
    LOG_MARKER_ALLOWANCE, LOG_MAX_BYTES, LogAppend, LogChunk, LogSlice, LogSummary, crc32_append,
};
use runway_core::oidc::{LOGIN_TTL, OidcIdentity, PendingLogin};
use runway_core::page::{Cursor, EXAMINE_MAX, Page, PageRequest};
use runway_core::secret::{Secret, TokenHash};
use runway_core::session::{MAX_SESSIONS_PER_USER, Session};
use runway_core::store::{
    AgentQuery, AuditQuery, Claim, ClaimRequest, Conflict, Due, HeldAttempt, JobQuery, RecordKind,
    StoreError,
};
use runway_core::user::{Role, User, UserChange};
use time::{Duration, OffsetDateTime};

use crate::{Backend, audit_event as any_event};

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
        device_name: Some("laptop".into()),
        user_agent: Some("Mozilla/5.0".into()),
        ip: Some("192.0.2.7".into()),
        created_at,
        last_seen_at: created_at,
        expires_at: created_at + Duration::days(7),
        idle_timeout_seconds: 86_400,
        token_hash: TokenHash::of(&format!("session-{}", SessionId::new())),
        credential_epoch: user.credential_epoch,
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
        max_uses: None,
        uses: 0,
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
        state: AgentState::Active,
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
        secrets: JobSecrets::default(),
    };
    Job::new(spec, UserId::new(), t0())
}

/// Registers `agent` with a fresh token that never expires.
async fn register<S: Backend>(store: &S, agent: Agent) -> Agent {
    let token = registration_token(None);
    store
        .create_registration_token(&token, &any_event())
        .await
        .expect("create token");
    store
        .register_agent(&token.token_hash, agent, t0(), &any_event())
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
pub async fn a_user_round_trips_by_id_and_by_username<S: Backend>(store: S) {
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

// ---------------------------------------------------------------- OIDC

fn pending_login(state: &str) -> PendingLogin {
    PendingLogin {
        state_hash: TokenHash::of(state),
        nonce: Secret::new(format!("nonce-of-{state}")),
        pkce_verifier: Secret::new(format!("verifier-of-{state}")),
        return_to: "/jobs?status=running".into(),
        created_at: t0(),
        expires_at: t0() + LOGIN_TTL,
    }
}

/// A pending login is given back exactly, once: the second take (a replayed
/// callback) finds nothing, and a state never stored finds nothing either.
pub async fn a_pending_oidc_login_is_taken_exactly_once<S: Backend>(store: S) {
    let login = pending_login("state-a");
    store.create_oidc_login(&login).await.expect("create");
    // Another login with the same state (a repeat of the very same write is a
    // retry, which DynamoDB's store recognises as its own).
    let rival = PendingLogin {
        nonce: Secret::new("another nonce"),
        ..login.clone()
    };
    let err = store
        .create_oidc_login(&rival)
        .await
        .expect_err("the same state twice");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Exists(RecordKind::OidcLogin))
        ),
        "{err:?}"
    );
    let now = t0() + Duration::minutes(1);
    assert_eq!(
        store
            .take_oidc_login(&login.state_hash, now)
            .await
            .expect("take"),
        Some(login.clone())
    );
    assert_eq!(
        store
            .take_oidc_login(&login.state_hash, now)
            .await
            .expect("take again"),
        None
    );
    assert_eq!(
        store
            .take_oidc_login(&TokenHash::of("never-stored"), now)
            .await
            .expect("take unknown"),
        None
    );
}

/// A login taken at or after its expiry is refused, and it is gone afterwards.
pub async fn an_expired_pending_oidc_login_is_refused_and_deleted<S: Backend>(store: S) {
    let login = pending_login("state-b");
    store.create_oidc_login(&login).await.expect("create");
    assert_eq!(
        store
            .take_oidc_login(&login.state_hash, login.expires_at)
            .await
            .expect("take at expiry"),
        None
    );
    assert_eq!(
        store
            .take_oidc_login(&login.state_hash, t0())
            .await
            .expect("take before"),
        None,
        "the expired login was deleted by the refused take"
    );
}

/// Of callbacks racing with one state, exactly one gets the login.
pub async fn racing_takes_of_one_pending_oidc_login_give_it_to_exactly_one<S: Backend>(store: S) {
    const RACERS: usize = 8;
    let login = pending_login("state-c");
    store.create_oidc_login(&login).await.expect("create");
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let (store, barrier, hash) = (
            Arc::clone(&store),
            Arc::clone(&barrier),
            login.state_hash.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.take_oidc_login(&hash, t0()).await
        }));
    }
    let mut winners = 0;
    for task in tasks {
        if task.await.expect("task panicked").expect("take").is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

/// A user created with an identity is found by that identity (issuer and
/// subject both count) and by username; a second user with the same identity is
/// a conflict that writes nothing, and so is one with a taken username.
pub async fn an_oidc_user_is_found_by_issuer_and_subject_only<S: Backend>(store: S) {
    let identity = OidcIdentity {
        issuer: "https://id.example.com".into(),
        subject: "248289761001".into(),
    };
    let mut ada = user("ada@example.com");
    ada.password_hash = runway_core::password::NO_PASSWORD.into();
    store
        .create_oidc_user(&ada, &identity, &any_event())
        .await
        .expect("create");
    assert_eq!(
        store
            .user_by_oidc_identity(&identity)
            .await
            .expect("by identity"),
        Some(ada.clone())
    );
    assert_eq!(
        store
            .user_by_username("ada@example.com")
            .await
            .expect("by name"),
        Some(ada.clone())
    );
    for other in [
        OidcIdentity {
            issuer: "https://other.example.com".into(),
            ..identity.clone()
        },
        OidcIdentity {
            subject: "248289761002".into(),
            ..identity.clone()
        },
    ] {
        assert_eq!(
            store.user_by_oidc_identity(&other).await.expect("other"),
            None
        );
    }

    let twin = user("ada-twin@example.com");
    let err = store
        .create_oidc_user(&twin, &identity, &any_event())
        .await
        .expect_err("the identity is linked");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Exists(RecordKind::OidcIdentity))
        ),
        "{err:?}"
    );
    assert_eq!(store.get_user(twin.id).await.expect("get"), None);
    assert_eq!(
        store
            .user_by_username("ada-twin@example.com")
            .await
            .expect("by name"),
        None
    );

    let fresh = OidcIdentity {
        subject: "999".into(),
        ..identity.clone()
    };
    let namesake = user("ada@example.com");
    let err = store
        .create_oidc_user(&namesake, &fresh, &any_event())
        .await
        .expect_err("the username is taken");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::UsernameTaken(ref n)) if n == "ada@example.com"),
        "{err:?}"
    );
    assert_eq!(
        store.user_by_oidc_identity(&fresh).await.expect("fresh"),
        None
    );
}

/// A second user with a taken username is a conflict naming it, and changes nothing.
pub async fn usernames_are_unique<S: Backend>(store: S) {
    let first = user("grace");
    store.create_user(&first).await.expect("create");
    let second = user("grace");
    let err = store.create_user(&second).await.expect_err("duplicate");
    match err {
        StoreError::Conflict(Conflict::UsernameTaken(name)) => assert_eq!(name, "grace"),
        other => panic!("expected the username to be taken, got {other:?}"),
    }
    assert_eq!(store.get_user(second.id).await.expect("get"), None);
    assert_eq!(
        store.user_by_username("grace").await.expect("by name"),
        Some(first)
    );
}

/// `set_password_hash` replaces the hash; an unknown user is `NotFound`.
pub async fn setting_a_password_hash_replaces_it<S: Backend>(store: S) {
    let mut ada = user("ada");
    store.create_user(&ada).await.expect("create");
    store
        .set_password_hash(ada.id, "$argon2id$new", &any_event())
        .await
        .expect("set");
    ada.password_hash = "$argon2id$new".into();
    ada.credential_epoch += 1;
    assert_eq!(
        store.get_user(ada.id).await.expect("get"),
        Some(ada),
        "the new hash, and the credential epoch one higher"
    );
    let err = store
        .set_password_hash(UserId::new(), "$argon2id$x", &any_event())
        .await
        .expect_err("unknown user");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// A password change deletes every session of that user, expired ones included,
/// and none of anyone else's.
pub async fn a_password_change_revokes_every_session_of_that_user_and_no_one_elses<S: Backend>(
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
        store.create_session(s, &any_event()).await.expect("create");
    }

    store
        .set_password_hash(ada.id, "$argon2id$new", &any_event())
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
/// nothing; no session can be created for a user who does not exist.
pub async fn a_password_change_for_an_unknown_user_is_not_found_and_revokes_nothing<S: Backend>(
    store: S,
) {
    let (ghost, ada) = (user("ghost"), user("ada"));
    store.create_user(&ada).await.expect("create");
    let err = store
        .create_session(&session(&ghost, t0()), &any_event())
        .await
        .expect_err("no such user");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let adas = session(&ada, t0());
    store
        .create_session(&adas, &any_event())
        .await
        .expect("create");

    let err = store
        .set_password_hash(ghost.id, "$argon2id$x", &any_event())
        .await
        .expect_err("unknown user");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(store.get_session(adas.id).await.expect("get"), Some(adas));
    assert_eq!(store.get_user(ghost.id).await.expect("get"), None);
    assert_eq!(store.get_user(ada.id).await.expect("get"), Some(ada));
}

/// `has_users` is false on an empty store and true once a user exists.
pub async fn has_users_is_false_until_the_first_user_exists<S: Backend>(store: S) {
    assert!(!store.has_users().await.expect("has_users"));
    store.create_user(&user("admin")).await.expect("create");
    assert!(store.has_users().await.expect("has_users"));
}

// ---------------------------------------------------------------- sessions

/// A session is read back exactly, expired or not; an unknown id is `None`.
pub async fn a_session_round_trips_exactly<S: Backend>(store: S) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let mut s = session(&ada, t0());
    s.device_name = None;
    s.ip = None;
    store
        .create_session(&s, &any_event())
        .await
        .expect("create");
    assert_eq!(store.get_session(s.id).await.expect("get"), Some(s.clone()));

    let mut expired = session(&ada, t0() - Duration::days(30));
    expired.role = Role::Admin;
    store
        .create_session(&expired, &any_event())
        .await
        .expect("create");
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
pub async fn touching_a_session_updates_last_seen_at<S: Backend>(store: S) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let mut s = session(&ada, t0());
    store
        .create_session(&s, &any_event())
        .await
        .expect("create");
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
pub async fn a_late_touch_with_an_older_time_leaves_the_newer_last_seen_at<S: Backend>(store: S) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let mut s = session(&ada, t0());
    store
        .create_session(&s, &any_event())
        .await
        .expect("create");
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
pub async fn listing_sessions_returns_only_the_users_active_sessions_newest_first<S: Backend>(
    store: S,
) {
    let ada = user("ada");
    let bob = user("bob");
    store.create_user(&ada).await.expect("create");
    store.create_user(&bob).await.expect("create");
    let now = t0() + Duration::hours(2);

    let mut active = Vec::new();
    for minutes in [0, 10, 20] {
        let s = session(&ada, t0() + Duration::minutes(minutes));
        store
            .create_session(&s, &any_event())
            .await
            .expect("create");
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
        store.create_session(s, &any_event()).await.expect("create");
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
pub async fn a_user_can_revoke_one_of_their_sessions<S: Backend>(store: S) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let (laptop, phone) = (session(&ada, t0()), session(&ada, t0()));
    store
        .create_session(&laptop, &any_event())
        .await
        .expect("create");
    store
        .create_session(&phone, &any_event())
        .await
        .expect("create");
    store
        .revoke_session(ada.id, phone.id, &any_event())
        .await
        .expect("revoke");
    assert_eq!(store.get_session(phone.id).await.expect("get"), None);
    assert_eq!(
        store.get_session(laptop.id).await.expect("get"),
        Some(laptop)
    );
    let again = store.revoke_session(ada.id, phone.id, &any_event()).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
}

/// Revoking someone else's session is `NotFound`, and the session survives.
pub async fn revoking_another_users_session_is_not_found_and_it_survives<S: Backend>(store: S) {
    let (ada, mallory) = (user("ada"), user("mallory"));
    store.create_user(&ada).await.expect("create");
    store.create_user(&mallory).await.expect("create");
    let adas = session(&ada, t0());
    store
        .create_session(&adas, &any_event())
        .await
        .expect("create");
    let err = store
        .revoke_session(mallory.id, adas.id, &any_event())
        .await
        .expect_err("not mallory's");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(store.get_session(adas.id).await.expect("get"), Some(adas));
}

/// "Sign out everywhere else" deletes every other session of that user, says how
/// many, and touches no one else's; without `keep` it deletes them all.
pub async fn revoking_all_sessions_but_one_returns_the_count_and_keeps_that_one<S: Backend>(
    store: S,
) {
    let (ada, bob) = (user("ada"), user("bob"));
    store.create_user(&ada).await.expect("create");
    store.create_user(&bob).await.expect("create");
    let mut adas = Vec::new();
    for _ in 0..4 {
        let s = session(&ada, t0());
        store
            .create_session(&s, &any_event())
            .await
            .expect("create");
        adas.push(s);
    }
    // Expired sessions count too: they are still stored until revoked.
    let mut expired = session(&ada, t0() - Duration::days(30));
    expired.expires_at = t0() - Duration::days(1);
    store
        .create_session(&expired, &any_event())
        .await
        .expect("create");
    let bobs = session(&bob, t0());
    store
        .create_session(&bobs, &any_event())
        .await
        .expect("create");

    let keep = adas[1].clone();
    let deleted = store
        .revoke_user_sessions(ada.id, Some(keep.id), &any_event())
        .await
        .expect("revoke all");
    assert_eq!(deleted, 4);
    for s in adas.iter().filter(|s| s.id != keep.id).chain([&expired]) {
        assert_eq!(store.get_session(s.id).await.expect("get"), None);
    }
    assert_eq!(store.get_session(keep.id).await.expect("get"), Some(keep));
    assert_eq!(store.get_session(bobs.id).await.expect("get"), Some(bobs));

    let deleted = store
        .revoke_user_sessions(ada.id, None, &any_event())
        .await
        .expect("revoke all");
    assert_eq!(deleted, 1);
    assert_eq!(
        store.list_user_sessions(ada.id, t0()).await.expect("list"),
        []
    );
}

/// A sign-in reads the user (hash and credential epoch), checks the password, then
/// creates the session. A password reset or a sign-out everywhere in between bumps
/// the epoch, and the session is refused; a sign-in that reads afterwards gets in.
pub async fn a_sign_in_that_read_the_credentials_before_a_change_cannot_create_its_session<
    S: Backend,
>(
    store: S,
) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");

    let read_before_reset = store.get_user(ada.id).await.expect("get").expect("ada");
    store
        .set_password_hash(ada.id, "$argon2id$new", &any_event())
        .await
        .expect("reset");
    let late = session(&read_before_reset, t0());
    let err = store
        .create_session(&late, &any_event())
        .await
        .expect_err("the reset won");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::CredentialsChanged)),
        "{err:?}"
    );
    assert_eq!(store.get_session(late.id).await.expect("get"), None);

    let read_before_sign_out = store.get_user(ada.id).await.expect("get").expect("ada");
    assert_eq!(
        read_before_sign_out.credential_epoch,
        ada.credential_epoch + 1
    );
    assert_eq!(
        store
            .revoke_user_sessions(ada.id, None, &any_event())
            .await
            .expect("revoke"),
        0
    );
    let late = session(&read_before_sign_out, t0());
    let err = store
        .create_session(&late, &any_event())
        .await
        .expect_err("the sign-out everywhere won");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::CredentialsChanged)),
        "{err:?}"
    );

    let fresh = store.get_user(ada.id).await.expect("get").expect("ada");
    assert_eq!(fresh.credential_epoch, ada.credential_epoch + 2);
    let on_time = session(&fresh, t0());
    assert_eq!(
        store
            .create_session(&on_time, &any_event())
            .await
            .expect("create"),
        []
    );
    assert_eq!(
        store.get_session(on_time.id).await.expect("get"),
        Some(on_time)
    );
}

/// Sixteen sign-ins that all read the credentials before a password reset race
/// it: whichever way each race goes, no session created with the old credentials
/// survives the reset.
pub async fn no_session_of_sign_ins_racing_a_password_reset_survives_it<S: Backend>(store: S) {
    const SIGN_INS: usize = 16;
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let read = store.get_user(ada.id).await.expect("get").expect("ada");
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(SIGN_INS + 1));
    let mut sign_ins = Vec::new();
    for _ in 0..SIGN_INS {
        let (store, barrier, s) = (
            Arc::clone(&store),
            Arc::clone(&barrier),
            session(&read, t0()),
        );
        sign_ins.push(tokio::spawn(async move {
            barrier.wait().await;
            (s.id, store.create_session(&s, &any_event()).await)
        }));
    }
    let reset = {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tokio::spawn(async move {
            barrier.wait().await;
            // Let some sign-ins land first, so both orders happen.
            tokio::task::yield_now().await;
            store
                .set_password_hash(ada.id, "$argon2id$new", &any_event())
                .await
        })
    };
    let mut ids = Vec::new();
    for task in sign_ins {
        let (id, result) = task.await.expect("task panicked");
        match result {
            Ok(evicted) => assert_eq!(evicted, []),
            Err(StoreError::Conflict(Conflict::CredentialsChanged)) => {}
            Err(other) => panic!("a sign-in failed with {other:?}"),
        }
        ids.push(id);
    }
    reset.await.expect("task panicked").expect("reset");
    for id in ids {
        assert_eq!(
            store.get_session(id).await.expect("get"),
            None,
            "a session opened with the old password outlived the reset"
        );
    }
    assert_eq!(
        store.list_user_sessions(ada.id, t0()).await.expect("list"),
        []
    );
}

/// A user holds at most `MAX_SESSIONS_PER_USER` sessions: the next sign-in evicts
/// the oldest, says which, and the rest are untouched.
pub async fn a_user_holds_at_most_fifty_sessions_and_a_new_one_evicts_the_oldest<S: Backend>(
    store: S,
) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let mut held = Vec::new();
    for minute in 0..i64::try_from(MAX_SESSIONS_PER_USER).expect("small") {
        let s = session(&ada, t0() + Duration::minutes(minute));
        assert_eq!(
            store
                .create_session(&s, &any_event())
                .await
                .expect("create"),
            []
        );
        held.push(s);
    }
    let now = t0() + Duration::hours(2);
    let newest = session(&ada, now);
    assert_eq!(
        store
            .create_session(&newest, &any_event())
            .await
            .expect("create"),
        [held[0].id],
        "the oldest is evicted"
    );
    assert_eq!(store.get_session(held[0].id).await.expect("get"), None);
    let listed = store.list_user_sessions(ada.id, now).await.expect("list");
    assert_eq!(listed.len(), MAX_SESSIONS_PER_USER);
    assert_eq!(listed[0], newest);
    assert_eq!(
        store
            .revoke_user_sessions(ada.id, None, &any_event())
            .await
            .expect("revoke"),
        u64::try_from(MAX_SESSIONS_PER_USER).expect("small"),
        "every session is revoked in one write"
    );
}

/// Eight sign-ins race for the last two places: all succeed, and the user ends
/// with exactly `MAX_SESSIONS_PER_USER` sessions, the oldest evicted.
pub async fn sign_ins_racing_at_the_bound_never_leave_more_than_fifty_sessions<S: Backend>(
    store: S,
) {
    const SIGN_INS: usize = 8;
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let mut held = Vec::new();
    for _ in 0..MAX_SESSIONS_PER_USER - 2 {
        let s = session(&ada, t0());
        store
            .create_session(&s, &any_event())
            .await
            .expect("create");
        held.push(s.id);
    }
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(SIGN_INS));
    let mut tasks = Vec::new();
    for _ in 0..SIGN_INS {
        let (store, barrier, s) = (
            Arc::clone(&store),
            Arc::clone(&barrier),
            session(&ada, t0()),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .create_session(&s, &any_event())
                .await
                .map(|evicted| (s.id, evicted))
        }));
    }
    let mut created = Vec::new();
    let mut evicted = Vec::new();
    for task in tasks {
        let (id, mut gone) = task.await.expect("task panicked").expect("create");
        created.push(id);
        evicted.append(&mut gone);
    }
    let listed = store.list_user_sessions(ada.id, t0()).await.expect("list");
    assert_eq!(listed.len(), MAX_SESSIONS_PER_USER);
    evicted.sort();
    assert_eq!(
        evicted,
        held[..SIGN_INS - 2],
        "the oldest are evicted, each once"
    );
    let mut survivors: Vec<SessionId> = held[SIGN_INS - 2..].to_vec();
    survivors.extend(&created);
    survivors.sort_by_key(|id| Reverse(*id));
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), survivors);
}

/// A sign-in deletes the user's sessions that are past their absolute expiry
/// (without calling them evicted), so they take no place in the bound.
pub async fn a_sign_in_deletes_the_users_expired_sessions_and_reports_no_eviction<S: Backend>(
    store: S,
) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let old = session(&ada, t0() - Duration::days(8));
    store
        .create_session(&old, &any_event())
        .await
        .expect("create");
    let mut idle = session(&ada, t0() - Duration::days(2));
    idle.last_seen_at = idle.created_at;
    store
        .create_session(&idle, &any_event())
        .await
        .expect("create");

    let new = session(&ada, t0());
    assert_eq!(
        store
            .create_session(&new, &any_event())
            .await
            .expect("create"),
        []
    );
    assert_eq!(store.get_session(old.id).await.expect("get"), None);
    assert_eq!(
        store.get_session(idle.id).await.expect("get"),
        Some(idle),
        "only the absolute expiry is judged at sign-in; idle sessions go to the purge"
    );
    assert_eq!(
        store
            .revoke_user_sessions(ada.id, Some(new.id), &any_event())
            .await
            .expect("revoke"),
        1
    );
}

/// The purge leaves active sessions alone, and afterwards no expired session is
/// active (a backend with a TTL of its own may leave the items for it).
pub async fn purging_expired_sessions_leaves_the_active_ones<S: Backend>(store: S) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let now = t0() + Duration::days(1) + Duration::hours(1);
    let mut absolute = session(&ada, t0() - Duration::days(6));
    absolute.last_seen_at = now - Duration::minutes(1);
    let idle = session(&ada, t0());
    let mut active = session(&ada, t0());
    active.last_seen_at = now - Duration::minutes(5);
    for s in [&absolute, &idle, &active] {
        store.create_session(s, &any_event()).await.expect("create");
    }
    let purged = store.purge_expired_sessions(now, 100).await.expect("purge");
    assert!(purged <= 2, "{purged}");
    for s in [&absolute, &idle] {
        let read = store.get_session(s.id).await.expect("get");
        assert!(read.as_ref().is_none_or(|r| !r.is_active(now)), "{read:?}");
    }
    assert_eq!(
        store.get_session(active.id).await.expect("get"),
        Some(active.clone())
    );
    assert_eq!(
        store.list_user_sessions(ada.id, now).await.expect("list"),
        [active]
    );
}

// ---------------------------------------------------------------- registration tokens

/// Tokens are read back exactly, newest first, and deleted one by one; deleting an
/// unknown or already deleted token is `NotFound`.
pub async fn registration_tokens_are_listed_newest_first_and_can_be_deleted<S: Backend>(store: S) {
    assert_eq!(store.list_registration_tokens().await.expect("list"), []);
    let mut tokens = vec![
        registration_token(None),
        registration_token(Some(t0() + Duration::hours(1))),
        registration_token(Some(t0() - Duration::hours(1))),
    ];
    tokens[0].description = None;
    tokens[1].max_uses = Some(5);
    tokens[1].uses = 2;
    for t in &tokens {
        store
            .create_registration_token(t, &any_event())
            .await
            .expect("create");
    }
    tokens.sort_by_key(|x| Reverse(x.id));
    assert_eq!(
        store.list_registration_tokens().await.expect("list"),
        tokens,
        "expired tokens are listed too"
    );

    let gone = tokens.remove(1);
    store
        .delete_registration_token(gone.id, &any_event())
        .await
        .expect("delete");
    assert_eq!(
        store.list_registration_tokens().await.expect("list"),
        tokens
    );
    let again = store.delete_registration_token(gone.id, &any_event()).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    let unknown = store
        .delete_registration_token(RegistrationTokenId::new(), &any_event())
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

// ---------------------------------------------------------------- agents

/// Registering with a usable token stores the agent with that token's id, and the
/// agent reads back exactly by id and by token hash.
pub async fn registering_with_a_usable_token_records_the_token_and_round_trips<S: Backend>(
    store: S,
) {
    let token = registration_token(Some(t0() + Duration::seconds(1)));
    store
        .create_registration_token(&token, &any_event())
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
        .register_agent(&token.token_hash, wanted.clone(), t0(), &any_event())
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
pub async fn registering_with_an_unknown_expired_or_deleted_token_is_not_found<S: Backend>(
    store: S,
) {
    let now = t0() + Duration::hours(1);
    let expired = registration_token(Some(now - Duration::nanoseconds(1)));
    let at_boundary = registration_token(Some(now));
    let deleted = registration_token(None);
    for t in [&expired, &at_boundary, &deleted] {
        store
            .create_registration_token(t, &any_event())
            .await
            .expect("create");
    }
    store
        .delete_registration_token(deleted.id, &any_event())
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
        let result = store
            .register_agent(hash, candidate.clone(), now, &any_event())
            .await;
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
pub async fn a_heartbeat_records_its_time_and_metrics<S: Backend>(store: S) {
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

/// A token with `max_uses` admits that many agents and then no one, counting each
/// use; a token without a limit counts its uses too.
pub async fn a_registration_token_admits_as_many_agents_as_its_uses_allow<S: Backend>(store: S) {
    let mut limited = registration_token(None);
    limited.max_uses = Some(2);
    let unlimited = registration_token(None);
    for t in [&limited, &unlimited] {
        store
            .create_registration_token(t, &any_event())
            .await
            .expect("create");
    }
    for i in 0..2 {
        store
            .register_agent(
                &limited.token_hash,
                agent(&format!("limited-{i}"), None),
                t0(),
                &any_event(),
            )
            .await
            .expect("a use is left");
    }
    let refused = agent("one too many", None);
    let result = store
        .register_agent(&limited.token_hash, refused.clone(), t0(), &any_event())
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    assert_eq!(store.get_agent(refused.id).await.expect("get"), None);
    for i in 0..3 {
        store
            .register_agent(
                &unlimited.token_hash,
                agent(&format!("free-{i}"), None),
                t0(),
                &any_event(),
            )
            .await
            .expect("no limit");
    }

    let uses: BTreeMap<RegistrationTokenId, (Option<u32>, u32)> = store
        .list_registration_tokens()
        .await
        .expect("list")
        .into_iter()
        .map(|t| (t.id, (t.max_uses, t.uses)))
        .collect();
    assert_eq!(uses[&limited.id], (Some(2), 2));
    assert_eq!(uses[&unlimited.id], (None, 3));
}

/// Eight registrations race for the last use of a token: exactly one is admitted,
/// and the token ends with every use counted once.
pub async fn racing_registrations_for_a_tokens_last_use_admit_exactly_one<S: Backend>(store: S) {
    const RACERS: usize = 8;
    let mut token = registration_token(None);
    token.max_uses = Some(3);
    token.uses = 2;
    store
        .create_registration_token(&token, &any_event())
        .await
        .expect("create");
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let (store, barrier, hash) = (
            Arc::clone(&store),
            Arc::clone(&barrier),
            token.token_hash.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .register_agent(
                    &hash,
                    agent(&format!("racer-{i}"), None),
                    t0(),
                    &any_event(),
                )
                .await
        }));
    }
    let mut admitted = Vec::new();
    for task in tasks {
        match task.await.expect("task panicked") {
            Ok(agent) => admitted.push(agent.id),
            Err(StoreError::NotFound) => {}
            Err(other) => panic!("a racer failed with {other:?}"),
        }
    }
    assert_eq!(admitted.len(), 1, "exactly one registration is admitted");
    let listed = store
        .list_agents(&AgentQuery::default(), t0())
        .await
        .expect("list");
    assert_eq!(agent_ids(&listed), admitted);
    let stored = store.list_registration_tokens().await.expect("list");
    assert_eq!(
        stored.iter().map(|t| (t.id, t.uses)).collect::<Vec<_>>(),
        [(token.id, 3)]
    );
}

/// An admin pauses, drains and resumes an agent: each call returns the agent as
/// stored; an unknown agent is `NotFound`. Agents register active.
pub async fn setting_an_agents_state_returns_and_stores_it<S: Backend>(store: S) {
    let mut expected = register(&store, agent("builder", None)).await;
    assert_eq!(expected.state, AgentState::Active);
    for state in [AgentState::Paused, AgentState::Draining, AgentState::Active] {
        let updated = store
            .set_agent_state(expected.id, state, &any_event())
            .await
            .expect("set state");
        expected.state = state;
        assert_eq!(updated, expected);
        assert_eq!(
            store.get_agent(expected.id).await.expect("get"),
            Some(expected.clone())
        );
    }
    let err = store
        .set_agent_state(AgentId::new(), AgentState::Paused, &any_event())
        .await
        .expect_err("unknown agent");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// After a rotation the old token hash resolves to no one and the new one to the
/// agent; an unknown agent is `NotFound`.
pub async fn rotating_an_agents_token_retires_the_old_hash_at_once<S: Backend>(store: S) {
    let mut registered = register(&store, agent("builder", None)).await;
    let old = registered.token_hash.clone();
    let new = TokenHash::of(&format!("rotated-{}", registered.id));
    store
        .rotate_agent_token(registered.id, &new, &any_event())
        .await
        .expect("rotate");
    registered.token_hash = new.clone();
    assert_eq!(store.agent_by_token_hash(&old).await.expect("old"), None);
    assert_eq!(
        store.agent_by_token_hash(&new).await.expect("new"),
        Some(registered.clone())
    );
    assert_eq!(
        store.get_agent(registered.id).await.expect("get"),
        Some(registered)
    );
    let err = store
        .rotate_agent_token(AgentId::new(), &TokenHash::of("x"), &any_event())
        .await
        .expect_err("unknown agent");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// A deleted agent is gone by id, by token and from listings; deleting it again
/// (or an agent that never was) is `NotFound`. Other agents are untouched.
pub async fn deleting_an_agent_retires_its_token_and_a_second_delete_is_not_found<S: Backend>(
    store: S,
) {
    let doomed = register(&store, agent("doomed", None)).await;
    let kept = register(&store, agent("kept", None)).await;
    store
        .delete_agent(doomed.id, &any_event())
        .await
        .expect("delete");
    assert_eq!(store.get_agent(doomed.id).await.expect("get"), None);
    assert_eq!(
        store
            .agent_by_token_hash(&doomed.token_hash)
            .await
            .expect("by hash"),
        None
    );
    let listed = store
        .list_agents(&AgentQuery::default(), t0())
        .await
        .expect("list");
    assert_eq!(listed.items, std::slice::from_ref(&kept));
    for id in [doomed.id, AgentId::new()] {
        let again = store.delete_agent(id, &any_event()).await;
        assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    }
    assert_eq!(store.get_agent(kept.id).await.expect("get"), Some(kept));
}

/// Agents filter by region and by health at `now`, with the same 90-second boundary
/// as `Agent::status`, and both filters combine.
pub async fn agents_are_listed_by_region_and_by_status_at_a_given_time<S: Backend>(store: S) {
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
pub async fn agents_paginate_newest_first_without_duplicates_or_gaps<S: Backend>(store: S) {
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
pub async fn a_garbage_cursor_is_rejected<S: Backend>(store: S) {
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
pub async fn a_job_round_trips_exactly_with_no_attempts<S: Backend>(store: S) {
    let j = job("unit tests");
    store.create_job(&j, &any_event()).await.expect("create");
    let detail = store.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!(detail.job, j);
    assert_eq!(detail.attempts, []);
    assert_eq!(store.get_job(JobId::new()).await.expect("get"), None);
}

/// Jobs are listed newest first and filter by status.
pub async fn jobs_are_listed_newest_first_and_filtered_by_status<S: Backend>(store: S) {
    let jobs = [job("a"), job("b"), job("c")];
    for j in &jobs {
        store.create_job(j, &any_event()).await.expect("create");
    }
    let claimed = store
        .transition_job(
            jobs[1].id,
            JobStatus::Claimed,
            t0() + Duration::seconds(1),
            &any_event(),
        )
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
pub async fn jobs_paginate_without_duplicates_or_gaps<S: Backend>(store: S) {
    let mut ids = Vec::new();
    for i in 0..25 {
        let j = job(&format!("job {i}"));
        store.create_job(&j, &any_event()).await.expect("create");
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
pub async fn a_legal_transition_updates_status_and_updated_at<S: Backend>(store: S) {
    let j = job("deploy");
    store.create_job(&j, &any_event()).await.expect("create");
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
            .transition_job(j.id, to, at, &any_event())
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
pub async fn an_illegal_transition_is_refused_naming_both_states<S: Backend>(store: S) {
    let j = job("lint");
    store.create_job(&j, &any_event()).await.expect("create");
    let later = t0() + Duration::seconds(5);
    let err = store
        .transition_job(j.id, JobStatus::Succeeded, later, &any_event())
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
        .transition_job(j.id, JobStatus::Canceled, later, &any_event())
        .await
        .expect("cancel");
    for to in JobStatus::ALL {
        let result = store
            .transition_job(j.id, to, later + Duration::seconds(1), &any_event())
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
pub async fn transitioning_an_unknown_job_is_not_found<S: Backend>(store: S) {
    let result = store
        .transition_job(JobId::new(), JobStatus::Claimed, t0(), &any_event())
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

/// Sixteen concurrent `queued → claimed` transitions of one job: exactly one wins,
/// the fifteen others see `claimed → claimed` refused.
pub async fn exactly_one_of_sixteen_concurrent_transitions_wins<S: Backend>(store: S) {
    const RACERS: usize = 16;
    let store = Arc::new(store);
    let j = job("contested");
    store.create_job(&j, &any_event()).await.expect("create");
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        let at = t0() + Duration::milliseconds(i64::try_from(i).expect("small"));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .transition_job(j.id, JobStatus::Claimed, at, &any_event())
                .await
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

// ---------------------------------------------------------------- dispatch

/// How long the claims here lease a job for.
const LEASE: Duration = Duration::seconds(120);

/// `t0` plus some seconds and a few nanoseconds.
fn at(seconds: i64) -> OffsetDateTime {
    t0() + Duration::seconds(seconds) + Duration::nanoseconds(seconds.rem_euclid(1000))
}

/// A queued job in `queue` asking for `labels`, at `priority`.
fn queued(queue: &str, labels: &[&str], priority: i32) -> Job {
    let mut j = job(&format!("{queue} {labels:?} p{priority}"));
    j.spec.queue = queue.into();
    j.spec.labels = labels.iter().map(|&l| l.to_owned()).collect();
    j.spec.priority = priority;
    j
}

/// A job with two secrets and `max_retries` automatic retries.
fn secret_job(max_retries: u32) -> Job {
    let mut j = queued("default", &[], 0);
    j.spec.max_retries = max_retries;
    j.spec.secrets = [
        ("DEPLOY_KEY".to_owned(), "s3cr3t \"quoted\" é".to_owned()),
        ("NPM_TOKEN".to_owned(), "npm_0123456789".to_owned()),
    ]
    .into_iter()
    .collect();
    j.secret_names = vec!["DEPLOY_KEY".into(), "NPM_TOKEN".into()];
    j
}

/// The job as every read but a claim returns it: without its secrets.
fn without_secrets(mut job: Job) -> Job {
    job.spec.secrets = JobSecrets::default();
    job
}

/// Registers an agent pulling from `queue`, with `labels` and `capacity`.
async fn runner<S: Backend>(store: &S, queue: &str, labels: &[&str], capacity: u32) -> Agent {
    let mut a = agent(&format!("runner on {queue}"), None);
    a.queue = queue.into();
    a.labels = labels.iter().map(|&l| l.to_owned()).collect();
    a.capacity = capacity;
    register(store, a).await
}

fn claim_request(agent: &Agent, now: OffsetDateTime) -> ClaimRequest {
    ClaimRequest {
        agent: agent.clone(),
        job_token: TokenHash::of(&format!("job-token-{}", JobId::new())),
        lease_expires_at: now + LEASE,
    }
}

/// What `agent` claims at `now`.
async fn claim<S: Backend>(store: &S, agent: &Agent, now: OffsetDateTime) -> Option<Claim> {
    store
        .claim_job(&claim_request(agent, now), now, &any_event())
        .await
        .expect("claim")
}

/// The jobs `agent` claims at `now`, one after another, until it gets nothing.
async fn claim_all<S: Backend>(store: &S, agent: &Agent, now: OffsetDateTime) -> Vec<JobId> {
    let mut ids = Vec::new();
    while let Some(c) = claim(store, agent, now).await {
        ids.push(c.job.id);
        assert!(ids.len() <= 100, "claims do not run out");
    }
    ids
}

/// Stores `job` and has a fresh agent (of its queue, taking any label) claim it at `t0`.
async fn claimed<S: Backend>(store: &S, job: &Job) -> (Agent, Claim) {
    store.create_job(job, &any_event()).await.expect("create");
    let agent = runner(store, &job.spec.queue, &["*"], 1).await;
    let c = claim(store, &agent, t0())
        .await
        .expect("the job is claimable");
    assert_eq!(c.job.id, job.id);
    (agent, c)
}

/// [`claimed`], then started at `at(1)`.
async fn running<S: Backend>(store: &S, job: &Job) -> (Agent, Claim) {
    let (agent, c) = claimed(store, job).await;
    store
        .start_attempt(job.id, c.attempt.number, at(1) + LEASE, at(1), &any_event())
        .await
        .expect("start");
    (agent, c)
}

async fn detail<S: Backend>(store: &S, id: JobId) -> JobDetail {
    store
        .get_job(id)
        .await
        .expect("get")
        .expect("the job exists")
}

#[track_caller]
fn assert_not_held<T: std::fmt::Debug>(result: &Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Conflict(Conflict::NotHeld))),
        "{what}: {result:?}"
    );
}

fn sorted(mut held: Vec<HeldAttempt>) -> Vec<HeldAttempt> {
    held.sort_by_key(|h| (h.job, h.attempt));
    held
}

/// Jobs are claimed highest priority first, then oldest first, whatever order they
/// were stored in; an empty queue gives nothing.
pub async fn a_claim_takes_the_highest_priority_job_then_the_oldest<S: Backend>(store: S) {
    let agent = runner(&store, "default", &[], 10).await;
    assert!(claim(&store, &agent, t0()).await.is_none(), "empty queue");
    // Made in this order, so their ids (and ages) increase.
    let jobs: Vec<Job> = [0, 5, 0, 5, -3]
        .into_iter()
        .map(|p| queued("default", &[], p))
        .collect();
    for i in [4, 2, 3, 0, 1] {
        store
            .create_job(&jobs[i], &any_event())
            .await
            .expect("create");
    }
    let expected: Vec<JobId> = [1, 3, 0, 2, 4].iter().map(|&i| jobs[i].id).collect();
    assert_eq!(claim_all(&store, &agent, at(1)).await, expected);
}

/// An agent claims only from its own queue, and leaves other queues' jobs queued.
pub async fn a_claim_never_takes_a_job_from_another_queue<S: Backend>(store: S) {
    let gpu = runner(&store, "gpu", &["*"], 5).await;
    let elsewhere = queued("default", &[], 1000);
    let mine = queued("gpu", &[], -1000);
    store
        .create_job(&elsewhere, &any_event())
        .await
        .expect("create");
    assert!(claim(&store, &gpu, t0()).await.is_none());
    store.create_job(&mine, &any_event()).await.expect("create");
    assert_eq!(claim_all(&store, &gpu, t0()).await, [mine.id]);
    assert_eq!(
        detail(&store, elsewhere.id).await.job.status,
        JobStatus::Queued
    );
}

/// A job runs only on an agent that has every label it asks for; a job nobody here
/// can run does not block the ones behind it; an agent labelled `*` runs anything.
pub async fn a_claim_takes_only_jobs_whose_labels_are_all_the_agents_and_star_takes_any<
    S: Backend,
>(
    store: S,
) {
    let linux = runner(&store, "default", &["linux", "docker"], 10).await;
    let gpu_job = queued("default", &["linux", "gpu"], 10);
    let docker_job = queued("default", &["docker"], 5);
    let any_job = queued("default", &[], 0);
    let both_job = queued("default", &["docker", "linux"], -5);
    for j in [&gpu_job, &docker_job, &any_job, &both_job] {
        store.create_job(j, &any_event()).await.expect("create");
    }
    assert_eq!(
        claim_all(&store, &linux, t0()).await,
        [docker_job.id, any_job.id, both_job.id]
    );
    let other = runner(&store, "default", &["gpu"], 10).await;
    assert!(
        claim(&store, &other, t0()).await.is_none(),
        "linux is missing"
    );
    let star = runner(&store, "default", &["*"], 10).await;
    assert_eq!(claim_all(&store, &star, t0()).await, [gpu_job.id]);
}

/// An agent with capacity 2 holds at most two jobs; finishing one lets it claim
/// another.
pub async fn an_agent_never_holds_more_jobs_than_its_capacity<S: Backend>(store: S) {
    let agent = runner(&store, "default", &[], 2).await;
    let jobs: Vec<Job> = (0..4).map(|_| queued("default", &[], 0)).collect();
    for j in &jobs {
        store.create_job(j, &any_event()).await.expect("create");
    }
    assert_eq!(
        claim_all(&store, &agent, t0()).await,
        [jobs[0].id, jobs[1].id]
    );
    assert_eq!(store.held_by(agent.id).await.expect("held").len(), 2);
    store
        .end_attempt(
            jobs[0].id,
            1,
            AttemptEnd::Reported(JobStatus::Failed),
            None,
            at(1),
            &any_event(),
        )
        .await
        .expect("end");
    assert_eq!(claim_all(&store, &agent, at(2)).await, [jobs[2].id]);
    assert_eq!(store.held_by(agent.id).await.expect("held").len(), 2);
}

/// The stored state decides, not the one in the request: a paused or draining
/// agent claims nothing, a resumed one claims again, a deleted one never does.
pub async fn a_paused_draining_or_deleted_agent_claims_nothing<S: Backend>(store: S) {
    let agent = runner(&store, "default", &[], 5).await;
    let first = queued("default", &[], 0);
    store
        .create_job(&first, &any_event())
        .await
        .expect("create");
    for state in [AgentState::Paused, AgentState::Draining] {
        store
            .set_agent_state(agent.id, state, &any_event())
            .await
            .expect("set");
        // `agent` still says `active`, as it did when it was authenticated.
        assert!(claim(&store, &agent, t0()).await.is_none(), "{state:?}");
    }
    store
        .set_agent_state(agent.id, AgentState::Active, &any_event())
        .await
        .expect("set");
    assert_eq!(claim_all(&store, &agent, t0()).await, [first.id]);

    let second = queued("default", &[], 0);
    store
        .create_job(&second, &any_event())
        .await
        .expect("create");
    store
        .delete_agent(agent.id, &any_event())
        .await
        .expect("delete");
    assert!(claim(&store, &agent, t0()).await.is_none(), "deleted");
    assert_eq!(
        detail(&store, second.id).await.job.status,
        JobStatus::Queued
    );
}

/// A claim moves the job to `claimed` and records attempt 1: the agent, the claim
/// time, the lease and the job token's hash; `get_job` shows the same attempt.
pub async fn a_claim_records_the_attempt_number_agent_lease_and_job_token_hash<S: Backend>(
    store: S,
) {
    let agent = runner(&store, "default", &[], 1).await;
    let j = queued("default", &[], 0);
    store.create_job(&j, &any_event()).await.expect("create");
    let now = at(5);
    let request = claim_request(&agent, now);
    let c = store
        .claim_job(&request, now, &any_event())
        .await
        .expect("claim")
        .expect("a job");
    let attempt = Attempt {
        number: 1,
        agent_id: agent.id,
        status: JobStatus::Claimed,
        claimed_at: now,
        started_at: None,
        finished_at: None,
        exit_code: None,
        lease_expires_at: Some(request.lease_expires_at),
        log_bytes: 0,
        job_token_hash: request.job_token.clone(),
    };
    let mut expected = j.clone();
    expected.status = JobStatus::Claimed;
    expected.updated_at = now;
    expected.attempt_count = 1;
    assert_eq!(c.attempt, attempt);
    assert_eq!(c.job, expected);
    let stored = detail(&store, j.id).await;
    assert_eq!(stored.job, expected);
    assert_eq!(stored.attempts, [attempt]);
}

/// The job as `get_job` returns it, after checking that neither `get_job` nor
/// `list_jobs` (unfiltered, and filtered by its status) shows its secrets.
async fn read_without_secrets<S: Backend>(store: &S, id: JobId) -> Job {
    let got = detail(store, id).await.job;
    assert!(
        got.spec.secrets.is_empty(),
        "get_job: {:?}",
        got.spec.secrets
    );
    for status in [None, Some(got.status)] {
        let listed = store
            .list_jobs(&JobQuery {
                status,
                page: PageRequest::default(),
            })
            .await
            .expect("list");
        assert!(listed.items.iter().any(|l| l.id == id));
        assert!(
            listed.items.iter().all(|l| l.spec.secrets.is_empty()),
            "list_jobs, {status:?}"
        );
    }
    got
}

/// The secrets come back from the claim, whole; `get_job` and `list_jobs` never
/// return them, before the claim or after.
pub async fn a_claim_hands_over_the_secrets_and_no_other_read_does<S: Backend>(store: S) {
    let j = secret_job(2);
    store.create_job(&j, &any_event()).await.expect("create");
    assert_eq!(
        read_without_secrets(&store, j.id).await,
        without_secrets(j.clone())
    );

    let agent = runner(&store, "default", &[], 1).await;
    let c = claim(&store, &agent, t0()).await.expect("claim");
    assert_eq!(c.job.spec.secrets, j.spec.secrets);
    assert_eq!(
        c.job.spec.secrets.iter().collect::<Vec<_>>(),
        [
            ("DEPLOY_KEY", "s3cr3t \"quoted\" é"),
            ("NPM_TOKEN", "npm_0123456789")
        ]
    );
    assert_eq!(
        read_without_secrets(&store, j.id).await,
        without_secrets(c.job)
    );
}

/// A job re-queued after a lost attempt still has its secrets for the next claim;
/// once it is final nothing can hand them out again (it is not claimable unless a
/// user retries it, with the secrets supplied anew, and no other read has them),
/// whether it ended through its attempt or was canceled or expired while queued.
pub async fn secrets_survive_a_retry_and_no_read_returns_them_once_the_job_is_final<S: Backend>(
    store: S,
) {
    let j = secret_job(1);
    let (_, first) = claimed(&store, &j).await;
    assert_eq!(first.job.spec.secrets, j.spec.secrets);
    store
        .end_attempt(j.id, 1, AttemptEnd::Abandoned, None, at(1), &any_event())
        .await
        .expect("abandon");
    let agent = runner(&store, "default", &[], 5).await;
    let second = claim(&store, &agent, at(2)).await.expect("re-claim");
    assert_eq!(second.attempt.number, 2);
    assert_eq!(
        second.job.spec.secrets, j.spec.secrets,
        "a retry keeps them"
    );
    let ended = store
        .end_attempt(
            j.id,
            2,
            AttemptEnd::Reported(JobStatus::Failed),
            Some(1),
            at(3),
            &any_event(),
        )
        .await
        .expect("fail");
    assert!(ended.spec.secrets.is_empty());

    let canceled = secret_job(0);
    let expired = secret_job(0);
    for (k, to) in [
        (&canceled, JobStatus::Canceled),
        (&expired, JobStatus::Expired),
    ] {
        store.create_job(k, &any_event()).await.expect("create");
        let moved = store
            .transition_job(k.id, to, at(4), &any_event())
            .await
            .expect("move");
        assert!(moved.spec.secrets.is_empty());
    }
    assert!(claim(&store, &agent, at(5)).await.is_none());
    for id in [j.id, canceled.id, expired.id] {
        read_without_secrets(&store, id).await;
    }
}

/// Sixteen agents claim at once with one job queued: exactly one gets it, the
/// others get nothing (never an error), and the job has one attempt, the winner's.
pub async fn exactly_one_of_sixteen_concurrent_claims_wins<S: Backend>(store: S) {
    const RACERS: usize = 16;
    let mut agents = Vec::new();
    for _ in 0..RACERS {
        agents.push(runner(&store, "default", &[], 1).await);
    }
    let j = queued("default", &[], 0);
    store.create_job(&j, &any_event()).await.expect("create");
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for agent in agents {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let request = claim_request(&agent, t0());
            store.claim_job(&request, t0(), &any_event()).await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task panicked") {
            Ok(Some(c)) => winners.push(c),
            Ok(None) => {}
            Err(err) => panic!("a lost race is never an error: {err:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    let stored = detail(&*store, j.id).await;
    assert_eq!(stored.job.attempt_count, 1);
    assert_eq!(stored.attempts, [winners[0].attempt.clone()]);
}

/// Eight agents claim as fast as they can from fifty queued jobs: every job is
/// claimed exactly once, by the agent its attempt names.
pub async fn eight_agents_claiming_fifty_jobs_concurrently_claim_each_exactly_once<S: Backend>(
    store: S,
) {
    const AGENTS: usize = 8;
    const JOBS: usize = 50;
    let mut agents = Vec::new();
    for _ in 0..AGENTS {
        agents.push(runner(&store, "default", &[], 50).await);
    }
    let mut ids = Vec::new();
    for i in 0..JOBS {
        let j = queued("default", &[], i32::try_from(i % 3).expect("small"));
        store.create_job(&j, &any_event()).await.expect("create");
        ids.push(j.id);
    }
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(AGENTS));
    let mut tasks = Vec::new();
    for agent in agents {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            while let Some(c) = store
                .claim_job(&claim_request(&agent, t0()), t0(), &any_event())
                .await
                .expect("claim")
            {
                mine.push(c.job.id);
            }
            (agent.id, mine)
        }));
    }
    let mut claimed_by = BTreeMap::new();
    for task in tasks {
        let (agent, mine) = task.await.expect("task panicked");
        for id in mine {
            assert!(
                claimed_by.insert(id, agent).is_none(),
                "{id:?} claimed twice"
            );
        }
    }
    ids.sort_unstable();
    assert_eq!(claimed_by.keys().copied().collect::<Vec<_>>(), ids);
    for (id, agent) in claimed_by {
        let stored = detail(&*store, id).await;
        assert_eq!(stored.job.status, JobStatus::Claimed);
        assert_eq!(
            stored
                .attempts
                .iter()
                .map(|a| (a.number, a.agent_id))
                .collect::<Vec<_>>(),
            [(1, agent)]
        );
    }
}

/// `start` moves `claimed → running`, sets `started_at` and the lease; a retried
/// start changes only the lease.
pub async fn starting_moves_a_claimed_job_to_running_and_a_retried_start_only_extends_the_lease<
    S: Backend,
>(
    store: S,
) {
    let j = queued("default", &[], 0);
    let (_, c) = claimed(&store, &j).await;
    let started = store
        .start_attempt(j.id, 1, at(2) + LEASE, at(2), &any_event())
        .await
        .expect("start");
    let mut expected = without_secrets(c.job.clone());
    expected.status = JobStatus::Running;
    expected.updated_at = at(2);
    assert_eq!(started, expected);
    let mut attempt = c.attempt.clone();
    attempt.status = JobStatus::Running;
    attempt.started_at = Some(at(2));
    attempt.lease_expires_at = Some(at(2) + LEASE);
    assert_eq!(detail(&store, j.id).await.attempts, [attempt.clone()]);

    let again = store
        .start_attempt(j.id, 1, at(9) + LEASE, at(9), &any_event())
        .await
        .expect("a retried start");
    assert_eq!(again, expected, "still running since at(2)");
    attempt.lease_expires_at = Some(at(9) + LEASE);
    assert_eq!(detail(&store, j.id).await.attempts, [attempt]);
}

/// A start that arrives after a cancel was asked for keeps the job canceling and
/// only extends the lease.
pub async fn starting_a_job_that_is_being_canceled_keeps_it_canceling<S: Backend>(store: S) {
    let j = queued("default", &[], 0);
    let (_, c) = claimed(&store, &j).await;
    let canceling = store
        .transition_job(j.id, JobStatus::Canceling, at(1), &any_event())
        .await
        .expect("cancel");
    let started = store
        .start_attempt(j.id, 1, at(2) + LEASE, at(2), &any_event())
        .await
        .expect("start");
    assert_eq!(started, canceling);
    let mut attempt = c.attempt;
    attempt.status = JobStatus::Canceling;
    attempt.lease_expires_at = Some(at(2) + LEASE);
    assert_eq!(detail(&store, j.id).await.attempts, [attempt]);
}

/// Renewing sets the new lease and returns the job, so the agent learns of a
/// cancel from the status; `updated_at` does not move.
pub async fn renewing_a_lease_extends_it_and_returns_the_status_the_agent_acts_on<S: Backend>(
    store: S,
) {
    let j = queued("default", &[], 0);
    let (_, c) = running(&store, &j).await;
    let renewed = store
        .renew_lease(j.id, 1, at(40) + LEASE, at(40))
        .await
        .expect("renew");
    assert_eq!(renewed.status, JobStatus::Running);
    assert_eq!(renewed.updated_at, at(1));
    let stored = detail(&store, j.id).await;
    assert_eq!(stored.job, renewed);
    assert_eq!(stored.attempts[0].lease_expires_at, Some(at(40) + LEASE));
    assert_eq!(stored.attempts[0].claimed_at, c.attempt.claimed_at);

    store
        .transition_job(j.id, JobStatus::Canceling, at(50), &any_event())
        .await
        .expect("cancel");
    let renewed = store
        .renew_lease(j.id, 1, at(80) + LEASE, at(80))
        .await
        .expect("renew");
    assert_eq!(
        renewed.status,
        JobStatus::Canceling,
        "the agent is told to stop"
    );
    assert_eq!(
        detail(&store, j.id).await.attempts[0].lease_expires_at,
        Some(at(80) + LEASE)
    );
}

/// Start, renew and end name an attempt: one that is not the job's latest, or whose
/// job nobody holds any more, is `NotHeld` and changes nothing; a job that does not
/// exist is `NotFound`.
pub async fn an_attempt_that_was_superseded_or_finished_is_not_held_and_nothing_changes<
    S: Backend,
>(
    store: S,
) {
    let j = queued("default", &[], 0);
    claimed(&store, &j).await;
    let calls = |job: JobId, attempt: u32, now: OffsetDateTime| {
        let store = &store;
        async move {
            [
                store
                    .start_attempt(job, attempt, now + LEASE, now, &any_event())
                    .await,
                store.renew_lease(job, attempt, now + LEASE, now).await,
                store
                    .end_attempt(
                        job,
                        attempt,
                        AttemptEnd::Reported(JobStatus::Failed),
                        None,
                        now,
                        &any_event(),
                    )
                    .await,
            ]
        }
    };
    let before = detail(&store, j.id).await;
    for attempt in [0, 2] {
        for result in calls(j.id, attempt, at(1)).await {
            assert_not_held(&result, &format!("attempt {attempt} of 1"));
        }
    }
    assert_eq!(detail(&store, j.id).await, before);
    for result in calls(JobId::new(), 1, at(1)).await {
        assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    }

    // Lost and re-queued: nobody holds attempt 1 now.
    store
        .end_attempt(j.id, 1, AttemptEnd::Abandoned, None, at(2), &any_event())
        .await
        .expect("abandon");
    let queued_again = detail(&store, j.id).await;
    for result in calls(j.id, 1, at(3)).await {
        assert_not_held(&result, "attempt 1 of a queued job");
    }
    assert_eq!(detail(&store, j.id).await, queued_again);

    // Claimed again: attempt 1 is superseded by attempt 2.
    let agent = runner(&store, "default", &[], 1).await;
    claim(&store, &agent, at(4)).await.expect("re-claim");
    let reclaimed = detail(&store, j.id).await;
    for result in calls(j.id, 1, at(5)).await {
        assert_not_held(&result, "attempt 1 after attempt 2 began");
    }
    assert_eq!(detail(&store, j.id).await, reclaimed);

    // Finished: attempt 2 is held no more either.
    store
        .end_attempt(
            j.id,
            2,
            AttemptEnd::Reported(JobStatus::Failed),
            Some(1),
            at(6),
            &any_event(),
        )
        .await
        .expect("fail");
    let finished = detail(&store, j.id).await;
    for result in calls(j.id, 2, at(7)).await {
        assert_not_held(&result, "attempt 2 after it failed");
    }
    assert_eq!(detail(&store, j.id).await, finished);
}

/// Each result an agent can report ends the attempt (status, `finished_at`, exit
/// code, no lease) and the job with the same status; neither is held any more.
pub async fn a_reported_result_ends_the_attempt_and_the_job_with_its_exit_code<S: Backend>(
    store: S,
) {
    // (job's status before, result, exit code)
    let cases = [
        (JobStatus::Running, JobStatus::Succeeded, Some(0)),
        (JobStatus::Running, JobStatus::Failed, Some(2)),
        (JobStatus::Claimed, JobStatus::Failed, None),
        (JobStatus::Canceling, JobStatus::Canceled, Some(143)),
        (JobStatus::Canceling, JobStatus::Succeeded, Some(0)),
        (JobStatus::Running, JobStatus::TimedOut, None),
    ];
    for (before, result, exit_code) in cases {
        let j = queued("default", &[], 0);
        let (agent, c) = if before == JobStatus::Claimed {
            claimed(&store, &j).await
        } else {
            running(&store, &j).await
        };
        if before == JobStatus::Canceling {
            store
                .transition_job(j.id, JobStatus::Canceling, at(2), &any_event())
                .await
                .expect("cancel");
        }
        let ended = store
            .end_attempt(
                j.id,
                1,
                AttemptEnd::Reported(result),
                exit_code,
                at(10),
                &any_event(),
            )
            .await
            .expect("end");
        assert_eq!(ended.status, result, "{before} then {result}");
        assert_eq!(ended.updated_at, at(10));
        let stored = detail(&store, j.id).await;
        assert_eq!(stored.job, ended);
        let attempt = &stored.attempts[0];
        assert_eq!(
            (attempt.status, attempt.finished_at, attempt.exit_code),
            (result, Some(at(10)), exit_code),
            "{before} then {result}"
        );
        assert_eq!(attempt.lease_expires_at, None);
        assert_eq!(attempt.claimed_at, c.attempt.claimed_at);
        assert_eq!(store.held_by(agent.id).await.expect("held"), []);
    }
    let far = at(10) + Duration::days(30);
    assert_eq!(store.due_attempts(far, 100).await.expect("due"), []);
}

/// Results the lifecycle does not allow — a cancel nobody asked for, success before
/// the script started, a status that is not a result — are `IllegalTransition`
/// naming both states, and the job and attempt stay as they were.
pub async fn a_result_the_lifecycle_forbids_is_refused_and_changes_nothing<S: Backend>(store: S) {
    let claimed_job = queued("default", &[], 0);
    let running_job = queued("default", &[], 0);
    claimed(&store, &claimed_job).await;
    running(&store, &running_job).await;
    let cases = [
        (&claimed_job, JobStatus::Claimed, JobStatus::Succeeded),
        (&running_job, JobStatus::Running, JobStatus::Canceled),
        (&running_job, JobStatus::Running, JobStatus::Lost),
        (&running_job, JobStatus::Running, JobStatus::Queued),
        (&running_job, JobStatus::Running, JobStatus::Expired),
    ];
    for (j, from, to) in cases {
        let before = detail(&store, j.id).await;
        let err = store
            .end_attempt(
                j.id,
                1,
                AttemptEnd::Reported(to),
                Some(0),
                at(10),
                &any_event(),
            )
            .await
            .expect_err("refused");
        assert!(
            matches!(err, StoreError::IllegalTransition(t) if t == IllegalTransition { from, to }),
            "{from} reporting {to}: {err:?}"
        );
        assert_eq!(detail(&store, j.id).await, before);
    }
}

/// An abandoned attempt is lost and its job re-queued, keeping the attempt, while
/// retries remain (`max_retries` 1: one retry); the next abandonment loses the job.
pub async fn an_abandoned_attempt_is_requeued_with_its_history_while_retries_remain_then_lost<
    S: Backend,
>(
    store: S,
) {
    let mut j = queued("default", &[], 0);
    j.spec.max_retries = 1;
    let (first_agent, first) = running(&store, &j).await;
    let requeued = store
        .end_attempt(j.id, 1, AttemptEnd::Abandoned, None, at(200), &any_event())
        .await
        .expect("abandon");
    assert_eq!(
        (requeued.status, requeued.updated_at, requeued.attempt_count),
        (JobStatus::Queued, at(200), 1)
    );
    let mut lost_first = first.attempt.clone();
    lost_first.status = JobStatus::Lost;
    lost_first.started_at = Some(at(1));
    lost_first.finished_at = Some(at(200));
    lost_first.lease_expires_at = None;
    let stored = detail(&store, j.id).await;
    assert_eq!(stored.job, requeued);
    assert_eq!(stored.attempts, [lost_first.clone()]);
    assert_eq!(store.held_by(first_agent.id).await.expect("held"), []);

    let second_agent = runner(&store, "default", &[], 1).await;
    let second = claim(&store, &second_agent, at(201))
        .await
        .expect("re-claim");
    let lost = store
        .end_attempt(j.id, 2, AttemptEnd::Abandoned, None, at(400), &any_event())
        .await
        .expect("abandon");
    assert_eq!((lost.status, lost.attempt_count), (JobStatus::Lost, 2));
    let mut lost_second = second.attempt;
    lost_second.status = JobStatus::Lost;
    lost_second.finished_at = Some(at(400));
    lost_second.lease_expires_at = None;
    assert_eq!(
        detail(&store, j.id).await.attempts,
        [lost_first, lost_second]
    );
    assert!(claim(&store, &second_agent, at(401)).await.is_none());
}

/// A re-queued job can be claimed in the same instant, by any agent; its new
/// attempt is number 2 and the first one is kept.
pub async fn a_requeued_job_is_claimable_at_once_and_its_next_attempt_is_number_two<S: Backend>(
    store: S,
) {
    let j = queued("default", &[], 0);
    let (_, first) = claimed(&store, &j).await;
    store
        .end_attempt(j.id, 1, AttemptEnd::Abandoned, None, at(130), &any_event())
        .await
        .expect("abandon");
    let other = runner(&store, "default", &[], 1).await;
    let second = claim(&store, &other, at(130))
        .await
        .expect("claimable at once");
    assert_eq!(second.job.id, j.id);
    assert_eq!(second.job.attempt_count, 2);
    assert_eq!(
        (second.attempt.number, second.attempt.agent_id),
        (2, other.id)
    );
    let stored = detail(&store, j.id).await;
    assert_eq!(
        stored
            .attempts
            .iter()
            .map(|a| (a.number, a.agent_id, a.status))
            .collect::<Vec<_>>(),
        [
            (1, first.attempt.agent_id, JobStatus::Lost),
            (2, other.id, JobStatus::Claimed)
        ]
    );
    assert_eq!(stored.attempts[1], second.attempt);
}

/// When the agent of a job being canceled vanishes, the job is canceled: a retry
/// would run what the user asked to stop.
pub async fn an_abandoned_attempt_of_a_job_being_canceled_is_canceled_not_retried<S: Backend>(
    store: S,
) {
    let mut j = queued("default", &[], 0);
    j.spec.max_retries = 5;
    let (agent, _) = running(&store, &j).await;
    store
        .transition_job(j.id, JobStatus::Canceling, at(2), &any_event())
        .await
        .expect("cancel");
    let ended = store
        .end_attempt(j.id, 1, AttemptEnd::Abandoned, None, at(300), &any_event())
        .await
        .expect("abandon");
    assert_eq!(ended.status, JobStatus::Canceled);
    let stored = detail(&store, j.id).await;
    assert_eq!(stored.attempts[0].status, JobStatus::Canceled);
    assert_eq!(stored.attempts[0].finished_at, Some(at(300)));
    assert!(claim(&store, &agent, at(301)).await.is_none());
}

/// The reaper's `Overdue` times a started attempt out (canceling or not); an
/// attempt that never started had no timeout running, so it is lost and retried.
pub async fn an_overdue_attempt_times_out_unless_it_never_started<S: Backend>(store: S) {
    let started = queued("default", &[], 0);
    let canceling = queued("default", &[], 0);
    let never_started = queued("default", &[], 0);
    running(&store, &started).await;
    running(&store, &canceling).await;
    store
        .transition_job(canceling.id, JobStatus::Canceling, at(2), &any_event())
        .await
        .expect("cancel");
    claimed(&store, &never_started).await;
    for (j, job_status, attempt_status) in [
        (&started, JobStatus::TimedOut, JobStatus::TimedOut),
        (&canceling, JobStatus::TimedOut, JobStatus::TimedOut),
        (&never_started, JobStatus::Queued, JobStatus::Lost),
    ] {
        let ended = store
            .end_attempt(j.id, 1, AttemptEnd::Overdue, None, at(2000), &any_event())
            .await
            .expect("overdue");
        assert_eq!(ended.status, job_status);
        let attempt = &detail(&store, j.id).await.attempts[0];
        assert_eq!(
            (
                attempt.status,
                attempt.finished_at,
                attempt.lease_expires_at
            ),
            (attempt_status, Some(at(2000)), None)
        );
    }
}

/// The reaper's end is conditional on what it found due, in the same write: a
/// lease renewed after its read (`due_attempts`, here) wins, the end is `NotHeld`
/// and the job keeps running with the new lease; once that lease has run out too,
/// the reaper's end goes through.
pub async fn the_reaper_loses_to_a_lease_renewed_after_it_looked<S: Backend>(store: S) {
    let j = queued("default", &[], 0);
    let (agent, c) = running(&store, &j).await;
    let reaper_now = at(200);
    let due = store.due_attempts(reaper_now, 10).await.expect("due");
    assert_eq!(
        due,
        [HeldAttempt {
            job: j.id,
            attempt: 1,
            status: JobStatus::Running
        }],
        "the lease ran out at {:?}",
        at(1) + LEASE
    );
    // The agent renews between the reaper's read and its write.
    store
        .renew_lease(j.id, 1, at(150) + LEASE, at(150))
        .await
        .expect("renew");
    let reaped = store
        .reap_attempt(j.id, 1, Due::LeaseExpired, reaper_now, &any_event())
        .await;
    assert_not_held(&reaped, "a renewed lease");
    let stored = detail(&store, j.id).await;
    assert_eq!(stored.job.status, JobStatus::Running);
    assert_eq!(stored.job.updated_at, at(1));
    let attempt = &stored.attempts[0];
    assert_eq!(
        (
            attempt.status,
            attempt.finished_at,
            attempt.lease_expires_at
        ),
        (JobStatus::Running, None, Some(at(150) + LEASE))
    );
    assert_eq!(
        store.held_by(agent.id).await.expect("held"),
        [HeldAttempt {
            job: j.id,
            attempt: c.attempt.number,
            status: JobStatus::Running
        }]
    );
    assert_eq!(store.due_attempts(reaper_now, 10).await.expect("due"), []);

    let later = at(150) + LEASE;
    let requeued = store
        .reap_attempt(j.id, 1, Due::LeaseExpired, later, &any_event())
        .await
        .expect("the renewed lease ran out too");
    assert_eq!(
        (requeued.status, requeued.updated_at),
        (JobStatus::Queued, later)
    );
    let attempt = &detail(&store, j.id).await.attempts[0];
    assert_eq!(
        (
            attempt.status,
            attempt.finished_at,
            attempt.lease_expires_at
        ),
        (JobStatus::Lost, Some(later), None)
    );
    assert_eq!(store.held_by(agent.id).await.expect("held"), []);
}

/// The reaper times an attempt out only once its deadline has passed, and a
/// renewed lease does not move the deadline.
pub async fn the_reaper_times_an_attempt_out_only_past_its_deadline<S: Backend>(store: S) {
    let mut j = queued("default", &[], 0);
    j.spec.timeout_seconds = 60;
    let (_, c) = running(&store, &j).await;
    let deadline = c.attempt.deadline(60);
    let early = store
        .reap_attempt(
            j.id,
            1,
            Due::PastDeadline,
            deadline - Duration::seconds(1),
            &any_event(),
        )
        .await;
    assert_not_held(&early, "before the deadline");
    assert_eq!(detail(&store, j.id).await.job.status, JobStatus::Running);
    store
        .renew_lease(j.id, 1, deadline + LEASE, deadline - Duration::seconds(1))
        .await
        .expect("renew");
    let timed_out = store
        .reap_attempt(j.id, 1, Due::PastDeadline, deadline, &any_event())
        .await
        .expect("at the deadline");
    assert_eq!(timed_out.status, JobStatus::TimedOut);
    let attempt = &detail(&store, j.id).await.attempts[0];
    assert_eq!(
        (
            attempt.status,
            attempt.finished_at,
            attempt.lease_expires_at
        ),
        (JobStatus::TimedOut, Some(deadline), None)
    );
}

/// An agent renewing its lease races the reaper ending the attempt for the lease
/// it read as run out: exactly one of the two wins, and the job shows which.
pub async fn a_renewal_racing_the_reaper_either_keeps_the_job_or_loses_it_never_both<S: Backend>(
    store: S,
) {
    const JOBS: usize = 8;
    let mut jobs = Vec::new();
    for _ in 0..JOBS {
        let j = queued("default", &[], 0);
        running(&store, &j).await;
        jobs.push(j.id);
    }
    let reaper_now = at(200);
    let renewed_until = at(150) + LEASE;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for &id in &jobs {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let (renewer, reaper) = (Arc::clone(&store), Arc::clone(&store));
        let (b1, b2) = (Arc::clone(&barrier), barrier);
        let renew = tokio::spawn(async move {
            b1.wait().await;
            renewer.renew_lease(id, 1, renewed_until, at(150)).await
        });
        let reap = tokio::spawn(async move {
            b2.wait().await;
            reaper
                .reap_attempt(id, 1, Due::LeaseExpired, reaper_now, &any_event())
                .await
        });
        tasks.push((id, renew, reap));
    }
    let mut outcomes = Vec::new();
    for (id, renew, reap) in tasks {
        let renew = renew.await.expect("task panicked");
        let reap = reap.await.expect("task panicked");
        outcomes.push((id, renew, reap));
    }
    for (id, renew, reap) in outcomes {
        let stored = detail(&*store, id).await;
        match (&renew, &reap) {
            (Ok(_), Err(_)) => {
                assert_not_held(&reap, "the reaper after a renewal");
                assert_eq!(stored.job.status, JobStatus::Running);
                assert_eq!(stored.attempts[0].lease_expires_at, Some(renewed_until));
            }
            (Err(_), Ok(_)) => {
                assert_not_held(&renew, "a renewal after the reaper");
                assert_eq!(stored.job.status, JobStatus::Queued);
                assert_eq!(stored.attempts[0].status, JobStatus::Lost);
            }
            _ => panic!("exactly one must win: renew {renew:?}, reap {reap:?}"),
        }
    }
}

/// A user's cancel of a queued job is final at once; of a held job it is a request
/// (`canceling`) the attempt follows, still held with its lease.
pub async fn canceling_a_queued_job_cancels_it_and_canceling_a_held_one_asks_its_agent_to_stop<
    S: Backend,
>(
    store: S,
) {
    let waiting = queued("default", &[], 0);
    store
        .create_job(&waiting, &any_event())
        .await
        .expect("create");
    let canceled = store
        .transition_job(waiting.id, JobStatus::Canceled, at(1), &any_event())
        .await
        .expect("cancel");
    assert_eq!(
        (canceled.status, canceled.updated_at),
        (JobStatus::Canceled, at(1))
    );
    assert_eq!(detail(&store, waiting.id).await.attempts, []);

    let held = queued("default", &[], 0);
    let (agent, c) = running(&store, &held).await;
    let canceling = store
        .transition_job(held.id, JobStatus::Canceling, at(5), &any_event())
        .await
        .expect("cancel");
    assert_eq!(canceling.status, JobStatus::Canceling);
    let attempt = &detail(&store, held.id).await.attempts[0];
    assert_eq!(attempt.status, JobStatus::Canceling);
    assert_eq!(attempt.lease_expires_at, Some(at(1) + LEASE));
    assert_eq!(
        store.held_by(agent.id).await.expect("held"),
        [HeldAttempt {
            job: held.id,
            attempt: c.attempt.number,
            status: JobStatus::Canceling
        }]
    );
}

/// A job that expired in the queue is final: no agent claims it and the reaper's
/// queue scan no longer lists it.
pub async fn a_queued_job_that_expired_is_never_claimed<S: Backend>(store: S) {
    let j = queued("default", &[], 0);
    store.create_job(&j, &any_event()).await.expect("create");
    let expired = store
        .transition_job(j.id, JobStatus::Expired, at(86_400), &any_event())
        .await
        .expect("expire");
    assert_eq!(expired.status, JobStatus::Expired);
    let agent = runner(&store, "default", &[], 1).await;
    assert!(claim(&store, &agent, at(86_401)).await.is_none());
    let stale = store
        .stale_queued_jobs(at(10 * 86_400), 100)
        .await
        .expect("stale");
    assert_eq!(stale, []);
}

/// Canceling a job that was re-queued after a lost attempt cancels the job; the
/// lost attempt, which had finished, is left exactly as it was.
pub async fn canceling_a_requeued_job_leaves_its_finished_attempt_as_it_was<S: Backend>(store: S) {
    let j = queued("default", &[], 0);
    claimed(&store, &j).await;
    store
        .end_attempt(j.id, 1, AttemptEnd::Abandoned, None, at(130), &any_event())
        .await
        .expect("abandon");
    let history = detail(&store, j.id).await.attempts;
    let canceled = store
        .transition_job(j.id, JobStatus::Canceled, at(140), &any_event())
        .await
        .expect("cancel");
    assert_eq!(canceled.status, JobStatus::Canceled);
    let stored = detail(&store, j.id).await;
    assert_eq!(stored.attempts, history);
    assert_eq!(stored.attempts[0].status, JobStatus::Lost);
}

/// A transition out of a held status (here straight to a final one) takes the
/// attempt's lease with it: nobody holds it, and the reaper will not find it.
pub async fn a_job_moved_out_of_a_held_status_loses_its_lease<S: Backend>(store: S) {
    let failed = queued("default", &[], 0);
    let canceled = queued("default", &[], 0);
    let (failed_agent, _) = running(&store, &failed).await;
    let (canceled_agent, _) = claimed(&store, &canceled).await;
    store
        .transition_job(canceled.id, JobStatus::Canceling, at(2), &any_event())
        .await
        .expect("cancel");
    for (j, to) in [
        (&failed, JobStatus::Failed),
        (&canceled, JobStatus::Canceled),
    ] {
        store
            .transition_job(j.id, to, at(3), &any_event())
            .await
            .expect("move");
        let attempt = &detail(&store, j.id).await.attempts[0];
        assert_eq!((attempt.status, attempt.lease_expires_at), (to, None));
    }
    for agent in [failed_agent, canceled_agent] {
        assert_eq!(store.held_by(agent.id).await.expect("held"), []);
    }
    let far = at(3) + Duration::days(30);
    assert_eq!(store.due_attempts(far, 100).await.expect("due"), []);
}

/// The reaper finds held attempts whose lease ran out (at the instant it does) or
/// whose deadline passed, soonest due first, at most `limit`; healthy, finished and
/// unclaimed jobs are never listed.
pub async fn due_attempts_are_expired_leases_and_passed_deadlines_soonest_first<S: Backend>(
    store: S,
) {
    let agent = runner(&store, "default", &["*"], 10).await;
    let claim_with_lease = |timeout: u32, lease: OffsetDateTime| {
        let (store, agent) = (&store, &agent);
        async move {
            let mut j = queued("default", &[], 0);
            j.spec.timeout_seconds = timeout;
            store.create_job(&j, &any_event()).await.expect("create");
            let mut request = claim_request(agent, t0());
            request.lease_expires_at = lease;
            let c = store
                .claim_job(&request, t0(), &any_event())
                .await
                .expect("claim")
                .expect("a job");
            assert_eq!(c.job.id, j.id);
            c
        }
    };
    // Due by lease at t0 + 100 s (running) and t0 + 90 s (claimed).
    let lease_100 = claim_with_lease(3600, t0() + Duration::seconds(100)).await;
    store
        .start_attempt(
            lease_100.job.id,
            1,
            t0() + Duration::seconds(100),
            at(1),
            &any_event(),
        )
        .await
        .expect("start");
    let lease_90 = claim_with_lease(3600, t0() + Duration::seconds(90)).await;
    // Due by deadline (t0 + 60 s timeout + grace), its lease renewed far ahead.
    let deadline = claim_with_lease(60, t0() + Duration::hours(5)).await;
    let deadline_at = deadline.attempt.deadline(60);
    assert!(deadline_at > t0() + Duration::seconds(100));
    store
        .transition_job(deadline.job.id, JobStatus::Canceling, at(2), &any_event())
        .await
        .expect("cancel");
    // Healthy, and finished.
    claim_with_lease(3600, t0() + Duration::hours(1)).await;
    let finished = claim_with_lease(3600, t0() + Duration::seconds(10)).await;
    store
        .end_attempt(
            finished.job.id,
            1,
            AttemptEnd::Reported(JobStatus::Failed),
            None,
            at(3),
            &any_event(),
        )
        .await
        .expect("fail");
    store
        .create_job(&queued("default", &[], 0), &any_event())
        .await
        .expect("create");

    let held = |c: &Claim, status| HeldAttempt {
        job: c.job.id,
        attempt: 1,
        status,
    };
    let all_due = [
        held(&lease_90, JobStatus::Claimed),
        held(&lease_100, JobStatus::Running),
        held(&deadline, JobStatus::Canceling),
    ];
    let due = |now: OffsetDateTime, limit: u32| {
        let store = &store;
        async move { store.due_attempts(now, limit).await.expect("due") }
    };
    let ninety = t0() + Duration::seconds(90);
    assert_eq!(due(ninety - Duration::nanoseconds(1), 100).await, []);
    assert_eq!(due(ninety, 100).await, all_due[..1]);
    assert_eq!(
        due(deadline_at - Duration::nanoseconds(1), 100).await,
        all_due[..2]
    );
    assert_eq!(due(deadline_at, 100).await, all_due);
    assert_eq!(due(deadline_at, 2).await, all_due[..2]);
    assert_eq!(due(t0() + Duration::minutes(30), 100).await, all_due);
}

/// The queue TTL's scan lists queued jobs whose status last changed before the
/// cutoff (strictly), oldest change first, at most `limit`: a job re-queued after
/// a lost attempt counts from its re-queueing; held and final jobs never appear.
pub async fn stale_queued_jobs_are_those_waiting_since_before_the_cutoff_oldest_first<
    S: Backend,
>(
    store: S,
) {
    let created_at = |hours: i64| {
        let mut j = queued("default", &[], 0);
        j.created_at = t0() + Duration::hours(hours);
        j.updated_at = j.created_at;
        j
    };
    let (h0, h1, h2, h3) = (created_at(0), created_at(1), created_at(2), created_at(3));
    for j in [&h3, &h1, &h0, &h2] {
        store.create_job(j, &any_event()).await.expect("create");
    }
    // Old, but re-queued half an hour after t0. Each in a queue of its own, so
    // that the claims here take them and not the jobs above.
    let mut requeued = created_at(-10);
    requeued.spec.queue = "requeued".into();
    claimed(&store, &requeued).await;
    store
        .end_attempt(
            requeued.id,
            1,
            AttemptEnd::Abandoned,
            None,
            t0() + Duration::minutes(30),
            &any_event(),
        )
        .await
        .expect("abandon");
    // Old and held, old and final.
    let mut held = created_at(-10);
    held.spec.queue = "held".into();
    claimed(&store, &held).await;
    let canceled = created_at(-10);
    store
        .create_job(&canceled, &any_event())
        .await
        .expect("create");
    store
        .transition_job(
            canceled.id,
            JobStatus::Canceled,
            t0() - Duration::hours(9),
            &any_event(),
        )
        .await
        .expect("cancel");

    let cutoff = t0() + Duration::hours(2);
    let stale = store.stale_queued_jobs(cutoff, 100).await.expect("stale");
    assert_eq!(stale, [h0.id, requeued.id, h1.id]);
    let first_two = store.stale_queued_jobs(cutoff, 2).await.expect("stale");
    assert_eq!(first_two, [h0.id, requeued.id]);
    let none = store.stale_queued_jobs(t0(), 100).await.expect("stale");
    assert_eq!(
        none,
        [],
        "a job changed exactly at the cutoff is not before it"
    );
}

/// `held_by` lists each attempt an agent holds with the job's status, and nothing
/// it finished, lost, or that another agent holds.
pub async fn held_by_lists_exactly_the_attempts_an_agent_holds<S: Backend>(store: S) {
    let mine = runner(&store, "default", &[], 10).await;
    let theirs = runner(&store, "other", &[], 10).await;
    let jobs: Vec<Job> = (0..4).map(|_| queued("default", &[], 0)).collect();
    let other_job = queued("other", &[], 0);
    for j in jobs.iter().chain([&other_job]) {
        store.create_job(j, &any_event()).await.expect("create");
    }
    claim_all(&store, &mine, t0()).await;
    claim_all(&store, &theirs, t0()).await;
    store
        .start_attempt(jobs[0].id, 1, at(1) + LEASE, at(1), &any_event())
        .await
        .expect("start");
    store
        .transition_job(jobs[1].id, JobStatus::Canceling, at(1), &any_event())
        .await
        .expect("cancel");
    store
        .end_attempt(
            jobs[2].id,
            1,
            AttemptEnd::Reported(JobStatus::Failed),
            None,
            at(1),
            &any_event(),
        )
        .await
        .expect("fail");
    let entry = |j: &Job, status| HeldAttempt {
        job: j.id,
        attempt: 1,
        status,
    };
    assert_eq!(
        sorted(store.held_by(mine.id).await.expect("held")),
        sorted(vec![
            entry(&jobs[0], JobStatus::Running),
            entry(&jobs[1], JobStatus::Canceling),
            entry(&jobs[3], JobStatus::Claimed),
        ])
    );
    assert_eq!(
        store.held_by(theirs.id).await.expect("held"),
        [entry(&other_job, JobStatus::Claimed)]
    );
    assert_eq!(store.held_by(AgentId::new()).await.expect("held"), []);
}

/// Deleting an agent leaves its jobs held, so the caller can find them with
/// `held_by` and end them as abandoned, which re-queues them.
pub async fn a_deleted_agents_jobs_stay_held_until_they_are_ended_as_abandoned<S: Backend>(
    store: S,
) {
    let j = queued("default", &[], 0);
    let (agent, c) = running(&store, &j).await;
    store
        .delete_agent(agent.id, &any_event())
        .await
        .expect("delete");
    assert_eq!(detail(&store, j.id).await.job.status, JobStatus::Running);
    let held = store.held_by(agent.id).await.expect("held");
    assert_eq!(
        held,
        [HeldAttempt {
            job: j.id,
            attempt: c.attempt.number,
            status: JobStatus::Running
        }]
    );
    for h in held {
        let ended = store
            .end_attempt(
                h.job,
                h.attempt,
                AttemptEnd::Abandoned,
                None,
                at(5),
                &any_event(),
            )
            .await
            .expect("abandon");
        assert_eq!(ended.status, JobStatus::Queued);
    }
    assert_eq!(store.held_by(agent.id).await.expect("held"), []);
}

// ---------------------------------------------------------------- users' retries

/// A job in `status`, got there the way the system gets a job there: a claim,
/// a start, a result, the reaper, a cancel, the queue TTL. `max_retries` 0, so a
/// lost attempt loses the job. It waits in a queue named after the status, so
/// that no other job (a retried one, say) is claimed in its place.
async fn job_in<S: Backend>(store: &S, status: JobStatus) -> Job {
    let mut j = queued(status.as_str(), &[], 0);
    j.spec.max_retries = 0;
    let end = |end| {
        let id = j.id;
        async move {
            store
                .end_attempt(id, 1, end, Some(1), at(10), &any_event())
                .await
                .expect("end")
        }
    };
    match status {
        JobStatus::Queued => store.create_job(&j, &any_event()).await.expect("create"),
        JobStatus::Claimed => {
            claimed(store, &j).await;
        }
        JobStatus::Running => {
            running(store, &j).await;
        }
        JobStatus::Canceling => {
            running(store, &j).await;
            store
                .transition_job(j.id, status, at(5), &any_event())
                .await
                .expect("cancel");
        }
        JobStatus::Succeeded | JobStatus::Failed => {
            running(store, &j).await;
            end(AttemptEnd::Reported(status)).await;
        }
        JobStatus::TimedOut => {
            running(store, &j).await;
            end(AttemptEnd::Overdue).await;
        }
        JobStatus::Lost => {
            claimed(store, &j).await;
            end(AttemptEnd::Abandoned).await;
        }
        JobStatus::Canceled | JobStatus::Expired => {
            store.create_job(&j, &any_event()).await.expect("create");
            store
                .transition_job(j.id, status, at(5), &any_event())
                .await
                .expect("move");
        }
    }
    let got = detail(store, j.id).await.job;
    assert_eq!(got.status, status, "the fixture");
    got
}

/// A retry of a failed job puts it back in the queue as it was, with `updated_at`
/// (the queue TTL's clock) at the retry and a fresh retry budget; its attempt is
/// kept exactly, and the next claim, at once, is attempt 2.
pub async fn a_retry_requeues_a_final_job_with_its_history_and_the_next_claim_is_the_next_attempt<
    S: Backend,
>(
    store: S,
) {
    let j = queued("default", &[], 0);
    let (agent, _) = running(&store, &j).await;
    let failed = store
        .end_attempt(
            j.id,
            1,
            AttemptEnd::Reported(JobStatus::Failed),
            Some(1),
            at(10),
            &any_event(),
        )
        .await
        .expect("fail");
    let history = detail(&store, j.id).await.attempts;

    let retried = store
        .retry_job(j.id, &JobSecrets::default(), at(20), &any_event())
        .await
        .expect("retry");
    let mut expected = failed;
    expected.status = JobStatus::Queued;
    expected.updated_at = at(20);
    expected.retried_at_attempt = 1;
    assert_eq!(retried, expected);
    let stored = detail(&store, j.id).await;
    assert_eq!(stored.job, expected);
    assert_eq!(stored.attempts, history, "attempts are never rewritten");
    // Waiting since the retry, not since the submission.
    assert_eq!(
        store.stale_queued_jobs(at(20), 10).await.expect("stale"),
        []
    );
    assert_eq!(
        store
            .stale_queued_jobs(at(20) + Duration::nanoseconds(1), 10)
            .await
            .expect("stale"),
        [j.id]
    );

    let second = claim(&store, &agent, at(20))
        .await
        .expect("claimable at once");
    assert_eq!(second.job.id, j.id);
    assert_eq!((second.attempt.number, second.job.attempt_count), (2, 2));
    let stored = detail(&store, j.id).await;
    assert_eq!(stored.attempts[0], history[0]);
    assert_eq!(
        stored
            .attempts
            .iter()
            .map(|a| (a.number, a.status))
            .collect::<Vec<_>>(),
        [(1, JobStatus::Failed), (2, JobStatus::Claimed)]
    );
}

/// Every final status can be retried, and only those: a job still waiting or
/// running is refused naming its status and is left exactly as it was. A job
/// that does not exist is `NotFound`.
pub async fn every_final_status_and_only_a_final_one_can_be_retried<S: Backend>(store: S) {
    for status in JobStatus::ALL {
        let j = job_in(&store, status).await;
        let before = detail(&store, j.id).await;
        let result = store
            .retry_job(j.id, &JobSecrets::default(), at(30), &any_event())
            .await;
        if status.is_terminal() {
            let retried = result.unwrap_or_else(|e| panic!("{status}: {e:?}"));
            assert_eq!(retried.status, JobStatus::Queued, "{status}");
            assert_eq!(detail(&store, j.id).await.attempts, before.attempts);
        } else {
            match result {
                Err(StoreError::IllegalTransition(t)) => assert_eq!(
                    t,
                    IllegalTransition {
                        from: status,
                        to: JobStatus::Queued
                    }
                ),
                other => panic!("{status}: {other:?}"),
            }
            assert_eq!(detail(&store, j.id).await, before, "{status} changed");
        }
    }
    let unknown = store
        .retry_job(JobId::new(), &JobSecrets::default(), at(30), &any_event())
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

/// A final job keeps its secrets' names, never their values; a retry stores the
/// values it is given, which no read returns and the next claim hands over.
pub async fn a_retry_stores_the_secrets_it_is_given_and_only_the_next_claim_hands_them_over<
    S: Backend,
>(
    store: S,
) {
    let j = secret_job(0);
    assert_eq!(j.secret_names, ["DEPLOY_KEY", "NPM_TOKEN"]);
    let (agent, _) = claimed(&store, &j).await;
    store
        .end_attempt(
            j.id,
            1,
            AttemptEnd::Reported(JobStatus::Failed),
            Some(1),
            at(2),
            &any_event(),
        )
        .await
        .expect("fail");
    let failed = read_without_secrets(&store, j.id).await;
    assert_eq!(failed.secret_names, j.secret_names, "the names stay");

    let rotated: JobSecrets = [
        ("DEPLOY_KEY".to_owned(), "rotated \"key\" ü".to_owned()),
        ("NPM_TOKEN".to_owned(), "npm_rotated".to_owned()),
    ]
    .into_iter()
    .collect();
    let retried = store
        .retry_job(j.id, &rotated, at(3), &any_event())
        .await
        .expect("retry");
    assert!(retried.spec.secrets.is_empty(), "a retry returns no value");
    assert_eq!(retried.secret_names, j.secret_names);
    assert_eq!(read_without_secrets(&store, j.id).await, retried);
    let c = claim(&store, &agent, at(4)).await.expect("claim");
    assert_eq!(c.attempt.number, 2);
    assert_eq!(c.job.spec.secrets, rotated);
}

/// `max_retries` 1: two lost attempts lose the job. Retried by hand, it gets a
/// fresh budget: its next lost attempt is retried automatically, the one after
/// loses it again.
pub async fn a_retried_job_gets_a_fresh_budget_of_automatic_retries<S: Backend>(store: S) {
    let mut j = queued("default", &[], 0);
    j.spec.max_retries = 1;
    let (agent, _) = claimed(&store, &j).await;
    let mut outcomes = Vec::new();
    let mut second = 1;
    for number in 1..=4 {
        if number > 1 {
            let c = claim(&store, &agent, at(second)).await.expect("claimable");
            assert_eq!(c.attempt.number, number);
        }
        let ended = store
            .end_attempt(
                j.id,
                number,
                AttemptEnd::Abandoned,
                None,
                at(second + 1),
                &any_event(),
            )
            .await
            .expect("abandon");
        outcomes.push(ended.status);
        if number == 2 {
            let retried = store
                .retry_job(j.id, &JobSecrets::default(), at(second + 2), &any_event())
                .await
                .expect("retry");
            assert_eq!(retried.retried_at_attempt, 2);
        }
        second += 10;
    }
    assert_eq!(
        outcomes,
        [
            JobStatus::Queued,
            JobStatus::Lost,
            JobStatus::Queued,
            JobStatus::Lost
        ]
    );
    let attempts = detail(&store, j.id).await.attempts;
    assert!(
        attempts.iter().all(|a| a.status == JobStatus::Lost),
        "{attempts:?}"
    );
    assert_eq!(attempts.len(), 4);
}

/// A job keeps at most `ATTEMPTS_MAX` attempts: a retry that could take it past
/// them (its first attempt and `max_retries` automatic ones) is refused and
/// changes nothing. With `max_retries` 10 every retry brings up to 11 attempts.
pub async fn a_retry_that_could_take_a_job_past_the_most_attempts_it_keeps_is_refused<
    S: Backend,
>(
    store: S,
) {
    let mut j = queued("default", &[], 0);
    j.spec.max_retries = 10;
    let (agent, _) = claimed(&store, &j).await;
    let (mut number, mut clock) = (1, 1);
    let refused_at = loop {
        let ended = store
            .end_attempt(
                j.id,
                number,
                AttemptEnd::Abandoned,
                None,
                at(clock),
                &any_event(),
            )
            .await
            .expect("abandon");
        clock += 1;
        if ended.status == JobStatus::Lost {
            let before = detail(&store, j.id).await;
            match store
                .retry_job(j.id, &JobSecrets::default(), at(clock), &any_event())
                .await
            {
                Ok(retried) => assert_eq!(retried.status, JobStatus::Queued),
                Err(StoreError::Conflict(Conflict::AttemptsExhausted { attempts })) => {
                    assert_eq!(attempts, number);
                    assert_eq!(detail(&store, j.id).await, before, "nothing changed");
                    break number;
                }
                Err(other) => panic!("retry at attempt {number}: {other:?}"),
            }
            clock += 1;
        }
        number += 1;
        let c = claim(&store, &agent, at(clock)).await.expect("claimable");
        assert_eq!(c.attempt.number, number);
        clock += 1;
    };
    let most = runway_core::job::limits::ATTEMPTS_MAX;
    assert_eq!(refused_at % 11, 0, "lost after every eleventh attempt");
    assert!(refused_at + 11 > most, "refused only past the limit");
    assert!(refused_at <= most, "the attempts before stayed within it");
    assert_eq!(
        detail(&store, j.id).await.attempts.len(),
        refused_at as usize
    );
}

/// Sixteen concurrent retries of one final job: exactly one wins, the fifteen
/// others see `queued → queued` refused.
pub async fn exactly_one_of_sixteen_concurrent_retries_wins<S: Backend>(store: S) {
    const RACERS: usize = 16;
    let store = Arc::new(store);
    let j = job_in(store.as_ref(), JobStatus::Canceled).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        // Distinct instants, as real callers' clocks give.
        let now = at(60) + Duration::milliseconds(i64::try_from(i).expect("small"));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .retry_job(j.id, &JobSecrets::default(), now, &any_event())
                .await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task panicked") {
            Ok(job) => winners.push(job),
            Err(StoreError::IllegalTransition(t)) => assert_eq!(
                t,
                IllegalTransition {
                    from: JobStatus::Queued,
                    to: JobStatus::Queued
                }
            ),
            Err(other) => panic!("a racer failed with {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one retry wins");
    assert_eq!(detail(store.as_ref(), j.id).await.job, winners[0]);
}

// ---------------------------------------------------------------- logs

/// The most bytes a log may hold.
const LOG_CAP: u64 = LOG_MAX_BYTES + LOG_MARKER_ALLOWANCE;

fn chunk(seq: u64, offset: u64, data: &[u8]) -> LogChunk {
    LogChunk {
        seq,
        offset,
        data: data.to_vec(),
    }
}

/// A claimed job's first attempt: a log to write to.
async fn log_of<S: Backend>(store: &S) -> (JobId, u32) {
    let (_, c) = claimed(store, &queued("default", &[], 0)).await;
    (c.job.id, c.attempt.number)
}

async fn append<S: Backend>(store: &S, (job, attempt): (JobId, u32), c: &LogChunk) -> LogAppend {
    store.append_log(job, attempt, c).await.expect("append")
}

async fn read<S: Backend>(
    store: &S,
    (job, attempt): (JobId, u32),
    offset: u64,
    max_bytes: usize,
) -> LogSlice {
    store
        .read_log(job, attempt, offset, max_bytes)
        .await
        .expect("read")
}

async fn summary<S: Backend>(store: &S, (job, attempt): (JobId, u32)) -> LogSummary {
    store.log_summary(job, attempt).await.expect("summary")
}

fn slice(data: &[u8], next_offset: u64, size: u64) -> LogSlice {
    LogSlice {
        data: data.to_vec(),
        next_offset,
        size,
    }
}

/// `0123456789` in three chunks: `0123`, `456`, `789`.
async fn digits<S: Backend>(store: &S) -> (JobId, u32) {
    let log = log_of(store).await;
    for (seq, (offset, data)) in [(0, &b"0123"[..]), (4, b"456"), (7, b"789")]
        .into_iter()
        .enumerate()
    {
        append(store, log, &chunk(seq as u64, offset, data)).await;
    }
    log
}

/// An attempt's log exists, empty, as soon as the attempt does.
pub async fn a_new_attempts_log_is_empty<S: Backend>(store: S) {
    let log = log_of(&store).await;
    assert_eq!(summary(&store, log).await, LogSummary { size: 0, crc32: 0 });
    assert_eq!(read(&store, log, 0, 1024).await, slice(b"", 0, 0));
}

/// Chunks at the end are written; a resent chunk (and an empty one) is a duplicate
/// that changes nothing.
pub async fn a_chunk_at_the_end_is_written_and_a_resend_is_a_duplicate<S: Backend>(store: S) {
    let log = log_of(&store).await;
    let hello = chunk(0, 0, b"hello, ");
    let world = chunk(1, 7, "wörld\n".as_bytes());
    assert_eq!(
        append(&store, log, &hello).await,
        LogAppend::Written { size: 7 }
    );
    assert_eq!(
        append(&store, log, &world).await,
        LogAppend::Written { size: 14 }
    );
    for resend in [&hello, &world, &chunk(2, 14, b""), &chunk(3, 3, b"")] {
        assert_eq!(
            append(&store, log, resend).await,
            LogAppend::Duplicate { size: 14 },
            "{resend:?}"
        );
    }
    let all = "hello, wörld\n".as_bytes();
    assert_eq!(read(&store, log, 0, 1024).await, slice(all, 14, 14));
    assert_eq!(
        summary(&store, log).await,
        LogSummary {
            size: 14,
            crc32: crc32_append(0, all)
        }
    );
}

/// A chunk that starts inside the log and runs past its end (a resend that grew)
/// adds only the bytes past the end.
pub async fn a_chunk_that_overlaps_the_end_writes_only_its_new_tail<S: Backend>(store: S) {
    let log = log_of(&store).await;
    append(&store, log, &chunk(0, 0, b"hello ")).await;
    assert_eq!(
        append(&store, log, &chunk(1, 3, b"lo world")).await,
        LogAppend::Written { size: 11 }
    );
    assert_eq!(
        read(&store, log, 0, 1024).await,
        slice(b"hello world", 11, 11)
    );
    assert_eq!(
        summary(&store, log).await.crc32,
        crc32_append(0, b"hello world")
    );
}

/// A chunk that would leave a hole is refused with the offset the log continues
/// at, however far away it starts, and nothing is written.
pub async fn a_chunk_past_the_end_is_refused_with_the_offset_expected<S: Backend>(store: S) {
    let log = log_of(&store).await;
    let gap = |offset: u64, expected: u64| {
        let store = &store;
        async move {
            let result = store
                .append_log(log.0, log.1, &chunk(1, offset, b"xyz"))
                .await;
            assert!(
                matches!(
                    result,
                    Err(StoreError::Conflict(Conflict::LogOffset { expected: e })) if e == expected
                ),
                "offset {offset}: {result:?}"
            );
        }
    };
    gap(1, 0).await;
    append(&store, log, &chunk(0, 0, b"abc")).await;
    for offset in [4, 5, u64::MAX] {
        gap(offset, 3).await;
    }
    assert_eq!(read(&store, log, 0, 1024).await, slice(b"abc", 3, 3));
}

/// A chunk whose end is past `LOG_MAX_BYTES + LOG_MARKER_ALLOWANCE` is `LogFull` and
/// refused whole, even if it starts with bytes already stored; the log takes
/// in-bounds chunks as before.
///
/// One chunk that big is not what an agent sends (chunks are at most 256 KiB), but
/// it is the cheap way to reach the cap on every backend: the store must refuse it
/// before storing anything, and its buffer is lazily zeroed memory. Filling a log
/// to the byte at the cap is a backend's own test, where 64 MiB is cheap.
pub async fn a_chunk_that_would_take_the_log_past_its_cap_is_refused_whole<S: Backend>(store: S) {
    let log = log_of(&store).await;
    append(&store, log, &chunk(0, 0, b"abc")).await;
    let cap = usize::try_from(LOG_CAP).expect("fits");
    let mut from_start = vec![0u8; cap + 1];
    from_start[..3].copy_from_slice(b"abc");
    for (offset, data) in [(0, from_start), (3, vec![0u8; cap - 2])] {
        let result = store
            .append_log(
                log.0,
                log.1,
                &LogChunk {
                    seq: 1,
                    offset,
                    data,
                },
            )
            .await;
        assert!(
            matches!(result, Err(StoreError::Conflict(Conflict::LogFull))),
            "from {offset}: {result:?}"
        );
    }
    assert_eq!(
        summary(&store, log).await,
        LogSummary {
            size: 3,
            crc32: crc32_append(0, b"abc")
        }
    );
    assert_eq!(
        append(&store, log, &chunk(2, 3, b"def")).await,
        LogAppend::Written { size: 6 }
    );
}

/// Reads start at any offset: the start, inside a chunk, exactly at a chunk, the
/// end and past it (nothing, and `next_offset` is where the read began).
pub async fn a_log_reads_by_offset_from_the_start_the_middle_and_past_the_end<S: Backend>(
    store: S,
) {
    let log = digits(&store).await;
    let cases: [(u64, &[u8], u64); 6] = [
        (0, b"0123456789", 10),
        (5, b"56789", 10),
        (4, b"456789", 10),
        (9, b"9", 10),
        (10, b"", 10),
        (25, b"", 25),
    ];
    for (offset, data, next) in cases {
        assert_eq!(
            read(&store, log, offset, 1024).await,
            slice(data, next, 10),
            "from {offset}"
        );
    }
    assert_eq!(read(&store, log, 3, 0).await, slice(b"", 3, 10));
}

/// `max_bytes` caps every read, whether it ends inside a chunk or spans several;
/// following `next_offset` reads the whole log exactly once.
pub async fn a_read_returns_at_most_max_bytes_even_across_chunk_boundaries<S: Backend>(store: S) {
    let log = digits(&store).await;
    assert_eq!(read(&store, log, 2, 5).await, slice(b"23456", 7, 10));
    assert_eq!(read(&store, log, 0, 4).await, slice(b"0123", 4, 10));
    for max in 1..=4 {
        let mut whole = Vec::new();
        let mut offset = 0;
        loop {
            let s = read(&store, log, offset, max).await;
            assert!(s.data.len() <= max, "{max}: {s:?}");
            if s.data.is_empty() {
                break;
            }
            whole.extend_from_slice(&s.data);
            offset = s.next_offset;
        }
        assert_eq!(whole, b"0123456789", "{max} at a time");
    }
}

/// The summary's size and CRC-32 are those of every byte the log holds, whatever
/// mix of chunks, resends and overlaps brought them, and the attempt's `log_bytes`
/// agrees.
pub async fn the_log_summary_is_the_size_and_crc32_of_everything_written<S: Backend>(store: S) {
    let log = log_of(&store).await;
    let mut expected = Vec::new();
    let mut seq = 0;
    for i in 0..20u8 {
        let data: Vec<u8> = (0..=i)
            .map(|b| b.wrapping_mul(37).wrapping_add(i))
            .collect();
        let offset = expected.len() as u64;
        append(&store, log, &chunk(seq, offset, &data)).await;
        seq += 1;
        if i % 3 == 0 {
            // The same chunk again, and one that overlaps it and adds a byte.
            append(&store, log, &chunk(seq, offset, &data)).await;
            let mut grown = data.clone();
            grown.push(i);
            append(&store, log, &chunk(seq + 1, offset, &grown)).await;
            seq += 2;
            expected.extend_from_slice(&grown);
        } else {
            expected.extend_from_slice(&data);
        }
    }
    let size = expected.len() as u64;
    assert_eq!(
        summary(&store, log).await,
        LogSummary {
            size,
            crc32: crc32_append(0, &expected)
        }
    );
    assert_eq!(read(&store, log, 0, 1 << 20).await.data, expected);
    assert_eq!(detail(&store, log.0).await.attempts[0].log_bytes, size);
}

/// Eight appends race at offset 0 with different bytes: exactly one writes, the
/// others find the bytes there (duplicates), and the log is that one chunk, whole.
pub async fn concurrent_appends_at_one_offset_write_exactly_once<S: Backend>(store: S) {
    const RACERS: u8 = 8;
    let log = log_of(&store).await;
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS.into()));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            let c = chunk(0, 0, &[b'a' + i; 100]);
            barrier.wait().await;
            (i, store.append_log(log.0, log.1, &c).await)
        }));
    }
    let mut writers = Vec::new();
    for task in tasks {
        match task.await.expect("task panicked") {
            (i, Ok(LogAppend::Written { size: 100 })) => writers.push(i),
            (_, Ok(LogAppend::Duplicate { size: 100 })) => {}
            (_, other) => panic!("a racer got {other:?}"),
        }
    }
    assert_eq!(writers.len(), 1, "exactly one append writes");
    let winner = [b'a' + writers[0]; 100];
    assert_eq!(read(&*store, log, 0, 1024).await, slice(&winner, 100, 100));
    assert_eq!(summary(&*store, log).await.crc32, crc32_append(0, &winner));
}

/// A retried job's second attempt starts a log of its own; the first attempt's log
/// stays readable.
pub async fn each_attempt_has_its_own_log<S: Backend>(store: S) {
    let first = log_of(&store).await;
    append(&store, first, &chunk(0, 0, b"first try\n")).await;
    store
        .end_attempt(
            first.0,
            first.1,
            AttemptEnd::Abandoned,
            None,
            at(200),
            &any_event(),
        )
        .await
        .expect("abandon");
    let agent = runner(&store, "default", &[], 1).await;
    let c = claim(&store, &agent, at(201)).await.expect("re-claim");
    let second = (c.job.id, c.attempt.number);
    assert_eq!(second, (first.0, 2));
    assert_eq!(summary(&store, second).await, LogSummary::default());
    append(&store, second, &chunk(0, 0, b"second\n")).await;
    assert_eq!(
        read(&store, first, 0, 100).await,
        slice(b"first try\n", 10, 10)
    );
    assert_eq!(read(&store, second, 0, 100).await, slice(b"second\n", 7, 7));
}

/// Every log call on an attempt that does not exist — an unknown job, an attempt
/// number past the job's, a job never claimed — is `NotFound`.
pub async fn the_log_of_an_attempt_that_does_not_exist_is_not_found<S: Backend>(store: S) {
    let (job, _) = log_of(&store).await;
    let unclaimed = queued("default", &[], 0);
    store
        .create_job(&unclaimed, &any_event())
        .await
        .expect("create");
    for (job, attempt) in [(JobId::new(), 1), (job, 2), (job, 0), (unclaimed.id, 1)] {
        let appended = store.append_log(job, attempt, &chunk(0, 0, b"x")).await;
        assert!(
            matches!(appended, Err(StoreError::NotFound)),
            "{appended:?}"
        );
        let read = store.read_log(job, attempt, 0, 10).await;
        assert!(matches!(read, Err(StoreError::NotFound)), "{read:?}");
        let summary = store.log_summary(job, attempt).await;
        assert!(matches!(summary, Err(StoreError::NotFound)), "{summary:?}");
    }
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
        filter: AuditFilter::default(),
    }
}

fn audit_ids(page: &Page<AuditEvent>) -> Vec<AuditId> {
    page.items.iter().map(|e| e.id).collect()
}

fn filtered(filter: AuditFilter, limit: u32, after: Option<Cursor>) -> AuditQuery {
    AuditQuery {
        page: page(limit, after),
        filter,
    }
}

/// Every page of a filtered listing, following cursors to the end; also how many
/// pages it took.
async fn every_filtered_event<S: Backend>(
    store: &S,
    filter: &AuditFilter,
    limit: u32,
) -> (Vec<AuditId>, usize) {
    let (mut ids, mut pages, mut after) = (Vec::new(), 0, None);
    loop {
        let page = store
            .list_audit(&filtered(filter.clone(), limit, after))
            .await
            .expect("list a filtered page");
        pages += 1;
        assert!(
            page.items.len() <= limit as usize,
            "a page within its limit"
        );
        assert!(
            page.items.iter().all(|e| filter.matches(e)),
            "only matching events"
        );
        ids.extend(audit_ids(&page));
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => return (ids, pages),
        }
        assert!(pages < 100, "the listing ends");
    }
}

/// Each filter (actor, `system`, action, subject, time range) and their
/// combinations return exactly the matching events, newest first, and page
/// without duplicates or gaps. Times are near now, as they are when the service
/// records an event (ids are stamped by the clock, `at` by the caller).
pub async fn audit_filters_return_exactly_the_matching_events_newest_first<S: Backend>(store: S) {
    let now = OffsetDateTime::now_utc();
    let (ada, bob, agent_id) = (UserId::new(), UserId::new(), AgentId::new());
    let (job_one, job_two) = (JobId::new().to_string(), JobId::new().to_string());
    let user = |id: UserId, name: &str| Actor::User {
        id,
        username: name.into(),
    };
    let agent = Actor::Agent {
        id: agent_id,
        name: "builder".into(),
    };
    let specs = [
        (user(ada, "ada"), AuditAction::JobCreated, Some(&job_one)),
        (agent.clone(), AuditAction::JobStarted, Some(&job_one)),
        (user(ada, "ada"), AuditAction::JobCanceled, Some(&job_one)),
        (user(bob, "bob"), AuditAction::JobCreated, Some(&job_two)),
        (Actor::System, AuditAction::JobReaped, Some(&job_two)),
        (user(bob, "bob"), AuditAction::SessionsRevokedAll, None),
        (user(ada, "ada"), AuditAction::JobCreated, Some(&job_two)),
    ];
    let mut events = Vec::new();
    for (i, (actor, action, subject)) in specs.into_iter().enumerate() {
        let at = now + Duration::seconds(i64::try_from(i).unwrap());
        let event = AuditEvent::new(actor, action, subject.cloned(), at);
        store.append_audit(&event).await.expect("append");
        events.push(event);
    }
    let expect = |keep: &dyn Fn(usize) -> bool| -> Vec<AuditId> {
        let mut ids: Vec<AuditId> = (0..events.len())
            .filter(|&i| keep(i))
            .map(|i| events[i].id)
            .collect();
        ids.sort_by_key(|id| Reverse(*id));
        ids
    };
    let at = |i: i64| now + Duration::seconds(i);
    let cases: Vec<(&str, AuditFilter, Vec<AuditId>)> = vec![
        (
            "actor ada",
            AuditFilter {
                actor: Some(ActorFilter::Id(ada.ulid())),
                ..AuditFilter::default()
            },
            expect(&|i| [0, 2, 6].contains(&i)),
        ),
        (
            "actor agent",
            AuditFilter {
                actor: Some(ActorFilter::Id(agent_id.ulid())),
                ..AuditFilter::default()
            },
            expect(&|i| i == 1),
        ),
        (
            "actor system",
            AuditFilter {
                actor: Some(ActorFilter::System),
                ..AuditFilter::default()
            },
            expect(&|i| i == 4),
        ),
        (
            "action job.created",
            AuditFilter {
                action: Some(AuditAction::JobCreated),
                ..AuditFilter::default()
            },
            expect(&|i| [0, 3, 6].contains(&i)),
        ),
        (
            "subject job one",
            AuditFilter {
                subject: Some(job_one.clone()),
                ..AuditFilter::default()
            },
            expect(&|i| i <= 2),
        ),
        (
            "subject job two, by ada",
            AuditFilter {
                subject: Some(job_two.clone()),
                actor: Some(ActorFilter::Id(ada.ulid())),
                ..AuditFilter::default()
            },
            expect(&|i| i == 6),
        ),
        (
            "from the second event to before the fifth",
            AuditFilter {
                since: Some(at(1)),
                until: Some(at(4)),
                ..AuditFilter::default()
            },
            expect(&|i| (1..4).contains(&i)),
        ),
        (
            "job.created by anyone since the fourth event",
            AuditFilter {
                action: Some(AuditAction::JobCreated),
                since: Some(at(3)),
                ..AuditFilter::default()
            },
            expect(&|i| i == 3 || i == 6),
        ),
        (
            "a subject nothing is about",
            AuditFilter {
                subject: Some(JobId::new().to_string()),
                ..AuditFilter::default()
            },
            Vec::new(),
        ),
    ];
    for (name, filter, expected) in cases {
        for limit in [1, 100] {
            let (ids, _) = every_filtered_event(&store, &filter, limit).await;
            assert_eq!(ids, expected, "{name}, pages of {limit}");
        }
    }
}

/// A filter that matches one event in more than a page's read budget of others
/// still finds it, however the store bounds its reads: following the cursors
/// yields exactly that event, in a bounded number of pages.
pub async fn a_sparse_audit_filter_pages_on_to_the_one_match<S: Backend>(store: S) {
    let store = Arc::new(store);
    let now = OffsetDateTime::now_utc();
    let needle = AuditEvent::new(Actor::System, AuditAction::AgentDeleted, None, now);
    store.append_audit(&needle).await.expect("append");
    let haystack = EXAMINE_MAX + 50;
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in (worker..haystack).step_by(8) {
                let event = AuditEvent::new(Actor::System, AuditAction::JobReaped, None, now);
                store.append_audit(&event).await.expect("append");
            }
        }));
    }
    for task in tasks {
        task.await.expect("appender");
    }
    let filter = AuditFilter {
        action: Some(AuditAction::AgentDeleted),
        ..AuditFilter::default()
    };
    let (ids, pages) = every_filtered_event(store.as_ref(), &filter, 10).await;
    assert_eq!(ids, [needle.id]);
    assert!(pages <= 3, "{pages} pages for {} events", haystack + 1);
}

/// Appended events come back newest first, whole; an empty log is an empty page.
pub async fn audit_events_are_listed_newest_first<S: Backend>(store: S) {
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
pub async fn audit_events_paginate_without_duplicates_or_gaps<S: Backend>(store: S) {
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
pub async fn audit_events_round_trip_every_actor_and_optional_field<S: Backend>(store: S) {
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
pub async fn appending_an_audit_event_with_a_taken_id_is_a_conflict<S: Backend>(store: S) {
    let first = audit_event(AuditAction::JobCreated, t0());
    store.append_audit(&first).await.expect("append");
    let mut rewrite = audit_event(AuditAction::JobCanceled, t0() + Duration::hours(1));
    rewrite.id = first.id;
    let err = store.append_audit(&rewrite).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Exists(RecordKind::AuditEvent))
        ),
        "{err:?}"
    );
    let listed = store
        .list_audit(&AuditQuery::default())
        .await
        .expect("list");
    assert_eq!(listed.items, [first]);
}

/// An event past the limits (only possible by setting fields directly) is refused
/// as a bug on every backend, and nothing is stored.
pub async fn an_audit_event_past_its_limits_is_refused_and_not_stored<S: Backend>(store: S) {
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

// ---------------------------------------------------------------- abuse limits

fn limit_key(value: &str) -> LimitKey {
    LimitKey::new("conformance", value)
}

/// A window of fifteen minutes, as the limits use by default.
const WINDOW: std::time::Duration = std::time::Duration::from_secs(900);

/// A counter counts each attempt, remembers the latest and is forgotten a window
/// after it (at `expires_at`, exactly); the next attempt starts it again at 1.
/// Keys are counted apart.
pub async fn an_attempt_counter_counts_until_its_window_ends_then_starts_again<S: Backend>(
    store: S,
) {
    let key = limit_key("ada");
    assert_eq!(store.attempts(&key, t0()).await.expect("read"), None);
    for (n, at) in [
        t0(),
        t0() + Duration::seconds(10),
        t0() + Duration::seconds(20),
    ]
    .into_iter()
    .enumerate()
    {
        let counted = store.record_attempt(&key, at, WINDOW).await.expect("count");
        let expected = Attempts {
            count: u32::try_from(n).expect("small") + 1,
            last_at: at,
            expires_at: at + WINDOW,
        };
        assert_eq!(counted, expected);
        assert_eq!(
            store.attempts(&key, at).await.expect("read"),
            Some(expected)
        );
    }
    let last = t0() + Duration::seconds(20);
    let other = limit_key("grace");
    let counted = store
        .record_attempt(&other, last, WINDOW)
        .await
        .expect("count");
    assert_eq!(counted.count, 1);

    let end = last + WINDOW;
    let live = store
        .attempts(&key, end - Duration::nanoseconds(1))
        .await
        .expect("read");
    assert_eq!(live.map(|a| a.count), Some(3));
    assert_eq!(store.attempts(&key, end).await.expect("read"), None);
    let again = store
        .record_attempt(&key, end, WINDOW)
        .await
        .expect("count");
    assert_eq!(
        again,
        Attempts {
            count: 1,
            last_at: end,
            expires_at: end + WINDOW,
        }
    );
}

/// Clearing forgets one counter and no other; clearing a counter that is gone
/// is not an error.
pub async fn clearing_an_attempt_counter_forgets_it_and_no_other<S: Backend>(store: S) {
    let (ada, grace) = (limit_key("ada"), limit_key("grace"));
    store
        .record_attempt(&ada, t0(), WINDOW)
        .await
        .expect("count");
    store
        .record_attempt(&grace, t0(), WINDOW)
        .await
        .expect("count");
    store.clear_attempts(&ada).await.expect("clear");
    store.clear_attempts(&ada).await.expect("clear again");
    assert_eq!(store.attempts(&ada, t0()).await.expect("read"), None);
    assert_eq!(
        store
            .attempts(&grace, t0())
            .await
            .expect("read")
            .map(|a| a.count),
        Some(1)
    );
    let fresh = store
        .record_attempt(&ada, t0(), WINDOW)
        .await
        .expect("count");
    assert_eq!(fresh.count, 1);
}

/// Sixteen attempts racing on one live counter add exactly sixteen, and each
/// sees a different count.
pub async fn sixteen_concurrent_attempts_on_one_key_count_exactly_sixteen<S: Backend>(store: S) {
    const RACERS: u32 = 16;
    let key = limit_key("flood");
    store
        .record_attempt(&key, t0(), WINDOW)
        .await
        .expect("count");
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS as usize));
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let (store, barrier, key) = (Arc::clone(&store), Arc::clone(&barrier), key.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .record_attempt(&key, t0() + Duration::seconds(1), WINDOW)
                .await
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.expect("task panicked").expect("count").count);
    }
    seen.sort_unstable();
    assert_eq!(seen, (2..=RACERS + 1).collect::<Vec<_>>());
    let after = store
        .attempts(&key, t0() + Duration::seconds(1))
        .await
        .expect("read");
    assert_eq!(after.map(|a| a.count), Some(RACERS + 1));
}

/// Attempts racing on an expired counter start it again exactly once: the
/// counts they see are 1 to n, never two 1s.
pub async fn racing_attempts_on_an_expired_counter_start_it_again_exactly_once<S: Backend>(
    store: S,
) {
    const RACERS: u32 = 8;
    let key = limit_key("stale");
    for _ in 0..5 {
        store
            .record_attempt(&key, t0(), WINDOW)
            .await
            .expect("count");
    }
    let later = t0() + WINDOW + Duration::seconds(1);
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS as usize));
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let (store, barrier, key) = (Arc::clone(&store), Arc::clone(&barrier), key.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.record_attempt(&key, later, WINDOW).await
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.expect("task panicked").expect("count").count);
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=RACERS).collect::<Vec<_>>());
}

/// Of refusals racing to report one lockout (a counter at one count), exactly
/// one may; the next count is a new lockout, a wrong count or an expired
/// counter none, and a counter started again reports afresh.
pub async fn a_lockout_is_reported_exactly_once_per_count<S: Backend>(store: S) {
    const RACERS: usize = 8;
    let key = limit_key("locked");
    for _ in 0..3 {
        store
            .record_attempt(&key, t0(), WINDOW)
            .await
            .expect("count");
    }
    let store = Arc::new(store);
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let (store, barrier, key) = (Arc::clone(&store), Arc::clone(&barrier), key.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.note_refusal(&key, 3, t0()).await
        }));
    }
    let mut reported = 0;
    for task in tasks {
        if task.await.expect("task panicked").expect("note") {
            reported += 1;
        }
    }
    assert_eq!(reported, 1);
    assert!(!store.note_refusal(&key, 3, t0()).await.expect("note"));
    assert!(
        !store
            .note_refusal(&key, 2, t0())
            .await
            .expect("wrong count")
    );
    assert!(
        !store
            .note_refusal(&limit_key("absent"), 1, t0())
            .await
            .expect("absent")
    );
    store
        .record_attempt(&key, t0(), WINDOW)
        .await
        .expect("count");
    assert!(
        store
            .note_refusal(&key, 4, t0())
            .await
            .expect("next lockout")
    );
    assert!(
        !store
            .note_refusal(&key, 4, t0() + WINDOW)
            .await
            .expect("expired")
    );

    let restarted = t0() + WINDOW;
    store
        .record_attempt(&key, restarted, WINDOW)
        .await
        .expect("count");
    assert!(
        store
            .note_refusal(&key, 1, restarted)
            .await
            .expect("fresh counter")
    );
}

/// Purging deletes at most `limit` expired counters and never a live one; an
/// expired counter reads as none whether or not it was purged.
pub async fn purging_expired_attempt_counters_leaves_the_live_ones<S: Backend>(store: S) {
    for n in 0..5 {
        let key = limit_key(&format!("old-{n}"));
        store
            .record_attempt(&key, t0(), WINDOW)
            .await
            .expect("count");
    }
    let later = t0() + WINDOW;
    let live = limit_key("live");
    store
        .record_attempt(&live, later, WINDOW)
        .await
        .expect("count");
    let purged = store.purge_expired_attempts(later, 3).await.expect("purge");
    assert!(purged <= 3, "purged {purged}, past the limit");
    let more = store.purge_expired_attempts(later, 3).await.expect("purge");
    assert!(purged + more <= 5, "purged a live counter");
    for n in 0..5 {
        let key = limit_key(&format!("old-{n}"));
        assert_eq!(store.attempts(&key, later).await.expect("read"), None);
    }
    assert_eq!(
        store
            .attempts(&live, later)
            .await
            .expect("read")
            .map(|a| a.count),
        Some(1)
    );
}

// ---------------------------------------------------------------- health

/// The store answers a ping and names its backend.
pub async fn the_store_answers_a_ping<S: Backend>(store: S) {
    store.ping().await.expect("ping");
    assert!(
        ["sqlite", "dynamodb"].contains(&store.backend()),
        "unexpected backend name {}",
        store.backend()
    );
}

// ------------------------------------------------- audit events with their change

/// Appends an event and returns it with a copy carrying its id (and another
/// action): a write that carries the copy must fail whole.
async fn a_taken_event<S: Backend>(store: &S) -> (AuditEvent, AuditEvent) {
    let first = audit_event(AuditAction::SignInFailed, t0());
    store.append_audit(&first).await.expect("append");
    let mut copy = any_event();
    copy.id = first.id;
    (first, copy)
}

#[track_caller]
fn assert_event_taken<T: std::fmt::Debug>(result: &Result<T, StoreError>, what: &str) {
    assert!(
        matches!(
            result,
            Err(StoreError::Conflict(Conflict::Exists(
                RecordKind::AuditEvent
            )))
        ),
        "{what}: {result:?}"
    );
}

/// The whole audit log is exactly `expected` (in any order given).
async fn assert_log_is<S: Backend>(store: &S, mut expected: Vec<AuditEvent>) {
    expected.sort_by_key(|e| Reverse(e.id));
    let listed = store
        .list_audit(&audit_query(100, None))
        .await
        .expect("list");
    assert_eq!(listed.items, expected);
}

/// Creating, canceling and retrying a job write their events in the same
/// transaction: with an event whose id is taken the job is left exactly as it
/// was (not created, not moved), and each success leaves exactly its event.
pub async fn a_job_write_and_its_audit_event_commit_together_or_not_at_all<S: Backend>(store: S) {
    let (first, taken) = a_taken_event(&store).await;
    let mut log = vec![first];
    let job = job("atomic");
    assert_event_taken(&store.create_job(&job, &taken).await, "create");
    assert_eq!(store.get_job(job.id).await.expect("get"), None);
    assert_log_is(&store, log.clone()).await;

    let created = any_event();
    store.create_job(&job, &created).await.expect("create");
    log.push(created);
    let result = store
        .transition_job(job.id, JobStatus::Canceled, at(1), &taken)
        .await;
    assert_event_taken(&result, "cancel");
    assert_eq!(
        detail(&store, job.id).await.job,
        without_secrets(job.clone())
    );

    let canceled = any_event();
    let moved = store
        .transition_job(job.id, JobStatus::Canceled, at(1), &canceled)
        .await
        .expect("cancel");
    log.push(canceled);
    let result = store
        .retry_job(job.id, &JobSecrets::default(), at(2), &taken)
        .await;
    assert_event_taken(&result, "retry");
    assert_eq!(detail(&store, job.id).await.job, moved);

    let retried = any_event();
    let requeued = store
        .retry_job(job.id, &JobSecrets::default(), at(2), &retried)
        .await
        .expect("retry");
    assert_eq!(requeued.status, JobStatus::Queued);
    log.push(retried);
    assert_log_is(&store, log).await;
}

/// Registering, claiming, starting, ending and reaping write their events in
/// the same transaction: with a taken event id nothing changes (the token's use
/// is not counted, the job is not claimed, started, ended or reaped), and each
/// success leaves exactly its event; the store fills in what only it knows
/// (the registration token, the claimed job and attempt), and a start that only
/// extends a lease records nothing.
pub async fn a_dispatch_write_and_its_audit_event_commit_together_or_not_at_all<S: Backend>(
    store: S,
) {
    let (first, taken) = a_taken_event(&store).await;
    let mut log = vec![first];
    let token = registration_token(None);
    let made = any_event();
    store
        .create_registration_token(&token, &made)
        .await
        .expect("create token");
    log.push(made);
    let new_agent = agent("atomic", None);
    let result = store
        .register_agent(&token.token_hash, new_agent.clone(), t0(), &taken)
        .await;
    assert_event_taken(&result, "register");
    assert_eq!(store.get_agent(new_agent.id).await.expect("get"), None);
    let tokens = store.list_registration_tokens().await.expect("tokens");
    assert_eq!(tokens[0].uses, 0, "the use is not counted");
    let registered = any_event();
    let runner = store
        .register_agent(&token.token_hash, new_agent, t0(), &registered)
        .await
        .expect("register");
    log.push(registered.of_registration(token.id));

    let job = job("atomic");
    let created = any_event();
    store.create_job(&job, &created).await.expect("create");
    log.push(created);
    let request = claim_request(&runner, t0());
    let result = store.claim_job(&request, t0(), &taken).await;
    assert_event_taken(&result, "claim");
    let unclaimed = detail(&store, job.id).await;
    assert_eq!(unclaimed.job.status, JobStatus::Queued);
    assert!(unclaimed.attempts.is_empty());
    assert!(store.held_by(runner.id).await.expect("held").is_empty());
    let template = any_event();
    let claim = store
        .claim_job(&request, t0(), &template)
        .await
        .expect("claim")
        .expect("the job is claimable");
    log.push(template.of_claim(job.id, claim.attempt.number));

    let result = store
        .start_attempt(job.id, 1, at(1) + LEASE, at(1), &taken)
        .await;
    assert_event_taken(&result, "start");
    assert_eq!(detail(&store, job.id).await.job.status, JobStatus::Claimed);
    let started = any_event();
    store
        .start_attempt(job.id, 1, at(1) + LEASE, at(1), &started)
        .await
        .expect("start");
    log.push(started);
    store
        .start_attempt(job.id, 1, at(2) + LEASE, at(2), &any_event())
        .await
        .expect("a retried start only extends the lease, and records nothing");

    let end = AttemptEnd::Reported(JobStatus::Succeeded);
    let result = store
        .end_attempt(job.id, 1, end, Some(0), at(3), &taken)
        .await;
    assert_event_taken(&result, "end");
    assert_eq!(detail(&store, job.id).await.job.status, JobStatus::Running);
    let finished = any_event();
    store
        .end_attempt(job.id, 1, end, Some(0), at(3), &finished)
        .await
        .expect("end");
    log.push(finished);

    let lost = queued("default", &["linux"], 0);
    let created = any_event();
    store.create_job(&lost, &created).await.expect("create");
    log.push(created);
    let template = any_event();
    store
        .claim_job(&claim_request(&runner, at(4)), at(4), &template)
        .await
        .expect("claim")
        .expect("claimable");
    log.push(template.of_claim(lost.id, 1));
    let due = at(4) + LEASE;
    let result = store
        .reap_attempt(lost.id, 1, Due::LeaseExpired, due, &taken)
        .await;
    assert_event_taken(&result, "reap");
    let held = detail(&store, lost.id).await;
    assert_eq!(held.job.status, JobStatus::Claimed);
    assert!(held.attempts[0].lease_expires_at.is_some());
    let reaped = any_event();
    store
        .reap_attempt(lost.id, 1, Due::LeaseExpired, due, &reaped)
        .await
        .expect("reap");
    log.push(reaped);
    assert_log_is(&store, log).await;
}

/// An admin's state change, a token rotation and a deletion write their events
/// in the same transaction: with a taken event id the agent keeps its state,
/// its token and its existence.
pub async fn an_agent_write_and_its_audit_event_commit_together_or_not_at_all<S: Backend>(
    store: S,
) {
    let runner = register(&store, agent("atomic", None)).await;
    let mut log = store
        .list_audit(&audit_query(100, None))
        .await
        .expect("list")
        .items;
    let (first, taken) = a_taken_event(&store).await;
    log.push(first);

    let result = store
        .set_agent_state(runner.id, AgentState::Paused, &taken)
        .await;
    assert_event_taken(&result, "pause");
    let stored = store
        .get_agent(runner.id)
        .await
        .expect("get")
        .expect("agent");
    assert_eq!(stored.state, AgentState::Active);
    let paused = any_event();
    let changed = store
        .set_agent_state(runner.id, AgentState::Paused, &paused)
        .await
        .expect("pause");
    assert_eq!(changed.state, AgentState::Paused);
    log.push(paused);

    let new_hash = TokenHash::of(&format!("rotated-{}", runner.id));
    let result = store.rotate_agent_token(runner.id, &new_hash, &taken).await;
    assert_event_taken(&result, "rotate");
    let by_old = store
        .agent_by_token_hash(&runner.token_hash)
        .await
        .expect("lookup");
    assert_eq!(
        by_old.map(|a| a.id),
        Some(runner.id),
        "the old token still works"
    );
    assert_eq!(
        store.agent_by_token_hash(&new_hash).await.expect("lookup"),
        None
    );
    let rotated = any_event();
    store
        .rotate_agent_token(runner.id, &new_hash, &rotated)
        .await
        .expect("rotate");
    log.push(rotated);

    assert_event_taken(&store.delete_agent(runner.id, &taken).await, "delete");
    let still = store.agent_by_token_hash(&new_hash).await.expect("lookup");
    assert_eq!(still.map(|a| a.id), Some(runner.id), "not deleted");
    let deleted = any_event();
    store
        .delete_agent(runner.id, &deleted)
        .await
        .expect("delete");
    log.push(deleted);
    assert_eq!(store.get_agent(runner.id).await.expect("get"), None);
    assert_log_is(&store, log).await;
}

/// Creating and deleting a registration token write their events in the same
/// transaction: with a taken event id the token is neither stored (nor usable)
/// nor deleted, and each success leaves exactly its event.
pub async fn a_registration_token_write_and_its_audit_event_commit_together_or_not_at_all<
    S: Backend,
>(
    store: S,
) {
    let (first, taken) = a_taken_event(&store).await;
    let mut log = vec![first];
    let token = registration_token(None);
    assert_event_taken(
        &store.create_registration_token(&token, &taken).await,
        "create",
    );
    assert_eq!(
        store.list_registration_tokens().await.expect("list"),
        vec![]
    );
    let refused = store
        .register_agent(&token.token_hash, agent("nobody", None), t0(), &any_event())
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotFound)),
        "the token's hash is not usable: {refused:?}"
    );
    assert_log_is(&store, log.clone()).await;

    let created = event_about(AuditAction::RegistrationTokenCreated, token.id);
    store
        .create_registration_token(&token, &created)
        .await
        .expect("create");
    log.push(created);
    assert_event_taken(
        &store.delete_registration_token(token.id, &taken).await,
        "delete",
    );
    assert_eq!(
        store.list_registration_tokens().await.expect("list"),
        vec![token.clone()],
        "not deleted"
    );
    let deleted = event_about(AuditAction::RegistrationTokenDeleted, token.id);
    store
        .delete_registration_token(token.id, &deleted)
        .await
        .expect("delete");
    log.push(deleted);
    assert_eq!(
        store.list_registration_tokens().await.expect("list"),
        vec![]
    );
    let again = store
        .delete_registration_token(token.id, &any_event())
        .await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    assert_log_is(&store, log).await;
}

/// Signing in, signing out and signing out everywhere write their events in the
/// same transaction: with a taken event id no session is created, evicted or
/// deleted and the epoch stays; each success leaves exactly its events, the
/// store filling in what only it knows (which sessions a sign-in at the bound
/// evicts, how many a sign-out everywhere deleted).
pub async fn a_session_write_and_its_audit_event_commit_together_or_not_at_all<S: Backend>(
    store: S,
) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create user");
    let (first, taken) = a_taken_event(&store).await;
    let mut log = vec![first];

    let oldest = session(&ada, t0());
    assert_event_taken(&store.create_session(&oldest, &taken).await, "create");
    assert_eq!(store.get_session(oldest.id).await.expect("get"), None);
    assert_log_is(&store, log.clone()).await;
    let mut held = vec![oldest.clone()];
    for i in 0..MAX_SESSIONS_PER_USER {
        let s = if i == 0 {
            oldest.clone()
        } else {
            session(&ada, at(i64::try_from(i).expect("small")))
        };
        let created = event_about(AuditAction::SessionCreated, s.id);
        let evicted = store.create_session(&s, &created).await.expect("create");
        assert_eq!(evicted, [], "below the bound");
        log.push(created);
        if i > 0 {
            held.push(s);
        }
    }
    // At the bound: a sign-in with a taken event evicts nothing.
    let newest = session(&ada, at(100));
    assert_event_taken(
        &store.create_session(&newest, &taken).await,
        "create at the bound",
    );
    assert!(
        store.get_session(oldest.id).await.expect("get").is_some(),
        "not evicted"
    );
    assert_eq!(store.get_session(newest.id).await.expect("get"), None);
    let mut signed_in = event_about(AuditAction::SessionCreated, newest.id);
    signed_in = signed_in.with_request_id("req-sign-in");
    let evicted = store
        .create_session(&newest, &signed_in)
        .await
        .expect("create at the bound");
    assert_eq!(evicted, [oldest.id]);
    assert_eq!(store.get_session(oldest.id).await.expect("get"), None);
    let listed = store
        .list_audit(&audit_query(100, None))
        .await
        .expect("list");
    let eviction = listed
        .items
        .iter()
        .find(|e| e.action == AuditAction::SessionRevoked)
        .expect("the eviction's event")
        .clone();
    assert_eq!(eviction.subject, Some(oldest.id.to_string()));
    assert_eq!(eviction.actor, signed_in.actor);
    assert_eq!(eviction.request_id.as_deref(), Some("req-sign-in"));
    let mut expected = signed_in.of_eviction(oldest.id);
    expected.id = eviction.id;
    assert_eq!(eviction, expected, "the template's, with a fresh id");
    assert_ne!(eviction.id, signed_in.id);
    log.push(signed_in);
    log.push(eviction);
    held.remove(0);
    held.push(newest.clone());
    assert_log_is(&store, log.clone()).await;

    let gone = held.remove(0);
    assert_event_taken(
        &store.revoke_session(ada.id, gone.id, &taken).await,
        "revoke",
    );
    assert!(store.get_session(gone.id).await.expect("get").is_some());
    let revoked = event_about(AuditAction::SessionRevoked, gone.id);
    store
        .revoke_session(ada.id, gone.id, &revoked)
        .await
        .expect("revoke");
    log.push(revoked);
    assert_eq!(store.get_session(gone.id).await.expect("get"), None);

    let epoch = store
        .get_user(ada.id)
        .await
        .expect("get")
        .expect("ada")
        .credential_epoch;
    let result = store
        .revoke_user_sessions(ada.id, Some(newest.id), &taken)
        .await;
    assert_event_taken(&result, "revoke all");
    assert_eq!(
        store
            .list_user_sessions(ada.id, at(200))
            .await
            .expect("list")
            .len(),
        held.len(),
        "none revoked"
    );
    assert_eq!(
        store
            .get_user(ada.id)
            .await
            .expect("get")
            .expect("ada")
            .credential_epoch,
        epoch,
        "the epoch stays"
    );
    let everywhere = event_about(AuditAction::SessionsRevokedAll, ada.id);
    let count = store
        .revoke_user_sessions(ada.id, Some(newest.id), &everywhere)
        .await
        .expect("revoke all");
    let expected = u64::try_from(held.len() - 1).expect("small");
    assert_eq!(count, expected);
    log.push(everywhere.of_revoked_all(expected, true));
    assert_eq!(
        everywhere.of_revoked_all(expected, true).detail.as_deref(),
        Some(format!("revoked {expected}, kept the current one").as_str())
    );
    assert_log_is(&store, log).await;
}

/// A password change and an issuer's first sign-in write their events in the
/// same transaction: with a taken event id the hash, the epoch and the sessions
/// stay, and no user or identity is created; each success leaves its event.
pub async fn an_account_write_and_its_audit_event_commit_together_or_not_at_all<S: Backend>(
    store: S,
) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create user");
    let device = session(&ada, t0());
    let signed_in = any_event();
    store
        .create_session(&device, &signed_in)
        .await
        .expect("sign in");
    let (first, taken) = a_taken_event(&store).await;
    let mut log = vec![signed_in, first];

    let result = store.set_password_hash(ada.id, "new-hash", &taken).await;
    assert_event_taken(&result, "password");
    let stored = store.get_user(ada.id).await.expect("get").expect("ada");
    assert_eq!(stored.password_hash, ada.password_hash);
    assert_eq!(stored.credential_epoch, ada.credential_epoch);
    assert!(store.get_session(device.id).await.expect("get").is_some());
    let reset = event_about(AuditAction::UserPasswordReset, ada.id);
    store
        .set_password_hash(ada.id, "new-hash", &reset)
        .await
        .expect("password");
    log.push(reset);
    assert_eq!(store.get_session(device.id).await.expect("get"), None);

    let grace = user("grace");
    let identity = OidcIdentity {
        issuer: "https://issuer.example".into(),
        subject: "grace-1".into(),
    };
    let result = store.create_oidc_user(&grace, &identity, &taken).await;
    assert_event_taken(&result, "first sign-in");
    assert_eq!(store.user_by_username("grace").await.expect("get"), None);
    assert_eq!(
        store.user_by_oidc_identity(&identity).await.expect("get"),
        None
    );
    let provisioned = event_about(AuditAction::UserCreated, grace.id);
    store
        .create_oidc_user(&grace, &identity, &provisioned)
        .await
        .expect("first sign-in");
    log.push(provisioned);
    assert_eq!(
        store
            .user_by_oidc_identity(&identity)
            .await
            .expect("get")
            .map(|u| u.id),
        Some(grace.id)
    );
    assert_log_is(&store, log).await;
}

// ---------------------------------------------------------------- API tokens

fn api_token(user: &User, name: &str, expires_at: Option<OffsetDateTime>) -> ApiToken {
    let id = ApiTokenId::new();
    ApiToken {
        id,
        user_id: user.id,
        username: user.username.clone(),
        role: user.role,
        name: name.into(),
        read_only: name.contains("read"),
        created_at: t0(),
        expires_at,
        token_hash: TokenHash::of(&format!("api-token-{id}")),
        credential_epoch: user.credential_epoch,
    }
}

/// An event by the system about `subject`, for the writes that take one.
fn event_about(action: AuditAction, subject: impl std::fmt::Display) -> AuditEvent {
    AuditEvent::new(Actor::System, action, Some(subject.to_string()), t0())
}

/// Every audit event stored, newest first.
async fn all_events<S: Backend>(store: &S) -> Vec<AuditEvent> {
    store
        .list_audit(&AuditQuery::default())
        .await
        .expect("list audit")
        .items
}

/// A token is read back exactly by id, listed newest first among its user's
/// (an expired one included) and nobody else's; creating it writes its event.
pub async fn an_api_token_round_trips_and_is_listed_newest_first_with_its_event<S: Backend>(
    store: S,
) {
    let (ada, bob) = (user("ada"), user("bob"));
    store.create_user(&ada).await.expect("create");
    store.create_user(&bob).await.expect("create");
    let old = api_token(&ada, "ci", Some(t0() + Duration::minutes(1)));
    let new = api_token(&ada, "read metrics", None);
    let bobs = api_token(&bob, "deploy", None);
    for t in [&old, &new, &bobs] {
        let event = event_about(AuditAction::ApiTokenCreated, t.id);
        store.create_api_token(t, &event).await.expect("create");
    }
    assert_eq!(
        store.get_api_token(old.id).await.expect("get"),
        Some(old.clone())
    );
    assert_eq!(
        store.get_api_token(ApiTokenId::new()).await.expect("get"),
        None
    );
    assert_eq!(
        store.list_api_tokens(ada.id).await.expect("list"),
        [new, old],
        "newest first"
    );
    assert_eq!(store.list_api_tokens(bob.id).await.expect("list"), [bobs]);
    let events = all_events(&store).await;
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e.action == AuditAction::ApiTokenCreated)
    );
}

/// A token for a user who is gone is `NotFound`, and for one whose credentials
/// changed since its session read them `CredentialsChanged`; neither writes
/// anything, the event included.
pub async fn an_api_token_for_an_unknown_or_changed_user_is_refused_and_writes_nothing<
    S: Backend,
>(
    store: S,
) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let ghost = api_token(&user("ghost"), "ci", None);
    let err = store
        .create_api_token(&ghost, &event_about(AuditAction::ApiTokenCreated, ghost.id))
        .await
        .expect_err("no such user");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let stale = api_token(&ada, "ci", None);
    let revoked = event_about(AuditAction::SessionsRevokedAll, ada.id);
    store
        .revoke_user_sessions(ada.id, None, &revoked)
        .await
        .expect("revoke");
    let err = store
        .create_api_token(&stale, &event_about(AuditAction::ApiTokenCreated, stale.id))
        .await
        .expect_err("epoch moved");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::CredentialsChanged)),
        "{err:?}"
    );
    assert_eq!(store.get_api_token(stale.id).await.expect("get"), None);
    assert_eq!(store.list_api_tokens(ada.id).await.expect("list"), []);
    assert_eq!(
        all_events(&store).await,
        [revoked.of_revoked_all(0, false)],
        "only the sign-out everywhere's own event"
    );
}

/// A user holds at most `MAX_API_TOKENS_PER_USER` live tokens: one more is
/// refused, never an eviction; a new token deletes the user's expired ones, which
/// frees their places.
pub async fn a_user_holds_at_most_forty_live_api_tokens_and_expired_ones_make_room<S: Backend>(
    store: S,
) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let expired = api_token(&ada, "lapsed", Some(t0()));
    let event = event_about(AuditAction::ApiTokenCreated, expired.id);
    store
        .create_api_token(&expired, &event)
        .await
        .expect("create");
    for n in 1..MAX_API_TOKENS_PER_USER {
        let t = api_token(&ada, &format!("t{n}"), None);
        let event = event_about(AuditAction::ApiTokenCreated, t.id);
        store.create_api_token(&t, &event).await.expect("create");
    }
    // Full (the expired one counts until a new token clears it); this one clears it.
    let fits = api_token(&ada, "fits", None);
    let event = event_about(AuditAction::ApiTokenCreated, fits.id);
    store.create_api_token(&fits, &event).await.expect("create");
    assert_eq!(store.get_api_token(expired.id).await.expect("get"), None);
    let listed = store.list_api_tokens(ada.id).await.expect("list");
    assert_eq!(listed.len(), MAX_API_TOKENS_PER_USER);
    let extra = api_token(&ada, "extra", None);
    let err = store
        .create_api_token(&extra, &event_about(AuditAction::ApiTokenCreated, extra.id))
        .await
        .expect_err("at the bound");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::TooManyApiTokens)),
        "{err:?}"
    );
    assert_eq!(store.get_api_token(extra.id).await.expect("get"), None);
    assert_eq!(
        store.list_api_tokens(ada.id).await.expect("list").len(),
        MAX_API_TOKENS_PER_USER
    );
}

/// Revoking one's own token deletes it with its event; someone else's is
/// `NotFound` exactly like an unknown one, and it survives with no event written.
pub async fn revoking_an_api_token_is_scoped_to_its_user<S: Backend>(store: S) {
    let (ada, bob) = (user("ada"), user("bob"));
    store.create_user(&ada).await.expect("create");
    store.create_user(&bob).await.expect("create");
    let adas = api_token(&ada, "ci", None);
    let event = event_about(AuditAction::ApiTokenCreated, adas.id);
    store.create_api_token(&adas, &event).await.expect("create");
    let err = store
        .revoke_api_token(
            bob.id,
            adas.id,
            &event_about(AuditAction::ApiTokenRevoked, adas.id),
        )
        .await
        .expect_err("not bob's");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(
        store.get_api_token(adas.id).await.expect("get"),
        Some(adas.clone())
    );
    assert_eq!(all_events(&store).await.len(), 1);
    store
        .revoke_api_token(
            ada.id,
            adas.id,
            &event_about(AuditAction::ApiTokenRevoked, adas.id),
        )
        .await
        .expect("revoke");
    assert_eq!(store.get_api_token(adas.id).await.expect("get"), None);
    assert_eq!(store.list_api_tokens(ada.id).await.expect("list"), []);
    let err = store
        .revoke_api_token(
            ada.id,
            adas.id,
            &event_about(AuditAction::ApiTokenRevoked, adas.id),
        )
        .await
        .expect_err("gone");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let events = all_events(&store).await;
    assert_eq!(events[0].action, AuditAction::ApiTokenRevoked);
    assert_eq!(events.len(), 2);
}

/// A token write whose event id is taken fails whole: the event stays as it was
/// and the token is neither created nor revoked.
pub async fn an_api_token_write_with_a_taken_event_id_changes_nothing<S: Backend>(store: S) {
    let ada = user("ada");
    store.create_user(&ada).await.expect("create");
    let first = event_about(AuditAction::ApiTokenCreated, "first");
    store.append_audit(&first).await.expect("append");
    let token = api_token(&ada, "ci", None);
    let err = store
        .create_api_token(&token, &first)
        .await
        .expect_err("taken event id");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Exists(RecordKind::AuditEvent))
        ),
        "{err:?}"
    );
    assert_eq!(store.get_api_token(token.id).await.expect("get"), None);
    let event = event_about(AuditAction::ApiTokenCreated, token.id);
    store
        .create_api_token(&token, &event)
        .await
        .expect("create");
    let err = store
        .revoke_api_token(ada.id, token.id, &first)
        .await
        .expect_err("taken event id");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Exists(RecordKind::AuditEvent))
        ),
        "{err:?}"
    );
    assert_eq!(
        store.get_api_token(token.id).await.expect("get"),
        Some(token)
    );
    assert_eq!(all_events(&store).await, [event, first]);
}

// ---------------------------------------------------------------- user admin

fn admin(username: &str) -> User {
    User {
        role: Role::Admin,
        ..user(username)
    }
}

/// Users are created with their event and listed newest first, page by page,
/// with no duplicates or gaps; a taken name is refused with no event.
pub async fn users_are_created_with_their_event_and_paginate_newest_first<S: Backend>(store: S) {
    let mut made = Vec::new();
    for n in 0..5 {
        let u = user(&format!("user{n}"));
        store
            .create_user_audited(&u, &event_about(AuditAction::UserCreated, u.id))
            .await
            .expect("create");
        made.push(u);
    }
    let err = store
        .create_user_audited(
            &user("user0"),
            &event_about(AuditAction::UserCreated, "dup"),
        )
        .await
        .expect_err("taken");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::UsernameTaken(_))),
        "{err:?}"
    );
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let got = store.list_users(&page(2, after)).await.expect("list");
        seen.extend(got.items);
        match got.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    made.reverse();
    assert_eq!(seen, made);
    assert_eq!(all_events(&store).await.len(), 5);
}

/// Disabling a user bumps their epoch and deletes every session and API token
/// of theirs, and nobody else's, with its event; enabling them again revokes
/// nothing more.
pub async fn disabling_a_user_revokes_their_sessions_and_api_tokens_in_one_write<S: Backend>(
    store: S,
) {
    let (ada, bob) = (user("ada"), user("bob"));
    store.create_user(&ada).await.expect("create");
    store.create_user(&bob).await.expect("create");
    let sessions: Vec<Session> = (0..3).map(|_| session(&ada, t0())).collect();
    for s in &sessions {
        store
            .create_session(s, &any_event())
            .await
            .expect("session");
    }
    let tokens: Vec<ApiToken> = (0..3)
        .map(|n| api_token(&ada, &format!("t{n}"), None))
        .collect();
    for t in &tokens {
        let event = event_about(AuditAction::ApiTokenCreated, t.id);
        store.create_api_token(t, &event).await.expect("token");
    }
    let bobs = session(&bob, t0());
    store
        .create_session(&bobs, &any_event())
        .await
        .expect("session");

    let disable = UserChange {
        disabled: Some(true),
        ..UserChange::default()
    };
    let event = event_about(AuditAction::UserDisabled, ada.id);
    let disabled = store
        .update_user(ada.id, disable, &event)
        .await
        .expect("disable");
    assert!(disabled.disabled);
    assert_eq!(disabled.credential_epoch, ada.credential_epoch + 1);
    assert_eq!(
        store.get_user(ada.id).await.expect("get"),
        Some(disabled.clone())
    );
    for s in &sessions {
        assert_eq!(store.get_session(s.id).await.expect("get"), None);
    }
    for t in &tokens {
        assert_eq!(store.get_api_token(t.id).await.expect("get"), None);
    }
    assert_eq!(store.list_api_tokens(ada.id).await.expect("list"), []);
    assert_eq!(
        store.list_user_sessions(ada.id, t0()).await.expect("list"),
        []
    );
    assert_eq!(store.get_session(bobs.id).await.expect("get"), Some(bobs));
    // A sign-in that read the old epoch cannot land afterwards.
    let err = store
        .create_session(&session(&ada, t0()), &any_event())
        .await
        .expect_err("epoch moved");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::CredentialsChanged)),
        "{err:?}"
    );
    assert_eq!(all_events(&store).await[0], event);

    let enable = UserChange {
        disabled: Some(false),
        ..UserChange::default()
    };
    let event = event_about(AuditAction::UserEnabled, ada.id);
    let enabled = store
        .update_user(ada.id, enable, &event)
        .await
        .expect("enable");
    assert!(!enabled.disabled);
    assert_eq!(enabled.credential_epoch, disabled.credential_epoch);
}

/// A new role revokes the user's sessions and tokens (they carry a copy of the
/// role); an unknown user is `NotFound`; an update whose event id is taken
/// changes nothing.
pub async fn a_role_change_revokes_credentials_and_a_failed_one_changes_nothing<S: Backend>(
    store: S,
) {
    let (root, ada) = (admin("root"), user("ada"));
    store.create_user(&root).await.expect("create");
    store.create_user(&ada).await.expect("create");
    let s = session(&ada, t0());
    store
        .create_session(&s, &any_event())
        .await
        .expect("session");
    let promote = UserChange {
        role: Some(Role::Admin),
        ..UserChange::default()
    };
    let taken = event_about(AuditAction::UserCreated, "earlier");
    store.append_audit(&taken).await.expect("append");
    let err = store
        .update_user(ada.id, promote, &taken)
        .await
        .expect_err("taken event id");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Exists(RecordKind::AuditEvent))
        ),
        "{err:?}"
    );
    assert_eq!(
        store.get_user(ada.id).await.expect("get"),
        Some(ada.clone())
    );
    assert_eq!(store.get_session(s.id).await.expect("get"), Some(s.clone()));

    let event = event_about(AuditAction::UserRoleChanged, ada.id);
    let promoted = store
        .update_user(ada.id, promote, &event)
        .await
        .expect("promote");
    assert_eq!(promoted.role, Role::Admin);
    assert_eq!(store.get_session(s.id).await.expect("get"), None);
    let err = store
        .update_user(
            UserId::new(),
            promote,
            &event_about(AuditAction::UserRoleChanged, "x"),
        )
        .await
        .expect_err("unknown");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    // Now two admins: one may be demoted, the other then may not.
    let demote = UserChange {
        role: Some(Role::Member),
        ..UserChange::default()
    };
    store
        .update_user(
            root.id,
            demote,
            &event_about(AuditAction::UserRoleChanged, root.id),
        )
        .await
        .expect("demote one of two");
    let err = store
        .update_user(
            ada.id,
            demote,
            &event_about(AuditAction::UserRoleChanged, ada.id),
        )
        .await
        .expect_err("the last admin");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::LastAdmin)),
        "{err:?}"
    );
}

/// The last enabled admin cannot be demoted, disabled or deleted; a disabled
/// admin does not count; members come and go freely.
pub async fn the_last_enabled_admin_cannot_be_demoted_disabled_or_deleted<S: Backend>(store: S) {
    let (root, off, ada) = (admin("root"), admin("off"), user("ada"));
    for u in [&root, &off, &ada] {
        store
            .create_user_audited(u, &event_about(AuditAction::UserCreated, u.id))
            .await
            .expect("create");
    }
    let disable = UserChange {
        disabled: Some(true),
        ..UserChange::default()
    };
    store
        .update_user(
            off.id,
            disable,
            &event_about(AuditAction::UserDisabled, off.id),
        )
        .await
        .expect("one of two admins may be disabled");
    for change in [
        disable,
        UserChange {
            role: Some(Role::Member),
            ..UserChange::default()
        },
    ] {
        let err = store
            .update_user(
                root.id,
                change,
                &event_about(AuditAction::UserDisabled, root.id),
            )
            .await
            .expect_err("the last enabled admin");
        assert!(
            matches!(err, StoreError::Conflict(Conflict::LastAdmin)),
            "{err:?}"
        );
    }
    let err = store
        .delete_user(root.id, &event_about(AuditAction::UserDeleted, root.id))
        .await
        .expect_err("the last enabled admin");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::LastAdmin)),
        "{err:?}"
    );
    assert_eq!(
        store.get_user(root.id).await.expect("get"),
        Some(root.clone())
    );
    store
        .delete_user(ada.id, &event_about(AuditAction::UserDeleted, ada.id))
        .await
        .expect("a member may go");
    // Enabling the disabled admin again makes root removable.
    let enable = UserChange {
        disabled: Some(false),
        ..UserChange::default()
    };
    store
        .update_user(
            off.id,
            enable,
            &event_about(AuditAction::UserEnabled, off.id),
        )
        .await
        .expect("enable");
    store
        .delete_user(root.id, &event_about(AuditAction::UserDeleted, root.id))
        .await
        .expect("now one of two");
}

/// Two admins demoting each other at the same moment (and, in other rounds,
/// disabling or deleting each other) leave exactly one enabled admin: the other
/// call is `LastAdmin`. Each round pits the last round's survivor against a new
/// admin, so exactly two enabled admins race every time.
pub async fn admins_demoting_each_other_at_once_leave_exactly_one<S: Backend>(store: S) {
    let store = Arc::new(store);
    let mut survivor = admin("a0");
    store
        .create_user_audited(
            &survivor,
            &event_about(AuditAction::UserCreated, survivor.id),
        )
        .await
        .expect("create");
    for round in 0..6 {
        let rival = admin(&format!("b{round}"));
        store
            .create_user_audited(&rival, &event_about(AuditAction::UserCreated, rival.id))
            .await
            .expect("create");
        let race = |target: UserId| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let event = event_about(AuditAction::UserRoleChanged, target);
                let change = match round % 3 {
                    0 => UserChange {
                        role: Some(Role::Member),
                        ..UserChange::default()
                    },
                    1 => UserChange {
                        disabled: Some(true),
                        ..UserChange::default()
                    },
                    _ => return store.delete_user(target, &event).await,
                };
                store.update_user(target, change, &event).await.map(drop)
            })
        };
        let (one, other) = (race(rival.id), race(survivor.id));
        let results = [one.await.expect("join"), other.await.expect("join")];
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
        for r in &results {
            if let Err(err) = r {
                assert!(
                    matches!(err, StoreError::Conflict(Conflict::LastAdmin)),
                    "{err:?}"
                );
            }
        }
        let mut left = Vec::new();
        for id in [survivor.id, rival.id] {
            if let Some(u) = store.get_user(id).await.expect("get")
                && u.is_enabled_admin()
            {
                left.push(u);
            }
        }
        assert_eq!(left.len(), 1, "round {round}: exactly one enabled admin");
        survivor = left.remove(0);
    }
}

/// Deleting a user deletes them, their sessions, API tokens and issuer identity
/// with its event: the name is free again, the identity finds no one, a second
/// delete is `NotFound`.
pub async fn deleting_a_user_removes_their_name_identity_sessions_and_api_tokens<S: Backend>(
    store: S,
) {
    let ada = user("ada");
    let identity = OidcIdentity {
        issuer: "https://issuer.example".into(),
        subject: "ada-123".into(),
    };
    store
        .create_oidc_user(&ada, &identity, &any_event())
        .await
        .expect("create");
    let s = session(&ada, t0());
    store
        .create_session(&s, &any_event())
        .await
        .expect("session");
    let t = api_token(&ada, "ci", None);
    store
        .create_api_token(&t, &event_about(AuditAction::ApiTokenCreated, t.id))
        .await
        .expect("token");
    let event = event_about(AuditAction::UserDeleted, ada.id);
    store.delete_user(ada.id, &event).await.expect("delete");
    assert_eq!(store.get_user(ada.id).await.expect("get"), None);
    assert_eq!(store.user_by_username("ada").await.expect("by name"), None);
    assert_eq!(
        store
            .user_by_oidc_identity(&identity)
            .await
            .expect("by identity"),
        None
    );
    assert_eq!(store.get_session(s.id).await.expect("get"), None);
    assert_eq!(store.get_api_token(t.id).await.expect("get"), None);
    assert_eq!(all_events(&store).await[0], event);
    let err = store
        .delete_user(ada.id, &event_about(AuditAction::UserDeleted, ada.id))
        .await
        .expect_err("gone");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    // The name and the identity can be used again.
    let again = user("ada");
    store
        .create_oidc_user(&again, &identity, &any_event())
        .await
        .expect("create again");
    assert_eq!(
        store
            .user_by_oidc_identity(&identity)
            .await
            .expect("by identity"),
        Some(again)
    );
}

/// Two racing enables of one disabled admin count them once: afterwards the
/// other admin may go, and then this one is the last.
pub async fn racing_enables_of_one_admin_count_them_once<S: Backend>(store: S) {
    let store = Arc::new(store);
    let (root, off) = (admin("root"), admin("off"));
    for u in [&root, &off] {
        store
            .create_user_audited(u, &event_about(AuditAction::UserCreated, u.id))
            .await
            .expect("create");
    }
    let set = |disabled: bool| UserChange {
        disabled: Some(disabled),
        ..UserChange::default()
    };
    store
        .update_user(
            off.id,
            set(true),
            &event_about(AuditAction::UserDisabled, off.id),
        )
        .await
        .expect("disable one of two");
    let enable = || {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .update_user(
                    off.id,
                    set(false),
                    &event_about(AuditAction::UserEnabled, off.id),
                )
                .await
        })
    };
    let (a, b) = (enable(), enable());
    a.await.expect("join").expect("enable");
    b.await.expect("join").expect("enable");
    store
        .delete_user(root.id, &event_about(AuditAction::UserDeleted, root.id))
        .await
        .expect("one of two admins");
    let err = store
        .update_user(
            off.id,
            set(true),
            &event_about(AuditAction::UserDisabled, off.id),
        )
        .await
        .expect_err("the last admin");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::LastAdmin)),
        "{err:?}"
    );
}
