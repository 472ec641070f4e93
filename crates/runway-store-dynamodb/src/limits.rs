//! Abuse-limit counters (`LimitStore`), one item per key in `abuse_counters`.
//!
//! * **Counting never reads first.** An attempt is one `UpdateItem` with
//!   `ADD attempts :one`, conditional on the counter being live
//!   (`expires_at > :now`), returning the new item (`ALL_NEW`). DynamoDB applies
//!   updates of one item one at a time, so `n` racing attempts add exactly `n`.
//!   If the condition fails (no counter, or an expired one) a second `UpdateItem`
//!   starts it at 1, conditional on it still being absent or expired; if another
//!   attempt started it in between, that condition fails and the first update is
//!   tried again, which now holds. Each round trip either counts or observes that
//!   another writer changed the item, so the loop ends in a few rounds.
//! * **Reporting a lockout once** is an `UpdateItem` of `refused_count`,
//!   conditional on the count and on the lockout not being reported yet.
//! * **Expiry** is decided in code from `now`; the `ttl` attribute (epoch seconds
//!   of `expires_at`, rounded up) only lets DynamoDB delete old counters by
//!   itself, so there is nothing to purge.
//!
//! An SDK retry of an `ADD` whose response was lost counts the attempt twice: a
//! limit that errs, rarely, on the strict side.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use runway_core::limit::{Attempts, LimitKey};
use runway_core::store::{LimitStore, StoreError, StoreResult};
use time::OffsetDateTime;

use crate::DynamoStore;
use crate::error::{is_condition_failure, sdk_error};
use crate::items::{CounterItem, Item, from_item, nanos, number, string, ttl_seconds};
use crate::schema::{LIMIT_KEY, TTL};

/// Rounds of "add, else start" before giving up; each lost round means another
/// writer changed the counter, so this is never reached in practice.
const MAX_ROUNDS: usize = 8;

/// The counter kept changing under every round of [`MAX_ROUNDS`].
#[derive(Debug, thiserror::Error)]
#[error("the abuse-limit counter changed under {MAX_ROUNDS} rounds of updates")]
struct Contended;

fn decode(item: Option<Item>) -> StoreResult<Attempts> {
    let item = item.ok_or_else(|| {
        StoreError::internal(std::io::Error::other(
            "an UpdateItem with ReturnValues=ALL_NEW returned no item",
        ))
    })?;
    Ok(from_item::<CounterItem>("abuse_counters", item)?.into())
}

#[async_trait]
impl LimitStore for DynamoStore {
    async fn attempts(&self, key: &LimitKey, now: OffsetDateTime) -> StoreResult<Option<Attempts>> {
        let Some(item) = self
            .get_item(
                &self.tables.abuse_counters,
                LIMIT_KEY,
                key.as_str().to_owned(),
            )
            .await?
        else {
            return Ok(None);
        };
        let attempts = Attempts::from(from_item::<CounterItem>("abuse_counters", item)?);
        Ok(Some(attempts).filter(|a| a.is_live(now)))
    }

    async fn record_attempt(
        &self,
        key: &LimitKey,
        now: OffsetDateTime,
        window: std::time::Duration,
    ) -> StoreResult<Attempts> {
        let window = time::Duration::try_from(window).map_err(StoreError::internal)?;
        let expires_at = now + window;
        let (now_ns, expires_ns) = (number(nanos(now)?), number(nanos(expires_at)?));
        let ttl = number(ttl_seconds(expires_at));
        for _ in 0..MAX_ROUNDS {
            let added = self
                .client
                .update_item()
                .table_name(&self.tables.abuse_counters)
                .key(LIMIT_KEY, string(key.as_str()))
                .update_expression(
                    "SET last_at = :now, expires_at = :expires, #ttl = :ttl ADD attempts :one",
                )
                .condition_expression("expires_at > :now")
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":now", now_ns.clone())
                .expression_attribute_values(":expires", expires_ns.clone())
                .expression_attribute_values(":ttl", ttl.clone())
                .expression_attribute_values(":one", number(1))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match added {
                Ok(output) => return decode(output.attributes),
                Err(err) if is_condition_failure(&err) => {}
                Err(err) => return Err(sdk_error(err)),
            }
            let started = self
                .client
                .update_item()
                .table_name(&self.tables.abuse_counters)
                .key(LIMIT_KEY, string(key.as_str()))
                .update_expression(
                    "SET attempts = :one, last_at = :now, expires_at = :expires, #ttl = :ttl \
                     REMOVE refused_count",
                )
                .condition_expression("attribute_not_exists(#key) OR expires_at <= :now")
                .expression_attribute_names("#key", LIMIT_KEY)
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":now", now_ns.clone())
                .expression_attribute_values(":expires", expires_ns.clone())
                .expression_attribute_values(":ttl", ttl.clone())
                .expression_attribute_values(":one", number(1))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match started {
                Ok(output) => return decode(output.attributes),
                // Another attempt started the counter meanwhile: add to it.
                Err(err) if is_condition_failure(&err) => {}
                Err(err) => return Err(sdk_error(err)),
            }
        }
        Err(StoreError::unavailable(Contended, None))
    }

    async fn clear_attempts(&self, key: &LimitKey) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.tables.abuse_counters)
            .key(LIMIT_KEY, string(key.as_str()))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn note_refusal(
        &self,
        key: &LimitKey,
        count: u32,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.abuse_counters)
            .key(LIMIT_KEY, string(key.as_str()))
            .update_expression("SET refused_count = :count")
            .condition_expression(
                "attempts = :count AND expires_at > :now \
                 AND (attribute_not_exists(refused_count) OR refused_count < :count)",
            )
            .expression_attribute_values(":count", number(count))
            .expression_attribute_values(":now", number(nanos(now)?))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(sdk_error(err)),
        }
    }

    /// Nothing to do: the table's TTL deletes expired counters, and every read
    /// decides expiry from `now` anyway.
    async fn purge_expired_attempts(&self, _now: OffsetDateTime, _limit: u32) -> StoreResult<u64> {
        Ok(0)
    }
}
