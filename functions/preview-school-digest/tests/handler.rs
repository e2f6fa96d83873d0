//! preview-school-digest's handler, called directly with the example events in
//! `events/preview-school-digest/`, over an embedded store where riverside has a
//! failing device and a healthy one.

use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::ports::Outbox;
use pisync_shared::test_util::lambda_events::{api_request, assert_examples_answered, reply_json, Case};
use pisync_shared::test_util::{local, record_and_apply, reported_event, school_with, sqlite_store, TempDir};
use preview_school_digest::PreviewSchoolDigest;

/// (file, status, error code)
const CASES: &[Case] = &[
    (
        "preview-school-digest/another-schools.json",
        404,
        Some("school_not_found"),
    ),
    ("preview-school-digest/bad-id.json", 400, Some("invalid_request")),
    ("preview-school-digest/known.json", 200, None),
    (
        "preview-school-digest/unknown.json",
        404,
        Some("school_not_found"),
    ),
];

async fn seeded() -> (TempDir, SqliteStore, PreviewSchoolDigest) {
    let (dir, store) = sqlite_store();
    school_with(&store, "riverside", &["device_12345", "pibook-ok"]).await;
    for m in 0..3 {
        record_and_apply(&store, &reported_event("device_12345", m, 2)).await;
    }
    record_and_apply(&store, &reported_event("pibook-ok", 0, 0)).await;
    let handler = PreviewSchoolDigest::from_local(&local(store.clone()));
    (dir, store, handler)
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, _, handler) = seeded().await;
    assert_examples_answered("preview-school-digest", CASES, &handler).await;
}

#[tokio::test]
async fn the_preview_says_what_the_digest_would_and_sends_nothing() {
    let (_dir, store, handler) = seeded().await;
    let waiting = store.pending(100).await.unwrap().len();
    let body = reply_json(
        &handler
            .handle(api_request("preview-school-digest/known.json"))
            .await,
    );
    assert_eq!(body["type"], "school.digest");
    assert_eq!(body["school_id"], "riverside");
    assert_eq!(
        body["devices"],
        serde_json::json!({"total": 2, "healthy": 1, "failing": 1, "silent": 0})
    );
    assert_eq!(body["failing"], serde_json::json!(["device_12345"]));
    assert_eq!(body["silent"], serde_json::json!([]));
    assert!(body["yesterday"]["failure_rate"].is_number());
    assert_eq!(store.pending(100).await.unwrap().len(), waiting, "nothing sent");
}
