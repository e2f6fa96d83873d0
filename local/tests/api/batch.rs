//! `POST /sync-events` through the real runner, on both stores, and the reference
//! client (pisync-client) uploading against it, a restart included.

use crate::support::runner::{Backend, TestApp};
use crate::support::{on_both_backends, wait_until};
use pisync_client::{Client, Outcome, RetryPolicy};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

fn event(device: &str, minute: u32, errors: u32) -> Value {
    json!({"device_id": device, "timestamp": format!("2025-05-02T{:02}:{:02}:00Z", minute / 60, minute % 60),
           "total_files_synced": 5, "total_errors": errors, "internet_speed": 2.0})
}

fn statuses(reply: &Value) -> Vec<u64> {
    reply["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect()
}

async fn stored(app: &TestApp, device: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let reply = app
            .get_sync_history(device, &format!("order=asc&limit=100{cursor}"))
            .await;
        if reply.status == 404 {
            return seen;
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
        for e in reply.body["events"].as_array().unwrap() {
            seen.push(e["timestamp"].as_str().unwrap().to_owned());
        }
        match reply.body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return seen,
        }
    }
}

async fn a_mixed_backlog_is_answered_item_by_item(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let d = "dev-mixed";
    assert_eq!(app.post_sync_event(&event(d, 1, 0)).await.status, 201);
    let mut invalid = event(d, 9, 0);
    invalid["colour"] = json!("red");
    let reply = app
        .post_sync_events(
            d,
            &[
                event(d, 2, 1),
                event(d, 1, 0),
                event(d, 1, 4),
                invalid,
                event("dev-else", 3, 0),
                event(d, 2, 1),
                event(d, 2, 2),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(statuses(&reply.body), [201, 200, 409, 400, 403, 200, 409]);
    assert_eq!(
        (
            &reply.body["created"],
            &reply.body["replayed"],
            &reply.body["rejected"]
        ),
        (&json!(1), &json!(2), &json!(4))
    );
    assert_eq!(stored(&app, d).await.len(), 2);
    assert!(stored(&app, "dev-else").await.is_empty());
}

async fn envelope_errors_and_limits(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let auth = app.device_auth("dev-env").await;
    let send = |body: Vec<u8>| {
        let (app, auth) = (&app, auth.clone());
        async move {
            app.send_as(
                "POST",
                "/sync-events",
                Some("application/json"),
                body,
                auth.as_deref(),
            )
            .await
        }
    };
    for body in [
        r#"[]"#,
        r#"{}"#,
        r#"{"events":{}}"#,
        r#"{"events":[]}"#,
        r#"{"events":[{}],"more":1}"#,
    ] {
        let reply = send(body.as_bytes().to_vec()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], "invalid_batch", "{body}");
    }
    let over: Vec<Value> = (0..101).map(|m| event("dev-env", m, 0)).collect();
    let reply = send(serde_json::to_vec(&json!({"events": over})).unwrap()).await;
    assert_eq!(
        (reply.status, reply.body["error"]["code"].as_str()),
        (400, Some("invalid_batch"))
    );
    let padded = json!({"events": [event("dev-env", 1, 0)], "pad": "x".repeat(300 * 1024)});
    assert_eq!(send(serde_json::to_vec(&padded).unwrap()).await.status, 413);
    let reply = app
        .send_as(
            "POST",
            "/sync-events",
            Some("text/plain"),
            b"{}".to_vec(),
            auth.as_deref(),
        )
        .await;
    assert_eq!(reply.status, 415);
    let full: Vec<Value> = (0..100).map(|m| event("dev-env", m, 0)).collect();
    let reply = app.post_sync_events("dev-env", &full).await;
    assert_eq!(reply.body["created"], 100, "{}", reply.body);
    assert!(stored(&app, "dev-env").await.len() == 100);
}

/// The notices of a backlog are those of its events sent one by one.
async fn a_backlog_alerts_like_one_by_one(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &["--silent-check-interval", "1s"]);
    for m in 0..4 {
        let errors = u32::from(m < 3);
        assert_eq!(
            app.post_sync_event(&event("dev-single", m, errors)).await.status,
            201
        );
    }
    let backlog: Vec<Value> = (0..4)
        .rev()
        .map(|m| event("dev-backlog", m, u32::from(m < 3)))
        .collect();
    assert_eq!(
        app.post_sync_events("dev-backlog", &backlog).await.body["created"],
        4
    );
    let kinds_of = |alerts: &[Value], device: &str| -> Vec<String> {
        alerts
            .iter()
            .filter(|a| a["device_id"] == device)
            .map(|a| a["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let alerts = app
        .wait_for_alerts(|a| kinds_of(a, "dev-single").len() == 2 && kinds_of(a, "dev-backlog").len() == 2);
    assert_eq!(kinds_of(&alerts, "dev-single"), kinds_of(&alerts, "dev-backlog"));
    app.settle(1).await;
    assert_eq!(app.alerts().len(), 4, "no notice twice");
}

/// 100 concurrent batches from 10 devices, each event sent by several batches: every
/// event is stored exactly once and created exactly once.
async fn concurrent_overlapping_batches_store_each_event_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let devices: Vec<String> = (0..10).map(|d| format!("dev-overlap-{d}")).collect();
    let mut auths = Vec::new();
    for d in &devices {
        auths.push(app.device_auth(d).await.unwrap());
    }
    let mut tasks = Vec::new();
    for b in 0..100u32 {
        let device = devices[(b % 10) as usize].clone();
        // Batches overlap: each minute is sent by several batches, always with the
        // same figures (its outcome depends on the minute alone).
        let events: Vec<Value> = (0..40)
            .map(|k| (b / 10 * 13 + k) % 90)
            .map(|m| event(&device, m, m % 2))
            .collect();
        let (client, url, auth) = (
            app.client.clone(),
            app.url("/sync-events"),
            auths[(b % 10) as usize].clone(),
        );
        tasks.push(tokio::spawn(async move {
            crate::support::runner::http::post_json(&client, &url, &json!({"events": events}), Some(&auth))
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let reply = t.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["rejected"], 0, "{}", reply.body);
        created += reply.body["created"].as_u64().unwrap();
    }
    let mut total = 0;
    for d in &devices {
        let timestamps = stored(&app, d).await;
        let distinct: HashSet<&String> = timestamps.iter().collect();
        assert_eq!(distinct.len(), timestamps.len(), "{d}: stored once");
        total += timestamps.len() as u64;
    }
    assert_eq!(created, total, "each stored event was created exactly once");
}

/// kill -9 while backlogs upload: every item acknowledged 200/201 is there after a
/// restart.
async fn kill_9_during_batches_loses_nothing_acknowledged(backend: Backend) {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..4u32 {
        let device = format!("dev-crash-{w}");
        let auth = app.device_auth(&device).await.unwrap();
        let (client, url, acked) = (app.client.clone(), app.url("/sync-events"), acked.clone());
        tasks.push(tokio::spawn(async move {
            for b in 0..2000u32 {
                let events: Vec<Value> = (0..50)
                    .map(|k| {
                        let mut e = event(&device, 0, 0);
                        e["timestamp"] = json!(format!(
                            "2025-05-03T{:02}:{:02}:{:02}.{k:03}Z",
                            b / 3600,
                            b / 60 % 60,
                            b % 60
                        ));
                        e
                    })
                    .collect();
                let body = json!({"events": events});
                let sent = tokio::time::timeout(
                    Duration::from_secs(30),
                    crate::support::runner::http::try_post_json(&client, &url, &body, Some(&auth)),
                )
                .await;
                // A refused, slow or 503 batch is simply not acknowledged; keep going
                // (after the kill each attempt is refused at once).
                let Ok(Some(reply)) = sent else { continue };
                for (e, r) in events_of(&body)
                    .iter()
                    .zip(reply["results"].as_array().into_iter().flatten())
                {
                    if matches!(r["status"].as_u64(), Some(200 | 201)) {
                        let t = e["timestamp"].as_str().unwrap().replace('Z', "");
                        acked.lock().unwrap().push((device.clone(), t));
                    }
                }
            }
        }));
    }
    // Kill once a good number of items were acknowledged, with uploads in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while acked.lock().unwrap().len() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the uploads never got going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.kill();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let app = TestApp::start(&backend, dir.path(), &[]);
    for w in 0..4u32 {
        let device = format!("dev-crash-{w}");
        let have: HashSet<String> = stored(&app, &device)
            .await
            .into_iter()
            .map(|t| t.replace('Z', ""))
            .collect();
        for (_, t) in acked.iter().filter(|(d, _)| *d == device) {
            assert!(have.contains(t), "{device} {t} acknowledged, then lost");
        }
    }
}

fn events_of(body: &Value) -> Vec<Value> {
    body["events"].as_array().cloned().unwrap_or_default()
}

/// The reference client uploads a backlog; the runner is killed and restarted on the
/// same address mid-upload: nothing is lost, nothing is stored twice, and every event
/// is reported delivered (created, or already stored if its reply was lost).
async fn the_client_survives_a_restart_mid_upload(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let device = "dev-client";
    let token = app
        .device_auth(device)
        .await
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_owned();
    let lines: Vec<String> = (0..3000u32)
        .map(|i| {
            let mut e = event(device, 0, i % 7 / 6);
            e["timestamp"] = json!(format!(
                "2025-05-04T{:02}:{:02}:{:02}Z",
                i / 3600,
                i / 60 % 60,
                i % 60
            ));
            e.to_string()
        })
        .collect();
    let policy = RetryPolicy {
        base: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        max_attempts: 60,
    };
    let client = Client::new(&app.base, &token, policy).unwrap();
    let upload = tokio::spawn({
        let lines = lines.clone();
        async move { client.upload(&lines).await }
    });
    // Killed once the upload is under way (some events stored), restarted once the
    // address refuses connections: the client sees the runner gone, then back.
    wait_until("the upload under way", || async {
        !stored(&app, device).await.is_empty()
    })
    .await;
    let addr = app.addr.clone();
    app.kill();
    wait_until("the old runner gone", || async {
        tokio::net::TcpStream::connect(&addr).await.is_err()
    })
    .await;
    let app = TestApp::start_at(&backend, dir.path(), &addr, &[]);
    let outcomes = upload.await.unwrap();
    assert_eq!(outcomes.len(), 3000);
    assert!(
        outcomes.iter().all(Outcome::delivered),
        "{:?}",
        outcomes.iter().find(|o| !o.delivered())
    );
    let timestamps = stored(&app, device).await;
    assert_eq!(timestamps.len(), 3000, "every event stored");
    assert_eq!(
        timestamps.iter().collect::<HashSet<_>>().len(),
        3000,
        "none twice"
    );
}

on_both_backends!(
    a_mixed_backlog_is_answered_item_by_item,
    envelope_errors_and_limits,
    a_backlog_alerts_like_one_by_one,
    concurrent_overlapping_batches_store_each_event_once,
    kill_9_during_batches_loses_nothing_acknowledged,
    the_client_survives_a_restart_mid_upload,
);
