//! Production storage on DynamoDB: one table, events and per-device state under the
//! device's partition, a sparse `failing` index for the repeated-failures list.
//! The design, access pattern by access pattern, is in docs/dynamodb.md.

use super::item::{
    device_pk, event_sk, failing_sk, EventItem, FailingItem, StateItem, EVENT_KEY_MAX, EVENT_PREFIX,
    FAILING_INDEX, FAILING_PK, STATE_SK,
};
use crate::event::{DeviceId, Outcome, StoredEvent};
use crate::store::{
    Applied, EventLog, FailingDevice, FailingKey, FailingPage, FailureStates, HistoryPage, HistoryQuery,
    Order, Recorded, StoreError,
};
use crate::streak::{FailureState, Recount, Step, StreakRule};
use crate::time::EventTime;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConsumedCapacity, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, ReturnConsumedCapacity,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Attempts at an optimistic state update before giving up (the stream retries).
const MAX_STATE_ATTEMPTS: u32 = 10;

/// A short, jittered pause before retrying a state write that lost a race.
async fn contention_pause(attempt: u32) {
    let jitter = u64::from(chrono::Utc::now().timestamp_subsec_nanos() % 1000);
    let millis = (1u64 << attempt.min(6)) + jitter % (1 + (1u64 << attempt.min(6)));
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}

type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    rule: StreakRule,
    /// Events expire this long after their device timestamp; `None` keeps them forever.
    retention_days: Option<u32>,
    meter: Option<Arc<CapacityMeter>>,
}

/// Sums the capacity units DynamoDB reports consuming (for docs and benchmarks).
#[derive(Default, Debug)]
pub struct CapacityMeter {
    totals: Mutex<(f64, f64)>,
}

impl CapacityMeter {
    /// (read units, write units) since the last call, resetting the totals.
    pub fn take(&self) -> (f64, f64) {
        self.totals
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }

    fn add(&self, kind: Units, consumed: &[ConsumedCapacity]) {
        if let Ok(mut totals) = self.totals.lock() {
            let units: f64 = consumed.iter().filter_map(|c| c.capacity_units()).sum();
            match kind {
                Units::Read => totals.0 += units,
                Units::Write => totals.1 += units,
            }
        }
    }
}

/// Which column a measured operation's capacity counts in.
#[derive(Clone, Copy)]
enum Units {
    Read,
    Write,
}

fn unavailable<E: std::fmt::Debug>(e: E) -> StoreError {
    StoreError::Unavailable(format!("{e:?}"))
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, rule: StreakRule) -> Self {
        Self {
            client,
            table: table.into(),
            rule,
            retention_days: None,
            meter: None,
        }
    }

    /// The store a Lambda uses: `TABLE_NAME`, `FAILURE_THRESHOLD` and the optional
    /// `EVENT_RETENTION_DAYS` from the environment.
    pub fn from_env(client: Client) -> Result<Self, crate::config::ConfigError> {
        use crate::config;
        let retention = match std::env::var(config::EVENT_RETENTION_DAYS) {
            Ok(v) if !v.trim().is_empty() && v.trim() != "0" => {
                Some(config::parse_positive(&v).ok_or_else(|| {
                    config::ConfigError(format!(
                        "{} must be a whole number of days",
                        config::EVENT_RETENTION_DAYS
                    ))
                })?)
            }
            _ => None,
        };
        Ok(Self::new(
            client,
            config::required(config::TABLE_NAME)?,
            config::streak_rule()?,
        )
        .with_retention_days(retention))
    }

    pub fn with_retention_days(mut self, days: Option<u32>) -> Self {
        self.retention_days = days;
        self
    }

    pub fn with_capacity_meter(mut self, meter: Arc<CapacityMeter>) -> Self {
        self.meter = Some(meter);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn metered(&self, kind: Units, consumed: Option<&ConsumedCapacity>) {
        if let (Some(meter), Some(c)) = (&self.meter, consumed) {
            meter.add(kind, std::slice::from_ref(c));
        }
    }

    fn capacity(&self) -> ReturnConsumedCapacity {
        if self.meter.is_some() {
            ReturnConsumedCapacity::Total
        } else {
            ReturnConsumedCapacity::None
        }
    }

    /// Creates the table exactly as template.yaml declares it (streams on, sparse
    /// index, TTL), unless it exists. For local runs and tests.
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        let exists = self.client.describe_table().table_name(&self.table).send().await;
        if exists.is_ok() {
            return Ok(());
        }
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(unavailable)
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(unavailable)
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(FAILING_INDEX)
            .key_schema(key("failing_pk", KeyType::Hash)?)
            .key_schema(key("failing_sk", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .set_non_key_attributes(Some(
                        [
                            "device_id",
                            "consecutive_failures",
                            "streak_started_at",
                            "last_failure_at",
                            "last_sync_at",
                        ]
                        .map(String::from)
                        .to_vec(),
                    ))
                    .build(),
            )
            .build()
            .map_err(unavailable)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("failing_pk")?)
            .attribute_definitions(attr("failing_sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(index)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(unavailable)?,
            )
            .send()
            .await;
        if let Err(e) = created {
            // Another process may have created it meanwhile.
            if self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .is_err()
            {
                return Err(unavailable(e));
            }
        }
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name("expires_at")
            .build()
            .map_err(unavailable)?;
        // TTL is an optimisation for retention; a store without it still works.
        if let Err(e) = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
        {
            tracing::warn!(error = ?e, "could not enable TTL");
        }
        Ok(())
    }

    /// The table's stream ARN (for the local runner's stream reader).
    pub async fn stream_arn(&self) -> Result<Option<String>, StoreError> {
        let table = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(table
            .table()
            .and_then(|t| t.latest_stream_arn())
            .map(String::from))
    }

    fn expires_at(&self, event: &StoredEvent) -> Option<i64> {
        self.retention_days
            .map(|days| event.timestamp.millis() / 1000 + i64::from(days) * 86_400)
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
            .map_err(unavailable)?;
        self.metered(Units::Read, out.consumed_capacity());
        out.item.map(serde_dynamo::from_item).transpose().map_err(corrupt)
    }

    async fn get_state(&self, device: &DeviceId) -> Result<Option<StateItem>, StoreError> {
        self.get(device, STATE_SK.to_owned()).await
    }

    /// The device's current run, read newest first from the events after `after`,
    /// up to the first success.
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
                .map_err(unavailable)?;
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

    /// Writes a state item if its version is still `expected` (0: item absent).
    /// `Ok(false)` when another writer got there first.
    async fn put_state(&self, state: &FailureState, expected: u64) -> Result<bool, StoreError> {
        let item: Item =
            serde_dynamo::to_item(StateItem::new(state.clone(), expected + 1, self.rule.threshold))
                .map_err(corrupt)?;
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
                Ok(true)
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl EventLog for DynamoStore {
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
                other => return Err(unavailable(other)),
            },
            Err(e) => return Err(unavailable(e)),
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
            .map_err(unavailable)?;
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
            .map_err(unavailable)?;
        self.metered(Units::Read, out.consumed_capacity());
        Ok(out.count > 0)
    }
}

#[async_trait]
impl FailureStates for DynamoStore {
    fn rule(&self) -> StreakRule {
        self.rule
    }

    async fn apply(&self, event: &StoredEvent, now: EventTime) -> Result<Applied, StoreError> {
        let device = &event.device_id;
        for attempt in 0..MAX_STATE_ATTEMPTS {
            if attempt > 0 {
                contention_pause(attempt).await;
            }
            let (mut state, version) = match self.get_state(device).await? {
                Some(item) => (item.state, item.version),
                None => (FailureState::new(device.clone()), 0),
            };
            let before = state.clone();
            match state.step(event) {
                Step::NoChange => {}
                Step::InOrder => state.apply_in_order(event, self.rule, now),
                Step::Recount { after } => {
                    let recount = self.recount(device, after).await?;
                    state.apply_recount(recount, self.rule, now);
                }
            }
            if state == before {
                return Ok(Applied {
                    newly_applied: false,
                    state,
                });
            }
            // The version check makes a concurrent writer re-read instead of overwriting.
            if self.put_state(&state, version).await? {
                return Ok(Applied {
                    newly_applied: true,
                    state,
                });
            }
        }
        Err(StoreError::Unavailable(format!(
            "state of {device} kept changing"
        )))
    }

    async fn clear_notices(&self, device: &DeviceId, notice_ids: &[String]) -> Result<(), StoreError> {
        for attempt in 0..MAX_STATE_ATTEMPTS {
            if attempt > 0 {
                contention_pause(attempt).await;
            }
            let Some(item) = self.get_state(device).await? else {
                return Ok(());
            };
            let mut state = item.state;
            let before = state.pending_notices.len();
            state
                .pending_notices
                .retain(|n| !notice_ids.contains(&n.notice_id()));
            if state.pending_notices.len() == before {
                return Ok(());
            }
            if self.put_state(&state, item.version).await? {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "state of {device} kept changing"
        )))
    }

    async fn state(&self, device: &DeviceId) -> Result<Option<FailureState>, StoreError> {
        Ok(self.get_state(device).await?.map(|item| item.state))
    }

    async fn repeated_failures(
        &self,
        limit: usize,
        after: Option<&FailingKey>,
    ) -> Result<FailingPage, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(FAILING_INDEX)
            .expression_attribute_values(":pk", s(FAILING_PK))
            .limit(limit as i32 + 1)
            .return_consumed_capacity(self.capacity());
        let query = match after {
            Some(key) => query
                .key_condition_expression("failing_pk = :pk AND failing_sk > :after")
                .expression_attribute_values(":after", s(failing_sk(key))),
            None => query.key_condition_expression("failing_pk = :pk"),
        };
        let out = query.send().await.map_err(unavailable)?;
        self.metered(Units::Read, out.consumed_capacity());
        let devices = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item::<_, FailingItem>(item).map(|f| FailingDevice {
                    device_id: f.device_id,
                    consecutive_failures: f.consecutive_failures,
                    streak_started_at: f.streak_started_at,
                    last_failure_at: f.last_failure_at,
                    last_sync_at: f.last_sync_at,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        Ok(FailingPage::from_overfetch(devices, limit))
    }
}
