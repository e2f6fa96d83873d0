//! list-schools' handler, called directly with the example events in
//! `events/list-schools/`: three schools, one with a reported device.

use list_schools::ListSchools;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, reply_json, Case,
};
use pisync_shared::test_util::{local, record_and_apply, school_with, sqlite_store, stored_event, TempDir};

/// (file, status, error code)
const CASES: &[Case] = &[
    ("list-schools/bad-cursor.json", 400, Some("invalid_request")),
    ("list-schools/first-page.json", 200, None),
    ("list-schools/school-operator.json", 200, None),
];

async fn seeded() -> (TempDir, ListSchools) {
    let (dir, store) = sqlite_store();
    school_with(&store, "riverside", &["device_12345"]).await;
    school_with(&store, "oakwood", &[]).await;
    school_with(&store, "ash", &[]).await;
    record_and_apply(&store, &stored_event("device_12345", 0, 1)).await;
    (dir, ListSchools::from_local(&local(store)))
}

fn ids(body: &serde_json::Value) -> Vec<&str> {
    body["schools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["school_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, handler) = seeded().await;
    assert_examples_answered("list-schools", CASES, &handler).await;
}

#[tokio::test]
async fn the_district_pages_through_every_school() {
    let (_dir, handler) = seeded().await;
    let first = reply_json(&handler.handle(api_request("list-schools/first-page.json")).await);
    assert_eq!(ids(&first), ["ash"], "limit=1, by school id");
    assert!(first["next_cursor"].is_string());
    assert_eq!(first["schools"][0]["devices"]["total"], 0);
}

/// A school operator of oakwood and elm (which does not exist) lists oakwood only.
#[tokio::test]
async fn a_school_operator_lists_its_own_schools() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("list-schools/school-operator.json"))
            .await,
    );
    assert_eq!(ids(&body), ["oakwood"]);
    assert_eq!(body["next_cursor"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_forged_cursor_is_refused() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(&handler.handle(api_request("list-schools/bad-cursor.json")).await);
    assert_eq!(error_fields(&body), ["cursor"]);
}
