//! The tables, described once.
//!
//! [`schema()`] is the single description of every table: its key, its GSIs (keys
//! and projection) and its TTL attribute. [`DynamoStore::create_tables`] creates the
//! tables from it (for tests, `runway dev` against moto, and first deployments
//! without Terraform), and a test elsewhere compares it with the Terraform files, so
//! the code, the emulator and production cannot drift apart. The types are plain
//! public structs with no SDK type in them, so that comparison needs no AWS crate.
//!
//! Every listing GSI is `KEYS_ONLY`: listings read the ids from the index and the
//! items themselves with a strongly consistent `BatchGetItem` (see `page.rs`). That
//! keeps index writes at one small entry per key change, whatever the item's size (a
//! job carries its script, up to 64 KiB), and means a heartbeat or a job write
//! that changes no index key writes no index at all.
//!
//! Two indexes of `jobs` copy one attribute each, for a reader that filters on it:
//!
//! * `claimable` copies `labels`: an agent polls it every few seconds and must drop
//!   the jobs whose labels it lacks, and without the labels in the index it would
//!   have to fetch whole job items (scripts included, up to 16 RCU each) only to
//!   throw most of them away. A job's labels never change, so the copy cannot go
//!   stale; the claim itself is a conditional write on the item, so an index entry
//!   that lags (a job claimed a moment ago) costs a failed condition, never a
//!   double claim.
//! * `by_lease` copies `lease_agent`, the agent holding the job: `held_by` of an
//!   agent that has been deleted (its `held` set went with its item) reads the
//!   `lease` partition and keeps the entries naming it, instead of every held job.
//!
//! ## The claim and reaper keys of `jobs`
//!
//! * `claimable` (`claim_queue`, `claim_rank`) is sparse: both attributes exist only
//!   while the job is `queued`. `create_job` writes them, and every lifecycle write
//!   removes them in the same `UpdateItem` that moves the job out of `queued` (and
//!   writes them again when a lost job goes back to `queued`). `claim_queue` is the
//!   job's queue; `claim_rank` is [`crate::items::claim_rank`], the priority
//!   inverted and zero-padded, then `#` and the job id, so one ascending `Query` of
//!   a queue yields the highest priority first and, within a priority, the oldest.
//! * `by_lease` (`lease_pk`, `lease_expires`) is sparse too, and is the reaper's.
//!   While an agent holds the job, `lease_pk` is `"lease"` and `lease_expires` is
//!   when the attempt is **due**, the earlier of its lease's end and its deadline
//!   (`Attempt::deadline`), as 19-digit zero-padded unix nanoseconds, then `#` and
//!   the job id, so "held attempts due at `now`" is one key condition
//!   (`lease_expires < :now`), soonest first. While the job is queued, `lease_pk`
//!   is `"queue"` and `lease_expires` is when it entered the queue, so "queued since
//!   before the queue TTL's cutoff" is one key condition too, judged by when the
//!   job was (re-)queued and not by its id. Every write that changes the status,
//!   the lease or the attempt rewrites or removes them in the same `UpdateItem`.
//!
//! Billing is on demand; provisioned capacity and auto scaling are Terraform's
//! business in production.

use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection as SdkProjection, ProjectionType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use runway_core::store::{StoreError, StoreResult};

use crate::DynamoStore;
use crate::error::sdk_error;

// Table name suffixes.
pub(crate) const USERS: &str = "users";
pub(crate) const LOOKUPS: &str = "lookups";
pub(crate) const SESSIONS: &str = "sessions";
pub(crate) const REGISTRATION_TOKENS: &str = "registration_tokens";
pub(crate) const AGENTS: &str = "agents";
pub(crate) const JOBS: &str = "jobs";
pub(crate) const AUDIT: &str = "audit";
pub(crate) const OIDC_LOGINS: &str = "oidc_logins";
pub(crate) const ABUSE_COUNTERS: &str = "abuse_counters";

// Key attributes.
pub(crate) const USER_ID: &str = "user_id";
pub(crate) const LOOKUP_KEY: &str = "lookup_key";
pub(crate) const SESSION_ID: &str = "session_id";
pub(crate) const TOKEN_ID: &str = "token_id";
pub(crate) const AGENT_ID: &str = "agent_id";
pub(crate) const JOB_ID: &str = "job_id";
pub(crate) const AUDIT_ID: &str = "audit_id";
pub(crate) const STATE_HASH: &str = "state_hash";
/// An abuse-limit counter's key: a scope and the SHA-256 of what it limits.
pub(crate) const LIMIT_KEY: &str = "limit_key";
pub(crate) const REGION: &str = "region";
pub(crate) const STATUS: &str = "status";
/// An audit event's subject (absent when it has none): the key of `by_subject`.
pub(crate) const SUBJECT: &str = "subject";
/// An audit event's actor id (absent for the system): the key of `by_actor`.
pub(crate) const ACTOR_ID: &str = "actor_id";
/// The constant partition of the "everything, newest first" indexes.
pub(crate) const LIST_PK: &str = "list_pk";
pub(crate) const TTL: &str = "ttl";
/// A queued job's queue, present only while it is queued (`claimable`).
pub(crate) const CLAIM_QUEUE: &str = "claim_queue";
/// A queued job's place in its queue, present only while it is queued.
pub(crate) const CLAIM_RANK: &str = "claim_rank";
/// The partition of `by_lease`: `lease` while an agent holds the job, `queue`
/// while it is queued, absent otherwise.
pub(crate) const LEASE_PK: &str = "lease_pk";
/// When the reaper should look at the job, then `#` and the job id: the attempt's
/// due time while held, the time it was queued while queued.
pub(crate) const LEASE_EXPIRES: &str = "lease_expires";
/// The agent holding the job, while one does: projected into `by_lease`.
pub(crate) const LEASE_AGENT: &str = "lease_agent";
/// A job's (or agent's) labels: copied into `claimable`.
pub(crate) const LABELS: &str = "labels";

// Index names.
pub(crate) const BY_REGION: &str = "by_region";
pub(crate) const BY_CREATED: &str = "by_created";
pub(crate) const BY_STATUS: &str = "by_status";
pub(crate) const CLAIMABLE: &str = "claimable";
pub(crate) const BY_LEASE: &str = "by_lease";
pub(crate) const BY_SUBJECT: &str = "by_subject";
pub(crate) const BY_ACTOR: &str = "by_actor";

/// How long [`DynamoStore::create_tables`] waits for a table to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// A key attribute's DynamoDB type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeKind {
    /// `S`
    String,
    /// `N`
    Number,
}

/// A key attribute: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttribute {
    /// The attribute name.
    pub name: &'static str,
    /// Its type.
    pub kind: AttributeKind,
}

/// What a GSI copies from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// Only the table's and the index's keys.
    KeysOnly,
    /// Every attribute.
    All,
    /// The keys plus these attributes.
    Include(Vec<&'static str>),
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index name (not prefixed: index names are per table).
    pub name: &'static str,
    /// Its partition key.
    pub partition_key: KeyAttribute,
    /// Its sort key, if any.
    pub sort_key: Option<KeyAttribute>,
    /// What it copies.
    pub projection: Projection,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The table's name after the configured prefix, e.g. `sessions`.
    pub suffix: &'static str,
    /// The partition key.
    pub partition_key: KeyAttribute,
    /// The sort key, if any.
    pub sort_key: Option<KeyAttribute>,
    /// Global secondary indexes.
    pub indexes: Vec<IndexSpec>,
    /// The attribute holding an expiry in epoch seconds, if TTL is enabled.
    pub ttl_attribute: Option<&'static str>,
}

const fn string(name: &'static str) -> KeyAttribute {
    KeyAttribute {
        name,
        kind: AttributeKind::String,
    }
}

fn keys_only(name: &'static str, partition: &'static str, sort: &'static str) -> IndexSpec {
    IndexSpec {
        name,
        partition_key: string(partition),
        sort_key: Some(string(sort)),
        projection: Projection::KeysOnly,
    }
}

/// Every table Runway uses, with its keys, indexes and TTL. Ids (the sort keys of
/// every index) are ULID strings, so an index sorted by them is sorted by creation.
#[must_use]
pub fn schema() -> Vec<TableSpec> {
    vec![
        TableSpec {
            suffix: USERS,
            partition_key: string(USER_ID),
            sort_key: None,
            indexes: vec![],
            ttl_attribute: None,
        },
        TableSpec {
            suffix: LOOKUPS,
            partition_key: string(LOOKUP_KEY),
            sort_key: None,
            indexes: vec![],
            ttl_attribute: None,
        },
        TableSpec {
            suffix: SESSIONS,
            partition_key: string(SESSION_ID),
            sort_key: None,
            // No GSI: a user's sessions are listed from the user item (`accounts.rs`).
            indexes: vec![],
            ttl_attribute: Some(TTL),
        },
        TableSpec {
            suffix: REGISTRATION_TOKENS,
            partition_key: string(TOKEN_ID),
            sort_key: None,
            indexes: vec![],
            ttl_attribute: None,
        },
        TableSpec {
            suffix: AGENTS,
            partition_key: string(AGENT_ID),
            sort_key: None,
            indexes: vec![
                keys_only(BY_REGION, REGION, AGENT_ID),
                keys_only(BY_CREATED, LIST_PK, AGENT_ID),
            ],
            ttl_attribute: None,
        },
        TableSpec {
            suffix: JOBS,
            partition_key: string(JOB_ID),
            sort_key: None,
            indexes: vec![
                keys_only(BY_CREATED, LIST_PK, JOB_ID),
                keys_only(BY_STATUS, STATUS, JOB_ID),
                IndexSpec {
                    name: CLAIMABLE,
                    partition_key: string(CLAIM_QUEUE),
                    sort_key: Some(string(CLAIM_RANK)),
                    projection: Projection::Include(vec![LABELS]),
                },
                IndexSpec {
                    name: BY_LEASE,
                    partition_key: string(LEASE_PK),
                    sort_key: Some(string(LEASE_EXPIRES)),
                    projection: Projection::Include(vec![LEASE_AGENT]),
                },
            ],
            ttl_attribute: None,
        },
        // Append-only: `append_audit` is a conditional PutItem and nothing updates
        // or deletes an event (the function's IAM policy cannot, either).
        TableSpec {
            suffix: AUDIT,
            partition_key: string(AUDIT_ID),
            sort_key: None,
            // `by_subject` and `by_actor` are sparse (an event without a subject, or
            // made by the system, is not in them): the audit log's two selective
            // filters, each a keyset seek newest first like `by_created`.
            indexes: vec![
                keys_only(BY_CREATED, LIST_PK, AUDIT_ID),
                keys_only(BY_SUBJECT, SUBJECT, AUDIT_ID),
                keys_only(BY_ACTOR, ACTOR_ID, AUDIT_ID),
            ],
            ttl_attribute: None,
        },
        // OpenID Connect logins between the redirect and the callback (ten
        // minutes), by the SHA-256 of their state; each is taken by one
        // conditional DeleteItem. TTL collects the ones never called back.
        TableSpec {
            suffix: OIDC_LOGINS,
            partition_key: string(STATE_HASH),
            sort_key: None,
            indexes: vec![],
            ttl_attribute: Some(TTL),
        },
        // Abuse-limit counters (`limits.rs`), one item per key, counted with an
        // atomic `UpdateItem … ADD`. TTL deletes a counter some time after its
        // window ends; expiry itself is decided in code.
        TableSpec {
            suffix: ABUSE_COUNTERS,
            partition_key: string(LIMIT_KEY),
            sort_key: None,
            indexes: vec![],
            ttl_attribute: Some(TTL),
        },
    ]
}

/// A table or index did not become ACTIVE in time.
#[derive(Debug, thiserror::Error)]
#[error("table `{0}` did not become ACTIVE within {ACTIVE_TIMEOUT:?}")]
pub struct NotActive(String);

fn scalar(kind: AttributeKind) -> ScalarAttributeType {
    match kind {
        AttributeKind::String => ScalarAttributeType::S,
        AttributeKind::Number => ScalarAttributeType::N,
    }
}

fn key_schema(
    partition: &KeyAttribute,
    sort: Option<&KeyAttribute>,
) -> StoreResult<Vec<KeySchemaElement>> {
    let mut keys = vec![
        KeySchemaElement::builder()
            .attribute_name(partition.name)
            .key_type(KeyType::Hash)
            .build()
            .map_err(StoreError::internal)?,
    ];
    if let Some(sort) = sort {
        keys.push(
            KeySchemaElement::builder()
                .attribute_name(sort.name)
                .key_type(KeyType::Range)
                .build()
                .map_err(StoreError::internal)?,
        );
    }
    Ok(keys)
}

fn projection(projection: &Projection) -> SdkProjection {
    match projection {
        Projection::KeysOnly => SdkProjection::builder()
            .projection_type(ProjectionType::KeysOnly)
            .build(),
        Projection::All => SdkProjection::builder()
            .projection_type(ProjectionType::All)
            .build(),
        Projection::Include(names) => SdkProjection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(names.iter().map(|&n| n.to_owned()).collect()))
            .build(),
    }
}

/// Every key attribute of the table and its indexes, once each.
fn attribute_definitions(spec: &TableSpec) -> StoreResult<Vec<AttributeDefinition>> {
    let mut keys: Vec<&KeyAttribute> = vec![&spec.partition_key];
    keys.extend(&spec.sort_key);
    for index in &spec.indexes {
        keys.push(&index.partition_key);
        keys.extend(&index.sort_key);
    }
    let mut seen = Vec::new();
    let mut definitions = Vec::new();
    for key in keys {
        if seen.contains(&key.name) {
            continue;
        }
        seen.push(key.name);
        definitions.push(
            AttributeDefinition::builder()
                .attribute_name(key.name)
                .attribute_type(scalar(key.kind))
                .build()
                .map_err(StoreError::internal)?,
        );
    }
    Ok(definitions)
}

impl DynamoStore {
    /// Creates every table of [`schema()`] that does not exist yet (on-demand
    /// billing), waits until each table and its indexes are ACTIVE, and enables TTL
    /// where the schema has it. Idempotent: existing tables are left as they are
    /// (their layout is not compared; Terraform owns production tables).
    ///
    /// # Errors
    /// `Unavailable` when DynamoDB throttles or is down, `Internal` with
    /// [`NotActive`] after two minutes of waiting, `Internal` otherwise.
    pub async fn create_tables(&self) -> StoreResult<()> {
        let specs = schema();
        for spec in &specs {
            self.create_table(spec).await?;
        }
        for spec in &specs {
            let name = self.table_name(spec);
            self.wait_until_active(&name).await?;
            if let Some(attribute) = spec.ttl_attribute {
                self.enable_ttl(&name, attribute).await?;
            }
        }
        Ok(())
    }

    pub(crate) fn table_name(&self, spec: &TableSpec) -> String {
        format!("{}{}", self.tables.prefix, spec.suffix)
    }

    async fn create_table(&self, spec: &TableSpec) -> StoreResult<()> {
        let mut request = self
            .client
            .create_table()
            .table_name(self.table_name(spec))
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(
                &spec.partition_key,
                spec.sort_key.as_ref(),
            )?))
            .set_attribute_definitions(Some(attribute_definitions(spec)?));
        for index in &spec.indexes {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(key_schema(
                        &index.partition_key,
                        index.sort_key.as_ref(),
                    )?))
                    .projection(projection(&index.projection))
                    .build()
                    .map_err(StoreError::internal)?,
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            // The table exists (or is being created by a concurrent caller).
            Err(err) if err.code() == Some("ResourceInUseException") => Ok(()),
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn wait_until_active(&self, name: &str) -> StoreResult<()> {
        let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
        loop {
            let described = self
                .client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(sdk_error)?;
            let active = described.table().is_some_and(|table| {
                table.table_status() == Some(&TableStatus::Active)
                    && table
                        .global_secondary_indexes()
                        .iter()
                        .all(|index| index.index_status() == Some(&IndexStatus::Active))
            });
            if active {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::internal(NotActive(name.to_owned())));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn enable_ttl(&self, name: &str, attribute: &str) -> StoreResult<()> {
        let current = self
            .client
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .map_err(sdk_error)?;
        let status = current
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status());
        if matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) {
            return Ok(());
        }
        self.client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()
                    .map_err(StoreError::internal)?,
            )
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_a_distinct_suffix_and_a_string_partition_key() {
        let specs = schema();
        let mut suffixes: Vec<_> = specs.iter().map(|s| s.suffix).collect();
        suffixes.sort_unstable();
        suffixes.dedup();
        assert_eq!(suffixes.len(), specs.len());
        assert!(
            specs
                .iter()
                .all(|s| s.partition_key.kind == AttributeKind::String)
        );
    }

    #[test]
    fn attribute_definitions_name_each_key_attribute_once() {
        let jobs = schema()
            .into_iter()
            .find(|s| s.suffix == JOBS)
            .expect("jobs");
        let names: Vec<String> = attribute_definitions(&jobs)
            .unwrap()
            .iter()
            .map(|d| d.attribute_name().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                JOB_ID,
                LIST_PK,
                STATUS,
                CLAIM_QUEUE,
                CLAIM_RANK,
                LEASE_PK,
                LEASE_EXPIRES
            ]
        );
    }

    #[test]
    fn the_claim_and_lease_indexes_of_jobs_are_string_keyed_and_copy_only_what_their_readers_filter_on()
     {
        let jobs = schema()
            .into_iter()
            .find(|s| s.suffix == JOBS)
            .expect("jobs");
        let index = |name: &str| {
            jobs.indexes
                .iter()
                .find(|i| i.name == name)
                .unwrap_or_else(|| panic!("jobs has no {name} index"))
        };
        let claimable = index(CLAIMABLE);
        assert_eq!(claimable.partition_key, string(CLAIM_QUEUE));
        assert_eq!(claimable.sort_key, Some(string(CLAIM_RANK)));
        assert_eq!(claimable.projection, Projection::Include(vec![LABELS]));
        let by_lease = index(BY_LEASE);
        assert_eq!(by_lease.partition_key, string(LEASE_PK));
        assert_eq!(by_lease.sort_key, Some(string(LEASE_EXPIRES)));
        assert_eq!(by_lease.projection, Projection::Include(vec![LEASE_AGENT]));
        let copying: Vec<_> = schema()
            .iter()
            .flat_map(|t| t.indexes.iter().map(move |i| (t.suffix, i)))
            .filter(|(_, i)| i.projection != Projection::KeysOnly)
            .map(|(t, i)| (t, i.name))
            .collect();
        assert_eq!(copying, [(JOBS, CLAIMABLE), (JOBS, BY_LEASE)]);
    }

    #[test]
    fn only_sessions_pending_oidc_logins_and_abuse_counters_expire_by_ttl() {
        let with_ttl: Vec<_> = schema()
            .into_iter()
            .filter_map(|s| s.ttl_attribute.map(|a| (s.suffix, a)))
            .collect();
        assert_eq!(
            with_ttl,
            [(SESSIONS, TTL), (OIDC_LOGINS, TTL), (ABUSE_COUNTERS, TTL)]
        );
    }
}
