//! Analytics through the real runner, on both stores: a day's link speeds and
//! devices reporting from the kept summaries, a school's local days, the schools
//! ranked by failure rate, and who sees which schools.

use crate::support::runner::{Backend, TestApp};
use crate::support::{day_entry, on_both_backends, wait_for, PastHour};
use serde_json::{json, Value};

fn start(backend: &Backend) -> (tempfile::TempDir, TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(backend, dir.path(), &[]);
    (dir, app)
}

fn synced(device: &str, timestamp: &str, errors: u32, speed: f64) -> Value {
    json!({"device_id": device, "timestamp": timestamp, "total_files_synced": 2,
           "total_errors": errors, "internet_speed": speed})
}

/// Sends each device's syncs as one batch.
async fn upload(app: &TestApp, syncs: &[Value]) {
    let mut devices: Vec<&str> = syncs.iter().map(|e| e["device_id"].as_str().unwrap()).collect();
    devices.dedup();
    for device in devices {
        let own: Vec<Value> = syncs
            .iter()
            .filter(|e| e["device_id"] == device)
            .cloned()
            .collect();
        let reply = app.post_sync_events(device, &own).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
}

/// The entry for `date` of `GET /analytics/daily?{query}` once it counts `syncs`.
async fn day_once(app: &TestApp, query: &str, date: &str, syncs: u64) -> (Value, Value) {
    wait_for(&format!("{syncs} syncs on {date} ({query})"), || async {
        let reply = app.daily_analytics(query).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let day = day_entry(&reply.body, date).cloned()?;
        (day["syncs"] == syncs).then_some((reply.body, day))
    })
    .await
}

fn near(got: &Value, want: f64) -> bool {
    (got.as_f64().unwrap() / want - 1.0).abs() <= 0.01
}

async fn a_days_speeds_and_devices_come_from_its_summary(backend: Backend) {
    let (_dir, app) = start(&backend);
    let hour = PastHour::new();
    // Five devices, 40 syncs at 1 to 40 Mbit/s; every tenth fails.
    let syncs: Vec<Value> = (1..=40)
        .map(|i| {
            let at = hour.at(60 * i64::from(i));
            synced(
                &format!("an-{}", i % 5),
                &at,
                u32::from(i % 10 == 0),
                f64::from(i),
            )
        })
        .collect();
    let mut sorted = syncs.clone();
    sorted.sort_by_key(|e| e["device_id"].as_str().unwrap().to_owned());
    upload(&app, &sorted).await;
    let (body, day) = day_once(&app, "days=3", &hour.date(0), 40).await;
    assert_eq!(body["timezone"], "UTC");
    assert_eq!(body["school_id"], Value::Null);
    assert_eq!(body["days"].as_array().unwrap().len(), 3);
    assert_eq!(
        (day["failures"].as_u64(), day["failure_rate"].as_f64()),
        (Some(4), Some(0.1))
    );
    assert_eq!(day["devices_reporting"], 5);
    let speed = &day["internet_speed"];
    // Exact: the 20th and 36th smallest of 1..=40 (rank ⌊q·(n−1)⌋).
    assert!(near(&speed["p50"], 20.0) && near(&speed["p90"], 36.0), "{speed}");
    assert_eq!(speed["mean"], 20.5);
    assert!(body["days"][0]["internet_speed"].is_null());
}

async fn a_schools_days_are_its_own_and_hidden_from_other_schools(backend: Backend) {
    let (_dir, app) = start(&backend);
    let admin = app.administrator();
    for (id, tz) in [("kiri", "Pacific/Kiritimati"), ("oak", "UTC")] {
        let put = admin.put_school(id, json!({"name": id, "timezone": tz})).await;
        assert_eq!(put.status, 201, "{}", put.body);
    }
    assert_eq!(admin.assign_school("k-1", Some("kiri")).await.status, 200);
    let hour = PastHour::new();
    upload(
        &app,
        &[
            synced("k-1", &hour.at(60), 0, 8.0),
            synced("k-1", &hour.at(120), 0, 8.0),
        ],
    )
    .await;
    // Found under its local date (UTC+14), which UTC may not have reached.
    let (body, day) = day_once(&app, "school=kiri&days=3", &hour.date(14), 2).await;
    assert_eq!(body["school_id"], "kiri");
    assert_eq!(body["timezone"], "Pacific/Kiritimati");
    assert_eq!(day["devices_reporting"], 1);
    let oak_only = app.school_operator(&["oak"], false);
    let oak = app.as_operator(Some(&oak_only));
    let hidden = oak.daily_analytics("school=kiri").await;
    assert_eq!(
        (hidden.status, hidden.body["error"]["code"].as_str()),
        (404, Some("school_not_found"))
    );
    let own = oak.daily_analytics("").await;
    assert_eq!(own.body["timezone"], "UTC");
    assert!(
        own.body["days"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["syncs"] == 0),
        "not kiri's"
    );
}

async fn schools_are_ranked_by_failure_rate_for_whoever_reaches_them(backend: Backend) {
    let (_dir, app) = start(&backend);
    let admin = app.administrator();
    for id in ["north", "south", "east"] {
        assert_eq!(
            admin
                .put_school(id, json!({"name": id.to_uppercase(), "timezone": "UTC"}))
                .await
                .status,
            201
        );
    }
    for (device, school) in [("n-1", "north"), ("n-2", "north"), ("s-1", "south")] {
        assert_eq!(admin.assign_school(device, Some(school)).await.status, 200);
    }
    let hour = PastHour::new();
    upload(
        &app,
        &[
            synced("n-1", &hour.at(60), 0, 10.0),
            synced("n-1", &hour.at(120), 1, 0.0),
            synced("n-2", &hour.at(60), 0, 30.0),
            synced("s-1", &hour.at(60), 2, 0.0),
        ],
    )
    .await;
    let ranked = wait_for("four syncs ranked", || async {
        let reply = app.school_analytics("").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let syncs: u64 = reply.body["schools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["syncs"].as_u64().unwrap())
            .sum();
        (syncs == 4).then_some(reply.body)
    })
    .await;
    let schools = ranked["schools"].as_array().unwrap();
    let order: Vec<&str> = schools.iter().map(|s| s["school_id"].as_str().unwrap()).collect();
    assert_eq!(order, ["south", "north", "east"]);
    let north = &schools[1];
    assert_eq!(north["name"], "NORTH");
    assert_eq!(
        (
            north["syncs"].as_u64(),
            north["failures"].as_u64(),
            north["devices_reporting"].as_u64()
        ),
        (Some(3), Some(1), Some(2))
    );
    assert_eq!(north["devices"]["total"], 2);
    assert!(near(&north["internet_speed"]["p50"], 10.0), "{north}");
    assert!(schools[2]["internet_speed"].is_null(), "east: no syncs");
    let north_only = app.school_operator(&["north"], false);
    let theirs = app
        .as_operator(Some(&north_only))
        .school_analytics("days=30")
        .await
        .body;
    assert_eq!(theirs["schools"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["schools"][0]["school_id"], "north");
    let bad = app.school_analytics("days=0&school=north").await;
    assert_eq!(bad.status, 400);
    let fields: Vec<&str> = bad.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["school", "days"]);
}

on_both_backends!(
    a_days_speeds_and_devices_come_from_its_summary,
    a_schools_days_are_its_own_and_hidden_from_other_schools,
    schools_are_ranked_by_failure_rate_for_whoever_reaches_them,
);
