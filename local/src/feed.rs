//! Change feeds: deliver every stored event to the real detect-failures handler as
//! DynamoDB stream records, as the Lambda event source mapping does in AWS.
//!
//! - Embedded store: reads events in commit order from SQLite and checkpoints its
//!   position after each batch; after a restart or crash it resumes there.
//! - DynamoDB: reads the table's stream through the DynamoDB Streams API and keeps
//!   each shard's checkpoint in the data directory, so a restart resumes there too.
//!
//! Either way a batch with a failed record is retried from that record after a pause,
//! and at most one batch is ever delivered twice — the redelivery detection is built
//! to recognise (docs/design.md).

use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamRecord};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use detect_failures::DetectFailures;
use pisync_shared::adapters::dynamodb::item::EventItem;
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::metrics::Registry;
use pisync_shared::StoredEvent;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::time::Duration;
use tokio::sync::watch;

const BATCH: usize = 100;
/// How long the DynamoDB Streams feed waits for more records after a partial read
/// (the template's window is 5 s; locally a short one keeps tests quick).
const BATCHING_WINDOW: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

fn backoff(current: Duration) -> Duration {
    (current * 2).clamp(Duration::from_millis(200), MAX_BACKOFF)
}

/// A stream record for an event, shaped as DynamoDB Streams delivers an INSERT.
pub fn insert_record(sequence: i64, event: &StoredEvent) -> Result<EventRecord, serde_dynamo::Error> {
    let image: serde_dynamo::Item = EventItem::new(event, None).to_item()?;
    let mut change = StreamRecord::default();
    change.keys = [("pk", image.get("pk")), ("sk", image.get("sk"))]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.clone())))
        .collect::<std::collections::HashMap<_, _>>()
        .into();
    change.new_image = image;
    change.sequence_number = Some(format!("{sequence:021}"));
    change.approximate_creation_date_time = chrono::Utc::now();
    let mut record = EventRecord::default();
    record.event_name = "INSERT".into();
    record.event_source = Some("aws:dynamodb".into());
    record.aws_region = "local".into();
    record.change = change;
    Ok(record)
}

/// The sequence number of the earliest record the handler reported as failed, read
/// from the record ids it reported (never from positions in a batch).
fn first_failed_seq(response: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Option<i64> {
    response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.as_deref()?.parse::<i64>().ok())
        .min()
}

/// Index of the first record the handler reported as failed (DynamoDB Streams: the
/// batch is exactly the records read, one for one).
fn first_failure(
    event: &Event,
    response: &aws_lambda_events::event::streams::DynamoDbEventResponse,
) -> Option<usize> {
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.as_deref())
        .collect();
    event.records.iter().position(|r| {
        r.change
            .sequence_number
            .as_deref()
            .is_some_and(|s| failed.contains(s))
    })
}

/// Stream records for `changes`, in order, up to the first event that cannot be
/// encoded (a bug, logged): that one and its successors are not delivered, and its
/// sequence number is returned so the feed retries from it instead of skipping it.
fn encode(changes: &[(i64, StoredEvent)]) -> (Vec<EventRecord>, Option<i64>) {
    let mut records = Vec::with_capacity(changes.len());
    for (seq, event) in changes {
        match insert_record(*seq, event) {
            Ok(record) => records.push(record),
            Err(err) => {
                tracing::error!(error = %err, seq, "event could not be encoded as a stream record");
                return (records, Some(*seq));
            }
        }
    }
    (records, None)
}

/// Where the feed resumes after a batch: after the last delivered record, or just
/// before the earliest record that failed or was not delivered.
fn checkpoint(delivered_up_to: i64, failed: Option<i64>, undelivered: Option<i64>) -> (i64, bool) {
    match failed.into_iter().chain(undelivered).min() {
        Some(seq) => (seq - 1, true),
        None => (delivered_up_to, false),
    }
}

/// Runs the detector on `event` and adds what it did to the runner's counters.
async fn detect(
    detector: &DetectFailures,
    metrics: &Registry,
    event: Event,
) -> aws_lambda_events::event::streams::DynamoDbEventResponse {
    let detected = detect_failures::detect(detector, event).await;
    metrics.add(&detected.figures);
    detected.response
}

pub async fn run_sqlite(
    store: SqliteStore,
    detector: DetectFailures,
    metrics: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    let changed = store.changed();
    let mut cursor = match store.feed_position().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "change feed could not start");
            return;
        }
    };
    let mut pause = Duration::ZERO;
    while !*stop.borrow() {
        let notified = changed.notified();
        let changes = match store.changes_after(cursor, BATCH).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "change feed read failed");
                pause = backoff(pause);
                wait(&mut stop, pause).await;
                continue;
            }
        };
        if changes.is_empty() {
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let (records, undelivered) = encode(&changes);
        let delivered_up_to = records
            .last()
            .and_then(|r| r.change.sequence_number.as_deref()?.parse().ok())
            .unwrap_or(cursor);
        let mut event = Event::default();
        event.records = records;
        let response = detect(&detector, &metrics, event).await;
        let (next, retry) = checkpoint(delivered_up_to, first_failed_seq(&response), undelivered);
        cursor = next;
        if retry {
            pause = backoff(pause);
            tracing::warn!(retry_in = ?pause, "detection failed; retrying from the failed record");
            wait(&mut stop, pause).await;
        } else {
            pause = Duration::ZERO;
            // Like an event source mapping's checkpoint: after a crash, delivery
            // resumes here and at most this batch is delivered twice.
            if let Err(e) = store.save_feed_position(cursor).await {
                tracing::warn!(error = %e, "could not save the feed position");
            }
        }
    }
}

async fn wait(stop: &mut watch::Receiver<bool>, pause: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = stop.changed() => {}
    }
}

/// Each shard's last processed sequence number, kept in the data directory
/// (`stream-<table>.json`), like an event source mapping's checkpoints.
#[derive(Clone)]
pub struct Checkpoints {
    path: PathBuf,
    positions: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Checkpoints {
    pub fn open(data_dir: &Path, table: &str) -> std::io::Result<Self> {
        let path = data_dir.join(format!("stream-{table}.json"));
        let positions = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            positions: Arc::new(Mutex::new(positions)),
        })
    }

    fn get(&self, shard: &str) -> Option<String> {
        self.positions.lock().ok()?.get(shard).cloned()
    }

    /// Records that `shard` was processed up to `sequence`: written to a temporary
    /// file, then renamed over the old one, so a crash leaves one or the other.
    fn save(&self, shard: &str, sequence: &str) -> std::io::Result<()> {
        let json = {
            let Ok(mut positions) = self.positions.lock() else {
                return Ok(());
            };
            positions.insert(shard.to_owned(), sequence.to_owned());
            serde_json::to_vec(&*positions).unwrap_or_default()
        };
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// Reads every shard of the table's stream — from its checkpoint, or from its oldest
/// record (TRIM_HORIZON, as the template's event source mapping starts) — and keeps
/// following new shards.
pub async fn run_dynamodb_streams(
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    checkpoints: Checkpoints,
    detector: DetectFailures,
    metrics: Arc<Registry>,
    stop: watch::Receiver<bool>,
) {
    let mut started: HashSet<String> = HashSet::new();
    let mut readers = tokio::task::JoinSet::new();
    while !*stop.borrow() {
        match list_shards(&client, &stream_arn).await {
            Ok(shards) => {
                for shard in shards {
                    if started.insert(shard.clone()) {
                        readers.spawn(read_shard(
                            client.clone(),
                            stream_arn.clone(),
                            shard,
                            checkpoints.clone(),
                            Feed {
                                detector: detector.clone(),
                                metrics: metrics.clone(),
                            },
                            stop.clone(),
                        ));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list stream shards"),
        }
        let mut stop = stop.clone();
        wait(&mut stop, Duration::from_secs(2)).await;
    }
    while readers.join_next().await.is_some() {}
}

async fn list_shards(client: &aws_sdk_dynamodbstreams::Client, arn: &str) -> Result<Vec<String>, String> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = client
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .map_err(|e| format!("{:?}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)))?;
        let Some(description) = out.stream_description else {
            return Ok(shards);
        };
        shards.extend(description.shards().iter().filter_map(|s| s.shard_id.clone()));
        match description.last_evaluated_shard_id {
            Some(last) => start = Some(last),
            None => return Ok(shards),
        }
    }
}

/// Where to (re)start reading a shard.
enum Position {
    Oldest,
    /// Retry a failed record.
    At(String),
    /// Continue after the last record handled.
    After(String),
}

async fn shard_iterator(
    client: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
    shard: &str,
    position: &Position,
) -> Result<Option<String>, String> {
    let request = client.get_shard_iterator().stream_arn(arn).shard_id(shard);
    let request = match position {
        Position::Oldest => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        Position::At(seq) => request
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(seq),
        Position::After(seq) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(seq),
    };
    request
        .send()
        .await
        .map(|out| out.shard_iterator)
        .map_err(|e| format!("{:?}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)))
}

/// A DynamoDB Streams API record as the Lambda event source mapping delivers it.
pub fn to_lambda_record(record: aws_sdk_dynamodbstreams::types::Record) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_name = record
        .event_name
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    out.event_id = record.event_id.unwrap_or_default();
    out.event_source = record.event_source;
    out.aws_region = record.aws_region.unwrap_or_default();
    if let Some(change) = record.dynamodb {
        out.change.keys = change.keys.unwrap_or_default().into();
        out.change.new_image = change.new_image.unwrap_or_default().into();
        out.change.sequence_number = change.sequence_number;
    }
    out
}

/// What a shard reader hands its records to.
struct Feed {
    detector: DetectFailures,
    metrics: Arc<Registry>,
}

async fn read_shard(
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    shard: String,
    checkpoints: Checkpoints,
    feed: Feed,
    mut stop: watch::Receiver<bool>,
) {
    let mut iterator = None;
    let mut position = match checkpoints.get(&shard) {
        Some(sequence) => Position::After(sequence),
        None => Position::Oldest,
    };
    let mut pause = Duration::ZERO;
    while !*stop.borrow() {
        if iterator.is_none() {
            match shard_iterator(&client, &arn, &shard, &position).await {
                Ok(Some(it)) => iterator = Some(it),
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, shard, "no shard iterator");
                    pause = backoff(pause);
                    wait(&mut stop, pause).await;
                    continue;
                }
            }
        }
        let out = match client
            .get_records()
            .set_shard_iterator(iterator.take())
            .limit(BATCH as i32)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                // DynamoDB Local answers a TRIM_HORIZON read of a shard with no records
                // yet this way: nothing to read, try again shortly.
                let trimmed = e
                    .as_service_error()
                    .is_some_and(|s| s.is_trimmed_data_access_exception());
                if trimmed {
                    tracing::debug!(shard, "shard has no records yet");
                    wait(&mut stop, Duration::from_millis(200)).await;
                } else {
                    tracing::warn!(error = ?aws_sdk_dynamodbstreams::error::DisplayErrorContext(e), shard, "get_records failed");
                    pause = backoff(pause);
                    wait(&mut stop, pause).await;
                }
                continue; // a fresh iterator from `position`
            }
        };
        let mut next = out.next_shard_iterator;
        let mut records: Vec<EventRecord> = out
            .records
            .unwrap_or_default()
            .into_iter()
            .map(to_lambda_record)
            .collect();
        if records.is_empty() {
            match next {
                None => return, // closed shard fully read
                Some(next) => {
                    iterator = Some(next);
                    wait(&mut stop, Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        // Like the event source mapping's batching window: records written together (a
        // backlog's events, stored concurrently) reach detection in one batch.
        if records.len() < BATCH {
            if let Some(it) = next.clone() {
                wait(&mut stop, BATCHING_WINDOW).await;
                let more = client
                    .get_records()
                    .shard_iterator(it)
                    .limit((BATCH - records.len()) as i32)
                    .send()
                    .await;
                if let Ok(more) = more {
                    records.extend(more.records.unwrap_or_default().into_iter().map(to_lambda_record));
                    next = more.next_shard_iterator;
                }
            }
        }
        let mut event = Event::default();
        event.records = records;
        let response = detect(&feed.detector, &feed.metrics, event.clone()).await;
        match first_failure(&event, &response) {
            None => {
                pause = Duration::ZERO;
                if let Some(seq) = event
                    .records
                    .last()
                    .and_then(|r| r.change.sequence_number.clone())
                {
                    if let Err(e) = checkpoints.save(&shard, &seq) {
                        tracing::warn!(error = %e, shard, "could not save the stream checkpoint");
                    }
                    position = Position::After(seq);
                }
                match next {
                    Some(next) => iterator = Some(next),
                    None => return,
                }
            }
            Some(i) => {
                if let Some(seq) = event.records[i].change.sequence_number.clone() {
                    position = Position::At(seq);
                }
                pause = backoff(pause);
                tracing::warn!(retry_in = ?pause, shard, "detection failed; retrying from the failed record");
                wait(&mut stop, pause).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
    use pisync_shared::test_util::stored_event;

    fn failed(ids: &[&str]) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        for id in ids {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some((*id).to_owned());
            response.batch_item_failures.push(failure);
        }
        response
    }

    #[test]
    fn records_carry_their_own_sequence_numbers() {
        let changes = [(7, stored_event("a", 1, 0)), (12, stored_event("b", 2, 1))];
        let (records, undelivered) = encode(&changes);
        let seqs: Vec<_> = records
            .iter()
            .map(|r| r.change.sequence_number.clone().unwrap())
            .collect();
        assert_eq!(seqs, ["000000000000000000007", "000000000000000000012"]);
        assert_eq!(undelivered, None);
    }

    #[test]
    fn the_feed_resumes_before_the_earliest_failed_sequence_number() {
        // Sequence numbers with gaps: a position in the batch is not a sequence number.
        let response = failed(&["000000000000000000040", "000000000000000000012"]);
        assert_eq!(first_failed_seq(&response), Some(12));
        assert_eq!(checkpoint(40, first_failed_seq(&response), None), (11, true));
        assert_eq!(checkpoint(40, None, None), (40, false));
    }

    #[test]
    fn an_undelivered_record_is_retried_not_skipped() {
        assert_eq!(checkpoint(9, None, Some(15)), (14, true));
        assert_eq!(checkpoint(9, Some(20), Some(15)), (14, true));
    }
}
