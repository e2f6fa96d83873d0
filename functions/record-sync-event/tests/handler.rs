//! record-sync-event's handler, called directly with the example events in
//! `events/record-sync-event/`, as API Gateway delivers them.

use pisync_shared::auth::Authenticator;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, provision_token_of, reply_json, Case,
};
use pisync_shared::test_util::{local, sqlite_store};
use record_sync_event::RecordSyncEvent;
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
    let mut local = local(store);
    local.auth = Authenticator::devices(
        local.keys.clone(),
        local.credentials.clone(),
        Duration::from_secs(60),
    );
    let deps = RecordSyncEvent::from_local(&local);
    (dir, deps)
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, deps) = handler().await;
    assert_examples_answered("record-sync-event", CASES, &deps).await;
}

#[tokio::test]
async fn invalid_events_name_every_problem() {
    let (_dir, deps) = handler().await;
    let body = reply_json(
        &deps
            .handle(api_request("record-sync-event/invalid-fields.json"))
            .await,
    );
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
    let body = reply_json(
        &deps
            .handle(api_request("record-sync-event/unknown-field.json"))
            .await,
    );
    assert_eq!(error_fields(&body), ["total_eror"]);
}

#[tokio::test]
async fn an_exact_replay_answers_200_with_the_stored_event() {
    let (_dir, deps) = handler().await;
    let first = deps
        .handle(api_request("record-sync-event/failed-sync.json"))
        .await;
    assert_eq!(first.status(), 201);
    let stored = reply_json(&first);
    assert_eq!(
        stored["timestamp"], "2025-05-07T10:35:00.000Z",
        "+05:30 normalised to UTC"
    );
    assert_eq!(stored["outcome"], "failure");
    let again = deps
        .handle(api_request("record-sync-event/failed-sync.json"))
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(reply_json(&again), stored, "the stored event, unchanged");
}
