//! `GET /metrics`: each counter moves with what it counts, seen from outside the
//! runner as an operator's scraper sees it.

use crate::support::runner::{Backend, TestApp};
use crate::support::wait_until;
use serde_json::{json, Value};

fn event(device: &str, minute: u32, errors: u32) -> Value {
    json!({"device_id": device, "timestamp": format!("2025-05-07T10:{minute:02}:00Z"),
           "total_files_synced": 4, "total_errors": errors, "internet_speed": 2.5})
}

async fn started() -> (tempfile::TempDir, TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&Backend::Embedded, dir.path(), &["--silent-check-interval", "1s"]);
    (dir, app)
}

const RECORDED: &str = "pisync_events_recorded_total";

fn result(name: &str) -> String {
    format!("{RECORDED}{{result=\"{name}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_to_an_event_is_counted_by_its_result() {
    let (_dir, app) = started().await;
    assert_eq!(app.post_sync_event(&event("m-1", 1, 0)).await.status, 201);
    assert_eq!(app.post_sync_event(&event("m-1", 1, 0)).await.status, 200);
    assert_eq!(app.post_sync_event(&event("m-1", 1, 5)).await.status, 409);
    let mut bad = event("m-1", 2, 0);
    bad["total_errors"] = json!(-1);
    assert_eq!(app.post_sync_event(&bad).await.status, 400);
    let batch = app
        .post_sync_events(
            "m-1",
            &[event("m-1", 3, 0), event("m-1", 1, 0), event("m-2", 4, 0)],
        )
        .await;
    assert_eq!(batch.status, 200);
    for (name, count) in [
        ("created", 2.0),
        ("replayed", 2.0),
        ("conflict", 1.0),
        ("rejected", 2.0),
    ] {
        assert_eq!(app.metric_series(&result(name)).await, count, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_counted_by_status() {
    let (_dir, app) = started().await;
    let body = serde_json::to_vec(&event("m-3", 1, 0)).unwrap();
    let none = app
        .send_as(
            "POST",
            "/sync-event",
            Some("application/json"),
            body.clone(),
            None,
        )
        .await;
    assert_eq!(none.status, 401);
    let reader = app
        .send_as(
            "POST",
            "/sync-event",
            Some("application/json"),
            body,
            app.read.as_deref(),
        )
        .await;
    assert_eq!(reader.status, 403);
    let refused = |status: u16| format!("pisync_requests_refused_total{{status=\"{status}\"}}");
    assert_eq!(app.metric_series(&refused(401)).await, 1.0);
    assert_eq!(app.metric_series(&refused(403)).await, 1.0);
    assert_eq!(app.metric(RECORDED).await, 0.0, "no event was looked at");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_counts_each_new_event_by_outcome_and_each_notice_by_type() {
    let (_dir, app) = started().await;
    for m in 1..=3 {
        app.post_sync_event(&event("m-4", m, 1)).await;
    }
    app.post_sync_event(&event("m-4", 4, 0)).await;
    app.post_sync_event(&event("m-4", 4, 0)).await; // a replay detects nothing
    app.settle(1).await;
    let detected = |outcome: &str| format!("pisync_syncs_detected_total{{outcome=\"{outcome}\"}}");
    assert_eq!(app.metric_series(&detected("failure")).await, 3.0);
    assert_eq!(app.metric_series(&detected("success")).await, 1.0);
    let published = |kind: &str| format!("pisync_notices_published_total{{type=\"{kind}\"}}");
    assert_eq!(
        app.metric_series(&published("device.repeated_sync_failures"))
            .await,
        1.0
    );
    assert_eq!(app.metric_series(&published("device.sync_recovered")).await, 1.0);
    assert_eq!(app.alerts().len(), 2, "one line per notice counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_counts_its_runs() {
    let (_dir, app) = started().await;
    let before = app.metric("pisync_periodic_checks_total").await;
    wait_until("two more checks", || async {
        app.metric("pisync_periodic_checks_total").await >= before + 2.0
    })
    .await;
}

/// The counters are an operator's: a scraper without a credential is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_credential() {
    let (_dir, app) = started().await;
    let anonymous = app.send_as("GET", "/metrics", None, Vec::new(), None).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(app.metrics().await.0, 200, "an operator reads them");
}
