//! The fleet's items on DynamoDB: the notice outbox, the per-day totals (sharded, so
//! concurrent stream batches never crowd one item) and the device counts by status.

use super::item::{day_partitions, day_pk, day_sk, COUNTS_SK, DAY_SHARDS, FLEET_PK, OUTBOX_PK};
use super::{built, corrupt, n, s, unavailable, DynamoStore, Units};
use crate::digest::short_sha256;
use crate::domain::fleet::{Day, DayAddition, DayTotals, FleetCounts};
use crate::ports::{Outbox, OutboxEntry, ReadFleet, RecordDays, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde::Deserialize;
use std::collections::BTreeMap;

/// DynamoDB remembers a transaction's token for 10 minutes across the whole account
/// and region, so the token names the table too: two stacks (or test tables) adding
/// the same events' days never mistake each other's additions for retries.
fn idempotency_token(table: &str, key: &str, chunk: usize) -> String {
    short_sha256(format!("{table}|{key}|{chunk}").as_bytes())
}

/// Most actions in one `TransactWriteItems`.
const MAX_TRANSACTION_ITEMS: usize = 100;

#[derive(Deserialize)]
struct OutboxItem {
    sk: String,
    notice: String,
}

#[derive(Deserialize, Default)]
struct CountsItem {
    #[serde(default)]
    total: i64,
    #[serde(default)]
    failing: i64,
    #[serde(default)]
    silent: i64,
}

#[derive(Deserialize)]
struct DayItem {
    sk: String,
    #[serde(default)]
    syncs: u64,
    #[serde(default)]
    failures: u64,
    #[serde(default)]
    files_synced: u64,
    #[serde(default)]
    speed_sum: f64,
}

#[async_trait]
impl Outbox for DynamoStore {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(OUTBOX_PK))
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("Query outbox"))?;
        self.metered(Units::Read, out.consumed_capacity());
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                let item: OutboxItem = serde_dynamo::from_item(item).map_err(corrupt)?;
                Ok(OutboxEntry {
                    notice: serde_json::from_str(&item.notice).map_err(corrupt)?,
                    key: item.sk,
                })
            })
            .collect()
    }

    async fn delivered(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(OUTBOX_PK))
            .key("sk", s(entry.key.clone()))
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("DeleteItem outbox"))?;
        self.metered(Units::Write, out.consumed_capacity());
        Ok(())
    }
}

/// A number as DynamoDB takes it: exponent notation keeps a sum of speeds within its
/// 38 significant digits.
fn decimal(v: f64) -> AttributeValue {
    AttributeValue::N(format!("{v:e}"))
}

#[async_trait]
impl RecordDays for DynamoStore {
    /// One transaction of `ADD`s with the addition's key as its idempotency token, so
    /// a retry (ours, or the SDK's after a timeout) within 10 minutes adds nothing more.
    async fn add_days(&self, addition: &DayAddition) -> Result<(), StoreError> {
        // Concurrent batches spread over the day's shards; a retry keeps its shard (an
        // idempotent retry must send the same request).
        let shard = u8::from_str_radix(addition.key.get(..2).unwrap_or("0"), 16).unwrap_or(0) % DAY_SHARDS;
        let days: Vec<_> = addition.days.iter().collect();
        for (chunk_number, chunk) in days.chunks(MAX_TRANSACTION_ITEMS).enumerate() {
            let mut updates = Vec::with_capacity(chunk.len());
            for (day, totals) in chunk {
                let update = Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(day_pk(shard)))
                    .key("sk", s(day_sk(**day)))
                    .update_expression(
                        "ADD syncs :syncs, failures :failures, files_synced :files, speed_sum :speed",
                    )
                    .expression_attribute_values(":syncs", n(totals.syncs))
                    .expression_attribute_values(":failures", n(totals.failures))
                    .expression_attribute_values(":files", n(totals.files_synced))
                    .expression_attribute_values(":speed", decimal(totals.speed_sum))
                    .build()
                    .map_err(built)?;
                updates.push(TransactWriteItem::builder().update(update).build());
            }
            let token = idempotency_token(&self.table, &addition.key, chunk_number);
            let out = self
                .client
                .transact_write_items()
                .set_transact_items(Some(updates))
                .client_request_token(token)
                .return_consumed_capacity(self.capacity())
                .send()
                .await
                .map_err(unavailable("TransactWriteItems days"))?;
            for consumed in out.consumed_capacity() {
                self.metered(Units::Write, Some(consumed));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ReadFleet for DynamoStore {
    async fn counts(&self) -> Result<FleetCounts, StoreError> {
        let item: Option<CountsItem> = self.get(FLEET_PK.to_owned(), COUNTS_SK.to_owned(), false).await?;
        let c = item.unwrap_or_default();
        Ok(FleetCounts::from_totals(c.total, c.failing, c.silent))
    }

    async fn days(&self, first: Day, last: Day) -> Result<BTreeMap<Day, DayTotals>, StoreError> {
        let queries = day_partitions().into_iter().map(|pk| {
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":first", s(day_sk(first)))
                .expression_attribute_values(":last", s(day_sk(last)))
                .return_consumed_capacity(self.capacity())
                .send()
        });
        let mut days: BTreeMap<Day, DayTotals> = BTreeMap::new();
        for out in futures_util::future::join_all(queries).await {
            let out = out.map_err(unavailable("Query days"))?;
            self.metered(Units::Read, out.consumed_capacity());
            for item in out.items.unwrap_or_default() {
                let item: DayItem = serde_dynamo::from_item(item).map_err(corrupt)?;
                let day = Day::parse(&item.sk).ok_or_else(|| corrupt(format!("day item {}", item.sk)))?;
                days.entry(day).or_default().add(&DayTotals {
                    syncs: item.syncs,
                    failures: item.failures,
                    files_synced: item.files_synced,
                    speed_sum: item.speed_sum,
                });
            }
        }
        Ok(days)
    }
}
