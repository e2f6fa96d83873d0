//! Feeds every file in events/ to its handler, as API Gateway and the DynamoDB event
//! source mapping would deliver it, and checks the answer.

use crate::support::{handlers, Handlers};
use lambda_http::Body;
use pisync_shared::ports::DeviceStates;
use pisync_shared::DeviceId;
use std::path::{Path, PathBuf};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(events_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn request(rel: &str) -> lambda_http::Request {
    lambda_http::request::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn stream_event(rel: &str) -> aws_lambda_events::event::dynamodb::Event {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json(body: &Body) -> serde_json::Value {
    serde_json::from_slice(body.as_ref()).expect("every response is JSON")
}

fn check_headers(rel: &str, response: &lambda_http::Response<Body>) {
    crate::support::assert_standard_headers(response.headers(), rel);
}

/// (file, expected status, expected error code)
const HTTP_CASES: &[(&str, u16, Option<&str>)] = &[
    ("record-sync-event/new-event.json", 201, None),
    ("record-sync-event/failed-sync.json", 201, None),
    ("record-sync-event/base64-body.json", 201, None),
    (
        "record-sync-event/invalid-fields.json",
        400,
        Some("invalid_event"),
    ),
    ("record-sync-event/unknown-field.json", 400, Some("invalid_event")),
    (
        "record-sync-event/malformed-json.json",
        400,
        Some("invalid_event"),
    ),
    (
        "record-sync-event/wrong-content-type.json",
        415,
        Some("unsupported_media_type"),
    ),
    ("record-sync-event/too-large.json", 413, Some("payload_too_large")),
    ("get-sync-history/newest-first.json", 200, None),
    ("get-sync-history/window-oldest-first.json", 200, None),
    (
        "get-sync-history/unknown-device.json",
        404,
        Some("device_not_found"),
    ),
    (
        "get-sync-history/bad-parameters.json",
        400,
        Some("invalid_request"),
    ),
    (
        "get-sync-history/tampered-cursor.json",
        400,
        Some("invalid_request"),
    ),
    ("list-repeated-failures/first-page.json", 200, None),
    (
        "list-repeated-failures/bad-limit.json",
        400,
        Some("invalid_request"),
    ),
];

const STREAM_CASES: &[&str] = &[
    "detect-failures/three-failures.json",
    "detect-failures/recovery.json",
];

async fn call(h: &Handlers, rel: &str) -> lambda_http::Response<Body> {
    let req = request(rel);
    match rel.split('/').next() {
        Some("record-sync-event") => record_sync_event::handle(&h.record, req).await,
        Some("get-sync-history") => get_sync_history::handle(&h.history, req).await,
        Some("list-repeated-failures") => list_repeated_failures::handle(&h.failures, req).await,
        other => panic!("no handler for {other:?}"),
    }
}

/// device_12345's events that the stream events refer to: three failures, then a success.
const FAILURES: [(&str, u32); 3] = [
    ("2025-05-07T10:31:00Z", 2),
    ("2025-05-07T10:32:00Z", 4),
    ("2025-05-07T10:33:00Z", 1),
];
const SUCCESS: [(&str, u32); 1] = [("2025-05-07T10:40:00Z", 0)];

async fn seed(h: &Handlers) {
    store(h, &FAILURES).await;
    store(h, &SUCCESS).await;
}

/// Stores events through the record handler.
async fn store(h: &Handlers, events: &[(&str, u32)]) {
    for &(ts, errors) in events {
        let body = format!(
            r#"{{"device_id":"device_12345","timestamp":"{ts}","total_files_synced":42,"total_errors":{errors},"internet_speed":5.3}}"#
        );
        let req = lambda_http::http::Request::post("/sync-event")
            .header("content-type", "application/json")
            .body(Body::Text(body))
            .unwrap();
        assert_eq!(record_sync_event::handle(&h.record, req).await.status(), 201);
    }
}

#[test]
fn every_event_file_has_a_case() {
    let mut listed: Vec<String> = HTTP_CASES.iter().map(|c| c.0.to_owned()).collect();
    listed.extend(STREAM_CASES.iter().map(|c| c.to_string()));
    for dir in std::fs::read_dir(events_dir()).unwrap() {
        let dir = dir.unwrap().path();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let rel = format!(
                "{}/{}",
                dir.file_name().unwrap().to_str().unwrap(),
                file.file_name().unwrap().to_str().unwrap()
            );
            assert!(listed.contains(&rel), "{rel} is not exercised by a test");
        }
    }
}

#[tokio::test]
async fn http_events_get_their_documented_answers() {
    let h = handlers();
    seed(&h).await;
    for (rel, status, code) in HTTP_CASES {
        let response = call(&h, rel).await;
        assert_eq!(
            response.status().as_u16(),
            *status,
            "{rel}: {:?}",
            response.body()
        );
        check_headers(rel, &response);
        let body = json(response.body());
        match code {
            Some(code) => {
                assert_eq!(body["error"]["code"], *code, "{rel}");
                assert_eq!(
                    body["request_id"], "Q1w2E3r4T5y6U7i=",
                    "{rel}: API Gateway's request id"
                );
            }
            None => assert!(body.get("error").is_none(), "{rel}"),
        }
    }
}

#[tokio::test]
async fn event_bodies_say_what_is_wrong() {
    let h = handlers();
    let body = json(call(&h, "record-sync-event/invalid-fields.json").await.body());
    let fields = crate::support::error_fields(&body);
    assert_eq!(
        fields,
        [
            "device_id",
            "timestamp",
            "total_files_synced",
            "total_errors",
            "internet_speed"
        ]
    );
    let body = json(call(&h, "record-sync-event/unknown-field.json").await.body());
    assert_eq!(body["error"]["details"][0]["field"], "total_eror");
    let body = json(call(&h, "get-sync-history/bad-parameters.json").await.body());
    assert_eq!(body["error"]["details"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn record_events_store_and_replay() {
    let h = handlers();
    let first = call(&h, "record-sync-event/failed-sync.json").await;
    assert_eq!(first.status(), 201);
    let stored = json(first.body());
    assert_eq!(
        stored["timestamp"], "2025-05-07T10:35:00.000Z",
        "+05:30 normalised to UTC"
    );
    assert_eq!(stored["outcome"], "failure");
    let again = call(&h, "record-sync-event/failed-sync.json").await;
    assert_eq!(again.status(), 200, "an exact replay");
    assert_eq!(json(again.body()), stored, "the stored event, unchanged");
}

/// The timestamps of a history page's events, in page order.
fn timestamps(body: &serde_json::Value) -> Vec<&str> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn history_events_page_the_seeded_device() {
    let h = handlers();
    seed(&h).await;
    let body = json(call(&h, "get-sync-history/newest-first.json").await.body());
    let times = timestamps(&body);
    assert_eq!(
        times,
        [
            "2025-05-07T10:40:00.000Z",
            "2025-05-07T10:33:00.000Z",
            "2025-05-07T10:32:00.000Z",
            "2025-05-07T10:31:00.000Z"
        ]
    );
    assert_eq!(body["next_cursor"], serde_json::Value::Null);
    let body = json(call(&h, "get-sync-history/window-oldest-first.json").await.body());
    let times = timestamps(&body);
    assert_eq!(times, ["2025-05-07T10:31:00.000Z", "2025-05-07T10:32:00.000Z"]);
    assert!(body["next_cursor"].is_string());
}

#[tokio::test]
async fn stream_events_alert_then_recover() {
    let h = handlers();
    store(&h, &FAILURES).await;
    let response =
        detect_failures::handle(&h.detect, stream_event("detect-failures/three-failures.json")).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.alerts.kinds(), ["device.repeated_sync_failures"]);
    let device = DeviceId::parse("device_12345").unwrap();
    assert_eq!(
        h.store
            .load(&device)
            .await
            .unwrap()
            .unwrap()
            .state
            .consecutive_failures(),
        3
    );
    // The failures list now shows the device.
    let body = json(call(&h, "list-repeated-failures/first-page.json").await.body());
    assert_eq!(body["devices"][0]["device_id"], "device_12345");
    assert_eq!(body["devices"][0]["consecutive_failures"], 3);
    // Redelivery of the same batch changes nothing and alerts no more.
    let response =
        detect_failures::handle(&h.detect, stream_event("detect-failures/three-failures.json")).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.alerts.kinds().len(), 1);
    // The success is stored; its batch also holds state-item records, which are skipped.
    store(&h, &SUCCESS).await;
    let response = detect_failures::handle(&h.detect, stream_event("detect-failures/recovery.json")).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        h.alerts.kinds(),
        ["device.repeated_sync_failures", "device.sync_recovered"]
    );
    let body = json(call(&h, "list-repeated-failures/first-page.json").await.body());
    assert_eq!(body["devices"], serde_json::json!([]));
}

#[tokio::test]
async fn undecodable_stream_records_are_reported_as_failures() {
    let h = handlers();
    seed(&h).await;
    let mut event = stream_event("detect-failures/three-failures.json");
    // Corrupt the second record's image: its total_errors is no number.
    let image = serde_json::json!({
        "pk": {"S": "DEVICE#device_12345"}, "sk": {"S": "EVENT#2025-05-07T10:33:00.000Z"},
        "device_id": {"S": "device_12345"}, "timestamp": {"S": "2025-05-07T10:33:00.000Z"},
        "total_files_synced": {"N": "42"}, "total_errors": {"S": "many"}, "internet_speed": {"N": "5.3"},
        "outcome": {"S": "failure"}, "received_at": {"S": "2025-05-07T10:33:05.000Z"}
    });
    event.records[1].change.new_image = serde_json::from_value(image).unwrap();
    let response = detect_failures::handle(&h.detect, event).await;
    let ids: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["111000000000000000000003"],
        "the undecodable record, by its sequence number"
    );
}
