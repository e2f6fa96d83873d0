//! assign-device-school's handler, called directly with the example events in
//! `events/assign-device-school/`: device_12345 is in riverside; oakwood exists.

use assign_device_school::AssignDeviceSchool;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::ports::DeviceStates;
use pisync_shared::test_util::lambda_events::{api_request, assert_examples_answered, reply_json, Case};
use pisync_shared::test_util::{device, local, school_with, sqlite_store, TempDir};

/// (file, status, error code)
const CASES: &[Case] = &[
    (
        "assign-device-school/another-schools-device.json",
        404,
        Some("device_not_found"),
    ),
    ("assign-device-school/assign.json", 200, None),
    ("assign-device-school/bad-body.json", 400, Some("invalid_request")),
    (
        "assign-device-school/school-admin-unassigns.json",
        403,
        Some("forbidden"),
    ),
    ("assign-device-school/unassign.json", 200, None),
    (
        "assign-device-school/unknown-school.json",
        404,
        Some("school_not_found"),
    ),
];

async fn seeded() -> (
    TempDir,
    pisync_shared::adapters::sqlite::SqliteStore,
    AssignDeviceSchool,
) {
    let (dir, store) = sqlite_store();
    school_with(&store, "riverside", &["device_12345"]).await;
    school_with(&store, "oakwood", &[]).await;
    let handler = AssignDeviceSchool::from_local(&local(store.clone()));
    (dir, store, handler)
}

/// The cases in order on one store: the refused move, the move to oakwood, a bad
/// body, riverside's admin refused the unassignment, the district's unassignment, an
/// unknown school.
#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, _store, handler) = seeded().await;
    assert_examples_answered("assign-device-school", CASES, &handler).await;
}

#[tokio::test]
async fn the_move_is_stored() {
    let (_dir, store, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("assign-device-school/assign.json"))
            .await,
    );
    assert_eq!(
        body,
        serde_json::json!({"device_id": "device_12345", "school_id": "oakwood"})
    );
    let state = store.load(&device("device_12345")).await.unwrap().unwrap().state;
    assert_eq!(state.school_id.as_ref().map(|s| s.as_str()), Some("oakwood"));
}
