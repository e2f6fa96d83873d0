//! detect-failures on a real DynamoDB stream: events written through the DynamoDB
//! adapter on DynamoDB Local, records read back through the DynamoDB Streams API,
//! batches redelivered and reordered as Lambda may.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use detect_failures::DetectFailures;
use pisync_shared::adapters::dynamodb::DynamoStore;
use pisync_shared::domain::delivery::deliver_pending;
use pisync_shared::domain::device::DeviceState;
use pisync_shared::function::EventFunction;
use pisync_shared::ports::{DeviceStates, Outbox, RecordEvents};
use pisync_shared::test_util::{
    dynamodb_local_store, local_with, reported_event as event, sqlite_store, FlakyStates, RecordingAlerts,
    TempDir,
};
use pisync_shared::DeviceId;
use std::sync::Arc;

/// The device's state, which every caller expects detection to have written.
async fn stored_state(s: &Setup, device: &DeviceId) -> DeviceState {
    s.store
        .load(device)
        .await
        .unwrap()
        .expect("the device has a state")
        .state
}

struct Setup {
    _credentials_dir: TempDir,
    store: DynamoStore,
    streams: aws_sdk_dynamodbstreams::Client,
    alerts: Arc<RecordingAlerts>,
    states: Arc<FlakyStates>,
    detect: DetectFailures,
}

async fn setup() -> Setup {
    let store = dynamodb_local_store("stream").await;
    let alerts = Arc::new(RecordingAlerts::default());
    let states = Arc::new(FlakyStates::new(Arc::new(store.clone())));
    let sdk = pisync_shared::test_util::dynamodb_local_sdk().await;
    let (credentials_dir, credentials) = sqlite_store();
    let mut local = local_with(Arc::new(store.clone()), Arc::new(credentials));
    local.alerts = alerts.clone();
    Setup {
        detect: DetectFailures::from_local(&local).with_states(states.clone()),
        _credentials_dir: credentials_dir,
        streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
        store,
        alerts,
        states,
    }
}

/// Every INSERT record on the table's stream so far, oldest first, once it holds at
/// least `expected` events (detection's own items — states, counts, days, notices,
/// silence checks — are INSERTs too, and come along).
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
                records.extend(
                    batch
                        .into_iter()
                        .map(pisync_local::feed::dynamodb_streams::to_lambda_record),
                );
                iterator = out.next_shard_iterator;
            }
        }
        records.retain(|r| r.event_name == "INSERT");
        let events = records
            .iter()
            .filter(|r| {
                pisync_shared::adapters::dynamodb::item::event_from_image(r.change.new_image.clone())
                    .is_some()
            })
            .count();
        if events >= expected {
            return records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stream has {events} of {expected} events"
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

    let response = s.detect.handle(batch(records.clone())).await;
    assert!(response.batch_item_failures.is_empty());
    let device = DeviceId::parse("dev-stream").unwrap();
    let state = stored_state(&s, &device).await;
    assert_eq!(state.consecutive_failures(), 4);
    assert!(
        s.store.pending(10).await.unwrap().is_empty(),
        "published and removed"
    );
    assert_eq!(s.alerts.kinds(), ["device.repeated_sync_failures"]);

    // Lambda redelivers the same batch, then a reordered split of it.
    let response = s.detect.handle(batch(records.clone())).await;
    assert!(response.batch_item_failures.is_empty());
    let mut reordered = records.clone();
    reordered.reverse();
    for half in reordered.chunks(2) {
        assert!(s
            .detect
            .handle(batch(half.to_vec()))
            .await
            .batch_item_failures
            .is_empty());
    }
    let after = stored_state(&s, &device).await;
    assert_eq!(
        (after.consecutive_failures(), after.totals, after.last_sync_at),
        (state.consecutive_failures(), state.totals, state.last_sync_at),
        "state unchanged"
    );
    assert_eq!(s.alerts.kinds().len(), 1, "no second alert");

    // Detection writes only state items: event records stay the only INSERTs of events.
    s.store.record(event("dev-stream", 9, 0)).await.unwrap();
    let all: Vec<EventRecord> = inserts(&s, 6)
        .await
        .into_iter()
        .filter(|r| {
            pisync_shared::adapters::dynamodb::item::event_from_image(r.change.new_image.clone()).is_some()
        })
        .collect();
    assert_eq!(all.len(), 6);
    let response = s.detect.handle(batch(all)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        s.alerts.kinds(),
        ["device.repeated_sync_failures", "device.sync_recovered"]
    );
}

/// SNS down: the records still succeed (their state is saved with the alert in the
/// outbox), redeliveries decide nothing twice, and the delivery round publishes the
/// alert once the channel is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_never_fails_the_records_or_loses_the_alert() {
    let s = setup().await;
    for m in 0..3 {
        s.store.record(event("dev-flaky", m, 1)).await.unwrap();
    }
    s.store.record(event("dev-calm", 0, 0)).await.unwrap();
    let records = inserts(&s, 4).await;
    s.alerts.set_failing(true);
    let response = s.detect.handle(batch(records.clone())).await;
    assert!(response.batch_item_failures.is_empty());
    let device = DeviceId::parse("dev-flaky").unwrap();
    assert_eq!(stored_state(&s, &device).await.consecutive_failures(), 3);
    assert_eq!(
        s.store.pending(10).await.unwrap().len(),
        1,
        "the alert waits in the outbox"
    );
    s.alerts.set_failing(false);
    for _ in 0..2 {
        let response = s.detect.handle(batch(records.clone())).await;
        assert!(response.batch_item_failures.is_empty());
    }
    deliver_pending(&s.store, s.alerts.as_ref()).await.unwrap();
    assert_eq!(s.alerts.kinds(), ["device.repeated_sync_failures"]);
    assert!(s.store.pending(10).await.unwrap().is_empty());
    assert_eq!(stored_state(&s, &device).await.totals.syncs, 3);
}

/// The checkpoint defect: A (a success, earlier on the stream) and B (a late failure,
/// later on the stream, older timestamp) in one batch, and the device's state cannot
/// be saved. The reported record must be A's (the lowest position not applied), else
/// Lambda checkpoints past A and A is never applied: the device would stay failing
/// with no recovery notice. Redelivered from A once the store is back, both apply and
/// the notices go out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_device_never_checkpoints_past_an_unapplied_record() {
    let s = setup().await;
    for m in [1, 2] {
        s.store.record(event("dev-late", m, 1)).await.unwrap();
    }
    let earlier = inserts(&s, 2).await;
    assert!(s
        .detect
        .handle(batch(earlier))
        .await
        .batch_item_failures
        .is_empty());
    let success = event("dev-late", 10, 0);
    let late_failure = event("dev-late", 3, 1);
    s.store.record(success.clone()).await.unwrap();
    s.store.record(late_failure.clone()).await.unwrap();
    s.store.record(event("dev-other", 0, 1)).await.unwrap();
    let records: Vec<EventRecord> = inserts(&s, 5).await.into_iter().skip(2).collect();
    let position_of = |wanted: &pisync_shared::StoredEvent| {
        records.iter().position(|r| {
            pisync_shared::adapters::dynamodb::item::event_from_image(r.change.new_image.clone())
                .and_then(Result::ok)
                .is_some_and(|e| e == *wanted)
        })
    };
    let a = position_of(&success).expect("A is in the batch");
    assert!(a < position_of(&late_failure).expect("B is in the batch"));
    s.states.set_failing("dev-late", true);
    let response = s.detect.handle(batch(records.clone())).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        response.batch_item_failures[0].item_identifier, records[a].change.sequence_number,
        "the retry starts at A, the success"
    );
    // Lambda redelivers from A (the other device's record again too).
    s.states.set_failing("dev-late", false);
    let retry = s.detect.handle(batch(records[a..].to_vec())).await;
    assert!(retry.batch_item_failures.is_empty());
    deliver_pending(&s.store, s.alerts.as_ref()).await.unwrap();
    assert_eq!(
        s.alerts.kinds(),
        ["device.repeated_sync_failures", "device.sync_recovered"]
    );
    let state = stored_state(&s, &DeviceId::parse("dev-late").unwrap()).await;
    assert_eq!(state.consecutive_failures(), 0);
    assert_eq!(state.last_success_at, Some(success.timestamp));
    assert_eq!(state.totals.syncs, 4);
    let other = stored_state(&s, &DeviceId::parse("dev-other").unwrap()).await;
    assert_eq!(
        other.totals.syncs, 1,
        "the other device's redelivered record counted once"
    );
}
