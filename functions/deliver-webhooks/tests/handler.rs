//! deliver-webhooks' handler against a real HTTP receiver on loopback (the transport is
//! the production one), with the SQS queue's two operations recorded.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use deliver_webhooks::{deliver_batch, DeliverWebhooks};
use pisync_shared::adapters::webhook::HttpsWebhook;
use pisync_shared::domain::webhook::{signature, RetryPolicy};
use pisync_shared::ports::{DeliveryQueue, StoreError};
use pisync_shared::test_util::example_alert;
use pisync_shared::test_util::lambda_events::{events_dir, files_of};
use pisync_shared::test_util::receiver::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_746_613_900_000;

#[derive(Default)]
struct RecordedQueue {
    delayed: Mutex<Vec<(String, Duration)>>,
    dead: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl DeliveryQueue for RecordedQueue {
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        self.delayed.lock().unwrap().push((receipt.to_owned(), delay));
        Ok(())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        self.dead
            .lock()
            .unwrap()
            .push((body.to_owned(), reason.to_owned()));
        Ok(())
    }
}

/// An SQS message as the queue hands it over: the notice JSON (raw delivery).
fn message(body: &str, receive_count: u32, sent_ms_ago: i64) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(format!("m-{receive_count}"));
    m.receipt_handle = Some(format!("r-{receive_count}"));
    m.body = Some(body.to_owned());
    m.attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    m.attributes
        .insert("SentTimestamp".into(), (NOW - sent_ms_ago).to_string());
    m
}

fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

/// A batch of one: the example alert, on its `receive_count`th receipt.
fn alert_batch(receive_count: u32, sent_ms_ago: i64) -> SqsEvent {
    batch(vec![message(
        &example_alert().to_json(),
        receive_count,
        sent_ms_ago,
    )])
}

async fn setup() -> (Receiver, Arc<RecordedQueue>, DeliverWebhooks) {
    let receiver = Receiver::start().await;
    let queue = Arc::new(RecordedQueue::default());
    let deps = DeliverWebhooks::new(
        Arc::new(HttpsWebhook::new(&receiver.url).unwrap()),
        queue.clone(),
        SECRET.to_vec(),
        RetryPolicy::default(),
    );
    (receiver, queue, deps)
}

#[test]
fn every_example_event_has_a_case() {
    assert_eq!(files_of("deliver-webhooks"), ["deliver-webhooks/alert.json"]);
}

#[tokio::test]
async fn the_example_message_is_delivered() {
    let (receiver, _queue, deps) = setup().await;
    let event: SqsEvent = serde_json::from_str(
        &std::fs::read_to_string(events_dir().join("deliver-webhooks/alert.json")).unwrap(),
    )
    .unwrap();
    let delivered = deliver_batch(&deps, event, NOW).await;
    assert!(delivered.response.batch_item_failures.is_empty());
    let body: serde_json::Value = serde_json::from_str(&receiver.received()[0].body).unwrap();
    assert_eq!(body["type"], "device.repeated_sync_failures");
    assert_eq!(body["device_id"], "device_12345");
}

#[tokio::test]
async fn a_delivery_is_the_notice_and_a_text_line_signed_over_timestamp_and_body() {
    let (receiver, queue, deps) = setup().await;
    let delivered = deliver_batch(&deps, alert_batch(1, 0), NOW).await;
    assert!(delivered.response.batch_item_failures.is_empty());
    let [request] = receiver.received().try_into().unwrap();
    let timestamp = request.header("x-pisync-timestamp").unwrap();
    assert_eq!(timestamp, (NOW / 1000).to_string());
    assert_eq!(
        request.header("x-pisync-signature").unwrap(),
        signature(SECRET, NOW / 1000, &request.body),
        "the receiver can verify it"
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    let contract: serde_json::Value = serde_json::from_str(&example_alert().to_json()).unwrap();
    for (field, value) in contract.as_object().unwrap() {
        assert_eq!(&body[field], value, "{field}");
    }
    assert_eq!(
        body["text"],
        "PiSync: device_12345 failed 3 syncs in a row (since 2025-05-07 10:31:00 UTC; last failure 2025-05-07 10:33:00 UTC with 2 errors)"
    );
    assert!(queue.delayed.lock().unwrap().is_empty() && queue.dead.lock().unwrap().is_empty());
    assert_eq!(delivered.figures.notices, [("device.repeated_sync_failures", 1)]);
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried_with_backoff() {
    let (receiver, queue, deps) = setup().await;
    receiver.answer_with(&[500, 429]);
    let first = deliver_batch(&deps, alert_batch(1, 0), NOW).await;
    let second = deliver_batch(&deps, alert_batch(2, 10_000), NOW).await;
    assert_eq!(first.response.batch_item_failures[0].item_identifier, "m-1");
    assert_eq!(second.response.batch_item_failures.len(), 1);
    assert_eq!(
        *queue.delayed.lock().unwrap(),
        [
            ("r-1".to_owned(), Duration::from_secs(10)),
            ("r-2".to_owned(), Duration::from_secs(20))
        ],
        "the first retry within 10 seconds, then twice as long"
    );
    let third = deliver_batch(&deps, alert_batch(3, 30_000), NOW).await;
    assert!(
        third.response.batch_item_failures.is_empty(),
        "the receiver is back"
    );
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn a_receiver_that_hangs_is_a_timeout_and_retried() {
    let (receiver, queue, deps) = setup().await;
    receiver.answer_with(&[0]);
    let delivered = deliver_batch(&deps, alert_batch(1, 0), NOW).await;
    assert_eq!(delivered.response.batch_item_failures.len(), 1);
    assert_eq!(queue.delayed.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_rejection_or_a_day_of_failures_dead_letters_the_delivery() {
    let (receiver, queue, deps) = setup().await;
    receiver.answer_with(&[404, 503]);
    let rejected = deliver_batch(&deps, alert_batch(1, 0), NOW).await;
    assert!(
        rejected.response.batch_item_failures.is_empty(),
        "removed from the queue"
    );
    let day_old = deliver_batch(&deps, alert_batch(30, 86_400_000), NOW).await;
    assert!(day_old.response.batch_item_failures.is_empty());
    let reasons: Vec<String> = queue
        .dead
        .lock()
        .unwrap()
        .iter()
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(reasons, ["rejected by the receiver", "failing for 24 hours"]);
    let garbage = deliver_batch(&deps, batch(vec![message("{\"not\":\"a notice\"}", 1, 0)]), NOW).await;
    assert!(garbage.response.batch_item_failures.is_empty());
    assert_eq!(queue.dead.lock().unwrap().len(), 3);
    assert_eq!(receiver.received().len(), 2, "garbage is never sent");
}
