//! daily-analytics's handler, called directly with the example events in
//! `events/daily-analytics/`, over an embedded store with today's syncs in riverside,
//! a school on UTC+14 (its today is often the fleet's tomorrow).

use daily_analytics::DailyAnalytics;
use pisync_shared::domain::fleet::Day;
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::ports::ManageSchools;
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, error_fields, reply_json, Case,
};
use pisync_shared::test_util::{
    local, record_and_apply, school, sqlite_store, wait_out_date_change, TempDir,
};
use pisync_shared::{DeviceId, EventTime, Outcome, StoredEvent};
use std::time::Duration;

/// (file, status, error code)
const CASES: &[Case] = &[
    (
        "daily-analytics/another-schools.json",
        404,
        Some("school_not_found"),
    ),
    ("daily-analytics/bad-query.json", 400, Some("invalid_request")),
    ("daily-analytics/fleet-fourteen-days.json", 200, None),
    ("daily-analytics/no-authorizer.json", 401, Some("unauthorized")),
    ("daily-analytics/one-school.json", 200, None),
];

const KIRITIMATI: chrono_tz::Tz = chrono_tz::Pacific::Kiritimati;

/// Ten syncs now from four devices, speeds 1 to 10 Mbit/s, the last two failing.
fn syncs_now() -> Vec<StoredEvent> {
    let now = EventTime::now();
    (1..=10)
        .map(|i| StoredEvent {
            device_id: DeviceId::parse(&format!("pibook-{}", i % 4)).unwrap(),
            timestamp: now.plus_millis(-i),
            total_files_synced: 3,
            total_errors: u32::from(i > 8),
            internet_speed: i as f64,
            outcome: Outcome::of(u32::from(i > 8)),
            received_at: now,
        })
        .collect()
}

async fn seeded() -> (TempDir, DailyAnalytics) {
    // Seeded and read on one date in UTC and in riverside, even just before a midnight.
    wait_out_date_change(Duration::from_secs(5), &[chrono_tz::UTC, KIRITIMATI]).await;
    let (dir, store) = sqlite_store();
    let mut riverside = school("riverside");
    riverside.timezone = KIRITIMATI;
    store.put_school(&riverside, true).await.unwrap();
    for d in 0..4 {
        let device = DeviceId::parse(&format!("pibook-{d}")).unwrap();
        pisync_shared::domain::assignment::assign(
            &store,
            &device,
            Some(&riverside.school_id),
            Default::default(),
            |_| true,
            EventTime::now(),
        )
        .await
        .unwrap();
    }
    for e in &syncs_now() {
        record_and_apply(&store, e).await;
    }
    (dir, DailyAnalytics::from_local(&local(store)))
}

/// Today's entry: the last day.
fn today(body: &serde_json::Value) -> &serde_json::Value {
    body["days"].as_array().unwrap().last().unwrap()
}

fn assert_todays_figures(day: &serde_json::Value) {
    assert_eq!(
        (day["syncs"].as_u64(), day["failures"].as_u64()),
        (Some(10), Some(2))
    );
    assert_eq!(day["failure_rate"], 0.2);
    assert_eq!(day["files_synced"], 30);
    assert_eq!(day["devices_reporting"], 4);
    let speed = &day["internet_speed"];
    let near = |got: &serde_json::Value, want: f64| (got.as_f64().unwrap() / want - 1.0).abs() <= 0.01;
    assert!(near(&speed["p50"], 5.0), "{speed}");
    assert!(near(&speed["p90"], 9.0), "{speed}");
    assert_eq!(speed["mean"], 5.5);
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, handler) = seeded().await;
    assert_examples_answered("daily-analytics", CASES, &handler).await;
}

#[tokio::test]
async fn the_fleets_days_are_utc_days_oldest_first() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("daily-analytics/fleet-fourteen-days.json"))
            .await,
    );
    assert_eq!(body["school_id"], serde_json::Value::Null);
    assert_eq!(body["timezone"], "UTC");
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 14);
    assert!(days
        .windows(2)
        .all(|w| w[0]["date"].as_str() < w[1]["date"].as_str()));
    assert_eq!(today(&body)["date"], Day::of(EventTime::now()).text());
    assert_todays_figures(today(&body));
    assert_eq!(days[0]["syncs"], 0);
    assert!(days[0]["internet_speed"].is_null(), "no syncs, no speed");
}

#[tokio::test]
async fn a_schools_days_are_its_local_days() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("daily-analytics/one-school.json"))
            .await,
    );
    assert_eq!(body["school_id"], "riverside");
    assert_eq!(body["timezone"], "Pacific/Kiritimati");
    assert_eq!(body["days"].as_array().unwrap().len(), 7);
    assert_eq!(
        today(&body)["date"],
        Day::local(EventTime::now(), KIRITIMATI).text()
    );
    assert_todays_figures(today(&body));
}

#[tokio::test]
async fn every_bad_parameter_is_listed() {
    let (_dir, handler) = seeded().await;
    let body = reply_json(
        &handler
            .handle(api_request("daily-analytics/bad-query.json"))
            .await,
    );
    assert_eq!(error_fields(&body), ["school", "days"]);
}
