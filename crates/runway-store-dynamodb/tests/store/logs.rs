//! Logs on S3: what lands where, and the race between the PUT and the index.
//!
//! The conformance suite checks appends and reads by offset; these tests check
//! the layout only this backend has: one object per accepted chunk, named by its
//! offsets and the log's checksums before and after it, the size and CRC-32 (and no
//! bytes) in the job item, and that an object whose index update lost a race is
//! never read.

use aws_sdk_s3::primitives::ByteStream;
use runway_conformance::audit_event;
use runway_core::id::JobId;
use runway_core::log::{LogAppend, LogChunk, crc32_append};
use runway_core::store::{JobStore, LogStore, StoreError};
use runway_store_dynamodb::{DynamoConfig, DynamoStore, NoLogBucket};

use crate::support::{claim, config, endpoint, fresh_store, job, loader, raw_job, runner, t0};

fn chunk(offset: u64, data: &[u8]) -> LogChunk {
    LogChunk {
        seq: 0,
        offset,
        data: data.to_vec(),
    }
}

/// A claimed job's first attempt on `store`.
async fn attempt(store: &DynamoStore) -> JobId {
    let j = job("default", 0, &[]);
    store.create_job(&j, &audit_event()).await.expect("create");
    let agent = runner(store, "default", &[], 1).await;
    claim(store, &agent, t0()).await.expect("a claim");
    j.id
}

/// The keys under the attempt's prefix, without it.
async fn objects(store: &DynamoStore, job: JobId) -> Vec<String> {
    let (bucket, prefix) = store.log_location().expect("a bucket");
    let prefix = format!("{prefix}{job}/1/");
    let output = store
        .s3_client()
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .send()
        .await
        .expect("list");
    output
        .contents()
        .iter()
        .filter_map(|o| o.key()?.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

fn key(start: u64, end: u64, before: u32, after: u32) -> String {
    format!("{start:020}-{end:020}-{before:08x}-{after:08x}")
}

#[tokio::test]
async fn each_chunk_is_one_object_named_by_offsets_and_checksums_and_the_item_holds_only_the_index()
{
    let store = fresh_store().await;
    let job = attempt(&store).await;
    store
        .append_log(job, 1, &chunk(0, b"hello, "))
        .await
        .expect("append");
    // A resend overlapping the end: only its new tail becomes an object.
    store
        .append_log(job, 1, &chunk(4, b"o, world"))
        .await
        .expect("append");
    let c7 = crc32_append(0, b"hello, ");
    let c12 = crc32_append(c7, b"world");
    assert_eq!(
        objects(&store, job).await,
        [key(0, 7, 0, c7), key(7, 12, c7, c12)]
    );

    let item = raw_job(&store, job).await;
    let attempts = format!("{:?}", item.get("attempts"));
    assert!(
        attempts.contains("log_bytes") && attempts.contains("\"12\""),
        "{attempts}"
    );
    assert!(attempts.contains(&format!("\"{c12}\"")), "{attempts}");
    assert!(
        !format!("{item:?}").contains("world"),
        "no log bytes in DynamoDB"
    );
}

#[tokio::test]
async fn an_object_whose_index_update_lost_the_race_is_never_read() {
    let store = fresh_store().await;
    let job = attempt(&store).await;
    store
        .append_log(job, 1, &chunk(0, b"hello"))
        .await
        .expect("append");
    // What a racer leaves behind when its PUT lands and its conditional update of
    // the index loses: an object for the same range, other bytes, never counted.
    let c5 = crc32_append(0, b"hello");
    let (bucket, prefix) = store.log_location().expect("a bucket");
    store
        .s3_client()
        .put_object()
        .bucket(bucket)
        .key(format!(
            "{prefix}{job}/1/{}",
            key(5, 11, c5, crc32_append(c5, b"XXXXXX"))
        ))
        .body(ByteStream::from_static(b"XXXXXX"))
        .send()
        .await
        .expect("the loser's object");
    // The winner, same range.
    assert_eq!(
        store
            .append_log(job, 1, &chunk(5, b" world"))
            .await
            .expect("append"),
        LogAppend::Written { size: 11 }
    );
    assert_eq!(
        objects(&store, job).await.len(),
        3,
        "the loser's object is still there"
    );
    for offset in [0, 3, 5, 8] {
        let read = store.read_log(job, 1, offset, 64).await.expect("read");
        assert_eq!(
            read.data,
            &b"hello world"[offset as usize..],
            "from {offset}"
        );
    }
}

#[tokio::test]
async fn racing_appends_of_different_bytes_at_one_offset_leave_one_consistent_log() {
    let store = fresh_store().await;
    for round in 0..6 {
        let job = attempt(&store).await;
        let (a, b) = (format!("A{round}aaaa"), format!("B{round}bbbb"));
        let appends = [a.clone(), b.clone()].map(|data| {
            let store = store.clone();
            tokio::spawn(async move { store.append_log(job, 1, &chunk(0, data.as_bytes())).await })
        });
        let mut results = Vec::new();
        for append in appends {
            results.push(append.await.expect("task").expect("append"));
        }
        assert!(
            results.contains(&LogAppend::Written { size: 6 })
                && results.iter().all(|r| r.size() == 6),
            "one wins, the other finds its offset taken: {results:?}"
        );
        let read = store.read_log(job, 1, 0, 64).await.expect("read");
        assert!(
            read.data == a.as_bytes() || read.data == b.as_bytes(),
            "{read:?}"
        );
        let summary = store.log_summary(job, 1).await.expect("summary");
        assert_eq!(summary.crc32, crc32_append(0, &read.data), "round {round}");
    }
}

#[tokio::test]
async fn a_store_without_a_log_bucket_says_to_set_runway_log_bucket() {
    let store = fresh_store().await;
    let job = attempt(&store).await;
    let bare = DynamoStore::connect_with(
        &DynamoConfig {
            log_bucket: None,
            ..config(endpoint(), store.table_prefix().to_owned())
        },
        loader(),
    )
    .await
    .expect("connect");
    let err = bare
        .append_log(job, 1, &chunk(0, b"x"))
        .await
        .expect_err("no bucket");
    let StoreError::Internal(source) = &err else {
        panic!("a deployment mistake, not an outage: {err:?}");
    };
    assert!(source.downcast_ref::<NoLogBucket>().is_some(), "{source}");
    assert!(source.to_string().contains("RUNWAY_LOG_BUCKET"), "{source}");
    assert!(bare.read_log(job, 1, 0, 1).await.is_err());
    assert!(bare.log_summary(job, 1).await.is_err());
    assert!(bare.create_log_bucket().await.is_err());
    // The records themselves work without a bucket.
    assert!(bare.get_job(job).await.expect("get").is_some());
}
