//! The data team's export stream: detect-failures sends each batch's applied events
//! to Kinesis Data Firehose, which splits them again (record de-aggregation),
//! partitions them by the UTC date received and writes them to S3 as Parquet
//! (template.yaml, docs/analytics.md). Firehose bills each record in 5 KB steps, so
//! events travel as concatenated JSON objects packed into records of up to 5,000
//! bytes: about 25 events a record instead of one.

use crate::ports::{ExportedEvent, SendExport, StoreError};
use async_trait::async_trait;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use serde::Serialize;

/// A packed record's size at most (Firehose's billing step is 5 KB).
pub const RECORD_BYTES: usize = 5_000;
/// Records one `PutRecordBatch` takes at most.
const RECORDS_PER_CALL: usize = 500;
/// Sends of the records Firehose refused, before giving up on them.
const ATTEMPTS: u32 = 3;

pub struct FirehoseExport {
    client: aws_sdk_firehose::Client,
    stream: String,
}

impl FirehoseExport {
    pub fn new(client: aws_sdk_firehose::Client, stream: impl Into<String>) -> Self {
        Self {
            client,
            stream: stream.into(),
        }
    }
}

/// One event as the Glue table's JSON deserializer reads it: times as Hive timestamps
/// in UTC (`2025-05-07 10:30:00.000`, its default format), and the UTC date received,
/// which only the partitioning reads (the Parquet files have no such column).
#[derive(Serialize)]
struct Line<'a> {
    device_id: &'a str,
    school_id: Option<&'a str>,
    timestamp: String,
    received_at: String,
    received_date: &'a str,
    outcome: &'static str,
    total_files_synced: u32,
    total_errors: u32,
    internet_speed: f64,
}

/// `2025-05-07T10:30:00.000Z` as `2025-05-07 10:30:00.000`.
fn hive_timestamp(text: &str) -> String {
    text.trim_end_matches('Z').replacen('T', " ", 1)
}

fn line(e: &ExportedEvent) -> Vec<u8> {
    let received = e.event.received_at.to_string();
    let line = Line {
        device_id: e.event.device_id.as_str(),
        school_id: e.school_id.as_ref().map(|s| s.as_str()),
        timestamp: hive_timestamp(&e.event.timestamp.to_string()),
        received_at: hive_timestamp(&received),
        received_date: &received[..10],
        outcome: e.event.outcome.as_str(),
        total_files_synced: e.event.total_files_synced,
        total_errors: e.event.total_errors,
        internet_speed: e.event.internet_speed,
    };
    // A struct of strings and numbers always serializes.
    serde_json::to_vec(&line).unwrap_or_default()
}

/// The events as Firehose records: whole JSON objects one after another, each record
/// at most [`RECORD_BYTES`] (a single larger object travels alone).
pub fn pack(events: &[ExportedEvent]) -> Vec<Vec<u8>> {
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for e in events {
        let mut object = line(e);
        object.push(b'\n');
        if !current.is_empty() && current.len() + object.len() > RECORD_BYTES {
            records.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(&object);
    }
    if !current.is_empty() {
        records.push(current);
    }
    records
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::unavailable("Firehose PutRecordBatch", e)
}

#[async_trait]
impl SendExport for FirehoseExport {
    async fn send(&self, events: &[ExportedEvent]) -> Result<(), StoreError> {
        for chunk in pack(events).chunks(RECORDS_PER_CALL) {
            let mut waiting: Vec<Vec<u8>> = chunk.to_vec();
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                }
                let records = waiting
                    .iter()
                    .map(|data| Record::builder().data(Blob::new(data.clone())).build())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(unavailable)?;
                let out = self
                    .client
                    .put_record_batch()
                    .delivery_stream_name(&self.stream)
                    .set_records(Some(records))
                    .send()
                    .await
                    .map_err(unavailable)?;
                if out.failed_put_count() == 0 {
                    waiting.clear();
                    break;
                }
                // Each answer is in the order sent; an error code marks a refused one.
                waiting = waiting
                    .into_iter()
                    .zip(out.request_responses())
                    .filter(|(_, answer)| answer.error_code().is_some())
                    .map(|(data, _)| data)
                    .collect();
            }
            if !waiting.is_empty() {
                return Err(StoreError::unavailable_because(format!(
                    "Firehose refused {} export records {ATTEMPTS} times",
                    waiting.len()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::reported_event;

    #[test]
    fn events_are_packed_whole_into_records_of_at_most_5000_bytes() {
        let events: Vec<ExportedEvent> = (0..200)
            .map(|m| ExportedEvent {
                event: reported_event(&format!("pibook-{m:04}"), m, (m % 3) as u32),
                school_id: crate::domain::school::SchoolId::parse("north"),
            })
            .collect();
        let records = pack(&events);
        assert!(
            records.len() > 1 && records.len() < 20,
            "{} records",
            records.len()
        );
        assert!(records.iter().all(|r| r.len() <= RECORD_BYTES));
        let objects: Vec<serde_json::Value> = records
            .iter()
            .flat_map(|r| serde_json::Deserializer::from_slice(r).into_iter::<serde_json::Value>())
            .map(Result::unwrap)
            .collect();
        assert_eq!(objects.len(), 200, "every event once, none split");
        let first = &objects[0];
        assert_eq!(first["device_id"], "pibook-0000");
        assert_eq!(first["school_id"], "north");
        let (sent, received) = (events[0].event.timestamp, events[0].event.received_at);
        assert_eq!(first["timestamp"], hive_timestamp(&sent.to_string()));
        assert_eq!(first["received_at"], hive_timestamp(&received.to_string()));
        assert_eq!(first["received_date"], received.to_string()[..10]);
        assert!(first["timestamp"].as_str().unwrap().contains(' '));
        assert_eq!(first["outcome"], "success");
        assert_eq!(objects[1]["outcome"], "failure");
        assert!(pack(&[]).is_empty());
    }
}
