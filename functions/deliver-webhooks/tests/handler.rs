//! deliver-webhooks' handler against a real HTTP receiver on loopback (the transport is
//! the production one), with the SQS queue's two operations recorded.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use deliver_webhooks::{deliver_batch, DeliverWebhooks};
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::adapters::webhook::HttpsWebhook;
use pisync_shared::domain::webhook::{signature, RetryPolicy, WebhookTarget};
use pisync_shared::ports::{DeliveryQueue, StoreError};
use pisync_shared::test_util::example_alert;
use pisync_shared::test_util::lambda_events::{events_dir, files_of};
use pisync_shared::test_util::receiver::Receiver;
use pisync_shared::test_util::sqlite_store;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_746_613_900_000;

#[derive(Default)]
struct RecordedQueue {
    delayed: Mutex<Vec<(String, Duration)>>,
    dead: Mutex<Vec<(String, String)>>,
    fanned_out: Mutex<Vec<Vec<WebhookTarget>>>,
}

#[async_trait]
impl DeliveryQueue for RecordedQueue {
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        self.delayed.lock().unwrap().push((receipt.to_owned(), delay));
        Ok(())
    }

    async fn fan_out(&self, _: &str, targets: &[WebhookTarget]) -> Result<(), StoreError> {
        self.fanned_out.lock().unwrap().push(targets.to_vec());
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
    let (queue, deps) = deliveries(Some(receiver.url.clone()), sqlite_store().1);
    (receiver, queue, deps)
}

/// Deliveries to `fleet_url` and to the schools of `store`, queued in a recorder.
fn deliveries(fleet_url: Option<String>, store: SqliteStore) -> (Arc<RecordedQueue>, DeliverWebhooks) {
    let queue = Arc::new(RecordedQueue::default());
    let deps = DeliverWebhooks::new(
        Arc::new(HttpsWebhook::new().unwrap()),
        queue.clone(),
        Arc::new(store),
        fleet_url,
        SECRET.to_vec(),
        RetryPolicy::default(),
    );
    (queue, deps)
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

/// The example alert, for a device in the school `north`.
fn north_alert() -> pisync_shared::domain::notice::Notice {
    let mut alert = example_alert();
    if let pisync_shared::domain::notice::Notice::RepeatedFailures(a) = &mut alert {
        a.school_id = pisync_shared::domain::school::SchoolId::parse("north");
    }
    alert
}

/// A school whose `webhook_url` is `url` (`None`: without one), in a fresh store.
async fn north_with(url: Option<String>) -> (pisync_shared::test_util::TempDir, SqliteStore) {
    use pisync_shared::ports::ManageSchools;
    let (dir, store) = sqlite_store();
    let mut north = pisync_shared::test_util::school("north");
    north.webhook_url = url;
    store.put_school(&north, true).await.unwrap();
    (dir, store)
}

/// A message that targets one webhook (queued again by a fan-out).
fn targeted(notice: &pisync_shared::domain::notice::Notice, target: &WebhookTarget) -> SqsMessage {
    let mut m = message(&notice.to_json(), 1, 0);
    let mut attribute = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
    attribute.string_value = Some(target.key());
    attribute.data_type = Some("String".into());
    m.message_attributes.insert("target".into(), attribute);
    m
}

/// A notice of a school's device goes to the fleet's webhook and the school's: the
/// topic's message is queued again once per target, and nothing is posted yet.
#[tokio::test]
async fn a_school_notice_fans_out_to_each_webhook() {
    let fleet = Receiver::start().await;
    let (_dir, store) = north_with(Some("http://127.0.0.1:9/unused".into())).await;
    let (queue, deps) = deliveries(Some(fleet.url.clone()), store);
    let delivered = deliver_batch(&deps, batch(vec![message(&north_alert().to_json(), 1, 0)]), NOW).await;
    assert!(delivered.response.batch_item_failures.is_empty());
    let north = WebhookTarget::School(pisync_shared::domain::school::SchoolId::parse("north").unwrap());
    assert_eq!(
        *queue.fanned_out.lock().unwrap(),
        [vec![WebhookTarget::Fleet, north]]
    );
    assert!(fleet.received().is_empty());
}

/// A message for the school's target is posted, signed, to the school's current URL.
#[tokio::test]
async fn a_school_target_is_posted_to_the_schools_webhook() {
    let school = Receiver::start().await;
    let (_dir, store) = north_with(Some(school.url.clone())).await;
    let (_queue, deps) = deliveries(None, store);
    let north = WebhookTarget::School(pisync_shared::domain::school::SchoolId::parse("north").unwrap());
    let delivered = deliver_batch(&deps, batch(vec![targeted(&north_alert(), &north)]), NOW).await;
    assert!(delivered.response.batch_item_failures.is_empty());
    let [request] = school.received().try_into().unwrap();
    assert_eq!(
        request.header("x-pisync-signature").unwrap(),
        signature(SECRET, NOW / 1000, &request.body),
        "signed as the fleet's"
    );
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["school_id"], "north");
}

/// Without a fleet webhook, a school notice goes straight to the school's; a school
/// that no longer has one drops it.
#[tokio::test]
async fn one_target_is_delivered_at_once_and_none_drops() {
    let school = Receiver::start().await;
    let (_dir, store) = north_with(Some(school.url.clone())).await;
    let (queue, deps) = deliveries(None, store);
    deliver_batch(&deps, batch(vec![message(&north_alert().to_json(), 1, 0)]), NOW).await;
    assert_eq!(school.received().len(), 1);
    assert!(queue.fanned_out.lock().unwrap().is_empty());
    let (_dir, without) = north_with(None).await;
    let (queue, deps) = deliveries(None, without);
    let delivered = deliver_batch(&deps, batch(vec![message(&north_alert().to_json(), 1, 0)]), NOW).await;
    assert!(
        delivered.response.batch_item_failures.is_empty(),
        "dropped, not retried"
    );
    assert!(queue.dead.lock().unwrap().is_empty());
}
