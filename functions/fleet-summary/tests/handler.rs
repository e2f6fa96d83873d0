//! fleet-summary's handler, called directly with the example events in
//! `events/fleet-summary/`, over an embedded store with today's syncs.

use fleet_summary::FleetSummary;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, reply_json, Case,
};
use pisync_shared::test_util::{local, record_and_apply, sqlite_store, wait_out_date_change, TempDir};
use pisync_shared::{DeviceId, EventTime, Outcome, StoredEvent};
use std::time::Duration;

/// (file, status, error code)
const CASES: &[Case] = &[
    ("fleet-summary/bad-days.json", 400, Some("invalid_request")),
    ("fleet-summary/fourteen-days.json", 200, None),
    ("fleet-summary/no-authorizer.json", 401, Some("unauthorized")),
    ("fleet-summary/one-school.json", 200, None),
];

fn today_event(device: &str, minutes_ago: i64, errors: u32, speed: f64) -> StoredEvent {
    let now = EventTime::now();
    StoredEvent {
        device_id: DeviceId::parse(device).unwrap(),
        timestamp: now.plus_millis(-minutes_ago * 60_000),
        total_files_synced: 10,
        total_errors: errors,
        internet_speed: speed,
        outcome: Outcome::of(errors),
        received_at: now,
    }
}

async fn seeded() -> (TempDir, FleetSummary) {
    // Seeded and read on one UTC date, even just before midnight.
    wait_out_date_change(Duration::from_secs(5), &[chrono_tz::UTC]).await;
    let (dir, store) = sqlite_store();
    // Two syncs today, one failed; as detection records them (on this store, each
    // state save adds its day totals).
    let events = [today_event("a", 0, 0, 2.0), today_event("b", 0, 3, 4.0)];
    for e in &events {
        record_and_apply(&store, e).await;
    }
    pisync_shared::test_util::school_with(&store, "riverside", &[]).await;
    let deps = FleetSummary::from_local(&local(store));
    (dir, deps)
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, deps) = seeded().await;
    assert_examples_answered("fleet-summary", CASES, &deps).await;
}

#[tokio::test]
async fn fourteen_days_oldest_first_ending_today() {
    let (_dir, deps) = seeded().await;
    let body = reply_json(&deps.handle(api_request("fleet-summary/fourteen-days.json")).await);
    assert_eq!(
        body["devices"],
        serde_json::json!({"total": 2, "healthy": 2, "failing": 0, "silent": 0})
    );
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 14);
    let today = &days[13];
    assert_eq!(today["date"], EventTime::now().to_string()[..10]);
    assert_eq!(
        (today["syncs"].as_u64(), today["failures"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(today["failure_rate"], 0.5);
    assert_eq!(today["mean_internet_speed"], 3.0);
    assert_eq!(days[0]["syncs"], 0);
    assert!(days[0]["mean_internet_speed"].is_null());
    assert!(days
        .windows(2)
        .all(|w| w[0]["date"].as_str() < w[1]["date"].as_str()));
}

#[tokio::test]
async fn days_out_of_range_are_refused() {
    let (_dir, deps) = seeded().await;
    let body = reply_json(&deps.handle(api_request("fleet-summary/bad-days.json")).await);
    assert_eq!(error_fields(&body), ["days"]);
}
