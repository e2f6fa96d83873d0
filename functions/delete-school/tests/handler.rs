//! delete-school's handler, called directly with the example events in
//! `events/delete-school/`: riverside has a device, oakwood none.

use delete_school::DeleteSchool;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::ports::ReadSchools;
use pisync_shared::test_util::lambda_events::{api_request, assert_examples_answered, Case};
use pisync_shared::test_util::{local, school_with, sqlite_store, TempDir};

/// (file, status, error code)
const CASES: &[Case] = &[
    ("delete-school/empty.json", 204, None),
    ("delete-school/not-empty.json", 409, Some("school_not_empty")),
    ("delete-school/school-admin.json", 403, Some("forbidden")),
    ("delete-school/unknown.json", 404, Some("school_not_found")),
];

async fn seeded() -> (
    TempDir,
    pisync_shared::adapters::sqlite::SqliteStore,
    DeleteSchool,
) {
    let (dir, store) = sqlite_store();
    school_with(&store, "riverside", &["device_12345"]).await;
    school_with(&store, "oakwood", &[]).await;
    let handler = DeleteSchool::from_local(&local(store.clone()));
    (dir, store, handler)
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, _store, handler) = seeded().await;
    assert_examples_answered("delete-school", CASES, &handler).await;
}

#[tokio::test]
async fn only_the_empty_school_goes() {
    let (_dir, store, handler) = seeded().await;
    assert_eq!(
        handler
            .handle(api_request("delete-school/not-empty.json"))
            .await
            .status(),
        409
    );
    assert_eq!(
        handler
            .handle(api_request("delete-school/empty.json"))
            .await
            .status(),
        204
    );
    let left = store.schools(None, 10).await.unwrap();
    let ids: Vec<&str> = left.schools.iter().map(|s| s.school_id.as_str()).collect();
    assert_eq!(ids, ["riverside"]);
}
