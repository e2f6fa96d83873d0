//! detect-failures' handler, called directly with the example stream events in
//! `events/detect-failures/`, over an embedded store holding the events they refer to.

use detect_failures::{detect, DetectFailures};
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::domain::delivery::deliver_pending;
use pisync_shared::domain::delivery::Owed;
use pisync_shared::domain::fleet::Day;
use pisync_shared::function::EventFunction;
use pisync_shared::ports::{
    DeviceStates, ExportedEvent, Outbox, ReadFleet, RecordEvents, SendExport, StoreError,
};
use pisync_shared::test_util::lambda_events::{files_of, stream_event};
use pisync_shared::test_util::{device, local, sqlite_store, stored_event_at, FlakyStates, RecordingAlerts};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The export as detect-failures sees it: records what it is sent; can refuse.
#[derive(Default)]
struct RecordingExport {
    sent: Mutex<Vec<ExportedEvent>>,
    refusing: AtomicBool,
}

#[pisync_shared::function::async_trait]
impl SendExport for RecordingExport {
    async fn send(&self, events: &[ExportedEvent]) -> Result<(), StoreError> {
        if self.refusing.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable_because("export refused"));
        }
        self.sent.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

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
    states: Arc<FlakyStates>,
    alerts: Arc<RecordingAlerts>,
    /// The process's delivery debt, which the detector shares.
    owed: Arc<Owed>,
    detect: DetectFailures,
}

fn setup() -> Setup {
    let (dir, store) = sqlite_store();
    let alerts = Arc::new(RecordingAlerts::default());
    let states = Arc::new(FlakyStates::new(Arc::new(store.clone())));
    let mut local = local(store.clone());
    local.alerts = alerts.clone();
    let detect = DetectFailures::from_local(&local).with_states(states.clone());
    Setup {
        owed: local.owed,
        _dir: dir,
        store,
        states,
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
    let response = s
        .detect
        .handle(stream_event("detect-failures/three-failures.json"))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(s.alerts.kinds(), ["device.repeated_sync_failures"]);
    assert_eq!(streak(&s).await, 3);
    // Redelivery of the same batch changes nothing and alerts no more.
    let response = s
        .detect
        .handle(stream_event("detect-failures/three-failures.json"))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(s.alerts.kinds().len(), 1);
    // The success's batch also holds state-item records, which are skipped.
    store(&s, &[SUCCESS]).await;
    let response = s
        .detect
        .handle(stream_event("detect-failures/recovery.json"))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        s.alerts.kinds(),
        ["device.repeated_sync_failures", "device.sync_recovered"]
    );
    assert_eq!(streak(&s).await, 0);
}

#[tokio::test]
async fn each_new_event_counts_once_in_its_day_and_the_devices_totals() {
    let s = setup();
    store(&s, &FAILURES).await;
    let detected = detect(&s.detect, stream_event("detect-failures/three-failures.json")).await;
    assert_eq!(
        (detected.figures.syncs_failed, detected.figures.syncs_succeeded),
        (3, 0)
    );
    s.detect
        .handle(stream_event("detect-failures/three-failures.json"))
        .await;
    let day = Day::parse("2025-05-07").unwrap();
    let days = s
        .store
        .days(day, day, &pisync_shared::ports::Within::Fleet)
        .await
        .unwrap();
    assert_eq!(
        (days[&day].syncs, days[&day].failures, days[&day].files_synced),
        (3, 3, 126)
    );
    let state = s
        .store
        .load(&device("device_12345"))
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!((state.totals.syncs, state.totals.errors), (3, 7));
    let counts = s
        .store
        .counts(&pisync_shared::ports::Within::Fleet)
        .await
        .unwrap();
    assert_eq!((counts.total, counts.failing), (1, 1));
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
    let response = s.detect.handle(event).await;
    let ids: Vec<_> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(ids, ["111000000000000000000003"]);
}

/// A channel that is down never fails the records: the state is saved with the alert
/// in its outbox, and the next delivery round publishes it — once.
#[tokio::test]
async fn a_failed_publish_leaves_the_alert_waiting_not_the_records() {
    let s = setup();
    store(&s, &FAILURES).await;
    s.alerts.set_failing(true);
    let detected = detect(&s.detect, stream_event("detect-failures/three-failures.json")).await;
    assert!(
        detected.response.batch_item_failures.is_empty(),
        "the records are applied"
    );
    assert_eq!(detected.figures.publish_failures, 1);
    assert_eq!(streak(&s).await, 3);
    assert_eq!(s.store.pending(10).await.unwrap().len(), 1, "the alert waits");
    s.alerts.set_failing(false);
    // The next batch delivers what the failed round left, though it decides nothing
    // (a redelivery here); later rounds find nothing more to send.
    s.detect
        .handle(stream_event("detect-failures/three-failures.json"))
        .await;
    assert_eq!(s.alerts.kinds(), ["device.repeated_sync_failures"]);
    assert!(s.store.pending(10).await.unwrap().is_empty());
    deliver_pending(&s.store, s.alerts.as_ref()).await.unwrap();
    assert_eq!(s.alerts.kinds(), ["device.repeated_sync_failures"]);
}

/// Once every notice is out, a batch that decides nothing does not read the outbox.
#[tokio::test]
async fn a_batch_deciding_nothing_delivers_only_when_a_round_left_notices() {
    let s = setup();
    store(&s, &FAILURES).await;
    s.detect
        .handle(stream_event("detect-failures/three-failures.json"))
        .await;
    assert!(!s.owed.is_owed(), "the round published everything");
    s.alerts.set_failing(true);
    let redelivered = detect(&s.detect, stream_event("detect-failures/three-failures.json")).await;
    assert_eq!(redelivered.figures.publish_failures, 0, "no round was run");
}

/// When a device's state cannot be saved, its lowest stream position is reported, so
/// Lambda retries from there; once the store is back the retry applies everything.
#[tokio::test]
async fn a_store_failure_reports_the_devices_lowest_position() {
    let s = setup();
    store(&s, &FAILURES).await;
    s.states.set_failing("device_12345", true);
    let response = s
        .detect
        .handle(stream_event("detect-failures/three-failures.json"))
        .await;
    let ids: Vec<_> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(ids, ["111000000000000000000001"]);
    assert!(s.store.load(&device("device_12345")).await.unwrap().is_none());
    s.states.set_failing("device_12345", false);
    let response = s
        .detect
        .handle(stream_event("detect-failures/three-failures.json"))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(streak(&s).await, 3);
    assert_eq!(s.alerts.kinds(), ["device.repeated_sync_failures"]);
}

/// Applied events go on to the export with their device's school. A refused export has
/// the batch delivered again from its lowest record (the states are saved already and
/// recognise it); the redelivery sends them.
#[tokio::test]
async fn applied_events_go_on_to_the_export_and_a_refusal_retries_the_batch() {
    let s = setup();
    store(&s, &FAILURES).await;
    let export = Arc::new(RecordingExport::default());
    let detect = s.detect.clone().with_export(export.clone());
    export.refusing.store(true, Ordering::SeqCst);
    let response = detect
        .handle(stream_event("detect-failures/three-failures.json"))
        .await;
    let ids: Vec<_> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(ids, ["111000000000000000000001"]);
    assert_eq!(streak(&s).await, 3, "applied, once");
    export.refusing.store(false, Ordering::SeqCst);
    let response = detect
        .handle(stream_event("detect-failures/three-failures.json"))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(streak(&s).await, 3);
    let sent = export.sent.lock().unwrap();
    let mut times: Vec<String> = sent.iter().map(|e| e.event.timestamp.to_string()).collect();
    times.sort();
    assert_eq!(
        times,
        [
            "2025-05-07T10:31:00.000Z",
            "2025-05-07T10:32:00.000Z",
            "2025-05-07T10:33:00.000Z"
        ]
    );
    assert!(sent
        .iter()
        .all(|e| e.school_id.is_none() && e.event.device_id.as_str() == "device_12345"));
}
