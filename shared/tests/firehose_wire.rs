//! The Firehose adapter at the wire level: the real SDK client sends PutRecordBatch over
//! HTTP to a local receiver that answers as Firehose does; the test checks what went
//! over the wire, and that only refused records are sent again.
#![cfg(feature = "firehose")]

use base64::Engine;
use pisync_shared::adapters::firehose::{FirehoseExport, RECORD_BYTES};
use pisync_shared::domain::school::SchoolId;
use pisync_shared::ports::{ExportedEvent, SendExport};
use pisync_shared::test_util::receiver::Receiver;
use pisync_shared::test_util::reported_event;

fn client(url: &str) -> aws_sdk_firehose::Client {
    let config = aws_sdk_firehose::Config::builder()
        .behavior_version(aws_sdk_firehose::config::BehaviorVersion::latest())
        .endpoint_url(url.trim_end_matches("/hook"))
        .region(aws_sdk_firehose::config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_firehose::config::Credentials::new(
            "AKID", "SECRET", None, None, "test",
        ))
        .retry_config(aws_sdk_firehose::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_firehose::Client::from_conf(config)
}

fn events(n: i64) -> Vec<ExportedEvent> {
    (0..n)
        .map(|m| ExportedEvent {
            event: reported_event(&format!("pibook-{m:04}"), m, 0),
            school_id: SchoolId::parse("north"),
        })
        .collect()
}

/// The records of one PutRecordBatch body, decoded.
fn records(body: &str) -> (String, Vec<Vec<u8>>) {
    let request: serde_json::Value = serde_json::from_str(body).unwrap();
    let data = request["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            base64::engine::general_purpose::STANDARD
                .decode(r["Data"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    (request["DeliveryStreamName"].as_str().unwrap().to_owned(), data)
}

fn device_ids(records: &[Vec<u8>]) -> Vec<String> {
    records
        .iter()
        .flat_map(|r| serde_json::Deserializer::from_slice(r).into_iter::<serde_json::Value>())
        .map(|o| o.unwrap()["device_id"].as_str().unwrap().to_owned())
        .collect()
}

const ALL_PUT: &str = r#"{"FailedPutCount":0,"Encrypted":true,"RequestResponses":[{"RecordId":"1"},{"RecordId":"2"},{"RecordId":"3"}]}"#;
const SECOND_REFUSED: &str = r#"{"FailedPutCount":1,"Encrypted":true,"RequestResponses":[{"RecordId":"1"},{"ErrorCode":"ServiceUnavailableException","ErrorMessage":"Slow down."},{"RecordId":"3"}]}"#;

#[tokio::test]
async fn events_travel_packed_and_only_refused_records_are_sent_again() {
    let receiver = Receiver::start().await;
    receiver.answer_with_json(&[(200, SECOND_REFUSED), (200, ALL_PUT)]);
    let export = FirehoseExport::new(client(&receiver.url), "pisync-export");
    let sent = events(60);
    export.send(&sent).await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].header("x-amz-target"),
        Some("Firehose_20150804.PutRecordBatch")
    );
    let (stream, first) = records(&received[0].body);
    assert_eq!(stream, "pisync-export");
    assert_eq!(first.len(), 3, "60 events in three records");
    assert!(first.iter().all(|r| r.len() <= RECORD_BYTES));
    let expected: Vec<String> = (0..60).map(|m| format!("pibook-{m:04}")).collect();
    assert_eq!(device_ids(&first), expected, "every event once, in order");
    let (_, again) = records(&received[1].body);
    assert_eq!(again, [first[1].clone()], "only the refused record again");
}

#[tokio::test]
async fn records_refused_three_times_are_an_error() {
    let receiver = Receiver::start().await;
    let refused = r#"{"FailedPutCount":1,"Encrypted":true,"RequestResponses":[{"ErrorCode":"InternalFailure","ErrorMessage":"x"}]}"#;
    receiver.answer_with_json(&[(200, refused), (200, refused), (200, refused)]);
    let export = FirehoseExport::new(client(&receiver.url), "pisync-export");
    assert!(export.send(&events(2)).await.is_err());
    assert_eq!(receiver.received().len(), 3);
    // A stream that does not exist: an error at once.
    let missing = Receiver::start().await;
    missing.answer_with_json(&[(
        400,
        r#"{"__type":"ResourceNotFoundException","message":"Firehose pisync-export not found"}"#,
    )]);
    let export = FirehoseExport::new(client(&missing.url), "pisync-export");
    assert!(export.send(&events(1)).await.is_err());
}
