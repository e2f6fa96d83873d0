//! get-device's handler, called directly with the example events in
//! `events/get-device/`, over an embedded store where device_12345 reported.

use get_device::GetDevice;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, reply_json, Case,
};
use pisync_shared::test_util::{local, record_and_apply, sqlite_store, stored_event_at, TempDir};

/// (file, status, error code)
const CASES: &[Case] = &[
    (
        "get-device/another-schools-device.json",
        404,
        Some("device_not_found"),
    ),
    ("get-device/bad-device-id.json", 400, Some("invalid_request")),
    ("get-device/known-device.json", 200, None),
    ("get-device/no-authorizer.json", 401, Some("unauthorized")),
    ("get-device/no-pisync-group.json", 403, Some("forbidden")),
    ("get-device/unknown-device.json", 404, Some("device_not_found")),
];

async fn seeded() -> (TempDir, GetDevice) {
    let (dir, store) = sqlite_store();
    for (ts, errors) in [
        ("2025-05-07T10:30:00Z", 0),
        ("2025-05-07T10:31:00Z", 2),
        ("2025-05-07T10:32:00Z", 4),
        ("2025-05-07T10:33:00Z", 1),
    ] {
        let e = stored_event_at("device_12345", ts, errors);
        record_and_apply(&store, &e).await;
    }
    (dir, GetDevice::from_local(&local(store)))
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, handler) = seeded().await;
    assert_examples_answered("get-device", CASES, &handler).await;
}

#[tokio::test]
async fn the_device_reads_as_the_contract_says() {
    let (_dir, handler) = seeded().await;
    let response = handler.handle(api_request("get-device/known-device.json")).await;
    let body = reply_json(&response);
    assert_eq!(
        body,
        serde_json::json!({
            "device_id": "device_12345",
            "school_id": null,
            "status": "failing",
            "first_seen_at": "2025-05-07T10:30:00.000Z",
            "last_seen_at": "2025-05-07T10:33:00.000Z",
            "last_sync_at": "2025-05-07T10:33:00.000Z",
            "last_success_at": "2025-05-07T10:30:00.000Z",
            "last_failure_at": "2025-05-07T10:33:00.000Z",
            "consecutive_failures": 3,
            "streak_started_at": "2025-05-07T10:31:00.000Z",
            "last_total_errors": 1,
            "last_internet_speed": 5.3,
            "totals": {"syncs": 4, "failures": 3, "files_synced": 168, "errors": 7}
        })
    );
}

#[tokio::test]
async fn a_bad_id_names_the_field() {
    let (_dir, handler) = seeded().await;
    let response = handler.handle(api_request("get-device/bad-device-id.json")).await;
    assert_eq!(error_fields(&reply_json(&response)), ["id"]);
}
