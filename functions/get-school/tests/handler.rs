//! get-school's handler, called directly with the example events in
//! `events/get-school/`, over an embedded store where riverside has one device.

use get_school::GetSchool;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::test_util::lambda_events::{api_request, assert_examples_answered, reply_json, Case};
use pisync_shared::test_util::{local, record_and_apply, school_with, sqlite_store, stored_event, TempDir};

/// (file, status, error code)
const CASES: &[Case] = &[
    ("get-school/another-schools.json", 404, Some("school_not_found")),
    ("get-school/bad-id.json", 400, Some("invalid_request")),
    ("get-school/known.json", 200, None),
    ("get-school/unknown.json", 404, Some("school_not_found")),
];

async fn seeded() -> (TempDir, GetSchool) {
    let (dir, store) = sqlite_store();
    school_with(&store, "riverside", &["device_12345", "pibook-quiet"]).await;
    record_and_apply(&store, &stored_event("device_12345", 0, 0)).await;
    (dir, GetSchool::from_local(&local(store)))
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, handler) = seeded().await;
    assert_examples_answered("get-school", CASES, &handler).await;
}

#[tokio::test]
async fn the_school_comes_with_its_reported_devices_by_status() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(&handler.handle(api_request("get-school/known.json")).await);
    assert_eq!(body["school_id"], "riverside");
    assert_eq!(body["timezone"], "UTC");
    assert_eq!(
        body["devices"],
        serde_json::json!({"total": 1, "healthy": 1, "failing": 0, "silent": 0}),
        "the device that has not reported is not counted"
    );
}

/// Another school's operator is told exactly what it would be told of no school.
#[tokio::test]
async fn another_schools_school_answers_as_missing() {
    let (_dir, handler) = seeded().await;
    let hidden = reply_json(
        &handler
            .handle(api_request("get-school/another-schools.json"))
            .await,
    );
    let missing = reply_json(&handler.handle(api_request("get-school/unknown.json")).await);
    assert_eq!(hidden["error"]["code"], missing["error"]["code"]);
    assert_eq!(
        hidden["error"]["message"]
            .as_str()
            .unwrap()
            .replace("riverside", "oakwood"),
        missing["error"]["message"]
    );
}
