//! The client's retry behaviour against a real HTTP server that answers as scripted:
//! 429/503 (with and without Retry-After), per-item 503s, refusals never retried.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pisync_client::{Client, Outcome, RetryPolicy};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One scripted answer: status, Retry-After, body.
type Answer = (u16, Option<&'static str>, Value);

/// A server answering each request with the next scripted answer (the last one
/// repeats), recording the bodies it received.
async fn server(script: Vec<Answer>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let script = Arc::new(script);
    let seen = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (script, seen) = (script.clone(), seen.clone());
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (script, seen) = (script.clone(), seen.clone());
                async move {
                    assert_eq!(req.uri().path(), "/sync-events");
                    assert_eq!(req.headers()["authorization"], "Bearer device-token");
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(serde_json::from_slice(&body).unwrap());
                        seen.len() - 1
                    };
                    let (status, retry_after, reply) = script[n.min(script.len() - 1)].clone();
                    let mut response = hyper::Response::builder().status(status);
                    if let Some(after) = retry_after {
                        response = response.header("retry-after", after);
                    }
                    Ok::<_, std::convert::Infallible>(
                        response.body(Full::new(Bytes::from(reply.to_string()))).unwrap(),
                    )
                }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, received)
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
        max_attempts: 5,
    }
}

fn events(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| json!({"device_id": "d", "n": i}).to_string())
        .collect()
}

fn item(status: u16) -> Value {
    match status {
        200 | 201 => json!({"status": status, "event": {}}),
        _ => json!({"status": status, "error": {"code": "x", "message": "m", "details": []}}),
    }
}

#[tokio::test]
async fn a_503_with_retry_after_is_retried_after_that_long() {
    let (url, received) = server(vec![
        (
            503,
            Some("1"),
            json!({"error": {"code": "unavailable", "message": "m", "details": []}}),
        ),
        (200, None, json!({"results": [item(201), item(201)]})),
    ])
    .await;
    let client = Client::new(&url, "device-token", policy()).unwrap();
    let started = Instant::now();
    let outcomes = client.upload(&events(2)).await;
    assert_eq!(outcomes, [Outcome::Created, Outcome::Created]);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(received.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn only_items_answered_503_are_sent_again() {
    let (url, received) = server(vec![
        (200, None, json!({"results": [item(201), item(503), item(409)]})),
        (200, None, json!({"results": [item(200)]})),
    ])
    .await;
    let client = Client::new(&url, "device-token", policy()).unwrap();
    let outcomes = client.upload(&events(3)).await;
    assert_eq!(outcomes[0], Outcome::Created);
    assert_eq!(outcomes[1], Outcome::Replayed, "a replay is a delivery");
    assert!(matches!(outcomes[2], Outcome::Rejected { status: 409, .. }));
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1]["events"], json!([json!({"device_id": "d", "n": 1})]));
}

#[tokio::test]
async fn refusals_are_never_retried() {
    for status in [400, 401, 403, 413] {
        let (url, received) = server(vec![(
            status,
            None,
            json!({"error": {"code": "refused", "message": "no", "details": []}}),
        )])
        .await;
        let client = Client::new(&url, "device-token", policy()).unwrap();
        let outcomes = client.upload(&events(2)).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Outcome::Rejected { status: s, .. } if *s == status)),
            "{status}: {outcomes:?}"
        );
        assert_eq!(received.lock().unwrap().len(), 1, "{status} sent once");
    }
}

#[tokio::test]
async fn throttling_and_outages_are_retried_until_the_attempts_run_out() {
    let (url, received) = server(vec![(429, None, json!({"message": "Too Many Requests"}))]).await;
    let client = Client::new(&url, "device-token", policy()).unwrap();
    let outcomes = client.upload(&events(1)).await;
    assert!(matches!(&outcomes[0], Outcome::NotDelivered { reason } if reason.contains("429")));
    assert_eq!(received.lock().unwrap().len(), 5, "max_attempts");
}

#[tokio::test]
async fn an_unreachable_server_is_not_delivered() {
    let client = Client::new("http://127.0.0.1:9", "device-token", policy()).unwrap();
    let outcomes = client.upload(&events(1)).await;
    assert!(matches!(&outcomes[0], Outcome::NotDelivered { .. }));
}

#[tokio::test]
async fn lines_that_are_not_json_are_rejected_without_sending() {
    let (url, received) = server(vec![(200, None, json!({"results": [item(201)]}))]).await;
    let client = Client::new(&url, "device-token", policy()).unwrap();
    let lines = vec!["{not json".to_owned(), json!({"device_id": "d"}).to_string()];
    let outcomes = client.upload(&lines).await;
    assert!(matches!(&outcomes[0], Outcome::Rejected { code, .. } if code == "not_json"));
    assert_eq!(outcomes[1], Outcome::Created);
    assert_eq!(received.lock().unwrap()[0]["events"].as_array().unwrap().len(), 1);
}

/// The command-line tool: one JSON line per report, naming its line in the file;
/// exit status 1 when a report was not delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pisync_upload_reports_each_line() {
    let (url, _) = server(vec![(
        200,
        None,
        json!({"results": [item(201), item(200), item(409)]}),
    )])
    .await;
    let dir = std::env::temp_dir().join(format!("pisync-upload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let backlog = dir.join("backlog.jsonl");
    let lines: Vec<String> = events(3);
    std::fs::write(&backlog, format!("{}\n\n{}\n{}\n", lines[0], lines[1], lines[2])).unwrap();
    let run = |with_settings: bool| {
        let (backlog, url) = (backlog.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pisync-upload"));
            cmd.arg(&backlog)
                .env_remove("PISYNC_URL")
                .env_remove("PISYNC_TOKEN");
            if with_settings {
                cmd.env("PISYNC_URL", &url).env("PISYNC_TOKEN", "device-token");
            }
            cmd.output().unwrap()
        })
    };
    let output = run(true).await.unwrap();
    let reports: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports[0], json!({"line": 1, "outcome": "created"}));
    assert_eq!(reports[1], json!({"line": 3, "outcome": "already_stored"}));
    assert_eq!(reports[2]["line"], 4);
    assert_eq!(reports[2]["outcome"], "rejected");
    assert_eq!(
        output.status.code(),
        Some(1),
        "a rejected report makes the exit status 1"
    );
    let missing = run(false).await.unwrap();
    assert_eq!(missing.status.code(), Some(2), "usage error");
    std::fs::remove_dir_all(&dir).unwrap();
}
