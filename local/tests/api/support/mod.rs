//! Helpers shared by the integration tests (fixtures every crate uses live in
//! `pisync_shared::test_util`).

pub mod runner;

use serde_json::{json, Value};

/// A sync event of `device` at `ts` with `errors` errors and `files` files.
pub fn event(device: &str, ts: &str, errors: u32, files: u32) -> Value {
    json!({"device_id": device, "timestamp": ts, "total_files_synced": files, "total_errors": errors, "internet_speed": 4.0})
}

/// `minutes` before now, as RFC 3339 (device time).
pub fn ago(minutes: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A whole UTC hour that ended at least an hour ago, fixed once per test. Events placed
/// in it share one date in UTC and in any whole-hour timezone whatever the time of day
/// the test runs: minutes [`ago`] straddle two dates just after midnight.
#[derive(Clone, Copy)]
pub struct PastHour(chrono::DateTime<chrono::Utc>);

impl PastHour {
    pub fn new() -> Self {
        use chrono::DurationRound;
        let hour = chrono::Duration::hours(1);
        let start = (chrono::Utc::now() - hour * 2)
            .duration_trunc(hour)
            .expect("an hour divides a day");
        Self(start)
    }

    /// `seconds` (0..3600) into the hour, as RFC 3339 (device time).
    pub fn at(&self, seconds: i64) -> String {
        (self.0 + chrono::Duration::seconds(seconds)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// The hour's date `east_hours` east of UTC.
    pub fn date(&self, east_hours: i64) -> String {
        (self.0 + chrono::Duration::hours(east_hours))
            .date_naive()
            .to_string()
    }
}

/// The entry for `date` in a reply's `days` (the fleet summary's, the daily analytics').
pub fn day_entry<'a>(body: &'a Value, date: &str) -> Option<&'a Value> {
    body["days"].as_array()?.iter().find(|d| d["date"] == date)
}

/// Noon UTC `days` before today.
pub fn days_ago(days: i64) -> String {
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(days);
    format!("{day}T12:00:00.000Z")
}

/// The device ids of a page of `GET /devices` (or repeated-failures).
pub fn ids(page: &Value) -> Vec<String> {
    page["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs each named `async fn(Backend)` scenario as two tests: on the embedded store and
/// on DynamoDB Local (a fresh table each).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::runner::Backend::Embedded).await
                }
            )*
        }
        mod dynamodb_local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = crate::support::runner::Backend::Dynamo {
                        endpoint: pisync_shared::test_util::dynamodb_endpoint(),
                        table: pisync_shared::test_util::unique_table("bb"),
                    };
                    super::$name(backend).await
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// How long a wait for a condition may take before the test fails: generous, because
/// the whole suite shares two cores and one DynamoDB Local (a runner's first periodic
/// check on a new table reads a day of watch slots, seconds under that load).
const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until `check` gives a value (detection runs beside the API), or fails after
/// [`WAIT_LIMIT`].
pub async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = std::time::Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until `check` holds (detection runs beside the API), or fails after
/// [`WAIT_LIMIT`].
pub async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = std::time::Instant::now() + WAIT_LIMIT;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

use get_sync_history::GetSyncHistory;
use list_repeated_failures::ListRepeatedFailures;
use pisync_shared::auth::Authenticator;
use pisync_shared::function::HttpFunction;
use pisync_shared::test_util::{sqlite_store, TempDir};
use record_sync_event::RecordSyncEvent;

/// The HTTP handlers over one embedded store in a temporary directory, with
/// authentication off: these tests are about bodies and queries (the hostile
/// credential matrix runs against the real runner).
pub struct Handlers {
    pub _dir: TempDir,
    pub record: RecordSyncEvent,
    pub history: GetSyncHistory,
    pub failures: ListRepeatedFailures,
}

pub fn handlers() -> Handlers {
    let (dir, store) = sqlite_store();
    let mut local = pisync_shared::test_util::local(store);
    local.auth = Authenticator::off();
    Handlers {
        record: RecordSyncEvent::from_local(&local),
        history: GetSyncHistory::from_local(&local),
        failures: ListRepeatedFailures::from_local(&local),
        _dir: dir,
    }
}
