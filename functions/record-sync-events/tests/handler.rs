//! record-sync-events' handler, called directly with the example events in
//! `events/record-sync-events/`, as API Gateway delivers them.

use pisync_shared::auth::Authenticator;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::ports::{HistoryQuery, Order, ReadHistory};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, provision_token_of, reply_json, Case,
};
use pisync_shared::test_util::{device, local, sqlite_store, TempDir};
use record_sync_events::RecordSyncEvents;
use std::time::Duration;

/// (file, status, error code)
const CASES: &[Case] = &[
    ("record-sync-events/backlog.json", 200, None),
    (
        "record-sync-events/invalid-envelope.json",
        400,
        Some("invalid_batch"),
    ),
    ("record-sync-events/no-token.json", 401, Some("unauthorized")),
    (
        "record-sync-events/wrong-content-type.json",
        415,
        Some("unsupported_media_type"),
    ),
];

async fn handler() -> (
    TempDir,
    RecordSyncEvents,
    pisync_shared::adapters::sqlite::SqliteStore,
) {
    let (dir, store) = sqlite_store();
    provision_token_of("record-sync-events/backlog.json", &store).await;
    let mut local = local(store.clone());
    local.auth = Authenticator::devices(
        local.keys.clone(),
        local.credentials.clone(),
        Duration::from_secs(60),
    );
    let deps = RecordSyncEvents::from_local(&local);
    (dir, deps, store)
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, deps, _) = handler().await;
    assert_examples_answered("record-sync-events", CASES, &deps).await;
}

/// Each item is answered as `POST /sync-event` would answer it alone; duplicates in
/// the batch are replays or conflicts of the first; one item's problem never
/// affects another.
#[tokio::test]
async fn a_mixed_backlog_is_answered_item_by_item() {
    let (_dir, deps, store) = handler().await;
    let body = reply_json(&deps.handle(api_request("record-sync-events/backlog.json")).await);
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 201, 403, 400, 200, 409], "{body}");
    assert_eq!(
        (
            body["created"].as_u64(),
            body["replayed"].as_u64(),
            body["rejected"].as_u64()
        ),
        (Some(2), Some(1), Some(3))
    );
    assert_eq!(body["results"][0]["event"]["outcome"], "success");
    assert_eq!(body["results"][2]["error"]["code"], "forbidden");
    assert_eq!(
        error_fields(&body["results"][3]),
        ["timestamp", "total_files_synced"]
    );
    assert_eq!(
        body["results"][4]["event"], body["results"][0]["event"],
        "the replay answers the stored copy"
    );
    assert_eq!(body["results"][5]["error"]["code"], "conflict");
    assert_eq!(error_fields(&body["results"][5]), ["total_errors"]);
    // Exactly the two new events are stored; sending the backlog again stores nothing.
    let query = HistoryQuery {
        from: None,
        to: None,
        order: Order::Asc,
        limit: 10,
        after: None,
    };
    let stored = |id: &'static str| {
        let (store, query) = (store.clone(), query.clone());
        async move { store.history(&device(id), &query).await.unwrap().events.len() }
    };
    assert_eq!(stored("device_12345").await, 2);
    let again = reply_json(&deps.handle(api_request("record-sync-events/backlog.json")).await);
    assert_eq!(
        (again["created"].as_u64(), again["replayed"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(stored("device_12345").await, 2, "nothing stored twice");
    assert_eq!(
        stored("device_99999").await,
        0,
        "nothing stored for another device"
    );
}

#[tokio::test]
async fn every_envelope_problem_is_listed() {
    let (_dir, deps, _) = handler().await;
    let body = reply_json(
        &deps
            .handle(api_request("record-sync-events/invalid-envelope.json"))
            .await,
    );
    assert_eq!(error_fields(&body), ["evnts", "events"]);
}
