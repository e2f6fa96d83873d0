//! Webhook deliveries from the local runner to a real HTTP receiver on loopback:
//! signed bodies, retries with back-off, a receiver that hangs never delaying
//! detection, deliveries that survive a restart and are never repeated once taken.

use crate::support::runner::{Backend, TestApp};
use crate::support::{wait_for, wait_until};
use pisync_local::webhooks::{run_worker, Receivers, WebhookQueue};
use pisync_shared::adapters::webhook::HttpsWebhook;
use pisync_shared::domain::notice::{Notice, RecoveryNotice};
use pisync_shared::domain::webhook::{signature, RetryPolicy, WebhookTarget};
use pisync_shared::test_util::receiver::Receiver;
use pisync_shared::{DeviceId, EventTime};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "a-webhook-secret-for-the-tests-0123456789";

fn failure(device: &str, minute: u32) -> Value {
    json!({"device_id": device, "timestamp": format!("2025-05-07T10:{minute:02}:00Z"),
           "total_files_synced": 1, "total_errors": 1, "internet_speed": 1.0})
}

/// The runner with a webhook, its secret in a file the operator made (a secret is
/// never given on the command line).
fn start(dir: &std::path::Path, receiver: &Receiver) -> TestApp {
    std::fs::create_dir_all(dir).expect("data dir");
    let secret_file = dir.join("operators-webhook-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file written");
    let secret_file = secret_file.to_string_lossy().into_owned();
    TestApp::start(
        &Backend::Embedded,
        dir,
        &[
            "--webhook-url",
            &receiver.url,
            "--webhook-secret-file",
            &secret_file,
        ],
    )
}

/// Waits until the runner has delivered `delivered` webhooks and none waits: nothing is
/// left that could be sent (again).
async fn webhooks_idle(app: &TestApp, delivered: f64) {
    wait_until("webhooks delivered, none waiting", || async {
        app.metric_series("pisync_webhook_deliveries_total{result=\"delivered\"}")
            .await
            >= delivered
            && app.metric("pisync_webhooks_waiting").await == 0.0
    })
    .await;
}

async fn fail_three_times(app: &TestApp, device: &str) {
    for m in 1..=3 {
        assert_eq!(app.post_sync_event(&failure(device, m)).await.status, 201);
    }
}

async fn received(receiver: &Receiver, n: usize) -> Vec<pisync_shared::test_util::receiver::Received> {
    wait_for(&format!("{n} webhook requests"), || async {
        let got = receiver.received();
        (got.len() >= n).then_some(got)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_reaches_the_webhook_signed_with_the_notice_and_a_text_line() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &receiver);
    fail_three_times(&app, "dev-hook").await;
    let [request] = received(&receiver, 1).await.try_into().unwrap();
    let timestamp: i64 = request.header("x-pisync-timestamp").unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    assert_eq!(
        request.header("x-pisync-signature").unwrap(),
        signature(SECRET.as_bytes(), timestamp, &request.body),
        "a receiver holding the secret can verify it"
    );
    let body: Value = serde_json::from_str(&request.body).unwrap();
    let alert = &app.wait_for_alerts(|a| !a.is_empty())[0];
    for (field, value) in alert.as_object().unwrap() {
        assert_eq!(&body[field], value, "{field}: the notice's fields as published");
    }
    assert!(body["text"]
        .as_str()
        .unwrap()
        .starts_with("PiSync: dev-hook failed 3 syncs in a row"));
    // Taken once: delivered, and nothing left in the queue to send again.
    webhooks_idle(&app, 1.0).await;
    assert_eq!(receiver.received().len(), 1);
}

/// A school's notices reach its own webhook too, signed with the same secret; other
/// devices' notices reach the fleet's only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schools_webhook_receives_its_schools_notices() {
    let fleet = Receiver::start().await;
    let school = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &fleet);
    let admin = app.administrator();
    let created = admin
        .put_school(
            "north",
            json!({"name": "North", "timezone": "UTC", "webhook_url": school.url}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(admin.assign_school("dev-north", Some("north")).await.status, 200);
    fail_three_times(&app, "dev-north").await;
    fail_three_times(&app, "dev-fleet").await;
    let [to_school] = received(&school, 1).await.try_into().unwrap();
    let body: Value = serde_json::from_str(&to_school.body).unwrap();
    assert_eq!(
        (body["device_id"].as_str(), body["school_id"].as_str()),
        (Some("dev-north"), Some("north"))
    );
    let timestamp: i64 = to_school.header("x-pisync-timestamp").unwrap().parse().unwrap();
    assert_eq!(
        to_school.header("x-pisync-signature").unwrap(),
        signature(SECRET.as_bytes(), timestamp, &to_school.body)
    );
    let to_fleet = received(&fleet, 2).await;
    let mut devices: Vec<String> = to_fleet
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["device_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    devices.sort();
    assert_eq!(
        devices,
        ["dev-fleet", "dev-north"],
        "the fleet's webhook gets every notice"
    );
    webhooks_idle(&app, 3.0).await;
    assert_eq!(school.received().len(), 1, "only its own school's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_never_delays_detection_or_the_other_channels() {
    let receiver = Receiver::start().await;
    receiver.answer_with(&[0; 64]);
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &receiver);
    let began = Instant::now();
    for device in ["hang-a", "hang-b", "hang-c"] {
        fail_three_times(&app, device).await;
    }
    let alerts = app.wait_for_alerts(|a| a.len() == 3);
    let took = began.elapsed();
    assert_eq!(alerts.len(), 3);
    // Each delivery waits up to 10 s for the receiver; the alert lines did not.
    assert!(
        took < Duration::from_secs(10),
        "alerts took {took:?} with a hanging webhook"
    );
    assert!(!receiver.received().is_empty(), "the webhook was tried meanwhile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_survive_a_restart() {
    let receiver = Receiver::start().await;
    receiver.answer_with(&[503; 100]);
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &receiver);
    fail_three_times(&app, "dev-restart").await;
    received(&receiver, 1).await;
    app.stop();
    let refused = receiver.received().len();
    // The receiver recovers while the runner is down.
    let healthy = Receiver::start().await;
    let app = start(dir.path(), &healthy);
    let [delivered] = received(&healthy, 1).await.try_into().unwrap();
    let body: Value = serde_json::from_str(&delivered.body).unwrap();
    assert_eq!(body["device_id"], "dev-restart");
    assert_eq!(
        receiver.received().len(),
        refused,
        "the old URL is not used again"
    );
    webhooks_idle(&app, 1.0).await;
    assert_eq!(healthy.received().len(), 1, "delivered once");
    drop(app);
}

/// The worker's receivers: `receiver` as the fleet's webhook, no school (the store in
/// `dir`).
fn to_fleet(receiver: &Receiver, dir: &std::path::Path) -> Receivers {
    let store = pisync_shared::adapters::sqlite::SqliteStore::open(&dir.join("schools.db")).unwrap();
    Receivers {
        transport: Arc::new(HttpsWebhook::new().unwrap()),
        fleet_url: Some(receiver.url.clone()),
        schools: Arc::new(store),
        secret: SECRET.as_bytes().to_vec(),
    }
}

fn notice() -> Notice {
    Notice::Recovered(RecoveryNotice {
        device_id: DeviceId::parse("dev-retry").unwrap(),
        failures_before_recovery: 3,
        recovered_at: EventTime::parse_rfc3339("2025-05-07T10:45:00Z").unwrap(),
        alert_id: "dev-retry@start".into(),
        school_id: None,
    })
}

/// The runner's worker with a fast policy: 5xx, 429 and a timeout are retried with
/// growing pauses until the receiver takes it; then it is never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_back_off_until_taken() {
    let receiver = Receiver::start().await;
    receiver.answer_with(&[500, 429, 0]);
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(WebhookQueue::open(&dir.path().join("webhooks.db")).unwrap());
    let policy = RetryPolicy {
        first: Duration::from_millis(200),
        longest: Duration::from_secs(1),
        give_up_after: Duration::from_secs(120),
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(run_worker(
        queue.clone(),
        to_fleet(&receiver, dir.path()),
        policy,
        stop,
    ));
    queue.enqueue(&notice(), &WebhookTarget::Fleet).unwrap();
    let requests = received(&receiver, 4).await;
    assert!(
        requests.iter().all(|r| r.body == requests[0].body),
        "the same body each time"
    );
    // Taken: the queue holds nothing more to send.
    wait_for("delivered", || async {
        (queue.counts().unwrap() == (0, 0)).then_some(())
    })
    .await;
    assert_eq!(receiver.received().len(), 4, "nothing after the 2xx");
    let _ = stop_tx.send(true);
    let _ = worker.await;
}

/// A rejection (4xx) is final: the delivery is kept aside, not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_delivery_is_set_aside() {
    let receiver = Receiver::start().await;
    receiver.answer_with(&[404]);
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(WebhookQueue::open(&dir.path().join("webhooks.db")).unwrap());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(run_worker(
        queue.clone(),
        to_fleet(&receiver, dir.path()),
        RetryPolicy::default(),
        stop,
    ));
    queue.enqueue(&notice(), &WebhookTarget::Fleet).unwrap();
    wait_for("set aside", || async {
        (queue.counts().unwrap() == (0, 1)).then_some(())
    })
    .await;
    assert_eq!(receiver.received().len(), 1);
    let _ = stop_tx.send(true);
    let _ = worker.await;
}
