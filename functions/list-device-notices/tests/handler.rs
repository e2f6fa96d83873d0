//! list-device-notices' handler, called directly with the example events in
//! `events/list-device-notices/`: device_12345 (no school) alerted and recovered.

use list_device_notices::ListDeviceNotices;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, reply_json, Case,
};
use pisync_shared::test_util::{local, record_and_apply, reported_event, sqlite_store, TempDir};

/// (file, status, error code)
const CASES: &[Case] = &[
    (
        "list-device-notices/another-schools-device.json",
        404,
        Some("device_not_found"),
    ),
    (
        "list-device-notices/bad-cursor.json",
        400,
        Some("invalid_request"),
    ),
    ("list-device-notices/known-device.json", 200, None),
    (
        "list-device-notices/unknown-device.json",
        404,
        Some("device_not_found"),
    ),
];

async fn seeded() -> (TempDir, ListDeviceNotices) {
    let (dir, store) = sqlite_store();
    for (m, errors) in [(1, 2), (2, 2), (3, 2), (4, 0), (5, 1)] {
        record_and_apply(&store, &reported_event("device_12345", m, errors)).await;
    }
    (dir, ListDeviceNotices::from_local(&local(store)))
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, handler) = seeded().await;
    assert_examples_answered("list-device-notices", CASES, &handler).await;
}

#[tokio::test]
async fn a_devices_notices_page_newest_first() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("list-device-notices/known-device.json"))
            .await,
    );
    assert_eq!(body["device_id"], "device_12345");
    let notices = body["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 1, "limit=1");
    assert_eq!(notices[0]["type"], "device.sync_recovered");
    assert_eq!(notices[0]["published"], true);
    assert!(body["next_cursor"].is_string());
}

#[tokio::test]
async fn every_problem_of_a_request_is_listed() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("list-device-notices/bad-cursor.json"))
            .await,
    );
    assert_eq!(error_fields(&body), ["limit", "cursor"]);
}
