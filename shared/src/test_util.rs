//! Fixtures shared by every crate's tests, benchmarks and measuring examples (the
//! `test-util` feature): one event builder, one recording alert publisher, and
//! DynamoDB Local tables.

use crate::domain::event::{DeviceId, Outcome, StoredEvent};
use crate::domain::fleet::Day;
use crate::domain::notice::Notice;
use crate::domain::streak::{RunCount, RunWindow};
use crate::domain::time::EventTime;
use crate::ports::{AlertPublisher, DeviceStates, PublishError, Saved, StateWrite, StoreError, Versioned};
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Returns at once, unless the date in one of `zones` changes within `margin`: then it
/// waits until that date has changed. A test that stores "today's" syncs and then reads
/// "today" back calls it first, so both happen on one date in each zone it checks.
pub async fn wait_out_date_change(margin: std::time::Duration, zones: &[chrono_tz::Tz]) {
    while date_changes_within(EventTime::now(), margin, zones) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Whether the date in one of `zones` differs between `now` and `margin` later.
fn date_changes_within(now: EventTime, margin: std::time::Duration, zones: &[chrono_tz::Tz]) -> bool {
    let later = now.plus_millis(i64::try_from(margin.as_millis()).unwrap_or(i64::MAX));
    zones
        .iter()
        .any(|&zone| Day::local(now, zone) != Day::local(later, zone))
}

/// The device timestamp `minute` minutes after a fixed start (2025-05-07T06:40Z).
pub fn minute(minute: i64) -> EventTime {
    EventTime::from_millis(1_746_600_000_000 + minute * 60_000).expect("a time in range")
}

pub fn device(id: &str) -> DeviceId {
    DeviceId::parse(id).expect("a valid device id")
}

/// A school in UTC, open every day all day, with the fleet's settings.
pub fn school(id: &str) -> crate::domain::school::School {
    crate::domain::school::School {
        school_id: crate::domain::school::SchoolId::parse(id).expect("a valid school id"),
        name: format!("School {id}"),
        timezone: chrono_tz::UTC,
        hours: None,
        closures: Vec::new(),
        failure_threshold: None,
        silent_after: None,
        webhook_url: None,
        digest_at: None,
    }
}

/// Creates the school `id` (in UTC, the fleet's settings) and assigns `devices` to it,
/// as a district admin would.
pub async fn school_with(
    store: &(impl crate::ports::ManageSchools + DeviceStates),
    id: &str,
    devices: &[&str],
) {
    store.put_school(&school(id), true).await.expect("school stored");
    let school_id = crate::domain::school::SchoolId::parse(id).expect("a valid school id");
    for d in devices {
        let assigned = crate::domain::assignment::assign(
            store,
            &device(d),
            Some(&school_id),
            Default::default(),
            |_| true,
            minute(0),
        )
        .await
        .expect("assigned");
        assert!(
            matches!(assigned, crate::domain::assignment::Assigned::Moved { .. }),
            "{d} assigned to {id}"
        );
    }
}

/// A stored event of `device` at `minute(m)` with `errors` errors (a failure when > 0).
/// An alert for `device_12345` (three failures from 10:31 to 10:33 on 2025-05-07), as
/// the example events carry it.
pub fn example_alert() -> Notice {
    let t = |text| EventTime::parse_rfc3339(text).expect("a fixed timestamp");
    Notice::RepeatedFailures(crate::domain::notice::FailureAlert {
        device_id: device("device_12345"),
        consecutive_failures: 3,
        threshold: 3,
        streak_started_at: t("2025-05-07T10:31:00Z"),
        last_failure_at: t("2025-05-07T10:33:00Z"),
        last_total_errors: 2,
        detected_at: t("2025-05-07T10:33:01Z"),
        alert_id: "device_12345@start".into(),
        school_id: None,
    })
}

pub fn stored_event(device_id: &str, m: i64, errors: u32) -> StoredEvent {
    StoredEvent {
        device_id: device(device_id),
        timestamp: minute(m),
        total_files_synced: 3,
        total_errors: errors,
        internet_speed: 1.5,
        outcome: Outcome::of(errors),
        received_at: minute(100_000),
    }
}

/// [`stored_event`], received as it happened: news (within the freshness window), so
/// its streak's alert is published.
pub fn reported_event(device_id: &str, m: i64, errors: u32) -> StoredEvent {
    StoredEvent {
        received_at: minute(m),
        ..stored_event(device_id, m, errors)
    }
}

/// Stores `event` and applies it as the stream consumer would, at its received time
/// and with the default rules: a report going through PiSync on its own.
pub async fn record_and_apply(store: &(impl crate::ports::RecordEvents + DeviceStates), event: &StoredEvent) {
    store.record(event.clone()).await.expect("stored");
    crate::domain::detection::apply_event(store, Default::default(), event, event.received_at)
        .await
        .expect("applied");
}

/// A stored event of `device` at an RFC 3339 `timestamp`, received at that time, with
/// the figures of the example events in `events/` (42 files, 5.3 Mbit/s).
pub fn stored_event_at(device_id: &str, timestamp: &str, errors: u32) -> StoredEvent {
    let t = EventTime::parse_rfc3339(timestamp).expect("an RFC 3339 timestamp");
    StoredEvent {
        device_id: device(device_id),
        timestamp: t,
        total_files_synced: 42,
        total_errors: errors,
        internet_speed: 5.3,
        outcome: Outcome::of(errors),
        received_at: t,
    }
}

/// Captures published notices; can be told to fail.
#[derive(Default)]
pub struct RecordingAlerts {
    pub sent: Mutex<Vec<Notice>>,
    pub fail: Mutex<bool>,
}

impl RecordingAlerts {
    /// The `type` of every notice published so far, in order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.sent
            .lock()
            .expect("alerts lock")
            .iter()
            .map(|n| n.event_type())
            .collect()
    }

    pub fn set_failing(&self, fail: bool) {
        *self.fail.lock().expect("alerts lock") = fail;
    }
}

#[async_trait]
impl AlertPublisher for RecordingAlerts {
    async fn publish(&self, notice: &Notice) -> Result<(), PublishError> {
        if *self.fail.lock().expect("alerts lock") {
            return Err(PublishError::new("told to fail"));
        }
        self.sent.lock().expect("alerts lock").push(notice.clone());
        Ok(())
    }
}

/// A real store's device states that fail, on demand, for chosen devices: a store
/// outage as detection sees it, to test what it reports and how it recovers.
pub struct FlakyStates {
    inner: Arc<dyn DeviceStates>,
    failing: Mutex<HashSet<String>>,
}

impl FlakyStates {
    pub fn new(inner: Arc<dyn DeviceStates>) -> Self {
        Self {
            inner,
            failing: Mutex::new(HashSet::new()),
        }
    }

    /// From now on, every operation on `device`'s state fails (or works again).
    pub fn set_failing(&self, device: &str, fail: bool) {
        let mut failing = self.failing.lock().expect("flaky lock");
        if fail {
            failing.insert(device.to_owned());
        } else {
            failing.remove(device);
        }
    }

    fn check(&self, device: &DeviceId) -> Result<(), StoreError> {
        if self.failing.lock().expect("flaky lock").contains(device.as_str()) {
            return Err(StoreError::unavailable_because(format!(
                "told to fail for {device}"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl DeviceStates for FlakyStates {
    async fn load(&self, device: &DeviceId) -> Result<Option<Versioned>, StoreError> {
        self.check(device)?;
        self.inner.load(device).await
    }

    fn adds_days_with_state(&self) -> bool {
        self.inner.adds_days_with_state()
    }

    async fn save(&self, write: &StateWrite<'_>) -> Result<Saved, StoreError> {
        self.check(&write.state.device_id)?;
        self.inner.save(write).await
    }

    async fn count_run(&self, device: &DeviceId, window: RunWindow) -> Result<RunCount, StoreError> {
        self.check(device)?;
        self.inner.count_run(device, window).await
    }

    async fn school(
        &self,
        id: &crate::domain::school::SchoolId,
    ) -> Result<Option<crate::domain::school::School>, StoreError> {
        self.inner.school(id).await
    }
}

/// The DynamoDB Local endpoint the test command started. Missing means the suite was
/// run without it: that is an error, never a skip.
pub fn dynamodb_endpoint() -> String {
    std::env::var("PISYNC_TEST_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("PISYNC_TEST_DYNAMODB_ENDPOINT is not set: run the suite with scripts/test.sh, which starts DynamoDB Local")
    })
}

/// A table name no other test (or earlier run) uses.
pub fn unique_table(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    )
}

/// AWS settings for the suite's DynamoDB Local (a fixed region, placeholder keys).
#[cfg(feature = "dynamodb")]
pub async fn dynamodb_local_sdk() -> aws_config::SdkConfig {
    crate::adapters::aws::for_endpoint(&crate::config::Config::default(), &dynamodb_endpoint())
        .await
        .expect("AWS settings")
}

/// A fresh credentials table on the suite's DynamoDB Local.
#[cfg(feature = "dynamodb-admin")]
pub async fn dynamodb_local_credentials(prefix: &str) -> crate::adapters::dynamodb::DynamoCredentials {
    let sdk = dynamodb_local_sdk().await;
    let store = crate::adapters::dynamodb::DynamoCredentials::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        unique_table(prefix),
    );
    store
        .create_table_if_missing()
        .await
        .expect("credentials table created on DynamoDB Local");
    store
}

/// A fresh table on the suite's DynamoDB Local, created as `template.yaml` declares it.
#[cfg(feature = "dynamodb-admin")]
pub async fn dynamodb_local_store(prefix: &str) -> crate::adapters::dynamodb::DynamoStore {
    let sdk = dynamodb_local_sdk().await;
    let store = crate::adapters::dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        unique_table(prefix),
    );
    store
        .create_table_if_missing()
        .await
        .expect("table created on DynamoDB Local");
    store
}

/// The example Lambda events in the repository's `events/` folder, as each function's
/// handler tests read them.
pub mod lambda_events {
    use lambda_http::{Body, Response};
    use std::path::PathBuf;

    /// The request id API Gateway put in every HTTP example event.
    pub const GATEWAY_REQUEST_ID: &str = "Q1w2E3r4T5y6U7i=";

    pub fn events_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
    }

    fn read(rel: &str) -> String {
        std::fs::read_to_string(events_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// An example event's file, the status its reply must have, and its error code.
    pub type Case = (&'static str, u16, Option<&'static str>);

    /// The files in `events/<function>/` are exactly the cases' files, in order.
    pub fn assert_every_example_is_a_case(function: &str, cases: &[Case]) {
        let cased: Vec<&str> = cases.iter().map(|(file, _, _)| *file).collect();
        assert_eq!(
            files_of(function),
            cased,
            "events/{function}/ and the test's cases"
        );
    }

    /// The files in `events/<function>/`, as `<function>/<file>`, sorted.
    pub fn files_of(function: &str) -> Vec<String> {
        let dir = events_dir().join(function);
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let name = entry.expect("a directory entry").file_name();
                format!("{function}/{}", name.to_string_lossy())
            })
            .collect();
        files.sort();
        files
    }

    /// The keys the example events' device token is signed with
    /// (`events/dev-signing-keys.json`: for the examples only, never deployed).
    pub fn dev_keys() -> crate::auth::KeyRing {
        let keys =
            crate::auth::SigningKeys::from_json(&read("dev-signing-keys.json")).expect("the example keys");
        crate::auth::KeyRing::fixed(keys)
    }

    /// Makes the device token an example event carries its device's current credential,
    /// as provisioning would have.
    pub async fn provision_token_of(rel: &str, store: &dyn crate::ports::ManageCredentials) {
        let req = api_request(rel);
        let header = req.headers().get("authorization").expect("the event has a token");
        let token = header
            .to_str()
            .expect("ASCII")
            .trim_start_matches("Bearer ")
            .to_owned();
        let claims = crate::auth::token::verify(&dev_keys().current(), &token, 0)
            .expect("a token the example keys signed");
        let crate::auth::token::Claims::Device { device_id } = claims else {
            panic!("{rel}: not a device token");
        };
        store
            .replace(&crate::ports::DeviceCredential {
                device_id,
                token_digest: crate::auth::token::digest(&token),
                issued_at: crate::EventTime::now(),
            })
            .await
            .expect("credential stored");
    }

    /// An API Gateway (HTTP API v2) event, as the Lambda runtime hands it over.
    pub fn api_request(rel: &str) -> lambda_http::Request {
        lambda_http::request::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// A DynamoDB stream event.
    pub fn stream_event(rel: &str) -> aws_lambda_events::event::dynamodb::Event {
        serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// A reply's body; every PiSync reply is JSON.
    pub fn reply_json(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).expect("every reply is JSON")
    }

    /// The `field` of each detail in an error reply, in order.
    pub fn error_fields(body: &serde_json::Value) -> Vec<String> {
        body["error"]["details"]
            .as_array()
            .expect("an error reply lists details")
            .iter()
            .map(|d| d["field"].as_str().expect("each detail names a field").to_owned())
            .collect()
    }

    /// Every file in `events/<function>/` is one of `cases` (and every case a file),
    /// and `handler` answers each as its case says: one check per function crate.
    pub async fn assert_examples_answered(
        function: &str,
        cases: &[Case],
        handler: &dyn crate::function::HttpHandler,
    ) {
        assert_every_example_is_a_case(function, cases);
        for (file, status, code) in cases {
            let response = handler.handle(api_request(file)).await;
            assert_documented_answer(file, &response, *status, *code);
        }
    }

    /// Asserts an example event's reply: its status, the standard headers, and either
    /// the error `code` with API Gateway's request id or no error at all.
    pub fn assert_documented_answer(file: &str, response: &Response<Body>, status: u16, code: Option<&str>) {
        assert_eq!(
            response.status().as_u16(),
            status,
            "{file}: {:?}",
            response.body()
        );
        if status == 204 {
            // No body, so no Content-Type; the security headers are still there.
            for (name, value) in crate::http::SECURITY_HEADERS {
                assert_eq!(
                    response.headers().get(name).and_then(|v| v.to_str().ok()),
                    Some(value),
                    "{file}: {name}"
                );
            }
            assert!(response.body().is_empty(), "{file}: no body");
            return;
        }
        assert_standard_headers(response.headers(), file);
        let body = reply_json(response);
        match code {
            Some(code) => {
                assert_eq!(body["error"]["code"], code, "{file}");
                assert_eq!(
                    body["request_id"], GATEWAY_REQUEST_ID,
                    "{file}: API Gateway's request id"
                );
            }
            None => assert!(body.get("error").is_none(), "{file}"),
        }
    }

    /// Asserts the headers every PiSync reply carries, errors included.
    pub fn assert_standard_headers(headers: &lambda_http::http::HeaderMap, context: &str) {
        let expected = crate::http::SECURITY_HEADERS.into_iter().chain([
            ("cache-control", "no-store"),
            ("content-type", "application/json"),
        ]);
        for (name, value) in expected {
            assert_eq!(
                headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{context}: {name}"
            );
        }
    }
}

/// Removes its temporary directory when dropped.
pub use tempfile::TempDir;

/// An embedded store in a temporary directory (kept alive by the returned guard).
#[cfg(feature = "sqlite")]
pub fn sqlite_store() -> (tempfile::TempDir, crate::adapters::sqlite::SqliteStore) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = crate::adapters::sqlite::SqliteStore::open(&dir.path().join("test.db")).expect("store opens");
    (dir, store)
}

/// The cursor key of every test's [`local`].
pub const TEST_CURSOR_KEY: &[u8] = b"a test cursor key of 32 bytes or more";

/// What the local runner would build, over `store` (its credentials too), for a
/// function's tests: default rules, the example events' signing keys, a fixed cursor
/// key, notices captured by a [`RecordingAlerts`], and operators as API Gateway's JWT
/// authorizer presents them (the example events carry its claims). Fields are public:
/// a test changes what it is about.
pub fn local<S>(store: S) -> crate::function::Local
where
    S: crate::ports::Store + crate::ports::Credentials + Clone + 'static,
{
    local_with(Arc::new(store.clone()), Arc::new(store))
}

/// [`local`] over a store and credentials kept apart (DynamoDB keeps them in two tables).
pub fn local_with(
    store: Arc<dyn crate::ports::Store>,
    credentials: Arc<dyn crate::ports::Credentials>,
) -> crate::function::Local {
    crate::function::Local {
        config: crate::config::Config::default(),
        store,
        credentials,
        keys: Arc::new(lambda_events::dev_keys()),
        auth: crate::auth::Authenticator::gateway_operators(crate::config::DEFAULT_OPERATOR_GROUPS_CLAIM),
        cursor_key: crate::http::cursor::CursorKey::from_secret(TEST_CURSOR_KEY),
        alerts: Arc::new(RecordingAlerts::default()),
        limits: Arc::new(crate::adapters::minute_counters::MinuteCounters::new(
            crate::domain::limits::DeviceLimits::default(),
        )),
        owed: Arc::default(),
    }
}

/// A real HTTP server on loopback standing in for an operator's webhook receiver: it
/// records every request and answers with the statuses it is told, in turn (then
/// 200). Status 0 means "never answer" (a receiver that hangs).
pub mod receiver {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// One request as received.
    #[derive(Clone, Debug)]
    pub struct Received {
        /// Header names in lower case.
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    impl Received {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    #[derive(Clone)]
    pub struct Receiver {
        pub url: String,
        received: Arc<Mutex<Vec<Received>>>,
        /// The next answers: a status and a JSON body (empty: none).
        script: Arc<Mutex<VecDeque<(u16, String)>>>,
    }

    impl Receiver {
        pub async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
            let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
            let receiver = Self {
                url,
                received: Arc::default(),
                script: Arc::default(),
            };
            let this = receiver.clone();
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::spawn(this.clone().answer(socket));
                }
            });
            receiver
        }

        /// The next requests are answered with these statuses, in order.
        pub fn answer_with(&self, statuses: &[u16]) {
            let answers = statuses.iter().map(|s| (*s, String::new()));
            self.script.lock().expect("script lock").extend(answers);
        }

        /// The next requests are answered with these statuses and JSON bodies, in order
        /// (an AWS JSON-protocol service, such as Firehose).
        pub fn answer_with_json(&self, answers: &[(u16, &str)]) {
            let answers = answers.iter().map(|(s, body)| (*s, (*body).to_owned()));
            self.script.lock().expect("script lock").extend(answers);
        }

        pub fn received(&self) -> Vec<Received> {
            self.received.lock().expect("received lock").clone()
        }

        async fn answer(self, mut socket: tokio::net::TcpStream) {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let (head_end, length) = loop {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    break (end, length);
                }
            };
            while buf.len() < head_end + 4 + length {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let body = String::from_utf8_lossy(&buf[head_end + 4..head_end + 4 + length]).to_string();
            self.received
                .lock()
                .expect("received lock")
                .push(Received { headers, body });
            let (status, body) = self
                .script
                .lock()
                .expect("script lock")
                .pop_front()
                .unwrap_or((200, String::new()));
            if status == 0 {
                // Hang: hold the connection open without answering.
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                return;
            }
            let reply = format!(
                "HTTP/1.1 {status} Scripted\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::date_changes_within;
    use crate::domain::time::EventTime;
    use std::time::Duration;

    fn utc(text: &str) -> EventTime {
        EventTime::parse_rfc3339(text).expect("an RFC 3339 time")
    }

    #[test]
    fn a_test_waits_only_when_a_date_is_about_to_change() {
        let margin = Duration::from_secs(5);
        let zones = [chrono_tz::UTC, chrono_tz::Pacific::Kiritimati];
        assert!(!date_changes_within(utc("2026-12-04T12:00:00Z"), margin, &zones));
        assert!(date_changes_within(utc("2026-12-04T23:59:58Z"), margin, &zones));
        // Kiritimati (UTC+14) starts its day at 10:00 UTC.
        assert!(date_changes_within(utc("2026-12-04T09:59:57Z"), margin, &zones));
        assert!(!date_changes_within(
            utc("2026-12-04T09:59:57Z"),
            margin,
            &[chrono_tz::UTC]
        ));
        assert!(!date_changes_within(utc("2026-12-04T09:59:54Z"), margin, &zones));
    }
}
