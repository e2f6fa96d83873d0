//! Black-box tests: the real `pisync-local` binary on a random port, over HTTP.
//! Every scenario runs on the embedded store and on DynamoDB Local.

use crate::support::runner::http::{self, post_json};
use crate::support::runner::{Backend, TestApp};
use crate::support::{on_both_backends, wait_until};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn event(device: &str, ts: &str, errors: u32) -> Value {
    json!({"device_id": device, "timestamp": ts, "total_files_synced": 10, "total_errors": errors, "internet_speed": 2.5})
}

/// Minute `m` of a fixed day, as RFC 3339.
fn at(m: u32) -> String {
    format!("2025-05-07T{:02}:{:02}:00Z", 8 + m / 60, m % 60)
}

fn norm(m: u32) -> String {
    format!("2025-05-07T{:02}:{:02}:00.000Z", 8 + m / 60, m % 60)
}

fn check_headers(reply: &http::Reply) {
    pisync_shared::test_util::lambda_events::assert_standard_headers(&reply.headers, "reply");
}

async fn failing(r: &TestApp) -> Vec<(String, u64)> {
    let reply = r.get_repeated_failures("").await;
    assert_eq!(reply.status, 200);
    reply.body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device_id"].as_str().unwrap().to_owned(),
                d["consecutive_failures"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn replay_and_conflict(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&backend, dir.path(), &[]);
    let e = event("dev-replay", "2025-05-07T16:00:00+05:30", 0);
    let first = r.post_sync_event(&e).await;
    assert_eq!(first.status, 201);
    check_headers(&first);
    assert_eq!(first.body["timestamp"], "2025-05-07T10:30:00.000Z");
    assert_eq!(first.body["outcome"], "success");
    // The same event written with another offset is the same identity: a replay.
    let replay = r
        .post_sync_event(&event("dev-replay", "2025-05-07T10:30:00Z", 0))
        .await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body, first.body, "the stored event, received_at included");
    let mut changed = e.clone();
    changed["total_files_synced"] = json!(11);
    let conflict = r.post_sync_event(&changed).await;
    assert_eq!(conflict.status, 409);
    check_headers(&conflict);
    assert_eq!(conflict.body["error"]["code"], "conflict");
    assert_eq!(
        conflict.body["error"]["details"][0]["field"],
        "total_files_synced"
    );
    let history = r.get_sync_history("dev-replay", "").await;
    assert_eq!(history.body["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        history.body["events"][0]["total_files_synced"], 10,
        "the conflict changed nothing"
    );
}

/// (method, url, content type, body, expected status, expected error code)
type Case<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, u16, &'a str);

async fn bad_input_is_refused_and_nothing_stored(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&backend, dir.path(), &[]);
    let path = "/sync-event";
    let good = event("dev-bad", &at(1), 0);
    let mut big = good.clone();
    big["device_id"] = json!("x".repeat(17 * 1024));
    let cases: Vec<Case> = vec![
        ("POST", path.to_owned(), Some("application/json"), br#"{"device_id":"dev bad","timestamp":"soon","total_files_synced":-1,"total_errors":"2","internet_speed":-1,"extra":true}"#.to_vec(), 400, "invalid_event"),
        ("POST", path.to_owned(), Some("application/json"), b"{".to_vec(), 400, "invalid_event"),
        ("POST", path.to_owned(), Some("application/json"), b"".to_vec(), 400, "invalid_event"),
        ("POST", path.to_owned(), Some("application/json"), b"[1,2]".to_vec(), 400, "invalid_event"),
        ("POST", path.to_owned(), Some("application/json"), b"\xff\xfe\x00garbage".to_vec(), 400, "invalid_event"),
        ("POST", path.to_owned(), None, serde_json::to_vec(&event("dev-bad", "2999-01-01T00:00:00Z", 0)).unwrap(), 400, "invalid_event"),
        ("POST", path.to_owned(), Some("application/json"), serde_json::to_vec(&big).unwrap(), 413, "payload_too_large"),
        ("POST", path.to_owned(), Some("text/plain"), serde_json::to_vec(&good).unwrap(), 415, "unsupported_media_type"),
        ("GET", path.to_owned(), None, vec![], 405, "method_not_allowed"),
        ("DELETE", "/device/dev-bad/sync-history".to_owned(), None, vec![], 405, "method_not_allowed"),
        ("GET", "/nowhere".to_owned(), None, vec![], 404, "not_found"),
        ("GET", "/device/bad%20id/sync-history".to_owned(), None, vec![], 400, "invalid_request"),
        ("GET", "/device/dev-bad/sync-history?limit=0&order=up&from=x&to=y&colour=red".to_owned(), None, vec![], 400, "invalid_request"),
        ("GET", "/device/dev-bad/sync-history?from=2025-05-07T10:00:00Z&to=2025-05-07T09:00:00Z".to_owned(), None, vec![], 400, "invalid_request"),
        ("GET", "/device/dev-bad/sync-history?cursor=abc".to_owned(), None, vec![], 400, "invalid_request"),
        ("GET", "/devices/repeated-failures?limit=101".to_owned(), None, vec![], 400, "invalid_request"),
        ("GET", "/devices/repeated-failures?cursor=...".to_owned(), None, vec![], 400, "invalid_request"),
    ];
    for (method, path, ct, body, status, code) in cases {
        let reply = r.send(method, &path, ct, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        check_headers(&reply);
        assert_eq!(reply.body["error"]["code"], code, "{method} {path}");
        assert!(reply.body["request_id"].is_string());
    }
    // Every problem at once, in one reply.
    let reply = r.send("POST", path, Some("application/json"), br#"{"device_id":"dev bad","timestamp":"soon","total_files_synced":-1,"total_errors":"2","internet_speed":-1,"extra":true}"#.to_vec()).await;
    let fields = pisync_shared::test_util::lambda_events::error_fields(&reply.body);
    let fields: HashSet<&str> = fields.iter().map(String::as_str).collect();
    assert_eq!(
        fields,
        HashSet::from([
            "device_id",
            "timestamp",
            "total_files_synced",
            "total_errors",
            "internet_speed",
            "extra"
        ])
    );
    let reply = r
        .get_sync_history("dev-bad", "limit=0&order=up&from=x&to=y&colour=red")
        .await;
    assert_eq!(reply.body["error"]["details"].as_array().unwrap().len(), 5);
    // Nothing was stored for the device.
    assert_eq!(r.get_sync_history("dev-bad", "").await.status, 404);
    // The server is still healthy.
    assert_eq!(r.post_sync_event(&good).await.status, 201);
}

async fn collect_pages(r: &TestApp, device: &str, query: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut page_query = query.to_owned();
        if let Some(c) = &cursor {
            page_query.push_str(&format!("&cursor={c}"));
        }
        let reply = r.get_sync_history(device, &page_query).await;
        assert_eq!(reply.status, 200, "{device} {page_query}: {}", reply.body);
        assert_eq!(reply.body["device_id"], device);
        seen.extend(
            reply.body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["timestamp"].as_str().unwrap().to_owned()),
        );
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return seen,
        }
    }
    panic!("paging never ended");
}

async fn paging_returns_each_event_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&backend, dir.path(), &[]);
    // Stored out of order, with another device interleaved.
    let mut minutes: Vec<u32> = (0..23).map(|i| (i * 7) % 23).collect();
    minutes.rotate_left(5);
    for m in &minutes {
        assert_eq!(
            r.post_sync_event(&event("dev-page", &at(*m), m % 2)).await.status,
            201
        );
        assert_eq!(
            r.post_sync_event(&event("dev-other", &at(*m), 0)).await.status,
            201
        );
    }
    let all_asc: Vec<String> = (0..23).map(norm).collect();
    let all_desc: Vec<String> = all_asc.iter().rev().cloned().collect();
    assert_eq!(collect_pages(&r, "dev-page", "limit=5").await, all_desc);
    assert_eq!(collect_pages(&r, "dev-page", "limit=5&order=asc").await, all_asc);
    assert_eq!(
        collect_pages(&r, "dev-page", "limit=1&order=desc").await,
        all_desc
    );
    assert_eq!(collect_pages(&r, "dev-page", "limit=100").await, all_desc);
    assert_eq!(
        collect_pages(&r, "dev-page", "limit=23").await,
        all_desc,
        "exact fit: no empty last page"
    );
    let window = format!("limit=4&order=asc&from={}&to={}", at(5), at(14));
    assert_eq!(
        collect_pages(&r, "dev-page", &window).await,
        (5..=14).map(norm).collect::<Vec<_>>()
    );
    let window = format!("limit=3&from={}&to={}", at(5), at(14));
    assert_eq!(
        collect_pages(&r, "dev-page", &window).await,
        (5..=14).rev().map(norm).collect::<Vec<_>>()
    );
    // A window with no events for a device that exists: 200, empty.
    let empty = r.get_sync_history("dev-page", "from=2030-01-01T00:00:00Z").await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["events"], json!([]));
    // Cursors are bound to their query and cannot be edited.
    let first = r.get_sync_history("dev-page", "limit=5").await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    for url in [
        format!("/device/dev-other/sync-history?limit=5&cursor={cursor}"),
        format!("/device/dev-page/sync-history?limit=5&order=asc&cursor={cursor}"),
        format!(
            "/device/dev-page/sync-history?limit=5&from={}&cursor={cursor}",
            at(0)
        ),
        format!("/device/dev-page/sync-history?limit=5&cursor={}", tamper(&cursor)),
    ] {
        let reply = r.send("GET", &url, None, Vec::new()).await;
        assert_eq!(reply.status, 400, "{url}");
        assert_eq!(reply.body["error"]["details"][0]["field"], "cursor");
    }
    let second = r
        .get_sync_history("dev-page", &format!("limit=5&cursor={cursor}"))
        .await;
    assert_eq!(
        second.status, 200,
        "a different limit with the same cursor is fine"
    );
}

/// Changes the position inside a cursor while keeping its shape.
fn tamper(cursor: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = cursor.split('.');
    let (kid, position, tag) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let text = String::from_utf8(engine.decode(position).unwrap()).unwrap();
    let edited = text.replace("08:", "09:").replace(":1", ":2");
    assert_ne!(edited, text);
    format!("{kid}.{}.{tag}", engine.encode(edited))
}

async fn streaks_alerts_and_recovery(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&backend, dir.path(), &[]);
    let post = |device: &'static str, m: u32, errors: u32| {
        let r = &r;
        async move { r.post_sync_event(&event(device, &at(m), errors)).await.status }
    };
    // Out of order: an old success, then failures arriving 30, 10, 20.
    assert_eq!(post("dev-s", 5, 0).await, 201);
    assert_eq!(post("dev-s", 30, 3).await, 201);
    assert_eq!(post("dev-s", 10, 1).await, 201);
    // A late failure from before the success is stored but does not join the run.
    assert_eq!(post("dev-s", 2, 1).await, 201);
    assert_eq!(post("dev-s", 20, 2).await, 201);
    let alerts = r.wait_for_alerts(|a| !a.is_empty());
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert["type"], "device.repeated_sync_failures");
    assert_eq!(alert["device_id"], "dev-s");
    assert_eq!(alert["consecutive_failures"], 3);
    assert_eq!(alert["threshold"], 3);
    assert_eq!(alert["streak_started_at"], norm(10));
    assert_eq!(alert["last_failure_at"], norm(30));
    assert_eq!(alert["last_total_errors"], 3);
    assert!(alert["detected_at"].is_string());
    assert_eq!(failing(&r).await, [("dev-s".to_owned(), 3)]);
    // Replays never count twice.
    assert_eq!(post("dev-s", 30, 3).await, 200);
    assert_eq!(post("dev-s", 10, 1).await, 200);
    // A fourth failure: no second alert for the same streak.
    assert_eq!(post("dev-s", 40, 1).await, 201);
    wait_until("streak of 4", || async {
        failing(&r).await == [("dev-s".to_owned(), 4)]
    })
    .await;
    // A late success inside the run splits it: 2 failures remain after minute 25.
    assert_eq!(post("dev-s", 25, 0).await, 201);
    wait_until("split streak", || async { failing(&r).await.is_empty() }).await;
    assert_eq!(post("dev-s", 50, 1).await, 201);
    wait_until("streak of 3 again", || async {
        failing(&r).await == [("dev-s".to_owned(), 3)]
    })
    .await;
    assert_eq!(
        r.alerts().len(),
        1,
        "the failure condition never ended: still one alert"
    );
    // A newest success recovers the device.
    assert_eq!(post("dev-s", 60, 0).await, 201);
    let alerts = r.wait_for_alerts(|a| a.len() >= 2);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(alerts[1]["type"], "device.sync_recovered");
    assert_eq!(alerts[1]["device_id"], "dev-s");
    assert_eq!(alerts[1]["failures_before_recovery"], 3);
    assert_eq!(alerts[1]["recovered_at"], norm(60));
    assert_eq!(alerts[1]["alert_id"], alerts[0]["alert_id"]);
    wait_until("no failing devices", || async { failing(&r).await.is_empty() }).await;
}

async fn failures_list_is_longest_first_and_pages(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&backend, dir.path(), &["--failure-threshold", "2"]);
    let plan: [(&str, u32); 5] = [
        ("dev-a", 3),
        ("dev-b", 5),
        ("dev-c", 1),
        ("dev-d", 3),
        ("dev-e", 2),
    ];
    for (device, failures) in plan {
        for m in 0..failures {
            assert_eq!(r.post_sync_event(&event(device, &at(m), 1)).await.status, 201);
        }
    }
    let want = vec![
        ("dev-b".to_owned(), 5),
        ("dev-a".to_owned(), 3),
        ("dev-d".to_owned(), 3),
        ("dev-e".to_owned(), 2),
    ];
    wait_until("all streaks applied", || async { failing(&r).await == want }).await;
    let first = r.get_repeated_failures("limit=3").await;
    assert_eq!(first.body["threshold"], 2);
    let d = &first.body["devices"][0];
    assert_eq!(
        (d["device_id"].as_str(), d["consecutive_failures"].as_u64()),
        (Some("dev-b"), Some(5))
    );
    assert_eq!(d["streak_started_at"], norm(0));
    assert_eq!(d["last_failure_at"], norm(4));
    assert_eq!(d["last_sync_at"], norm(4));
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = r.get_repeated_failures(&format!("limit=3&cursor={cursor}")).await;
    assert_eq!(second.body["devices"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["devices"][0]["device_id"], "dev-e");
    assert_eq!(second.body["next_cursor"], Value::Null);
    r.wait_for_alerts(|a| a.len() == 4);
}

async fn concurrent_identical_replays_store_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&backend, dir.path(), &[]);
    let e = event("dev-race", &at(7), 1);
    let auth = r.device_auth("dev-race").await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (c, url, e, auth) = (r.client.clone(), r.url("/sync-event"), e.clone(), auth.clone());
            tokio::spawn(async move { post_json(&c, &url, &e, auth.as_deref()).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 31, "{statuses:?}");
    let history = r.get_sync_history("dev-race", "").await;
    assert_eq!(history.body["events"].as_array().unwrap().len(), 1);
}

async fn restart_keeps_data_and_cursors(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&backend, dir.path(), &[]);
    for m in 0..5 {
        assert_eq!(
            r.post_sync_event(&event("dev-restart", &at(m), 1)).await.status,
            201
        );
    }
    r.wait_for_alerts(|a| a.len() == 1);
    let page = r.get_sync_history("dev-restart", "limit=2").await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    r.stop();
    let r = TestApp::start(&backend, dir.path(), &[]);
    assert_eq!(
        collect_pages(&r, "dev-restart", "limit=2").await,
        (0..5).rev().map(norm).collect::<Vec<_>>()
    );
    let next = r
        .get_sync_history("dev-restart", &format!("limit=2&cursor={cursor}"))
        .await;
    assert_eq!(next.status, 200, "cursors survive a restart");
    assert_eq!(next.body["events"][0]["timestamp"], norm(2));
    // Detection catches up with whatever it had not applied before the stop.
    wait_until("streak of 5", || async {
        failing(&r).await == [("dev-restart".to_owned(), 5)]
    })
    .await;
    // The streak continues across the restart; it was alerted once, and stays so.
    assert_eq!(
        r.post_sync_event(&event("dev-restart", &at(9), 1)).await.status,
        201
    );
    wait_until("streak of 6", || async {
        failing(&r).await == [("dev-restart".to_owned(), 6)]
    })
    .await;
    assert_eq!(r.alerts().len(), 1);
}

async fn kill_9_under_load_loses_nothing_acknowledged(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&backend, dir.path(), &[]);
    let url = r.url("/sync-event");
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    let mut tokens = Vec::new();
    for w in 0..8 {
        tokens.push(r.device_auth(&format!("dev-load-{w}")).await.unwrap_or_default());
    }
    for (w, auth) in tokens.into_iter().enumerate() {
        let (c, url, acked, stop) = (r.client.clone(), url.clone(), acked.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let device = format!("dev-load-{w}");
                let ts = format!(
                    "2025-05-07T10:{:02}:{:02}.{:03}Z",
                    (i / 1000) % 60,
                    (i / 10) % 60,
                    i % 1000
                );
                let body = serde_json::to_vec(&event(&device, &ts, i % 3)).unwrap();
                let req = hyper::Request::post(&url)
                    .header("content-type", "application/json")
                    .header("authorization", auth.as_str())
                    .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
                    .unwrap();
                match c.request(req).await {
                    Ok(resp) if resp.status() == 201 => acked.lock().unwrap().push((device, ts)),
                    Ok(resp) => assert!(resp.status().is_success(), "unexpected {}", resp.status()),
                    Err(_) => break, // the server died mid-request: not acknowledged
                }
                i += 1;
            }
        }));
    }
    // Kill once a good number of writes were acknowledged, with writers still busy.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 60 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 60,
        "the load was real: {} acknowledged",
        acked.len()
    );
    let r = TestApp::start(&backend, dir.path(), &[]);
    for w in 0..8 {
        let device = format!("dev-load-{w}");
        if !acked.iter().any(|(d, _)| *d == device) {
            continue; // this writer had nothing acknowledged before the kill
        }
        let stored: HashSet<String> = collect_pages(&r, &device, "limit=100")
            .await
            .into_iter()
            .collect();
        for (d, ts) in acked.iter().filter(|(d, _)| *d == device) {
            let normalised = ts.clone();
            assert!(stored.contains(&normalised), "acknowledged event {d} {ts} lost");
        }
    }
}

async fn hostile_bytes_never_crash_the_server(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&backend, dir.path(), &[]);
    let payloads: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"\x00\x01\x02\xff\r\n\r\n".to_vec(),
        b"POST /sync-event HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{".to_vec(),
        b"POST /sync-event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        format!(
            "GET /device/{}/sync-history HTTP/1.1\r\nHost: x\r\n\r\n",
            "%ff".repeat(300)
        )
        .into_bytes(),
        b"GET /device/%/sync-history?limit=%zz&cursor=%00 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ];
    for p in payloads {
        if let Ok(mut s) = tokio::net::TcpStream::connect(&r.addr).await {
            let _ = s.write_all(&p).await;
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            assert!(!head.starts_with("HTTP/1.1 5"), "{head}");
        }
    }
    assert_eq!(
        r.post_sync_event(&event("dev-alive", &at(0), 0)).await.status,
        201
    );
}

on_both_backends!(
    replay_and_conflict,
    bad_input_is_refused_and_nothing_stored,
    paging_returns_each_event_once,
    streaks_alerts_and_recovery,
    failures_list_is_longest_first_and_pages,
    concurrent_identical_replays_store_once,
    restart_keeps_data_and_cursors,
    kill_9_under_load_loses_nothing_acknowledged,
    hostile_bytes_never_crash_the_server,
);

/// The runner serves every route of the shared table, and only with its method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_in_the_table_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&crate::support::runner::Backend::Embedded, dir.path(), &[]);
    for route in pisync_shared::http::ROUTES {
        let path = route
            .path
            .replace("{id}", "dev-route")
            .replace("{file}", "app.js");
        if route.access == pisync_shared::auth::Access::Public {
            // The dashboard's files: no token, their own content type and CSP.
            let (status, headers, body) = http::get_raw(&r.client, &r.url(&path), None).await;
            assert_eq!(status, 200, "{path}");
            assert!(!body.is_empty(), "{path}");
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(
                headers["content-security-policy"], "default-src 'self'; frame-ancestors 'none'",
                "{path}"
            );
            continue;
        }
        let reply = r
            .send(
                route.method.as_str(),
                &path,
                Some("application/json"),
                b"{}".to_vec(),
            )
            .await;
        assert!(
            !matches!(reply.status, 404 | 405)
                || ["device_not_found", "school_not_found"]
                    .contains(&reply.body["error"]["code"].as_str().unwrap_or("")),
            "{} {}: {} {}",
            route.method,
            route.path,
            reply.status,
            reply.body
        );
        if reply.status == 204 {
            // No body, so no Content-Type; the security headers are still there.
            for (name, value) in pisync_shared::http::SECURITY_HEADERS {
                assert_eq!(reply.headers[name], value, "{} {}", route.method, route.path);
            }
        } else {
            check_headers(&reply);
        }
        // No route takes PATCH.
        let wrong = r.send("PATCH", &path, None, Vec::new()).await;
        assert_eq!(wrong.status, 405, "PATCH {}", route.path);
        let allowed: Vec<&str> = pisync_shared::http::ROUTES
            .iter()
            .filter(|other| other.path == route.path)
            .map(|other| other.method.as_str())
            .collect();
        assert_eq!(wrong.headers["allow"], allowed.join(", ").as_str());
    }
}

/// A client that trickles its headers or its body does not hold a connection for
/// ever: headers must arrive within 10 s (the connection is closed) and a body within
/// 10 s (408 in the error shape).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&Backend::Embedded, dir.path(), &[]);
    let auth = r.device_auth("dev-slow").await.unwrap();
    let slow_headers = async {
        let mut s = tokio::net::TcpStream::connect(&r.addr).await.unwrap();
        s.write_all(b"POST /sync-event HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the server closed the connection within 20 s");
    };
    // Idle on a kept-alive connection after a reply: closed too.
    let idle = async {
        let mut s = tokio::net::TcpStream::connect(&r.addr).await.unwrap();
        s.write_all(b"GET /devices HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = vec![0u8; 4096];
        let n = s.read(&mut first).await.unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 401"));
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "an idle connection is closed within 20 s");
    };
    let slow_body = async {
        let mut s = tokio::net::TcpStream::connect(&r.addr).await.unwrap();
        let head = format!(
            "POST /sync-event HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"device_id\""
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains(r#""code":"request_timeout""#), "{text}");
    };
    tokio::join!(slow_headers, idle, slow_body);
    assert_eq!(r.post_sync_event(&event("dev-slow", &at(1), 0)).await.status, 201);
}

/// Requests hyper refuses before any route (not HTTP, a 70 KB URI, 200 headers) are
/// answered in the error shape with the security headers, like everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_requests_get_the_error_shape() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let r = TestApp::start(&Backend::Embedded, dir.path(), &[]);
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (request, status, code) in [
        (b"GARBAGE\r\n\r\n".to_vec(), 400, "invalid_request"),
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            format!("GET /devices HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
            431,
            "headers_too_large",
        ),
    ] {
        let mut s = tokio::net::TcpStream::connect(&r.addr).await.unwrap();
        let _ = s.write_all(&request).await;
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut reply)).await;
        let text = String::from_utf8_lossy(&reply);
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
        for header in [
            "x-content-type-options: nosniff",
            "content-type: application/json",
            "cache-control: no-store",
        ] {
            assert!(text.contains(header), "{status}: {header} in {text}");
        }
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], code);
    }
    assert_eq!(
        r.post_sync_event(&event("dev-fine", &at(1), 0)).await.status,
        201,
        "still serving"
    );
}

/// A data directory the runner cannot write is refused at start, by name.
#[test]
fn an_unwritable_data_dir_fails_at_start_naming_it() {
    // /sys is not writable even by root; an existing directory, so only the probe fails.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pisync-local"))
        .args(["--addr", "127.0.0.1:0", "--data-dir", "/sys/kernel"])
        .output()
        .expect("pisync-local runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("data dir /sys/kernel is not writable"),
        "{stderr}"
    );
}
