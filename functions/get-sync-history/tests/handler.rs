//! get-sync-history's handler, called directly with the example events in
//! `events/get-sync-history/`, over a seeded embedded store.

use get_sync_history::GetSyncHistory;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::ports::RecordEvents;
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, reply_json, Case,
};
use pisync_shared::test_util::{local, sqlite_store, stored_event_at};

/// (file, status, error code)
const CASES: &[Case] = &[
    (
        "get-sync-history/another-schools-device.json",
        404,
        Some("device_not_found"),
    ),
    (
        "get-sync-history/bad-parameters.json",
        400,
        Some("invalid_request"),
    ),
    ("get-sync-history/newest-first.json", 200, None),
    ("get-sync-history/no-authorizer.json", 401, Some("unauthorized")),
    ("get-sync-history/no-pisync-group.json", 403, Some("forbidden")),
    (
        "get-sync-history/tampered-cursor.json",
        400,
        Some("invalid_request"),
    ),
    (
        "get-sync-history/unknown-device.json",
        404,
        Some("device_not_found"),
    ),
    ("get-sync-history/window-oldest-first.json", 200, None),
];

/// device_12345's reports the example events page through.
const SEEDED: [(&str, u32); 4] = [
    ("2025-05-07T10:31:00Z", 2),
    ("2025-05-07T10:32:00Z", 4),
    ("2025-05-07T10:33:00Z", 1),
    ("2025-05-07T10:40:00Z", 0),
];

async fn seeded() -> (pisync_shared::test_util::TempDir, GetSyncHistory) {
    let (dir, store) = sqlite_store();
    for (ts, errors) in SEEDED {
        store
            .record(stored_event_at("device_12345", ts, errors))
            .await
            .expect("stored");
    }
    let deps = GetSyncHistory::from_local(&local(store));
    (dir, deps)
}

fn timestamps(body: &serde_json::Value) -> Vec<&str> {
    body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["timestamp"].as_str().expect("a timestamp"))
        .collect()
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, deps) = seeded().await;
    assert_examples_answered("get-sync-history", CASES, &deps).await;
}

#[tokio::test]
async fn pages_come_newest_first_or_in_the_window_asked() {
    let (_dir, deps) = seeded().await;
    let body = reply_json(
        &deps
            .handle(api_request("get-sync-history/newest-first.json"))
            .await,
    );
    assert_eq!(
        timestamps(&body),
        [
            "2025-05-07T10:40:00.000Z",
            "2025-05-07T10:33:00.000Z",
            "2025-05-07T10:32:00.000Z",
            "2025-05-07T10:31:00.000Z"
        ]
    );
    assert_eq!(body["next_cursor"], serde_json::Value::Null);
    let body = reply_json(
        &deps
            .handle(api_request("get-sync-history/window-oldest-first.json"))
            .await,
    );
    assert_eq!(
        timestamps(&body),
        ["2025-05-07T10:31:00.000Z", "2025-05-07T10:32:00.000Z"]
    );
    assert!(body["next_cursor"].is_string());
}

#[tokio::test]
async fn bad_parameters_are_all_reported() {
    let (_dir, deps) = seeded().await;
    let body = reply_json(
        &deps
            .handle(api_request("get-sync-history/bad-parameters.json"))
            .await,
    );
    assert_eq!(error_fields(&body).len(), 3, "{body}");
}

/// Every problem at once: a bad limit and a bad cursor are both named.
#[tokio::test]
async fn a_bad_cursor_is_reported_with_the_other_problems() {
    use lambda_http::RequestExt;
    let (_dir, deps) = seeded().await;
    let query: std::collections::HashMap<String, String> = [("limit", "0"), ("cursor", "garbage")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    let req = api_request("get-sync-history/newest-first.json").with_query_string_parameters(query);
    let response = deps.handle(req).await;
    assert_eq!(response.status(), 400);
    let mut fields = error_fields(&reply_json(&response));
    fields.sort();
    assert_eq!(fields, ["cursor", "limit"]);
}

/// A cursor carries its page's order and bounds: the next page needs only the
/// cursor, and a parameter given with it that is not the cursor's is refused.
#[tokio::test]
async fn the_next_page_needs_only_the_cursor() {
    use lambda_http::RequestExt;
    let (_dir, deps) = seeded().await;
    let with = |pairs: &[(&str, &str)]| {
        let query: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        api_request("get-sync-history/newest-first.json").with_query_string_parameters(query)
    };
    let first = reply_json(
        &deps
            .handle(with(&[
                ("limit", "1"),
                ("order", "asc"),
                ("from", "2025-05-07T10:32:00Z"),
            ]))
            .await,
    );
    assert_eq!(first["events"][0]["timestamp"], "2025-05-07T10:32:00.000Z");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = reply_json(&deps.handle(with(&[("limit", "1"), ("cursor", &cursor)])).await);
    assert_eq!(
        second["events"][0]["timestamp"], "2025-05-07T10:33:00.000Z",
        "still ascending from 10:32"
    );
    let same = deps.handle(with(&[("cursor", &cursor), ("order", "asc")])).await;
    assert_eq!(same.status(), 200, "its own parameters may be repeated");
    let other = deps.handle(with(&[("cursor", &cursor), ("order", "desc")])).await;
    assert_eq!(other.status(), 400);
    assert_eq!(error_fields(&reply_json(&other)), ["cursor"]);
}
