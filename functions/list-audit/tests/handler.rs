//! list-audit's handler, called directly with the example events in
//! `events/list-audit/`: a trail of three admin actions, one about oakwood.

use list_audit::ListAudit;
use pisync_shared::domain::audit::{AuditAction, AuditEntry};
use pisync_shared::domain::school::SchoolId;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::ports::AuditTrail;
use pisync_shared::test_util::lambda_events::{api_request, assert_examples_answered, reply_json, Case};
use pisync_shared::test_util::{local, minute, sqlite_store, TempDir};

/// (file, status, error code)
const CASES: &[Case] = &[
    ("list-audit/bad-cursor.json", 400, Some("invalid_request")),
    ("list-audit/first-page.json", 200, None),
    ("list-audit/reader.json", 403, Some("forbidden")),
    ("list-audit/school-admin.json", 200, None),
];

async fn seeded() -> (TempDir, ListAudit) {
    let (dir, store) = sqlite_store();
    let oakwood = SchoolId::parse("oakwood").unwrap();
    let entries = [
        (1, AuditAction::SchoolCreated, "oakwood", Some(oakwood.clone())),
        (2, AuditAction::CredentialsIssued, "device_12345", None),
        (3, AuditAction::DeviceAssigned, "device_777", Some(oakwood)),
    ];
    for (m, action, target, school_id) in entries {
        let entry = AuditEntry {
            at: minute(m),
            actor: "ana".into(),
            action,
            target: target.into(),
            school_id,
            previous_school_id: None,
            request_id: format!("req-{m}"),
        };
        store.record_action(&entry).await.unwrap();
    }
    (dir, ListAudit::from_local(&local(store)))
}

fn targets(body: &serde_json::Value) -> Vec<&str> {
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, handler) = seeded().await;
    assert_examples_answered("list-audit", CASES, &handler).await;
}

#[tokio::test]
async fn a_district_admin_pages_through_every_entry_newest_first() {
    let (_dir, handler) = seeded().await;
    let first = reply_json(&handler.handle(api_request("list-audit/first-page.json")).await);
    assert_eq!(targets(&first), ["device_777"], "limit=1, newest first");
    assert_eq!(first["entries"][0]["action"], "device.assigned");
    assert_eq!(first["entries"][0]["actor"], "ana");
    assert_eq!(first["entries"][0]["request_id"], "req-3");
    assert!(first["next_cursor"].is_string());
}

/// An admin of oakwood reads oakwood's entries only: not the unassigned device's.
#[tokio::test]
async fn a_school_admin_reads_its_schools_entries_only() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(&handler.handle(api_request("list-audit/school-admin.json")).await);
    assert_eq!(targets(&body), ["device_777", "oakwood"]);
    assert!(body["next_cursor"].is_null());
}
