//! The SNS adapter at the wire level: the real SDK client talks HTTP to a local
//! endpoint that records each request and answers as SNS does; the test checks what
//! went over the wire.
#![cfg(feature = "sns")]

use pisync_shared::adapters::sns::SnsPublisher;
use pisync_shared::domain::notice::{FailureAlert, Notice, RecoveryNotice};
use pisync_shared::ports::alerts::AlertPublisher;
use pisync_shared::{DeviceId, EventTime};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Recorded {
    headers: String,
    params: HashMap<String, String>,
}

/// Serves `status`/`body` to every request and records what came in.
async fn fake_sns(status: u16, answer: &'static str) -> (String, Arc<Mutex<Vec<Recorded>>>) {
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
    (url, seen)
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

fn alert() -> Notice {
    let t = |s| EventTime::parse_rfc3339(s).unwrap();
    Notice::RepeatedFailures(FailureAlert {
        device_id: DeviceId::parse("device_12345").unwrap(),
        consecutive_failures: 3,
        threshold: 3,
        streak_started_at: t("2025-05-07T10:31:00Z"),
        last_failure_at: t("2025-05-07T10:33:00Z"),
        last_total_errors: 2,
        detected_at: t("2025-05-07T10:33:01Z"),
        alert_id: "device_12345@start".into(),
    })
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
        .publish(&alert())
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
    let message: serde_json::Value = serde_json::from_str(&r.params["Message"]).unwrap();
    assert_eq!(
        message,
        serde_json::json!({
            "type": "device.repeated_sync_failures", "device_id": "device_12345",
            "consecutive_failures": 3, "threshold": 3,
            "streak_started_at": "2025-05-07T10:31:00.000Z", "last_failure_at": "2025-05-07T10:33:00.000Z",
            "last_total_errors": 2, "detected_at": "2025-05-07T10:33:01.000Z", "alert_id": "device_12345@start"
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
    let dedup = &r.params["MessageDeduplicationId"];
    assert_eq!(dedup.len(), 64);
    assert_eq!(
        dedup, &seen[1].params["MessageDeduplicationId"],
        "same notice, same id"
    );
    let message: serde_json::Value = serde_json::from_str(&r.params["Message"]).unwrap();
    assert_eq!(message["type"], "device.sync_recovered");
    assert_eq!(message["failures_before_recovery"], 4);
    assert_eq!(message["recovered_at"], "2025-05-07T11:00:00.000Z");
}

#[tokio::test]
async fn sns_errors_are_reported_not_swallowed() {
    let (url, _) = fake_sns(404, NOT_FOUND).await;
    let err = SnsPublisher::new(client_config(&url), "arn:aws:sns:eu-west-1:123456789012:gone")
        .publish(&alert())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NotFound"), "{err}");
}
