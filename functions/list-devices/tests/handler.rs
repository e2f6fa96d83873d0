//! list-devices' handler, called directly with the example events in
//! `events/list-devices/`, over an embedded store with a small fleet.

use list_devices::ListDevices;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, reply_json, Case,
};
use pisync_shared::test_util::{local, record_and_apply, school_with, sqlite_store, stored_event, TempDir};

/// (file, status, error code)
const CASES: &[Case] = &[
    ("list-devices/all-first-page.json", 200, None),
    ("list-devices/bad-parameters.json", 400, Some("invalid_request")),
    ("list-devices/failing.json", 200, None),
    ("list-devices/no-pisync-group.json", 403, Some("forbidden")),
    ("list-devices/one-school.json", 200, None),
    (
        "list-devices/school-operator-asks-another.json",
        404,
        Some("school_not_found"),
    ),
];

/// a-healthy, b-failing (3 failures), c-failing (4), d-healthy.
async fn seeded() -> (TempDir, ListDevices) {
    let (dir, store) = sqlite_store();
    for (device, failures) in [
        ("a-healthy", 0),
        ("b-failing", 3),
        ("c-failing", 4),
        ("d-healthy", 0),
    ] {
        for m in 0..failures.max(1) {
            let e = stored_event(device, m, u32::from(failures > 0));
            record_and_apply(&store, &e).await;
        }
    }
    school_with(&store, "riverside", &["c-failing", "d-healthy"]).await;
    let deps = ListDevices::from_local(&local(store));
    (dir, deps)
}

fn ids(body: &serde_json::Value) -> Vec<&str> {
    body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, deps) = seeded().await;
    assert_examples_answered("list-devices", CASES, &deps).await;
}

#[tokio::test]
async fn all_devices_by_id_failing_longest_first() {
    let (_dir, deps) = seeded().await;
    let first = reply_json(&deps.handle(api_request("list-devices/all-first-page.json")).await);
    assert_eq!(ids(&first), ["a-healthy", "b-failing"], "limit=2, by device id");
    assert!(first["next_cursor"].is_string());
    assert_eq!(first["devices"][1]["status"], "failing");
    assert_eq!(first["devices"][1]["totals"]["failures"], 3);
    let failing = reply_json(&deps.handle(api_request("list-devices/failing.json")).await);
    assert_eq!(ids(&failing), ["c-failing", "b-failing"]);
    assert!(failing["next_cursor"].is_null());
}

#[tokio::test]
async fn every_bad_parameter_is_listed() {
    let (_dir, deps) = seeded().await;
    let body = reply_json(&deps.handle(api_request("list-devices/bad-parameters.json")).await);
    let mut fields = error_fields(&body);
    fields.sort();
    assert_eq!(fields, ["limit", "status"]);
}

#[tokio::test]
async fn one_schools_devices_only() {
    let (_dir, deps) = seeded().await;
    let body = reply_json(&deps.handle(api_request("list-devices/one-school.json")).await);
    assert_eq!(ids(&body), ["c-failing", "d-healthy"]);
    assert_eq!(body["devices"][0]["school_id"], "riverside");
}
