//! The audit trail through the runner, on both stores: every admin action leaves an
//! entry naming its actor and request, never a token; a school admin reads its
//! schools' entries only; readers read none.

use crate::support::on_both_backends;
use crate::support::runner::{Backend, TestApp};
use serde_json::{json, Value};

fn actions(page: &Value) -> Vec<(String, String)> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(action: &str, target: &str) -> (String, String) {
    (action.to_owned(), target.to_owned())
}

/// Each admin action, newest first, with its actor and request id.
async fn every_admin_action_is_recorded(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let admin = app.administrator();
    assert_eq!(
        admin
            .put_school("north", json!({"name": "North", "timezone": "UTC"}))
            .await
            .status,
        201
    );
    assert_eq!(
        admin
            .put_school("north", json!({"name": "North 2", "timezone": "UTC"}))
            .await
            .status,
        200
    );
    let issued = admin.issue_device_credentials("dev-1", Some("north")).await;
    assert_eq!(issued.status, 201);
    let token = issued.body["token"].as_str().unwrap().to_owned();
    assert_eq!(admin.assign_school("dev-1", None).await.status, 200);
    assert_eq!(admin.revoke_device_credentials("dev-1").await.status, 204);
    assert_eq!(admin.delete_school("north").await.status, 204);

    let page = admin.list_audit("").await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(
        actions(&page.body),
        [
            pair("school.deleted", "north"),
            pair("credentials.revoked", "dev-1"),
            pair("device.assigned", "dev-1"),
            pair("credentials.issued", "dev-1"),
            pair("device.assigned", "dev-1"),
            pair("school.replaced", "north"),
            pair("school.created", "north"),
        ]
    );
    let entries = page.body["entries"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["actor"] == "local-operator"));
    assert!(entries
        .iter()
        .all(|e| e["request_id"].as_str().is_some_and(|id| !id.is_empty())));
    assert_eq!(entries[2]["previous_school_id"], "north", "moved out of north");
    assert!(!page.body.to_string().contains(&token), "never a token");

    let first = admin.list_audit("limit=4").await.body;
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = admin.list_audit(&format!("cursor={cursor}")).await.body;
    assert_eq!(actions(&rest).len(), 3, "paged: 4 + 3");
}

/// A school admin reads its school's entries, including a device moved out of it;
/// a reader reads none.
async fn school_admins_read_their_schools_entries_only(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let admin = app.administrator();
    for school in ["north", "south"] {
        admin
            .put_school(school, json!({"name": school, "timezone": "UTC"}))
            .await;
    }
    admin.assign_school("n-1", Some("north")).await;
    admin.assign_school("s-1", Some("south")).await;
    let north_admin = app.named_school_operator("nora", &["north"], true);
    let north = app.as_operator(Some(&north_admin));
    assert_eq!(north.issue_device_credentials("n-1", None).await.status, 201);
    admin.assign_school("n-1", Some("south")).await;
    let page = north.list_audit("").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        actions(&page.body),
        [
            pair("device.assigned", "n-1"),
            pair("credentials.issued", "n-1"),
            pair("device.assigned", "n-1"),
            pair("school.created", "north"),
        ]
    );
    assert_eq!(page.body["entries"][1]["actor"], "nora");
    let reader = app.reader().list_audit("").await;
    assert_eq!(
        (reader.status, reader.body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
}

on_both_backends!(
    every_admin_action_is_recorded,
    school_admins_read_their_schools_entries_only,
);
