//! list-notices' handler, called directly with the example events in
//! `events/list-notices/`: device_12345 (no school) alerted and recovered, device_777
//! (oakwood) alerted.

use list_notices::ListNotices;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, reply_json, Case,
};
use pisync_shared::test_util::{local, record_and_apply, reported_event, school_with, sqlite_store, TempDir};

/// (file, status, error code)
const CASES: &[Case] = &[
    ("list-notices/another-school.json", 404, Some("school_not_found")),
    ("list-notices/bad-type.json", 400, Some("invalid_request")),
    ("list-notices/district-feed.json", 200, None),
    ("list-notices/failures-only.json", 200, None),
    ("list-notices/school-operator.json", 200, None),
];

async fn seeded() -> (TempDir, ListNotices) {
    let (dir, store) = sqlite_store();
    school_with(&store, "oakwood", &["device_777"]).await;
    for (device, m, errors) in [
        ("device_777", 1, 1),
        ("device_777", 2, 1),
        ("device_777", 3, 1),
        ("device_12345", 4, 2),
        ("device_12345", 5, 2),
        ("device_12345", 6, 2),
        ("device_12345", 7, 0),
    ] {
        record_and_apply(&store, &reported_event(device, m, errors)).await;
    }
    (dir, ListNotices::from_local(&local(store)))
}

/// (type, device) of each notice on the page.
fn notices(body: &serde_json::Value) -> Vec<(String, String)> {
    body["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["type"].as_str().unwrap().into(),
                n["device_id"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, handler) = seeded().await;
    assert_examples_answered("list-notices", CASES, &handler).await;
}

#[tokio::test]
async fn the_district_feed_is_newest_first_with_each_decision() {
    let (_dir, handler) = seeded().await;
    let first = reply_json(
        &handler
            .handle(api_request("list-notices/district-feed.json"))
            .await,
    );
    assert_eq!(
        notices(&first),
        [("device.sync_recovered".into(), "device_12345".into())],
        "limit=1, newest first"
    );
    let notice = &first["notices"][0];
    assert_eq!(notice["published"], true);
    assert!(notice["reason"].is_null());
    assert_eq!(notice["failures_before_recovery"], 3);
    assert!(first["next_cursor"].is_string());
}

#[tokio::test]
async fn a_type_narrows_the_feed() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("list-notices/failures-only.json"))
            .await,
    );
    assert_eq!(
        notices(&body),
        [
            ("device.repeated_sync_failures".into(), "device_12345".into()),
            ("device.repeated_sync_failures".into(), "device_777".into()),
        ]
    );
}

#[tokio::test]
async fn a_school_operator_reads_its_schools_notices_only() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("list-notices/school-operator.json"))
            .await,
    );
    assert_eq!(
        notices(&body),
        [("device.repeated_sync_failures".into(), "device_777".into())]
    );
    assert_eq!(body["notices"][0]["school_id"], "oakwood");
    assert!(body["next_cursor"].is_null());
}

#[tokio::test]
async fn every_problem_of_a_request_is_listed() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(&handler.handle(api_request("list-notices/bad-type.json")).await);
    assert_eq!(error_fields(&body), ["type", "limit"]);
}
