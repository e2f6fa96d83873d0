//! The embedded store's change feed: stored events in commit order, as stream records.

use super::{backoff, detect, wait, BATCH};
use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamRecord};
use detect_failures::DetectFailures;
use pisync_shared::adapters::dynamodb::item::EventItem;
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::StoredEvent;
use std::time::Duration;
use tokio::sync::watch;

/// How long the feed lets commits gather after a partial batch, as the stream's
/// batching window does in AWS (5 s there; short here so a lone event is detected at
/// once and a busy runner wakes detection at most 50 times a second).
const GATHER_WINDOW: Duration = Duration::from_millis(20);

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

/// Feeds every event committed to `store` to `detector`, from where it stopped.
pub async fn run(store: SqliteStore, detector: DetectFailures, mut stop: watch::Receiver<bool>) {
    let changed = store.changed();
    let mut cursor = match store.feed_position().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "change feed could not start");
            return;
        }
    };
    let mut pause = Duration::ZERO;
    let mut partial = false;
    while !*stop.borrow() {
        // After a partial batch, let a window's commits gather: detection then runs
        // once per window instead of once per commit (a lone event still goes at once).
        if partial {
            wait(&mut stop, GATHER_WINDOW).await;
        }
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
        partial = !changes.is_empty() && changes.len() < BATCH;
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
        let response = detect(&detector, event).await;
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
