//! detect-failures' handler, called directly with the example stream events in
//! `events/detect-failures/`, over an embedded store holding the events they refer to.

use detect_failures::{handle, DetectFailures};
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::ports::{DeviceStates, RecordEvents};
use pisync_shared::test_util::lambda_events::{files_of, stream_event};
use pisync_shared::test_util::{device, sqlite_store, stored_event_at, RecordingAlerts};
use std::sync::Arc;

/// device_12345's events the stream events refer to: three failures, then a success.
const FAILURES: [(&str, u32); 3] = [
    ("2025-05-07T10:31:00Z", 2),
    ("2025-05-07T10:32:00Z", 4),
    ("2025-05-07T10:33:00Z", 1),
];
const SUCCESS: (&str, u32) = ("2025-05-07T10:40:00Z", 0);

struct Setup {
    _dir: pisync_shared::test_util::TempDir,
    store: SqliteStore,
    alerts: Arc<RecordingAlerts>,
    detect: DetectFailures,
}

fn setup() -> Setup {
    let (dir, store) = sqlite_store();
    let alerts = Arc::new(RecordingAlerts::default());
    let detect = DetectFailures {
        states: Arc::new(store.clone()),
        alerts: alerts.clone(),
        rule: StreakRule::default(),
    };
    Setup {
        _dir: dir,
        store,
        alerts,
        detect,
    }
}

async fn store(s: &Setup, events: &[(&str, u32)]) {
    for &(ts, errors) in events {
        let event = stored_event_at("device_12345", ts, errors);
        s.store.record(event).await.expect("stored");
    }
}

async fn streak(s: &Setup) -> u32 {
    let loaded = s.store.load(&device("device_12345")).await.expect("readable");
    loaded
        .expect("the device has a state")
        .state
        .consecutive_failures()
}

#[test]
fn every_example_event_has_a_case() {
    assert_eq!(
        files_of("detect-failures"),
        [
            "detect-failures/recovery.json",
            "detect-failures/three-failures.json"
        ]
    );
}

#[tokio::test]
async fn three_failures_alert_once_and_a_success_recovers() {
    let s = setup();
    store(&s, &FAILURES).await;
    let response = handle(&s.detect, stream_event("detect-failures/three-failures.json")).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(s.alerts.kinds(), ["device.repeated_sync_failures"]);
    assert_eq!(streak(&s).await, 3);
    // Redelivery of the same batch changes nothing and alerts no more.
    let response = handle(&s.detect, stream_event("detect-failures/three-failures.json")).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(s.alerts.kinds().len(), 1);
    // The success's batch also holds state-item records, which are skipped.
    store(&s, &[SUCCESS]).await;
    let response = handle(&s.detect, stream_event("detect-failures/recovery.json")).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        s.alerts.kinds(),
        ["device.repeated_sync_failures", "device.sync_recovered"]
    );
    assert_eq!(streak(&s).await, 0);
}

#[tokio::test]
async fn an_undecodable_record_is_reported_by_its_sequence_number() {
    let s = setup();
    store(&s, &FAILURES).await;
    let mut event = stream_event("detect-failures/three-failures.json");
    // The second record's total_errors is no number.
    let image = serde_json::json!({
        "pk": {"S": "DEVICE#device_12345"}, "sk": {"S": "EVENT#2025-05-07T10:33:00.000Z"},
        "device_id": {"S": "device_12345"}, "timestamp": {"S": "2025-05-07T10:33:00.000Z"},
        "total_files_synced": {"N": "42"}, "total_errors": {"S": "many"}, "internet_speed": {"N": "5.3"},
        "outcome": {"S": "failure"}, "received_at": {"S": "2025-05-07T10:33:05.000Z"}
    });
    event.records[1].change.new_image = serde_json::from_value(image).expect("an image");
    let response = handle(&s.detect, event).await;
    let ids: Vec<_> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(ids, ["111000000000000000000003"]);
}

#[tokio::test]
async fn a_failed_publish_is_reported_and_the_retry_alerts_once() {
    let s = setup();
    store(&s, &FAILURES).await;
    s.alerts.set_failing(true);
    let response = handle(&s.detect, stream_event("detect-failures/three-failures.json")).await;
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "the alerting record is retried"
    );
    assert!(s.alerts.kinds().is_empty());
    s.alerts.set_failing(false);
    let response = handle(&s.detect, stream_event("detect-failures/three-failures.json")).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(s.alerts.kinds(), ["device.repeated_sync_failures"]);
}
