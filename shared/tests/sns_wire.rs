//! The SNS adapter at the wire level: the real SDK client talks HTTP to a local
//! endpoint that records each request and answers as SNS does; the test checks what
//! went over the wire.
#![cfg(feature = "sns")]

use pisync_shared::adapters::sns::SnsPublisher;
use pisync_shared::domain::delivery::{deliver_pending, FAILURES_PER_ROUND};
use pisync_shared::domain::notice::{Notice, RecoveryNotice};
use pisync_shared::ports::alerts::AlertPublisher;
use pisync_shared::ports::Outbox;
use pisync_shared::test_util::{example_alert, record_and_apply, reported_event, sqlite_store};
use pisync_shared::{DeviceId, EventTime};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Recorded {
    headers: String,
    params: HashMap<String, String>,
}

/// Serves `status`/`body` to every request and records what came in.
async fn fake_sns(status: u16, answer: &'static str) -> (String, Arc<Mutex<Vec<Recorded>>>) {
    let (url, seen, _) = switchable_sns(status, answer).await;
    (url, seen)
}

/// As [`fake_sns`], with the status changeable while it runs (SNS down, then back):
/// a 2xx answers a successful publish, anything else `answer`.
async fn switchable_sns(
    status: u16,
    answer: &'static str,
) -> (String, Arc<Mutex<Vec<Recorded>>>, Arc<AtomicU16>) {
    let status = Arc::new(AtomicU16::new(status));
    let current = status.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            let status = current.load(Ordering::SeqCst);
            let answer = if status == 200 { OK } else { answer };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let headers = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let length: usize = headers
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    let request_body = &buf[end + 4..end + 4 + length];
                    let params = form_urlencoded::parse(request_body).into_owned().collect();
                    log.lock().unwrap().push(Recorded { headers, params });
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                    return;
                }
            });
        }
    });
    (url, seen, status)
}

const OK: &str = r#"<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>567910cd-659e-55d4-8ccb-5aaf14679dc0</MessageId></PublishResult><ResponseMetadata><RequestId>d74b8436-ae13-5ab4-a9ff-ce54dfea72a0</RequestId></ResponseMetadata></PublishResponse>"#;
const NOT_FOUND: &str = r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>NotFound</Code><Message>Topic does not exist</Message></Error><RequestId>9dd01905-5012-5f99-8663-4b3ecd0dfaef</RequestId></ErrorResponse>"#;

fn client_config(url: &str) -> aws_sdk_sns::Config {
    aws_sdk_sns::Config::builder()
        .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_sdk_sns::config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_sns::config::Credentials::new(
            "AKID", "SECRET", None, None, "test",
        ))
        .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
        .build()
}

fn attributes(params: &HashMap<String, String>) -> HashMap<String, (String, String)> {
    (1..10)
        .filter_map(|i| {
            let p = |k: &str| params.get(&format!("MessageAttributes.entry.{i}.{k}")).cloned();
            Some((p("Name")?, (p("Value.DataType")?, p("Value.StringValue")?)))
        })
        .collect()
}

#[tokio::test]
async fn publishes_the_contract_message_with_attributes_and_subject() {
    let (url, seen) = fake_sns(200, OK).await;
    let topic = "arn:aws:sns:eu-west-1:123456789012:pisync-alerts";
    SnsPublisher::new(client_config(&url), topic)
        .publish(&example_alert())
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert!(
        r.headers.contains("authorization: aws4-hmac-sha256"),
        "signed request"
    );
    assert_eq!(r.params["Action"], "Publish");
    assert_eq!(r.params["TopicArn"], topic);
    assert_eq!(
        r.params["Subject"],
        "PiSync: device_12345 failed 3 syncs in a row"
    );
    assert_eq!(r.params["MessageStructure"], "json", "one message per protocol");
    let per_protocol: serde_json::Value = serde_json::from_str(&r.params["Message"]).unwrap();
    let default = per_protocol["default"].as_str().expect("a default message");
    let message: serde_json::Value = serde_json::from_str(default).unwrap();
    assert_eq!(per_protocol["email-json"].as_str(), Some(default));
    assert_eq!(
        per_protocol["email"].as_str(),
        Some(example_alert().email_text(None).as_str())
    );
    let sms = per_protocol["sms"].as_str().unwrap();
    assert!(
        sms.chars().count() <= 140 && sms.contains("device_12345"),
        "{sms}"
    );
    assert_eq!(
        message,
        serde_json::json!({
            "type": "device.repeated_sync_failures", "device_id": "device_12345",
            "consecutive_failures": 3, "threshold": 3,
            "streak_started_at": "2025-05-07T10:31:00.000Z", "last_failure_at": "2025-05-07T10:33:00.000Z",
            "last_total_errors": 2, "detected_at": "2025-05-07T10:33:01.000Z", "alert_id": "device_12345@start",
            "school_id": null
        })
    );
    let attrs = attributes(&r.params);
    assert_eq!(
        attrs["event_type"],
        ("String".into(), "device.repeated_sync_failures".into())
    );
    assert_eq!(attrs["device_id"], ("String".into(), "device_12345".into()));
    assert_eq!(
        attrs["alert_id"],
        ("String".into(), "device_12345@start#alert".into())
    );
    assert!(!attrs.contains_key("school_id"), "a device in no school");
    assert!(!r.params.contains_key("MessageDeduplicationId"), "standard topic");
}

#[tokio::test]
async fn fifo_topics_get_group_and_deduplication_ids() {
    let (url, seen) = fake_sns(200, OK).await;
    let recovery = Notice::Recovered(RecoveryNotice {
        device_id: DeviceId::parse("device_12345").unwrap(),
        failures_before_recovery: 4,
        recovered_at: EventTime::parse_rfc3339("2025-05-07T11:00:00Z").unwrap(),
        alert_id: "device_12345@start".into(),
        school_id: pisync_shared::domain::school::SchoolId::parse("north-high"),
    });
    let publisher = SnsPublisher::new(
        client_config(&url),
        "arn:aws:sns:eu-west-1:123456789012:pisync-alerts.fifo",
    );
    publisher.publish(&recovery).await.unwrap();
    publisher.publish(&recovery).await.unwrap();
    let seen = seen.lock().unwrap();
    let r = &seen[0];
    assert_eq!(r.params["Subject"], "PiSync: device_12345 is syncing again");
    assert_eq!(r.params["MessageGroupId"], "device_12345");
    assert_eq!(
        attributes(&r.params)["school_id"],
        ("String".into(), "north-high".into()),
        "a school's staff filter on it"
    );
    let dedup = &r.params["MessageDeduplicationId"];
    assert_eq!(dedup.len(), 64);
    assert_eq!(
        dedup, &seen[1].params["MessageDeduplicationId"],
        "same notice, same id"
    );
    let per_protocol: serde_json::Value = serde_json::from_str(&r.params["Message"]).unwrap();
    let message: serde_json::Value = serde_json::from_str(per_protocol["default"].as_str().unwrap()).unwrap();
    assert_eq!(message["type"], "device.sync_recovered");
    assert_eq!(message["failures_before_recovery"], 4);
    assert_eq!(message["recovered_at"], "2025-05-07T11:00:00.000Z");
}

/// A school's digest is about no device: no `device_id` attribute, and on a FIFO topic
/// the school is its message group.
#[tokio::test]
async fn a_digest_is_filtered_and_grouped_by_its_school() {
    use pisync_shared::domain::notice::{DigestDay, SchoolDigest};
    let (url, seen) = fake_sns(200, OK).await;
    let digest = Notice::Digest(Box::new(SchoolDigest {
        school_id: pisync_shared::domain::school::SchoolId::parse("north-high").unwrap(),
        name: "North High".into(),
        date: "2025-05-08".into(),
        devices: Default::default(),
        failing: Vec::new(),
        silent: Vec::new(),
        unpublished: 0,
        yesterday: DigestDay {
            date: "2025-05-07".into(),
            syncs: 0,
            failures: 0,
            failure_rate: 0.0,
        },
        detected_at: EventTime::parse_rfc3339("2025-05-08T07:00:05Z").unwrap(),
        alert_id: "north-high@digest@2025-05-08".into(),
    }));
    SnsPublisher::new(
        client_config(&url),
        "arn:aws:sns:eu-west-1:123456789012:pisync-alerts.fifo",
    )
    .publish(&digest)
    .await
    .unwrap();
    let seen = seen.lock().unwrap();
    let r = &seen[0];
    let attrs = attributes(&r.params);
    let names: std::collections::BTreeSet<&str> = attrs.keys().map(String::as_str).collect();
    assert_eq!(names, ["alert_id", "event_type", "school_id"].into());
    assert_eq!(attrs["event_type"].1, "school.digest");
    assert_eq!(attrs["alert_id"].1, "north-high@digest@2025-05-08#digest");
    assert_eq!(r.params["MessageGroupId"], "north-high");
}

#[tokio::test]
async fn sns_errors_are_reported_not_swallowed() {
    let (url, _) = fake_sns(404, NOT_FOUND).await;
    let err = SnsPublisher::new(client_config(&url), "arn:aws:sns:eu-west-1:123456789012:gone")
        .publish(&example_alert())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NotFound"), "{err}");
}

#[tokio::test]
async fn the_email_links_to_the_device_when_the_dashboard_url_is_known() {
    let (url, seen) = fake_sns(200, OK).await;
    SnsPublisher::new(client_config(&url), "arn:aws:sns:eu-west-1:123456789012:a")
        .with_dashboard_url(Some("https://ops.example/dashboard".into()))
        .publish(&example_alert())
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let per_protocol: serde_json::Value = serde_json::from_str(&seen[0].params["Message"]).unwrap();
    assert!(per_protocol["email"]
        .as_str()
        .unwrap()
        .contains("https://ops.example/dashboard#/device/device_12345"));
}

/// SNS down, then back: detection applies every event and saves its notices while
/// publishing fails, nothing is retried from the stream, and the scheduled delivery
/// publishes everything — in order — once SNS answers again.
#[tokio::test]
async fn notices_wait_out_an_sns_outage_and_go_out_when_it_ends() {
    const UNAVAILABLE: &str = r#"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalError</Code><Message>down</Message></Error><RequestId>x</RequestId></ErrorResponse>"#;
    let (url, seen, status) = switchable_sns(500, UNAVAILABLE).await;
    let publisher = SnsPublisher::new(client_config(&url), "arn:aws:sns:eu-west-1:123456789012:a");
    let (_dir, store) = sqlite_store();
    // Three failures, then a success: an alert and a recovery, both while SNS is down.
    for (m, errors) in [(1, 1), (2, 1), (3, 1), (4, 0)] {
        record_and_apply(&store, &reported_event("outage", m, errors)).await;
        let round = deliver_pending(&store, &publisher).await.unwrap();
        assert!(round.published.is_empty());
    }
    assert_eq!(
        store.pending(10).await.unwrap().len(),
        2,
        "both wait in the outbox"
    );
    assert!(!seen.lock().unwrap().is_empty(), "publishing was tried");
    status.store(200, Ordering::SeqCst);
    seen.lock().unwrap().clear();
    let round = deliver_pending(&store, &publisher).await.unwrap();
    assert_eq!((round.published.len(), round.failed), (2, 0));
    assert!(store.pending(10).await.unwrap().is_empty());
    let kinds: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| attributes(&r.params)["event_type"].1.clone())
        .collect();
    assert_eq!(kinds, ["device.repeated_sync_failures", "device.sync_recovered"]);
}

/// An SNS endpoint that takes connections and never answers: each publish gives up at
/// its timeout, and a delivery round stops after `FAILURES_PER_ROUND` of them, so a
/// hanging channel holds the batch that delivers for seconds, not until Lambda's
/// timeout fails it. Everything stays in the outbox for the next round.
#[tokio::test]
async fn a_hanging_sns_fails_each_publish_and_the_round_stops_early() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let publisher = SnsPublisher::new(client_config(&url), "arn:aws:sns:eu-west-1:123456789012:a");
    let (_dir, store) = sqlite_store();
    let devices = FAILURES_PER_ROUND + 2;
    for d in 0..devices {
        for m in 1..=3 {
            record_and_apply(&store, &reported_event(&format!("hanging-{d}"), m, 1)).await;
        }
    }
    let round = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        deliver_pending(&store, &publisher),
    )
    .await
    .expect("the round ends")
    .unwrap();
    assert_eq!((round.published.len(), round.failed), (0, FAILURES_PER_ROUND));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        FAILURES_PER_ROUND,
        "one attempt per failed publish (retries are off here)"
    );
    assert_eq!(store.pending(10).await.unwrap().len(), devices, "all wait");
}
