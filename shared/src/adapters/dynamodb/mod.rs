//! Production storage on DynamoDB: one table, events and per-device state under the
//! device's partition, a sparse `failing` index for the repeated-failures list.
//! The design, access pattern by access pattern, is in docs/dynamodb.md.

#[cfg(feature = "dynamodb-admin")]
mod admin;
mod credentials;
pub mod item;

pub use credentials::{DynamoCredentials, CREDENTIALS_KEY};

#[cfg(feature = "dynamodb-admin")]
pub use admin::CapacityMeter;

use self::item::{
    device_pk, event_sk, failing_partitions, failing_sk, EventItem, FailingItem, StateItem, EVENT_KEY_MAX,
    EVENT_PREFIX, FAILING_INDEX, STATE_SK,
};
use super::aws::describe_sdk_error;
use crate::config::{Config, ConfigError};
use crate::domain::event::{DeviceId, Outcome, StoredEvent};
use crate::domain::streak::{FailureState, Recount};
use crate::domain::time::EventTime;
use crate::ports::{
    DeviceStates, FailingDevice, FailingKey, FailingPage, HistoryPage, HistoryQuery, ListFailing, Order,
    ReadHistory, RecordEvents, Recorded, Saved, StoreError, Versioned,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConsumedCapacity, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
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

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention_days: None,
            #[cfg(feature = "dynamodb-admin")]
            meter: None,
        }
    }

    /// The store a Lambda function uses: `TABLE_NAME` and the retention setting.
    pub fn from_config(sdk: &aws_config::SdkConfig, config: &Config) -> Result<Self, ConfigError> {
        Ok(Self::new(Client::new(sdk), config.table()?).with_retention_days(config.retention_days))
    }

    pub fn with_retention_days(mut self, days: Option<u32>) -> Self {
        self.retention_days = days;
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

    /// One item of the device's partition, read strongly consistently.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        device: &DeviceId,
        sk: String,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(device_pk(device)))
            .key("sk", s(sk))
            .consistent_read(true)
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("GetItem"))?;
        self.metered(Units::Read, out.consumed_capacity());
        out.item.map(serde_dynamo::from_item).transpose().map_err(corrupt)
    }
}

#[async_trait]
impl DeviceStates for DynamoStore {
    async fn load(&self, device: &DeviceId) -> Result<Option<Versioned>, StoreError> {
        let item: Option<StateItem> = self.get(device, STATE_SK.to_owned()).await?;
        Ok(item.map(|item| Versioned {
            state: item.state,
            version: item.version,
        }))
    }

    /// A conditional put: `attribute_not_exists` for the first save, else `version = expected`.
    async fn save(&self, state: &FailureState, expected: u64, failing: bool) -> Result<Saved, StoreError> {
        let item: Item =
            serde_dynamo::to_item(StateItem::new(state.clone(), expected + 1, failing)).map_err(corrupt)?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
        };
        match put.return_consumed_capacity(self.capacity()).send().await {
            Ok(out) => {
                self.metered(Units::Write, out.consumed_capacity());
                Ok(Saved::Written)
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(Saved::Stale)
            }
            Err(e) => Err(unavailable("PutItem state")(e)),
        }
    }

    async fn recount(&self, device: &DeviceId, after: Option<EventTime>) -> Result<Recount, StoreError> {
        let mut recount = Recount::default();
        let mut start: Option<Item> = None;
        let lo = after.map_or(EVENT_PREFIX.to_owned(), |t| event_sk(t.plus_millis(1)));
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .projection_expression("#ts, total_errors")
                .expression_attribute_names("#ts", "timestamp")
                .expression_attribute_values(":pk", s(device_pk(device)))
                .expression_attribute_values(":lo", s(lo.clone()))
                .expression_attribute_values(":hi", s(EVENT_KEY_MAX))
                .scan_index_forward(false)
                .limit(100)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(self.capacity())
                .send()
                .await
                .map_err(unavailable("Query run"))?;
            self.metered(Units::Read, out.consumed_capacity());
            for item in out.items() {
                let ts = match item.get("timestamp") {
                    Some(AttributeValue::S(ts)) => EventTime::parse_rfc3339(ts),
                    _ => None,
                };
                let errors = match item.get("total_errors") {
                    Some(AttributeValue::N(n)) => n.parse::<u32>().ok(),
                    _ => None,
                };
                let (Some(ts), Some(errors)) = (ts, errors) else {
                    return Err(corrupt(format!(
                        "event of {device} without timestamp or total_errors"
                    )));
                };
                if !recount.push(ts, Outcome::of(errors), errors) {
                    return Ok(recount);
                }
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(recount),
            }
        }
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
                .get::<EventItem>(&event.device_id, event_sk(event.timestamp))
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

#[async_trait]
impl ListFailing for DynamoStore {
    async fn repeated_failures(
        &self,
        limit: usize,
        after: Option<&FailingKey>,
    ) -> Result<FailingPage, StoreError> {
        // One query per shard, each for a page and one more, then a merge by the
        // index's own order: the first `limit + 1` of the union are the page.
        let queries = failing_partitions().into_iter().map(|pk| {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(FAILING_INDEX)
                .expression_attribute_values(":pk", s(pk))
                .limit(limit as i32 + 1)
                .return_consumed_capacity(self.capacity());
            let query = match after {
                Some(key) => query
                    .key_condition_expression("failing_pk = :pk AND failing_sk > :after")
                    .expression_attribute_values(":after", s(failing_sk(key))),
                None => query.key_condition_expression("failing_pk = :pk"),
            };
            query.send()
        });
        let mut devices = Vec::new();
        for out in futures_util::future::join_all(queries).await {
            let out = out.map_err(unavailable("Query failing index"))?;
            self.metered(Units::Read, out.consumed_capacity());
            for item in out.items.unwrap_or_default() {
                let f: FailingItem = serde_dynamo::from_item(item).map_err(corrupt)?;
                devices.push(FailingDevice {
                    device_id: f.device_id,
                    consecutive_failures: f.consecutive_failures,
                    streak_started_at: f.streak_started_at,
                    last_failure_at: f.last_failure_at,
                    last_sync_at: f.last_sync_at,
                });
            }
        }
        devices.sort_by_key(|d| failing_sk(&d.key()));
        devices.truncate(limit + 1);
        Ok(FailingPage::from_overfetch(devices, limit))
    }
}
