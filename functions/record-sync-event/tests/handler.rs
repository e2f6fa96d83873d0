//! record-sync-event's handler, called directly with the example events in
//! `events/record-sync-event/`, as API Gateway delivers them.

use pisync_shared::auth::Authenticator;
use pisync_shared::domain::validate::EventRules;
use pisync_shared::test_util::lambda_events::{
    api_request, assert_documented_answer, assert_every_example_is_a_case, dev_keys, error_fields,
    provision_token_of, reply_json, Case,
};
use pisync_shared::test_util::sqlite_store;
use record_sync_event::{handle, RecordSyncEvent};
use std::sync::Arc;
use std::time::Duration;

/// (file, status, error code)
const CASES: &[Case] = &[
    (
        "record-sync-event/another-devices-event.json",
        403,
        Some("forbidden"),
    ),
    ("record-sync-event/base64-body.json", 201, None),
    ("record-sync-event/failed-sync.json", 201, None),
    ("record-sync-event/forged-token.json", 401, Some("unauthorized")),
    (
        "record-sync-event/invalid-fields.json",
        400,
        Some("invalid_event"),
    ),
    (
        "record-sync-event/malformed-json.json",
        400,
        Some("invalid_event"),
    ),
    ("record-sync-event/new-event.json", 201, None),
    ("record-sync-event/no-token.json", 401, Some("unauthorized")),
    ("record-sync-event/too-large.json", 413, Some("payload_too_large")),
    ("record-sync-event/unknown-field.json", 400, Some("invalid_event")),
    (
        "record-sync-event/wrong-content-type.json",
        415,
        Some("unsupported_media_type"),
    ),
];

/// The handler as the Lambda builds it (device tokens checked against the
/// credentials, verdicts cached), with the examples' device provisioned.
async fn handler() -> (pisync_shared::test_util::TempDir, RecordSyncEvent) {
    let (dir, store) = sqlite_store();
    provision_token_of("record-sync-event/new-event.json", &store).await;
    let deps = RecordSyncEvent {
        log: Arc::new(store.clone()),
        rules: EventRules::default(),
        auth: Authenticator::devices(Arc::new(dev_keys()), Arc::new(store), Duration::from_secs(60)),
    };
    (dir, deps)
}

#[test]
fn every_example_event_has_a_case() {
    assert_every_example_is_a_case("record-sync-event", CASES);
}

#[tokio::test]
async fn example_events_get_their_documented_answers() {
    let (_dir, deps) = handler().await;
    for (file, status, code) in CASES {
        assert_documented_answer(file, &handle(&deps, api_request(file)).await, *status, *code);
    }
}

#[tokio::test]
async fn invalid_events_name_every_problem() {
    let (_dir, deps) = handler().await;
    let body = reply_json(&handle(&deps, api_request("record-sync-event/invalid-fields.json")).await);
    assert_eq!(
        error_fields(&body),
        [
            "device_id",
            "timestamp",
            "total_files_synced",
            "total_errors",
            "internet_speed"
        ]
    );
    let body = reply_json(&handle(&deps, api_request("record-sync-event/unknown-field.json")).await);
    assert_eq!(error_fields(&body), ["total_eror"]);
}

#[tokio::test]
async fn an_exact_replay_answers_200_with_the_stored_event() {
    let (_dir, deps) = handler().await;
    let first = handle(&deps, api_request("record-sync-event/failed-sync.json")).await;
    assert_eq!(first.status(), 201);
    let stored = reply_json(&first);
    assert_eq!(
        stored["timestamp"], "2025-05-07T10:35:00.000Z",
        "+05:30 normalised to UTC"
    );
    assert_eq!(stored["outcome"], "failure");
    let again = handle(&deps, api_request("record-sync-event/failed-sync.json")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(reply_json(&again), stored, "the stored event, unchanged");
}
