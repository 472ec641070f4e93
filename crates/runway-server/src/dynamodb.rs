//! `runway dynamodb create-tables`: Runway's schema on DynamoDB, for emulators,
//! first experiments and `RUNWAY_STORE=dynamodb runway serve`.
//!
//! The schema itself — names, keys, indexes, TTL — lives in the store crate
//! ([`runway_store_dynamodb::schema`]), which also creates it
//! ([`DynamoStore::create_tables`], idempotent). What this command adds is the
//! operator's view: before creating, it asks DynamoDB which of the tables exist, so
//! that it can say per table whether it was created or left as it was, with the
//! indexes and TTL attribute it has. With `RUNWAY_LOG_BUCKET` set it also creates
//! the S3 bucket of job logs (plain, for emulators: Terraform owns the real one,
//! with its encryption, public access block and lifecycle rule). In production
//! Terraform owns the tables; the Terraform test compares them with the same schema.

use anyhow::Context as _;
use runway_store_dynamodb::{DynamoStore, TableSpec};

use crate::config::Config;
use crate::output;
use crate::serve::{env_var, open_dynamodb};

/// `runway dynamodb create-tables`.
///
/// # Errors
/// No region, unreachable DynamoDB, missing permissions, or a table that never
/// became active.
pub async fn create_tables(config: &Config) -> anyhow::Result<()> {
    let settings = &config.dynamodb;
    let store = open_dynamodb(settings).await?;
    let region = store
        .client()
        .config()
        .region()
        .map_or_else(|| "?".to_owned(), ToString::to_string);
    let endpoint = settings.endpoint_for_display(env_var);
    output::lines(&[&format!(
        "Creating Runway's DynamoDB tables with prefix `{}` in {region} ({endpoint}):",
        settings.table_prefix
    )])?;

    let specs = runway_store_dynamodb::schema();
    let mut existed = Vec::with_capacity(specs.len());
    for spec in &specs {
        existed.push(table_exists(&store, &table_name(&store, spec)).await?);
    }
    store.create_tables().await.with_context(|| {
        format!(
            "cannot create the DynamoDB tables with prefix `{}`",
            settings.table_prefix
        )
    })?;

    let width = specs
        .iter()
        .map(|spec| table_name(&store, spec).len())
        .max()
        .unwrap_or(0);
    let mut created = 0;
    for (spec, existed) in specs.iter().zip(existed) {
        let verb = if existed {
            "exists "
        } else {
            created += 1;
            "created"
        };
        output::lines(&[&format!(
            "  {verb}  {:<width$}  {}",
            table_name(&store, spec),
            describe(spec)
        )])?;
    }
    let total = specs.len();
    output::lines(&[&format!(
        "{created} created, {} already existed; all {total} are active.",
        total - created
    )])?;
    if let Some(bucket) = &settings.log_bucket {
        store.create_log_bucket().await.with_context(|| {
            format!("cannot create the log bucket `{bucket}` (RUNWAY_LOG_BUCKET)")
        })?;
        output::lines(&[&format!("Log bucket `{bucket}` is ready.")])?;
    }
    Ok(())
}

fn table_name(store: &DynamoStore, spec: &TableSpec) -> String {
    format!("{}{}", store.table_prefix(), spec.suffix)
}

/// The key, indexes and TTL of a table, in one line.
fn describe(spec: &TableSpec) -> String {
    let mut key = spec.partition_key.name.to_owned();
    if let Some(sort) = &spec.sort_key {
        key = format!("{key}, {}", sort.name);
    }
    let mut text = format!("key ({key})");
    if !spec.indexes.is_empty() {
        let names: Vec<&str> = spec.indexes.iter().map(|index| index.name).collect();
        text.push_str(&format!(", indexes {}", names.join(", ")));
    }
    if let Some(ttl) = spec.ttl_attribute {
        text.push_str(&format!(", TTL on `{ttl}`"));
    }
    text
}

/// Whether the table exists (in any state), by `DescribeTable`.
async fn table_exists(store: &DynamoStore, name: &str) -> anyhow::Result<bool> {
    match store.client().describe_table().table_name(name).send().await {
        Ok(_) => Ok(true),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(err) => Err(anyhow::Error::new(err)).with_context(|| {
            format!("cannot ask DynamoDB about the table {name}: check the endpoint, credentials and region")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_described_by_its_key_indexes_and_ttl() {
        let specs = runway_store_dynamodb::schema();
        let sessions = specs
            .iter()
            .find(|spec| spec.suffix == "sessions")
            .expect("a sessions table");
        let text = describe(sessions);
        assert!(text.starts_with("key (session_id)"), "{text}");
        assert!(text.contains("TTL on `"), "{text}");
        for index in &sessions.indexes {
            assert!(text.contains(index.name), "{text}");
        }
    }
}
