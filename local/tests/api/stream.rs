//! detect-failures on a real DynamoDB stream: events written through the DynamoDB
//! adapter on DynamoDB Local, records read back through the DynamoDB Streams API,
//! batches redelivered and reordered as Lambda may.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use detect_failures::DetectFailures;
use pisync_shared::adapters::dynamodb::DynamoStore;
use pisync_shared::domain::streak::{FailureState, StreakRule};
use pisync_shared::ports::{DeviceStates, RecordEvents};
use pisync_shared::test_util::{dynamodb_local_store, stored_event as event, RecordingAlerts};
use pisync_shared::DeviceId;
use std::sync::Arc;

/// The device's failure state, which every caller expects detection to have written.
async fn stored_state(s: &Setup, device: &DeviceId) -> FailureState {
    s.store
        .load(device)
        .await
        .unwrap()
        .expect("the device has a state")
        .state
}

struct Setup {
    store: DynamoStore,
    streams: aws_sdk_dynamodbstreams::Client,
    alerts: Arc<RecordingAlerts>,
    detect: DetectFailures,
}

async fn setup() -> Setup {
    let store = dynamodb_local_store("stream").await;
    let alerts = Arc::new(RecordingAlerts::default());
    let sdk = pisync_shared::adapters::aws::for_endpoint(&pisync_shared::test_util::dynamodb_endpoint())
        .await
        .expect("AWS settings");
    Setup {
        detect: DetectFailures {
            states: Arc::new(store.clone()),
            alerts: alerts.clone(),
            rule: StreakRule::default(),
        },
        streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
        store,
        alerts,
    }
}

/// Every INSERT record on the table's stream so far, oldest first.
async fn inserts(s: &Setup, expected: usize) -> Vec<EventRecord> {
    let arn = s.store.stream_arn().await.unwrap().expect("stream enabled");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut records = Vec::new();
        let description = s.streams.describe_stream().stream_arn(&arn).send().await.unwrap();
        for shard in description.stream_description.unwrap().shards() {
            let mut iterator = s
                .streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(shard.shard_id().unwrap())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .unwrap()
                .shard_iterator;
            while let Some(it) = iterator.take() {
                let Ok(out) = s.streams.get_records().shard_iterator(it).send().await else {
                    break;
                };
                let batch = out.records.unwrap_or_default();
                if batch.is_empty() {
                    break;
                }
                records.extend(batch.into_iter().map(pisync_local::feed::to_lambda_record));
                iterator = out.next_shard_iterator;
            }
        }
        records.retain(|r| r.event_name == "INSERT");
        if records.len() >= expected {
            return records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stream has {} of {expected} records",
            records.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn batch(records: Vec<EventRecord>) -> Event {
    let mut e = Event::default();
    e.records = records;
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_and_reordered_batches_change_nothing() {
    let s = setup().await;
    for (m, errors) in [(0, 0), (3, 1), (1, 2), (2, 1), (4, 5)] {
        s.store.record(event("dev-stream", m, errors)).await.unwrap();
    }
    // An identical replay writes nothing, so it adds no stream record.
    s.store.record(event("dev-stream", 3, 1)).await.unwrap();
    let records = inserts(&s, 5).await;
    assert_eq!(
        records.len(),
        5,
        "one INSERT per stored event, none for the replay"
    );

    let response = detect_failures::handle(&s.detect, batch(records.clone())).await;
    assert!(response.batch_item_failures.is_empty());
    let device = DeviceId::parse("dev-stream").unwrap();
    let state = stored_state(&s, &device).await;
    assert_eq!(state.consecutive_failures(), 4);
    assert!(state.pending_notices.is_empty(), "published and cleared");
    assert_eq!(s.alerts.kinds(), ["device.repeated_sync_failures"]);

    // Lambda redelivers the same batch, then a reordered split of it.
    let response = detect_failures::handle(&s.detect, batch(records.clone())).await;
    assert!(response.batch_item_failures.is_empty());
    let mut reordered = records.clone();
    reordered.reverse();
    for half in reordered.chunks(2) {
        assert!(detect_failures::handle(&s.detect, batch(half.to_vec()))
            .await
            .batch_item_failures
            .is_empty());
    }
    assert_eq!(stored_state(&s, &device).await, state, "state unchanged");
    assert_eq!(s.alerts.kinds().len(), 1, "no second alert");

    // Detection writes only state items: event records stay the only INSERTs of events.
    s.store.record(event("dev-stream", 9, 0)).await.unwrap();
    let all: Vec<EventRecord> = inserts(&s, 7)
        .await
        .into_iter()
        .filter(|r| {
            pisync_shared::adapters::dynamodb::item::event_from_image(r.change.new_image.clone()).is_some()
        })
        .collect();
    assert_eq!(all.len(), 6);
    let response = detect_failures::handle(&s.detect, batch(all)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        s.alerts.kinds(),
        ["device.repeated_sync_failures", "device.sync_recovered"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_record_is_reported_and_retried_without_double_alerts() {
    let s = setup().await;
    for m in 0..3 {
        s.store.record(event("dev-flaky", m, 1)).await.unwrap();
    }
    s.store.record(event("dev-calm", 0, 0)).await.unwrap();
    let records = inserts(&s, 4).await;
    s.alerts.set_failing(true);
    let response = detect_failures::handle(&s.detect, batch(records.clone())).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    // dev-flaky's records are applied together; its alert could not be sent, so the
    // retry starts from its lowest stream position (nothing after it is skipped).
    let first_failure = event("dev-flaky", 0, 1);
    let first = records
        .iter()
        .find(|r| {
            pisync_shared::adapters::dynamodb::item::event_from_image(r.change.new_image.clone())
                .and_then(Result::ok)
                .is_some_and(|e| e == first_failure)
        })
        .expect("the first failure is on the stream");
    assert_eq!(failed.len(), 1, "only the lowest unfinished record is reported");
    assert_eq!(
        failed[0], first.change.sequence_number,
        "the lowest stream position of the device whose alert could not be sent"
    );
    // The alert waits in the outbox; the retry publishes it once.
    let device = DeviceId::parse("dev-flaky").unwrap();
    assert_eq!(stored_state(&s, &device).await.pending_notices.len(), 1);
    s.alerts.set_failing(false);
    for _ in 0..2 {
        let response = detect_failures::handle(&s.detect, batch(records.clone())).await;
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(s.alerts.kinds(), ["device.repeated_sync_failures"]);
    assert!(stored_state(&s, &device).await.pending_notices.is_empty());
    assert_eq!(stored_state(&s, &device).await.consecutive_failures(), 3);
}

/// The checkpoint defect: A (a success, earlier on the stream) and B (a late failure,
/// later on the stream, older timestamp) in one batch; B completes a streak whose
/// alert cannot be published. The reported record must be A's (the lowest position
/// not fully processed), else Lambda checkpoints past A and A is never applied: the
/// device would stay failing with no recovery notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_never_checkpoints_past_an_unapplied_record() {
    let s = setup().await;
    for m in [1, 2] {
        s.store.record(event("dev-late", m, 1)).await.unwrap();
    }
    let earlier = inserts(&s, 2).await;
    assert!(detect_failures::handle(&s.detect, batch(earlier))
        .await
        .batch_item_failures
        .is_empty());
    let success = event("dev-late", 10, 0);
    let late_failure = event("dev-late", 3, 1);
    s.store.record(success.clone()).await.unwrap();
    s.store.record(late_failure.clone()).await.unwrap();
    // The stream so far (events, and the state item detection wrote) minus the first
    // two events: A comes before B.
    let records: Vec<EventRecord> = inserts(&s, 4).await.into_iter().skip(2).collect();
    let position_of = |wanted: &pisync_shared::StoredEvent| {
        records.iter().position(|r| {
            pisync_shared::adapters::dynamodb::item::event_from_image(r.change.new_image.clone())
                .and_then(Result::ok)
                .is_some_and(|e| e == *wanted)
        })
    };
    let a = position_of(&success).expect("A is in the batch");
    assert!(a < position_of(&late_failure).expect("B is in the batch"));
    s.alerts.set_failing(true);
    let response = detect_failures::handle(&s.detect, batch(records.clone())).await;
    assert_eq!(
        response.batch_item_failures[0].item_identifier, records[a].change.sequence_number,
        "the retry starts at A, the success"
    );
    // Lambda redelivers from A; with the channel back, both notices go out once.
    s.alerts.set_failing(false);
    let retry = detect_failures::handle(&s.detect, batch(records)).await;
    assert!(retry.batch_item_failures.is_empty());
    assert_eq!(
        s.alerts.kinds(),
        ["device.repeated_sync_failures", "device.sync_recovered"]
    );
    let state = stored_state(&s, &DeviceId::parse("dev-late").unwrap()).await;
    assert_eq!(state.consecutive_failures(), 0);
    assert_eq!(state.last_success_at, Some(success.timestamp));
}
