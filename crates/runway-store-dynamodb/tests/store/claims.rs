//! The claim, lease and capacity keys, read raw.
//!
//! The conformance suite checks what a claim does; these tests check how it is
//! kept on DynamoDB, which is what only this backend can get wrong: the sparse
//! `claimable` and `by_lease` entries written and removed in the same write as the
//! status, the `by_lease` sort key being the attempt's due time, the agent's
//! `held` set moving in the same transaction as the job (and so the capacity
//! condition), and what a deleted agent leaves behind. moto's indexes are
//! immediately consistent, so an index read right after a write sees it; on
//! DynamoDB it may lag by a moment, which every reader absorbs by reading the items
//! again.

use runway_conformance::audit_event;
use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use runway_core::agent::AgentState;
use runway_core::id::JobId;
use runway_core::job::{DEADLINE_GRACE, Job};
use runway_core::lifecycle::{AttemptEnd, JobStatus};
use runway_core::store::{AgentStore, DispatchStore, HeldAttempt, JobStore};
use runway_store_dynamodb::DynamoStore;
use time::Duration;

use crate::support::{
    LEASE, at, claim, claim_request, fresh_store, held_set, index_entries, job, job_ids, raw_item,
    raw_job, runner, s, t0,
};

/// The `by_lease` sort key of `job` due at `at`.
fn reaper_key(at: time::OffsetDateTime, job: JobId) -> AttributeValue {
    s(&format!("{:019}#{job}", at.unix_timestamp_nanos()))
}

fn member(job: &Job, attempt: u32) -> String {
    format!("{}#{attempt}", job.id)
}

async fn create(store: &DynamoStore, jobs: &[&Job]) {
    for job in jobs {
        store.create_job(job, &audit_event()).await.expect("create");
    }
}

#[tokio::test]
async fn a_claim_swaps_the_queue_keys_for_lease_keys_and_a_requeue_swaps_them_back() {
    let store = fresh_store().await;
    let job = job("gpu", 7, &["linux"]);
    create(&store, &[&job]).await;
    let item = raw_job(&store, job.id).await;
    assert_eq!(item.get("claim_queue"), Some(&s("gpu")));
    let rank = item.get("claim_rank").cloned().expect("a claim rank");
    assert_eq!(rank, s(&format!("{}#{}", i64::from(i32::MAX) - 7, job.id)));
    assert_eq!(
        item.get("lease_pk"),
        Some(&s("queue")),
        "the queue TTL's clock"
    );
    assert_eq!(item.get("lease_expires"), Some(&reaper_key(t0(), job.id)));

    let agent = runner(&store, "gpu", &["linux"], 2).await;
    let c = claim(&store, &agent, at(1)).await.expect("a claim");
    let item = raw_job(&store, job.id).await;
    assert!(!item.contains_key("claim_queue"), "{item:?}");
    assert!(!item.contains_key("claim_rank"), "{item:?}");
    assert_eq!(item.get("lease_pk"), Some(&s("lease")));
    // Due when the lease runs out: it ends before the deadline (60 s + grace).
    assert_eq!(
        item.get("lease_expires"),
        Some(&reaper_key(at(1) + LEASE, job.id))
    );
    assert_eq!(item.get("lease_agent"), Some(&s(&agent.id.to_string())));
    assert_eq!(held_set(&store, agent.id).await, [member(&job, 1)]);
    assert!(
        index_entries(&store, "claimable", ("claim_queue", "gpu"))
            .await
            .is_empty()
    );
    let lease_entries = index_entries(&store, "by_lease", ("lease_pk", "lease")).await;
    assert_eq!(job_ids(&lease_entries), [job.id.to_string()]);
    assert_eq!(
        lease_entries[0].get("lease_agent"),
        Some(&s(&agent.id.to_string())),
        "projected, for held_by of a deleted agent"
    );

    // Lost with retries left: back in the queue, in its old place, with a fresh
    // queue clock, and the agent's capacity back.
    store
        .end_attempt(
            job.id,
            c.attempt.number,
            AttemptEnd::Abandoned,
            None,
            at(5),
            &audit_event(),
        )
        .await
        .expect("abandon");
    let item = raw_job(&store, job.id).await;
    assert_eq!(item.get("claim_rank"), Some(&rank));
    assert_eq!(item.get("lease_pk"), Some(&s("queue")));
    assert_eq!(item.get("lease_expires"), Some(&reaper_key(at(5), job.id)));
    assert!(!item.contains_key("lease_agent"), "{item:?}");
    assert_eq!(held_set(&store, agent.id).await, Vec::<String>::new());
    assert!(
        index_entries(&store, "by_lease", ("lease_pk", "lease"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn the_claimable_index_lists_a_queue_by_priority_then_oldest_first_with_labels() {
    let store = fresh_store().await;
    // Created in this order, so ids (and ages) ascend down the list.
    let low_old = job("linux", -5, &["linux"]);
    let high_old = job("linux", 100, &["linux", "docker"]);
    let normal_old = job("linux", 0, &[]);
    let high_new = job("linux", 100, &["arm64"]);
    let normal_new = job("linux", 0, &["linux"]);
    let elsewhere = job("windows", 1000, &["windows"]);
    let canceled = job("linux", 1000, &["linux"]);
    create(
        &store,
        &[
            &low_old,
            &high_old,
            &normal_old,
            &high_new,
            &normal_new,
            &elsewhere,
            &canceled,
        ],
    )
    .await;
    store
        .transition_job(canceled.id, JobStatus::Canceled, at(1), &audit_event())
        .await
        .expect("cancel");

    let entries = index_entries(&store, "claimable", ("claim_queue", "linux")).await;
    let expected = [&high_old, &high_new, &normal_old, &normal_new, &low_old];
    assert_eq!(
        job_ids(&entries),
        expected.map(|j| j.id.to_string()),
        "highest priority first, then oldest; other queues and canceled jobs absent"
    );
    for (entry, job) in entries.iter().zip(expected) {
        let labels = job.spec.labels.iter().map(|l| s(l)).collect();
        assert_eq!(
            entry.get("labels"),
            Some(&AttributeValue::L(labels)),
            "the labels are projected, so a claimer needs no item read to filter"
        );
        assert!(!entry.contains_key("script"), "only the keys and labels");
    }
    let canceled = raw_job(&store, canceled.id).await;
    for key in ["claim_queue", "lease_pk", "lease_expires", "secrets"] {
        assert!(!canceled.contains_key(key), "{key}: {canceled:?}");
    }
}

#[tokio::test]
async fn the_lease_key_follows_renewals_and_stops_at_the_deadline() {
    let store = fresh_store().await;
    let mut long = job("default", 0, &[]);
    long.spec.timeout_seconds = 600;
    create(&store, &[&long]).await;
    let agent = runner(&store, "default", &[], 1).await;
    claim(&store, &agent, t0()).await.expect("a claim");
    let deadline = t0() + Duration::seconds(600) + DEADLINE_GRACE;

    store
        .start_attempt(long.id, 1, at(30) + LEASE, at(30), &audit_event())
        .await
        .expect("start");
    assert_eq!(
        raw_job(&store, long.id).await.get("lease_expires"),
        Some(&reaper_key(at(30) + LEASE, long.id))
    );
    // An agent that keeps renewing past the timeout is still due at the deadline.
    store
        .renew_lease(long.id, 1, at(620) + LEASE, at(620))
        .await
        .expect("renew");
    assert_eq!(
        raw_job(&store, long.id).await.get("lease_expires"),
        Some(&reaper_key(deadline, long.id))
    );
    let held = HeldAttempt {
        job: long.id,
        attempt: 1,
        status: JobStatus::Running,
    };
    assert_eq!(
        store
            .due_attempts(deadline - Duration::nanoseconds(1), 10)
            .await
            .expect("due"),
        []
    );
    assert_eq!(store.due_attempts(deadline, 10).await.expect("due"), [held]);
}

#[tokio::test]
async fn an_attempt_counts_against_its_agents_capacity_until_it_ends_not_until_its_lease_does() {
    let store = fresh_store().await;
    let (first, second) = (job("default", 0, &[]), job("default", 0, &[]));
    create(&store, &[&first, &second]).await;
    let agent = runner(&store, "default", &[], 1).await;
    let c = claim(&store, &agent, t0()).await.expect("a claim");
    assert_eq!(c.job.id, first.id);
    assert_eq!(held_set(&store, agent.id).await, [member(&first, 1)]);

    assert!(claim(&store, &agent, at(1)).await.is_none(), "at capacity");
    // Long after the lease ran out, the attempt is still the agent's until the
    // reaper ends it: it may still be running there.
    assert!(
        claim(&store, &agent, at(3600)).await.is_none(),
        "still held"
    );
    assert_eq!(
        raw_job(&store, second.id).await.get("status"),
        Some(&s("queued")),
        "the refused claim wrote nothing"
    );

    store
        .end_attempt(
            first.id,
            1,
            AttemptEnd::Abandoned,
            None,
            at(3600),
            &audit_event(),
        )
        .await
        .expect("reaped");
    assert_eq!(held_set(&store, agent.id).await, Vec::<String>::new());
    let c = claim(&store, &agent, at(3601))
        .await
        .expect("capacity is back");
    assert_eq!(
        (c.job.id, c.attempt.number),
        (first.id, 2),
        "the retry kept its place in the queue, ahead of the newer job"
    );
}

#[tokio::test]
async fn state_and_capacity_are_checked_against_the_stored_agent_not_the_callers_copy() {
    let store = fresh_store().await;
    let jobs: Vec<Job> = (0..3).map(|_| job("default", 0, &[])).collect();
    create(&store, &jobs.iter().collect::<Vec<_>>()).await;
    let agent = runner(&store, "default", &[], 1).await;
    claim(&store, &agent, t0()).await.expect("a claim");

    // A stale copy that claims a capacity of 5 does not get a second job.
    let mut bigger = agent.clone();
    bigger.capacity = 5;
    let refused = store
        .claim_job(&claim_request(&bigger, at(1)), at(1), &audit_event())
        .await
        .expect("claim");
    assert!(refused.is_none());

    // A stale copy that says active does not claim for a paused agent.
    let other = runner(&store, "default", &[], 5).await;
    store
        .set_agent_state(other.id, AgentState::Paused, &audit_event())
        .await
        .expect("pause");
    let refused = store
        .claim_job(&claim_request(&other, at(2)), at(2), &audit_event())
        .await
        .expect("claim");
    assert!(refused.is_none());
    assert_eq!(held_set(&store, other.id).await, Vec::<String>::new());
    let queued = store
        .list_jobs(&runway_core::store::JobQuery {
            status: Some(JobStatus::Queued),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(queued.items.len(), 2, "nothing was claimed by the refusals");
}

#[tokio::test]
async fn a_transition_out_of_a_held_status_gives_the_agent_its_capacity_back() {
    let store = fresh_store().await;
    let (first, second) = (job("default", 0, &[]), job("default", 0, &[]));
    create(&store, &[&first, &second]).await;
    let agent = runner(&store, "default", &[], 1).await;
    claim(&store, &agent, t0()).await.expect("a claim");
    store
        .start_attempt(first.id, 1, at(1) + LEASE, at(1), &audit_event())
        .await
        .expect("start");
    store
        .transition_job(first.id, JobStatus::Failed, at(2), &audit_event())
        .await
        .expect("fail");
    assert_eq!(held_set(&store, agent.id).await, Vec::<String>::new());
    let item = raw_job(&store, first.id).await;
    for key in ["lease_pk", "lease_expires", "lease_agent"] {
        assert!(!item.contains_key(key), "{key}: {item:?}");
    }
    assert_eq!(
        claim(&store, &agent, at(3)).await.map(|c| c.job.id),
        Some(second.id)
    );
}

#[tokio::test]
async fn a_deleted_agents_jobs_are_found_through_by_lease_and_end_without_recreating_it() {
    let store = fresh_store().await;
    let (mine, theirs) = (job("default", 0, &[]), job("default", 0, &[]));
    create(&store, &[&mine, &theirs]).await;
    let agent = runner(&store, "default", &[], 1).await;
    let other = runner(&store, "default", &[], 1).await;
    claim(&store, &agent, t0()).await.expect("a claim");
    claim(&store, &other, t0()).await.expect("a claim");

    store
        .delete_agent(agent.id, &audit_event())
        .await
        .expect("delete");
    assert!(
        raw_item(&store, "agents", "agent_id", agent.id.to_string())
            .await
            .is_none()
    );
    let held = store.held_by(agent.id).await.expect("held");
    assert_eq!(
        held,
        [HeldAttempt {
            job: mine.id,
            attempt: 1,
            status: JobStatus::Claimed
        }],
        "found through by_lease's projected lease_agent, the other agent's job left out"
    );
    store
        .end_attempt(
            mine.id,
            1,
            AttemptEnd::Abandoned,
            None,
            at(10),
            &audit_event(),
        )
        .await
        .expect("abandon");
    assert!(
        raw_item(&store, "agents", "agent_id", agent.id.to_string())
            .await
            .is_none(),
        "releasing capacity must not create an item for a deleted agent"
    );
    assert_eq!(held_set(&store, other.id).await, [member(&theirs, 1)]);
}

#[tokio::test]
async fn eight_agents_racing_for_fifty_jobs_leave_held_sets_that_match_the_jobs_exactly() {
    let store = fresh_store().await;
    let jobs: Vec<Job> = (0..50).map(|_| job("default", 0, &[])).collect();
    create(&store, &jobs.iter().collect::<Vec<_>>()).await;
    let mut agents = Vec::new();
    for _ in 0..8 {
        agents.push(runner(&store, "default", &[], 10).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for agent in agents.clone() {
        let store = store.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            let mut empty = 0;
            // `None` can mean "lost every race this poll"; poll again a few times.
            while empty < 3 && mine.len() < 10 {
                match claim(&store, &agent, t0()).await {
                    Some(c) => mine.push(c.job.id),
                    None => empty += 1,
                }
            }
            (agent.id, mine)
        });
    }
    let mut claimed: BTreeMap<JobId, _> = BTreeMap::new();
    while let Some(result) = tasks.join_next().await {
        let (agent, mine) = result.expect("a claimer");
        for job in mine {
            assert!(
                claimed.insert(job, agent).is_none(),
                "{job} was claimed twice"
            );
        }
    }
    assert_eq!(claimed.len(), 50, "every job was claimed");

    let mut members = BTreeSet::new();
    for agent in &agents {
        let held = held_set(&store, agent.id).await;
        assert!(held.len() <= 10, "{} over capacity: {held:?}", agent.id);
        for m in held {
            let (job, _) = m.split_once('#').expect("job#attempt");
            let job: JobId = job.parse().expect("a job id");
            assert_eq!(claimed.get(&job), Some(&agent.id), "{m} in the wrong set");
            assert!(members.insert(m.clone()), "{m} held twice");
        }
    }
    assert_eq!(
        members.len(),
        50,
        "the held sets hold exactly the claimed jobs"
    );
    for job in &jobs {
        let detail = store.get_job(job.id).await.expect("get").expect("job");
        assert_eq!(detail.attempts.len(), 1, "{}", job.id);
        assert_eq!(Some(&detail.attempts[0].agent_id), claimed.get(&job.id));
    }
}
