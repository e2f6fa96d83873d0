//! Per-device limits on the runner: a device over its requests or events per minute
//! gets 429 `rate_limited` with `Retry-After`, nothing of the refused request is
//! stored, and other devices are served as before.

use crate::support::runner::{Backend, TestApp};
use crate::support::{ago, event, wait_until};
use serde_json::Value;

/// Starts the runner with small limits, early enough in a minute that the test's
/// requests all fall in one window (the limits count per minute of server time).
async fn start_limited(dir: &std::path::Path) -> TestApp {
    wait_until("an early second of the minute", || async {
        chrono::Utc::now().timestamp() % 60 < 40
    })
    .await;
    TestApp::start(
        &Backend::Embedded,
        dir,
        &[
            "--device-requests-per-minute",
            "5",
            "--device-events-per-minute",
            "250",
        ],
    )
}

fn stored(history: &Value) -> usize {
    history["events"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_over_its_request_limit_is_refused_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_limited(dir.path()).await;
    for m in 0..5 {
        assert_eq!(
            app.post_sync_event(&event("busy", &ago(m), 0, 1)).await.status,
            201
        );
    }
    let refused = app.post_sync_event(&event("busy", &ago(10), 0, 1)).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let retry: u32 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        stored(&app.get_sync_history("busy", "limit=100").await.body),
        5,
        "the sixth not stored"
    );
    assert_eq!(
        app.post_sync_event(&event("calm", &ago(0), 0, 1)).await.status,
        201
    );
    assert_eq!(
        app.metric_series("pisync_requests_refused_total{status=\"429\"}")
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_the_event_limit_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_limited(dir.path()).await;
    let batch = |from: i64| {
        (from..from + 100)
            .map(|m| event("backlog", &ago(m), 0, 1))
            .collect::<Vec<_>>()
    };
    assert_eq!(app.post_sync_events("backlog", &batch(0)).await.status, 200);
    assert_eq!(app.post_sync_events("backlog", &batch(100)).await.status, 200);
    let refused = app.post_sync_events("backlog", &batch(200)).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let all = app.get_sync_history("backlog", "limit=100").await.body;
    let next = all["next_cursor"].as_str().expect("a second page");
    let second = app
        .get_sync_history("backlog", &format!("limit=100&cursor={next}"))
        .await
        .body;
    assert_eq!(stored(&second), 100);
    assert!(
        second["next_cursor"].is_null(),
        "200 stored, none of the third batch"
    );
}
