//! school-analytics's handler, called directly with the example events in
//! `events/school-analytics/`, over an embedded store with three schools whose devices
//! failed more or less this week.

use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, reply_json, Case,
};
use pisync_shared::test_util::{local, record_and_apply, school_with, sqlite_store, TempDir};
use pisync_shared::{DeviceId, EventTime, Outcome, StoredEvent};
use school_analytics::SchoolAnalytics;

/// (file, status, error code)
const CASES: &[Case] = &[
    ("school-analytics/bad-days.json", 400, Some("invalid_request")),
    ("school-analytics/no-authorizer.json", 401, Some("unauthorized")),
    ("school-analytics/seven-days.json", 200, None),
    ("school-analytics/thirty-days.json", 200, None),
];

fn synced(device: &str, hours_ago: i64, errors: u32, speed: f64) -> StoredEvent {
    let now = EventTime::now();
    StoredEvent {
        device_id: DeviceId::parse(device).unwrap(),
        timestamp: now.plus_millis(-hours_ago * 3_600_000),
        total_files_synced: 1,
        total_errors: errors,
        internet_speed: speed,
        outcome: Outcome::of(errors),
        received_at: now,
    }
}

/// north: 1 of 4 failed; south: 2 of 2; east: none of 1; west: no syncs; and 10 days
/// ago (outside a week) south's third device failed 4 times.
async fn seeded() -> (TempDir, SchoolAnalytics) {
    let (dir, store) = sqlite_store();
    school_with(&store, "north", &["n1", "n2"]).await;
    school_with(&store, "south", &["s1", "s2", "s3"]).await;
    school_with(&store, "east", &["e1"]).await;
    school_with(&store, "west", &[]).await;
    let events = [
        synced("n1", 1, 0, 10.0),
        synced("n1", 2, 0, 20.0),
        synced("n2", 3, 0, 30.0),
        synced("n2", 4, 1, 0.0),
        synced("s1", 5, 2, 0.0),
        synced("s2", 6, 3, 0.0),
        synced("e1", 7, 0, 50.0),
    ];
    for e in events.iter().chain(
        (0..4)
            .map(|i| synced("s3", 240 + i, 1, 0.0))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        record_and_apply(&store, e).await;
    }
    (dir, SchoolAnalytics::from_local(&local(store)))
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, handler) = seeded().await;
    assert_examples_answered("school-analytics", CASES, &handler).await;
}

#[tokio::test]
async fn schools_are_ranked_by_failure_rate_over_the_window() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("school-analytics/seven-days.json"))
            .await,
    );
    let schools = body["schools"].as_array().unwrap();
    let order: Vec<&str> = schools.iter().map(|s| s["school_id"].as_str().unwrap()).collect();
    assert_eq!(order, ["south", "north", "east", "west"], "ties (0) by id");
    let north = &schools[1];
    assert_eq!(north["name"], "School north");
    assert_eq!(
        (north["syncs"].as_u64(), north["failures"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(north["failure_rate"], 0.25);
    assert_eq!(north["devices_reporting"], 2);
    assert_eq!(
        north["devices"],
        serde_json::json!({"total": 2, "healthy": 2, "failing": 0, "silent": 0})
    );
    let speed = &north["internet_speed"];
    assert_eq!(speed["mean"], 15.0);
    assert!(
        (speed["p50"].as_f64().unwrap() / 10.0 - 1.0).abs() <= 0.01,
        "{speed}"
    );
    let south = &schools[0];
    assert_eq!(
        (south["syncs"].as_u64(), south["devices_reporting"].as_u64()),
        (Some(2), Some(2)),
        "s3's syncs are older than a week"
    );
    assert!(schools[3]["internet_speed"].is_null(), "west: no syncs");
}

#[tokio::test]
async fn a_longer_window_takes_in_older_days() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("school-analytics/thirty-days.json"))
            .await,
    );
    let south = &body["schools"][0];
    assert_eq!(south["school_id"], "south");
    assert_eq!(
        (south["syncs"].as_u64(), south["devices_reporting"].as_u64()),
        (Some(6), Some(3))
    );
}

#[tokio::test]
async fn unknown_parameters_and_bad_days_are_listed() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("school-analytics/bad-days.json"))
            .await,
    );
    assert_eq!(error_fields(&body), ["limit", "days"]);
}
