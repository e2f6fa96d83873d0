//! put-school's handler, called directly with the example events in
//! `events/put-school/`, over an embedded store where riverside exists.

use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, reply_json, Case,
};
use pisync_shared::test_util::{local, school_with, sqlite_store, TempDir};
use put_school::PutSchool;

/// (file, status, error code)
const CASES: &[Case] = &[
    ("put-school/create.json", 200, None),
    ("put-school/invalid.json", 400, Some("invalid_school")),
    ("put-school/read-only-operator.json", 403, Some("forbidden")),
    (
        "put-school/school-admin-creates.json",
        404,
        Some("school_not_found"),
    ),
    ("put-school/school-admin-replaces.json", 200, None),
];

async fn seeded() -> (TempDir, PutSchool) {
    let (dir, store) = sqlite_store();
    school_with(&store, "riverside", &[]).await;
    (dir, PutSchool::from_local(&local(store)))
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, handler) = seeded().await;
    assert_examples_answered("put-school", CASES, &handler).await;
}

#[tokio::test]
async fn a_new_school_is_created_with_every_setting() {
    let (dir, store) = sqlite_store();
    let handler = PutSchool::from_local(&local(store));
    let response = handler.handle(api_request("put-school/create.json")).await;
    assert_eq!(response.status(), 201);
    let body = reply_json(&response);
    assert_eq!(body["school_id"], "riverside");
    assert_eq!(
        body["hours"]["days"],
        serde_json::json!(["mon", "tue", "wed", "thu", "fri"])
    );
    assert_eq!(body["silent_after"], "16h");
    assert_eq!(body["closures"][0]["reason"], "Winter break");
    drop(dir);
}

#[tokio::test]
async fn every_problem_is_listed() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(&handler.handle(api_request("put-school/invalid.json")).await);
    assert_eq!(error_fields(&body), ["name", "timezone", "failure_threshold"]);
}
