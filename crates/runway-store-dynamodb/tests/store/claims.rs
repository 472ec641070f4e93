//! The claim and lease keys of the jobs table, read raw.
//!
//! No store trait claims a job or reaps a lease yet (the agent protocol will), so
//! these tests read the items and query the `claimable` and `by_lease` indexes with
//! the SDK directly. They pin down what that later code relies on: a queued job is
//! in `claimable` under its queue, ranked by priority then age, with its labels
//! projected; it leaves the index in the same write that moves it out of `queued`
//! and comes back when it is re-queued; and a job no agent holds has no lease keys.
//! moto's indexes are immediately consistent, so an index read right after a write
//! sees it; on DynamoDB it may lag by a moment, which the claim's conditional write
//! absorbs.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use runway_core::id::{JobId, UserId};
use runway_core::job::{Job, JobSpec};
use runway_core::lifecycle::JobStatus;
use runway_core::store::JobStore;
use runway_store_dynamodb::DynamoStore;
use time::OffsetDateTime;

use crate::support::fresh_store;

type Item = HashMap<String, AttributeValue>;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_750_000_000_123_456_789).unwrap()
}

fn job(queue: &str, priority: i32, labels: &[&str]) -> Job {
    Job::new(
        JobSpec {
            name: format!("p{priority}"),
            script: "make".into(),
            env: Default::default(),
            labels: labels.iter().map(|&l| l.to_owned()).collect(),
            queue: queue.into(),
            priority,
            timeout_seconds: 60,
            max_retries: 2,
        },
        UserId::new(),
        t0(),
    )
}

fn jobs_table(store: &DynamoStore) -> String {
    format!("{}jobs", store.table_prefix())
}

async fn raw_job(store: &DynamoStore, id: JobId) -> Item {
    store
        .client()
        .get_item()
        .table_name(jobs_table(store))
        .key("job_id", AttributeValue::S(id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .expect("the job item")
}

/// Every entry of one partition of a jobs index, in ascending sort-key order.
async fn index_entries(store: &DynamoStore, index: &str, partition: (&str, &str)) -> Vec<Item> {
    store
        .client()
        .query()
        .table_name(jobs_table(store))
        .index_name(index)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", partition.0)
        .expression_attribute_values(":pk", AttributeValue::S(partition.1.into()))
        .scan_index_forward(true)
        .send()
        .await
        .expect("query the index")
        .items
        .unwrap_or_default()
}

fn job_id_of(item: &Item) -> String {
    match item.get("job_id") {
        Some(AttributeValue::S(id)) => id.clone(),
        other => panic!("an index entry without a job id: {other:?}"),
    }
}

fn claimable_ids(entries: &[Item]) -> Vec<String> {
    entries.iter().map(job_id_of).collect()
}

fn string(s: &str) -> AttributeValue {
    AttributeValue::S(s.into())
}

#[tokio::test]
async fn a_queued_job_has_claim_keys_until_it_is_claimed_and_again_once_requeued() {
    let store = fresh_store().await;
    let job = job("gpu", 7, &["linux"]);
    store.create_job(&job).await.expect("create");

    let item = raw_job(&store, job.id).await;
    assert_eq!(item.get("claim_queue"), Some(&string("gpu")));
    let rank = item.get("claim_rank").cloned().expect("a claim rank");
    assert_eq!(
        rank,
        string(&format!("{}#{}", i64::from(i32::MAX) - 7, job.id))
    );

    store
        .transition_job(job.id, JobStatus::Claimed, t0())
        .await
        .expect("claim");
    let item = raw_job(&store, job.id).await;
    assert!(!item.contains_key("claim_queue"), "{item:?}");
    assert!(!item.contains_key("claim_rank"), "{item:?}");
    assert!(
        index_entries(&store, "claimable", ("claim_queue", "gpu"))
            .await
            .is_empty()
    );

    // A lost attempt with retries left goes back to the queue, in its old place.
    store
        .transition_job(job.id, JobStatus::Queued, t0())
        .await
        .expect("requeue");
    let item = raw_job(&store, job.id).await;
    assert_eq!(item.get("claim_queue"), Some(&string("gpu")));
    assert_eq!(item.get("claim_rank"), Some(&rank));
    assert_eq!(
        claimable_ids(&index_entries(&store, "claimable", ("claim_queue", "gpu")).await),
        [job.id.to_string()]
    );
}

#[tokio::test]
async fn a_canceled_job_leaves_the_claimable_index_with_its_claim_keys() {
    let store = fresh_store().await;
    let job = job("default", 0, &[]);
    store.create_job(&job).await.expect("create");
    assert_eq!(
        claimable_ids(&index_entries(&store, "claimable", ("claim_queue", "default")).await),
        [job.id.to_string()]
    );
    store
        .transition_job(job.id, JobStatus::Canceled, t0())
        .await
        .expect("cancel");
    let item = raw_job(&store, job.id).await;
    assert!(!item.contains_key("claim_queue"), "{item:?}");
    assert!(!item.contains_key("claim_rank"), "{item:?}");
    assert!(
        index_entries(&store, "claimable", ("claim_queue", "default"))
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
    for job in [
        &low_old,
        &high_old,
        &normal_old,
        &high_new,
        &normal_new,
        &elsewhere,
        &canceled,
    ] {
        store.create_job(job).await.expect("create");
    }
    store
        .transition_job(canceled.id, JobStatus::Canceled, t0())
        .await
        .expect("cancel");

    let entries = index_entries(&store, "claimable", ("claim_queue", "linux")).await;
    let expected = [&high_old, &high_new, &normal_old, &normal_new, &low_old];
    assert_eq!(
        claimable_ids(&entries),
        expected.map(|j| j.id.to_string()),
        "highest priority first, then oldest; other queues and canceled jobs absent"
    );
    for (entry, job) in entries.iter().zip(expected) {
        let labels = job.spec.labels.iter().map(|l| string(l)).collect();
        assert_eq!(
            entry.get("labels"),
            Some(&AttributeValue::L(labels)),
            "the labels are projected, so a claimer needs no item read to filter"
        );
        assert!(
            !entry.contains_key("script"),
            "only the keys and labels are copied"
        );
    }
}

#[tokio::test]
async fn a_job_no_agent_holds_any_more_has_no_lease_keys_and_leaves_by_lease() {
    let store = fresh_store().await;
    let job = job("default", 0, &[]);
    store.create_job(&job).await.expect("create");
    store
        .transition_job(job.id, JobStatus::Claimed, t0())
        .await
        .expect("claim");
    // No store call writes a lease yet: write the keys the agent protocol's claim
    // will write, in the documented format.
    let lease = format!("{:019}#{}", 1_750_000_300_000_000_000_i64, job.id);
    store
        .client()
        .update_item()
        .table_name(jobs_table(&store))
        .key("job_id", string(&job.id.to_string()))
        .update_expression("SET lease_pk = :pk, lease_expires = :expires")
        .expression_attribute_values(":pk", string("lease"))
        .expression_attribute_values(":expires", string(&lease))
        .send()
        .await
        .expect("raw lease");
    assert_eq!(
        claimable_ids(&index_entries(&store, "by_lease", ("lease_pk", "lease")).await),
        [job.id.to_string()]
    );

    // The agent still holds a running job: the lease stays.
    store
        .transition_job(job.id, JobStatus::Running, t0())
        .await
        .expect("start");
    assert_eq!(
        raw_job(&store, job.id).await.get("lease_expires"),
        Some(&string(&lease))
    );

    store
        .transition_job(job.id, JobStatus::Succeeded, t0())
        .await
        .expect("finish");
    let item = raw_job(&store, job.id).await;
    assert!(!item.contains_key("lease_pk"), "{item:?}");
    assert!(!item.contains_key("lease_expires"), "{item:?}");
    assert!(
        index_entries(&store, "by_lease", ("lease_pk", "lease"))
            .await
            .is_empty()
    );
}
