//! Production storage on DynamoDB: one table, events and per-device state under the
//! device's partition, sparse indexes for the device lists, and the fleet's notices,
//! silence checks, days and counts beside them. The design, access pattern by access
//! pattern, is in docs/dynamodb.md.
//!
//! - this module: the store, recording events, reading history;
//! - [`devices`]: device states (saved with what changes with them), lists;
//! - [`fleet`]: the outbox, per-day totals, device counts;
//! - [`watch`]: the silence check's agenda;
//! - [`digests`]: the daily digest's once-a-day mark.

#[cfg(feature = "dynamodb-admin")]
mod admin;
mod audit;
mod credentials;
mod devices;
mod digests;
mod export;
mod fleet;
pub mod item;
mod limits;
mod notices;
mod schools;
mod watch;

pub(crate) use schools::SchoolCache;

/// The slots stream batches' day totals are written in and rolled up by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rollup {
    pub slot: std::time::Duration,
    pub margin: std::time::Duration,
}

impl Default for Rollup {
    /// Five-minute slots, each rolled up a minute after it ended: a school's day costs
    /// at most one write in five minutes, however many batches touched it.
    fn default() -> Self {
        Self {
            slot: std::time::Duration::from_secs(300),
            margin: std::time::Duration::from_secs(60),
        }
    }
}

pub use credentials::{DynamoCredentials, CREDENTIALS_KEY};
pub use limits::SharedMinuteCounters;

#[cfg(feature = "dynamodb-admin")]
pub use admin::CapacityMeter;

use self::item::{device_pk, event_sk, EventItem, EVENT_KEY_MAX, EVENT_PREFIX};
use super::aws::describe_sdk_error;
use crate::domain::event::{DeviceId, StoredEvent};
use crate::ports::{HistoryPage, HistoryQuery, Order, ReadHistory, RecordEvents, Recorded, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConsumedCapacity, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// Conditional writes in flight for one backlog upload: 100 events take ~7 round trips,
/// well inside the function's timeout, without bursting a partition.
pub const BATCH_WRITE_CONCURRENCY: usize = 16;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Events expire this long after they were received; `None` keeps them forever.
    retention_days: Option<u32>,
    /// Events one run-count page reads at most (`None`: DynamoDB's 1 MB page).
    count_page_items: Option<i32>,
    /// Schools as detection last read them.
    schools: SchoolCache,
    /// How stream batches' day totals are rolled up into days.
    rollup: Rollup,
    #[cfg(feature = "dynamodb-admin")]
    meter: Option<std::sync::Arc<CapacityMeter>>,
}

/// Which column a measured operation's capacity counts in.
#[derive(Clone, Copy)]
enum Units {
    Read,
    Write,
}

/// An SDK error as a retryable store failure, rendered the one way
/// ([`describe_sdk_error`]) and kept as the source.
fn unavailable<E>(operation: &'static str) -> impl FnOnce(E) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| StoreError::unavailable(describe_sdk_error(operation, &e), e)
}

/// How a transaction ended.
enum Transacted {
    Written,
    /// Cancelled: each item's reason code in the items' order (`None` for an item
    /// that did not fail; `TransactionConflict` where another write held it).
    Cancelled(Vec<String>),
}

/// A request that failed to build: a bug in PiSync, never the service's doing.
fn built(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::unavailable("building a DynamoDB request", e)
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// How long a Lambda sandbox keeps a school's settings for detection and the
/// periodic check (a school's new threshold or hours reach its devices within it).
pub const SCHOOL_CACHE: std::time::Duration = std::time::Duration::from_secs(60);

/// Most keys in one `BatchGetItem`.
const BATCH_GET_KEYS: usize = 100;
/// Tries of a `BatchGetItem` whose keys DynamoDB left unprocessed, backing off.
const BATCH_GET_ATTEMPTS: u32 = 5;

impl DynamoStore {
    /// The items at `keys` (those that exist), eventually consistent: `BatchGetItem`
    /// in requests of 100 keys, each retried with backoff while DynamoDB leaves keys
    /// unprocessed; an error if some are still unread after the last try.
    async fn batch_get(&self, keys: Vec<Item>, operation: &'static str) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_KEYS) {
            let mut request = Some(
                aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .build()
                    .map_err(built)?,
            );
            for attempt in 0..BATCH_GET_ATTEMPTS {
                let Some(keys) = request.take() else { break };
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .return_consumed_capacity(self.capacity())
                    .send()
                    .await
                    .map_err(unavailable(operation))?;
                for consumed in out.consumed_capacity() {
                    self.metered(Units::Read, Some(consumed));
                }
                found.extend(
                    out.responses
                        .unwrap_or_default()
                        .remove(&self.table)
                        .unwrap_or_default(),
                );
                request = out
                    .unprocessed_keys
                    .and_then(|mut left| left.remove(&self.table))
                    .filter(|left| !left.keys().is_empty());
            }
            if request.is_some() {
                return Err(StoreError::unavailable_because(format!(
                    "{operation} left keys unread"
                )));
            }
        }
        Ok(found)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention_days: None,
            count_page_items: None,
            schools: SchoolCache::default(),
            rollup: Rollup::default(),
            #[cfg(feature = "dynamodb-admin")]
            meter: None,
        }
    }

    /// Keeps each school detection reads for `ttl` (0: read every time). A school's
    /// new threshold or hours reach its devices' detection within it.
    pub fn with_school_cache(mut self, ttl: std::time::Duration) -> Self {
        self.schools = SchoolCache::new(ttl);
        self
    }

    /// Rolls day totals up in slots of `slot`, each once it ended `margin` ago (longer
    /// than any write of a batch's totals takes: none lands in a slot already rolled).
    pub fn with_rollup(mut self, slot: std::time::Duration, margin: std::time::Duration) -> Self {
        self.rollup = Rollup { slot, margin };
        self
    }

    pub fn with_retention_days(mut self, days: Option<u32>) -> Self {
        self.retention_days = days;
        self
    }

    /// Smaller run-count pages (tests: a long count without a million events).
    pub fn with_count_page_items(mut self, items: i32) -> Self {
        self.count_page_items = Some(items);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    #[cfg_attr(not(feature = "dynamodb-admin"), allow(unused_variables))]
    fn metered(&self, kind: Units, consumed: Option<&ConsumedCapacity>) {
        #[cfg(feature = "dynamodb-admin")]
        if let (Some(meter), Some(c)) = (&self.meter, consumed) {
            meter.add(kind, c);
        }
    }

    fn capacity(&self) -> ReturnConsumedCapacity {
        #[cfg(feature = "dynamodb-admin")]
        if self.meter.is_some() {
            return ReturnConsumedCapacity::Total;
        }
        ReturnConsumedCapacity::None
    }

    /// When an event expires: `retention_days` after PiSync *received* it. Counting from
    /// the device's timestamp would delete a backlog uploaded late (a report 400 days
    /// old, acknowledged 201, gone within 48 hours), and a device clock decides nothing.
    fn expires_at(&self, event: &StoredEvent) -> Option<i64> {
        self.retention_days
            .map(|days| event.received_at.millis() / 1000 + i64::from(days) * 86_400)
    }

    /// One item, read strongly consistently (`consistent`) or eventually (half the price).
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: String,
        consistent: bool,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(consistent)
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("GetItem"))?;
        self.metered(Units::Read, out.consumed_capacity());
        out.item.map(serde_dynamo::from_item).transpose().map_err(corrupt)
    }

    /// One `TransactWriteItems` of `items`, metered; `what` names it in errors.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        what: &'static str,
    ) -> Result<Transacted, StoreError> {
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        match sent {
            Ok(out) => {
                for consumed in out.consumed_capacity() {
                    self.metered(Units::Write, Some(consumed));
                }
                Ok(Transacted::Written)
            }
            Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                let reasons = match e.err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => c
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None").to_owned())
                        .collect(),
                    _ => Vec::new(),
                };
                Ok(Transacted::Cancelled(reasons))
            }
            Err(e) => Err(unavailable(what)(e)),
        }
    }

    /// The `(sk, attribute)` pairs of up to `limit` items of partition `pk`, newest
    /// (highest sort key) first, below `before`: one Query of a time-ordered log (the
    /// audit trail, the notice history). Items without the attribute are skipped.
    async fn newest_first(
        &self,
        pk: String,
        attribute: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .return_consumed_capacity(self.capacity());
        let query = match before {
            Some(before) => query
                .key_condition_expression("pk = :pk AND sk < :before")
                .expression_attribute_values(":before", s(before)),
            None => query.key_condition_expression("pk = :pk"),
        };
        let out = query.send().await.map_err(unavailable("Query newest first"))?;
        self.metered(Units::Read, out.consumed_capacity());
        Ok(out
            .items()
            .iter()
            .filter_map(|item| {
                Some((
                    item.get("sk")?.as_s().ok()?.clone(),
                    item.get(attribute)?.as_s().ok()?.clone(),
                ))
            })
            .collect())
    }
}

#[async_trait]
impl RecordEvents for DynamoStore {
    /// Conditional `PutItem`s, at most [`BATCH_WRITE_CONCURRENCY`] in flight:
    /// `BatchWriteItem` cannot be conditional, and a transaction would be all or
    /// nothing at twice the write cost (docs/dynamodb.md). Throttled writes are
    /// retried by the SDK's standard retry policy; one that still fails is that
    /// event's 503 alone.
    async fn record_many(&self, events: Vec<StoredEvent>) -> Vec<Result<Recorded, StoreError>> {
        use futures_util::stream::{self, StreamExt};
        stream::iter(events)
            .map(|event| self.record(event))
            .buffered(BATCH_WRITE_CONCURRENCY)
            .collect()
            .await
    }

    async fn record(&self, event: StoredEvent) -> Result<Recorded, StoreError> {
        let item: Item = EventItem::new(&event, self.expires_at(&event))
            .to_item()
            .map_err(corrupt)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        let existing = match result {
            Ok(out) => {
                self.metered(Units::Write, out.consumed_capacity());
                return Ok(Recorded::Created(event));
            }
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                PutItemError::ConditionalCheckFailedException(failed) => failed.item,
                other => return Err(unavailable("PutItem event")(other)),
            },
            Err(e) => return Err(unavailable("PutItem event")(e)),
        };
        let stored = match existing {
            Some(item) => serde_dynamo::from_item::<_, EventItem>(item).map_err(corrupt)?,
            // Older DynamoDB versions do not return the item; read it.
            None => self
                .get::<EventItem>(device_pk(&event.device_id), event_sk(event.timestamp), true)
                .await?
                .ok_or_else(|| corrupt("conflicting event vanished"))?,
        }
        .into_event();
        Ok(if stored.same_report(&event) {
            Recorded::Replayed(stored)
        } else {
            Recorded::Conflict(stored)
        })
    }
}

#[async_trait]
impl ReadHistory for DynamoStore {
    async fn history(&self, device: &DeviceId, query: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        let mut lo = query.from.map_or(EVENT_PREFIX.to_owned(), event_sk);
        let mut hi = query.to.map_or(EVENT_KEY_MAX.to_owned(), event_sk);
        // Timestamps are whole milliseconds, so "strictly after t" is "from t ± 1 ms".
        match (query.after, query.order) {
            (Some(after), Order::Asc) => lo = lo.max(event_sk(after.plus_millis(1))),
            (Some(after), Order::Desc) => hi = hi.min(event_sk(after.plus_millis(-1))),
            (None, _) => {}
        }
        if lo > hi {
            return Ok(HistoryPage {
                events: Vec::new(),
                more: false,
            });
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(device_pk(device)))
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi))
            .scan_index_forward(query.order == Order::Asc)
            .limit(query.limit as i32 + 1)
            .consistent_read(true)
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("Query history"))?;
        self.metered(Units::Read, out.consumed_capacity());
        let events = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item::<_, EventItem>(item).map(EventItem::into_event))
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        Ok(HistoryPage::from_overfetch(events, query.limit))
    }

    async fn device_exists(&self, device: &DeviceId) -> Result<bool, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :event)")
            .expression_attribute_values(":pk", s(device_pk(device)))
            .expression_attribute_values(":event", s(EVENT_PREFIX))
            .projection_expression("pk")
            .limit(1)
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("Query device"))?;
        self.metered(Units::Read, out.consumed_capacity());
        Ok(out.count > 0)
    }
}
