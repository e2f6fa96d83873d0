//! Fixtures shared by every crate's tests, benchmarks and measuring examples (the
//! `test-util` feature): one event builder, one recording alert publisher, and
//! DynamoDB Local tables.

use crate::domain::event::{DeviceId, Outcome, StoredEvent};
use crate::domain::notice::Notice;
use crate::domain::time::EventTime;
use crate::ports::{AlertPublisher, PublishError};
use async_trait::async_trait;
use std::sync::Mutex;

/// The device timestamp `minute` minutes after a fixed start (2025-05-07T06:40Z).
pub fn minute(minute: i64) -> EventTime {
    EventTime::from_millis(1_746_600_000_000 + minute * 60_000).expect("a time in range")
}

pub fn device(id: &str) -> DeviceId {
    DeviceId::parse(id).expect("a valid device id")
}

/// A stored event of `device` at `minute(m)` with `errors` errors (a failure when > 0).
pub fn stored_event(device_id: &str, m: i64, errors: u32) -> StoredEvent {
    StoredEvent {
        device_id: device(device_id),
        timestamp: minute(m),
        total_files_synced: 3,
        total_errors: errors,
        internet_speed: 1.5,
        outcome: Outcome::of(errors),
        received_at: minute(100_000),
    }
}

/// Captures published notices; can be told to fail.
#[derive(Default)]
pub struct RecordingAlerts {
    pub sent: Mutex<Vec<Notice>>,
    pub fail: Mutex<bool>,
}

impl RecordingAlerts {
    /// The `type` of every notice published so far, in order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.sent
            .lock()
            .expect("alerts lock")
            .iter()
            .map(|n| n.event_type())
            .collect()
    }

    pub fn set_failing(&self, fail: bool) {
        *self.fail.lock().expect("alerts lock") = fail;
    }
}

#[async_trait]
impl AlertPublisher for RecordingAlerts {
    async fn publish(&self, notice: &Notice) -> Result<(), PublishError> {
        if *self.fail.lock().expect("alerts lock") {
            return Err(PublishError::new("told to fail"));
        }
        self.sent.lock().expect("alerts lock").push(notice.clone());
        Ok(())
    }
}

/// The DynamoDB Local endpoint the test command started. Missing means the suite was
/// run without it: that is an error, never a skip.
pub fn dynamodb_endpoint() -> String {
    std::env::var("PISYNC_TEST_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("PISYNC_TEST_DYNAMODB_ENDPOINT is not set: run the suite with scripts/test.sh, which starts DynamoDB Local")
    })
}

/// A table name no other test (or earlier run) uses.
pub fn unique_table(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    )
}

/// A fresh table on the suite's DynamoDB Local, created as `template.yaml` declares it.
#[cfg(feature = "dynamodb-admin")]
pub async fn dynamodb_local_store(prefix: &str) -> crate::adapters::dynamodb::DynamoStore {
    let sdk = crate::adapters::aws::for_endpoint(&dynamodb_endpoint())
        .await
        .expect("AWS settings");
    let store = crate::adapters::dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        unique_table(prefix),
    );
    store
        .create_table_if_missing()
        .await
        .expect("table created on DynamoDB Local");
    store
}
