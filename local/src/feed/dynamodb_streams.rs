//! The table's DynamoDB stream, read through the DynamoDB Streams API as the Lambda
//! event source mapping reads it.

use super::{backoff, detect, wait, BATCH};
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use detect_failures::DetectFailures;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long the feed waits for more records after a partial read (the template's
/// window is 5 s; locally a short one keeps tests quick).
const BATCHING_WINDOW: Duration = Duration::from_millis(100);

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
pub async fn run(
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    checkpoints: Checkpoints,
    detector: DetectFailures,
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
                            detector.clone(),
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

async fn read_shard(
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    shard: String,
    checkpoints: Checkpoints,
    detector: DetectFailures,
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
        let response = detect(&detector, event.clone()).await;
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
