//! Device status and the fleet through the real runner, on both stores: status
//! transitions, silence and its return (one notice each), totals under replays and
//! late uploads, the lists' order and paging, the daily summary, bad parameters.

use crate::support::runner::{Backend, TestApp};
use crate::support::{
    ago, day_entry, days_ago, event, ids, on_both_backends, wait_for, wait_until, PastHour,
};
use serde_json::{json, Value};

async fn status_of(app: &TestApp, device: &str) -> Value {
    let reply = app.get_device(device).await;
    assert_eq!(reply.status, 200, "{device}: {}", reply.body);
    reply.body
}

/// Waits until the device's status says `field` is `value` (detection runs beside the API).
async fn settle(app: &TestApp, device: &str, field: &str, value: Value) -> Value {
    wait_for(&format!("{device}.{field} = {value}"), || {
        let value = value.clone();
        async move {
            let reply = app.get_device(device).await;
            (reply.status == 200 && reply.body[field] == value).then_some(reply.body)
        }
    })
    .await
}

/// Every device of a list, following `next_cursor`, `limit` at a time.
async fn list_all(app: &TestApp, status: Option<&str>, limit: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("limit={limit}");
        if let Some(status) = status {
            query.push_str(&format!("&status={status}"));
        }
        if let Some(c) = &cursor {
            query.push_str(&format!("&cursor={c}"));
        }
        let page = app.list_devices(&query).await;
        assert_eq!(page.status, 200, "{}", page.body);
        seen.extend(ids(&page.body));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return seen,
        }
    }
}

async fn healthy_failing_healthy(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    assert_eq!(
        app.post_sync_event(&event("dev-t", &ago(40), 0, 5)).await.status,
        201
    );
    let healthy = settle(&app, "dev-t", "status", json!("healthy")).await;
    assert_eq!(healthy["consecutive_failures"], 0);
    assert_eq!(healthy["last_success_at"], healthy["last_sync_at"]);
    assert!(healthy["last_failure_at"].is_null() && healthy["streak_started_at"].is_null());
    for m in [30, 20, 10] {
        assert_eq!(
            app.post_sync_event(&event("dev-t", &ago(m), 2, 1)).await.status,
            201
        );
    }
    let failing = settle(&app, "dev-t", "status", json!("failing")).await;
    assert_eq!(failing["consecutive_failures"], 3);
    assert_eq!(
        failing["totals"],
        json!({"syncs": 4, "failures": 3, "files_synced": 8, "errors": 6})
    );
    assert_eq!(
        app.post_sync_event(&event("dev-t", &ago(5), 0, 7)).await.status,
        201
    );
    let recovered = settle(&app, "dev-t", "status", json!("healthy")).await;
    assert_eq!(recovered["consecutive_failures"], 0);
    assert_eq!(recovered["totals"]["syncs"], 5);
    let kinds: Vec<Value> = app
        .wait_for_alerts(|a| a.len() >= 2)
        .iter()
        .map(|a| a["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            json!("device.repeated_sync_failures"),
            json!("device.sync_recovered")
        ]
    );
}

async fn silent_then_back_online_once_each(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(
        &backend,
        dir.path(),
        &["--silent-after", "2s", "--silent-check-interval", "1s"],
    );
    assert_eq!(
        app.post_sync_event(&event("dev-quiet", &ago(60), 0, 1))
            .await
            .status,
        201
    );
    let silent = settle(&app, "dev-quiet", "status", json!("silent")).await;
    let alerts = app.wait_for_alerts(|a| a.iter().any(|n| n["type"] == "device.silent"));
    let notice = &alerts[0];
    assert_eq!(notice["device_id"], "dev-quiet");
    assert_eq!(notice["last_seen_at"], silent["last_seen_at"]);
    assert_eq!(notice["silent_after_hours"].as_f64(), Some(2.0 / 3600.0));
    assert!(notice["detected_at"].is_string());
    assert_eq!(list_all(&app, Some("silent"), 10).await, ["dev-quiet"]);
    // Several checks later: still one notice for this silence.
    app.settle(2).await;
    assert_eq!(app.alerts().len(), 1, "{:#?}", app.alerts());
    assert_eq!(
        app.post_sync_event(&event("dev-quiet", &ago(1), 0, 1))
            .await
            .status,
        201
    );
    let alerts = app.wait_for_alerts(|a| a.len() >= 2);
    assert_eq!(alerts[1]["type"], "device.back_online");
    assert_eq!(alerts[1]["silent_since"], notice["last_seen_at"]);
    assert_eq!(alerts[1]["alert_id"], notice["alert_id"]);
    let back = status_of(&app, "dev-quiet").await;
    assert!(
        back["status"] == "healthy" || back["status"] == "silent",
        "{back}"
    );
    // It goes quiet again: a new silence, a new notice.
    let alerts = app.wait_for_alerts(|a| a.len() >= 3);
    assert_eq!(alerts[2]["type"], "device.silent");
    assert_ne!(alerts[2]["alert_id"], notice["alert_id"]);
}

async fn totals_count_each_report_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let reports = [
        event("dev-sum", &ago(30), 0, 10),
        event("dev-sum", &ago(20), 3, 2),
    ];
    for r in &reports {
        assert_eq!(app.post_sync_event(r).await.status, 201);
        assert_eq!(app.post_sync_event(r).await.status, 200, "a replay");
    }
    // A late backlog, one already stored and one new from before them.
    let backlog = [reports[0].clone(), event("dev-sum", &ago(90), 1, 4)];
    let reply = app.post_sync_events("dev-sum", &backlog).await;
    assert_eq!(
        (reply.body["created"].as_u64(), reply.body["replayed"].as_u64()),
        (Some(1), Some(1))
    );
    let state = settle(
        &app,
        "dev-sum",
        "totals",
        json!({"syncs": 3, "failures": 2, "files_synced": 16, "errors": 4}),
    )
    .await;
    assert_eq!(state["last_internet_speed"], 4.0);
    assert!(state["first_seen_at"].as_str() <= state["last_seen_at"].as_str());
    assert_eq!(
        state["consecutive_failures"], 1,
        "the late failure is older than the success"
    );
}

async fn lists_are_ordered_and_paged(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    // Failing: f-three (3 in a row), f-five (5); healthy: h-a, h-b, h-c.
    for (device, failures) in [("f-three", 3), ("f-five", 5)] {
        for m in 0..failures {
            assert_eq!(
                app.post_sync_event(&event(device, &ago(60 - m), 1, 0))
                    .await
                    .status,
                201
            );
        }
    }
    for device in ["h-c", "h-a", "h-b"] {
        assert_eq!(
            app.post_sync_event(&event(device, &ago(10), 0, 1)).await.status,
            201
        );
    }
    wait_until("five devices applied", || async {
        list_all(&app, None, 100).await.len() == 5
    })
    .await;
    wait_until("two failing", || async {
        list_all(&app, Some("failing"), 100).await.len() == 2
    })
    .await;
    assert_eq!(
        list_all(&app, None, 2).await,
        ["f-five", "f-three", "h-a", "h-b", "h-c"]
    );
    assert_eq!(
        list_all(&app, Some("failing"), 1).await,
        ["f-five", "f-three"],
        "longest streak first"
    );
    assert_eq!(list_all(&app, Some("healthy"), 2).await, ["h-a", "h-b", "h-c"]);
    assert!(list_all(&app, Some("silent"), 2).await.is_empty());
    let page = app.list_devices("limit=1&status=failing").await;
    assert_eq!(page.body["devices"][0]["consecutive_failures"], 5);
    assert_eq!(page.body["devices"][0]["status"], "failing");
    // A cursor of one list is refused by another.
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let crossed = app.list_devices(&format!("status=healthy&cursor={cursor}")).await;
    assert_eq!(crossed.status, 400);
    assert_eq!(crossed.body["error"]["details"][0]["field"], "cursor");
}

async fn the_summary_counts_days_and_devices(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let today_before = chrono::Utc::now().date_naive().to_string();
    let hour = PastHour::new();
    assert_eq!(
        app.post_sync_event(&event("sum-a", &hour.at(60), 0, 3))
            .await
            .status,
        201
    );
    assert_eq!(
        app.post_sync_event(&event("sum-b", &hour.at(120), 2, 1))
            .await
            .status,
        201
    );
    // A backlog from three days ago lands on its own day.
    let noon = days_ago(3);
    let late = app
        .post_sync_events(
            "sum-a",
            &[
                event("sum-a", &noon, 1, 6),
                event("sum-a", &noon.replace("12:", "13:"), 0, 2),
            ],
        )
        .await;
    assert_eq!(late.body["created"], 2);
    let summary = wait_for("four syncs counted", || async {
        let reply = app.fleet_summary("").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let total: u64 = reply.body["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["syncs"].as_u64().unwrap())
            .sum();
        (total == 4).then_some(reply.body)
    })
    .await;
    let days = summary["days"].as_array().unwrap();
    assert_eq!(days.len(), 14);
    // The last day is today (the day the test began, or the next if it ran across
    // midnight).
    let last = days[13]["date"].as_str().unwrap();
    let today_after = chrono::Utc::now().date_naive().to_string();
    assert!(last == today_before || last == today_after, "{last}");
    let on = |date: &str| day_entry(&summary, date).unwrap();
    let recent = on(&hour.date(0));
    assert_eq!(recent["syncs"], 2);
    assert_eq!(recent["failure_rate"], 0.5);
    assert_eq!(recent["mean_internet_speed"], 4.0);
    let three = on(&noon[..10]);
    assert_eq!(
        (
            three["syncs"].as_u64(),
            three["failures"].as_u64(),
            three["files_synced"].as_u64()
        ),
        (Some(2), Some(1), Some(8))
    );
    assert_eq!(three["failure_rate"], 0.5);
    let empty = &days[0];
    assert_eq!(
        (empty["syncs"].as_u64(), empty["failure_rate"].as_f64()),
        (Some(0), Some(0.0))
    );
    assert!(empty["mean_internet_speed"].is_null());
    assert_eq!(
        summary["devices"],
        json!({"total": 2, "healthy": 2, "failing": 0, "silent": 0})
    );
    let week = app.fleet_summary("days=7").await;
    assert_eq!(week.body["days"].as_array().unwrap().len(), 7);
}

async fn bad_parameters_and_unknown_devices(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let unknown = app.get_device("never-seen").await;
    assert_eq!(
        (unknown.status, unknown.body["error"]["code"].as_str()),
        (404, Some("device_not_found"))
    );
    // Credentials alone do not make a device seen.
    app.device_auth("has-token").await;
    assert_eq!(app.get_device("has-token").await.status, 404);
    for (path, fields) in [
        ("/devices?status=asleep&limit=0", vec!["limit", "status"]),
        ("/devices?limit=5&limit=6", vec!["limit"]),
        ("/devices?colour=red", vec!["colour"]),
        ("/devices?cursor=garbage", vec!["cursor"]),
        ("/fleet/summary?days=0", vec!["days"]),
        ("/fleet/summary?days=91&extra=1", vec!["days", "extra"]),
        ("/device/bad%20id", vec!["id"]),
        ("/device/ok?x=1", vec!["x"]),
    ] {
        let reply = app.send("GET", path, None, Vec::new()).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        let mut got: Vec<&str> = reply.body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, fields, "{path}");
    }
}

on_both_backends!(
    healthy_failing_healthy,
    silent_then_back_online_once_each,
    totals_count_each_report_once,
    lists_are_ordered_and_paged,
    the_summary_counts_days_and_devices,
    bad_parameters_and_unknown_devices,
);
