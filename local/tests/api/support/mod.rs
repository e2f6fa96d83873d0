//! Helpers shared by the integration tests (fixtures every crate uses live in
//! `pisync_shared::test_util`).

pub mod runner;

use detect_failures::DetectFailures;
use get_sync_history::GetSyncHistory;
use list_repeated_failures::ListRepeatedFailures;
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::domain::validate::EventRules;
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::test_util::RecordingAlerts;
use record_sync_event::RecordSyncEvent;
use std::sync::Arc;

/// Every handler over one embedded store in a temporary directory.
pub struct Handlers {
    pub _dir: tempfile::TempDir,
    pub store: SqliteStore,
    pub alerts: Arc<RecordingAlerts>,
    pub record: RecordSyncEvent,
    pub history: GetSyncHistory,
    pub failures: ListRepeatedFailures,
    pub detect: DetectFailures,
}

pub fn handlers() -> Handlers {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let alerts = Arc::new(RecordingAlerts::default());
    let key = CursorKey::from_secret(b"test key");
    Handlers {
        record: RecordSyncEvent {
            log: Arc::new(store.clone()),
            rules: EventRules::default(),
        },
        history: GetSyncHistory {
            log: Arc::new(store.clone()),
            cursor_key: key.clone(),
        },
        failures: ListRepeatedFailures {
            failing: Arc::new(store.clone()),
            rule: StreakRule::default(),
            cursor_key: key,
        },
        detect: DetectFailures {
            states: Arc::new(store.clone()),
            alerts: alerts.clone(),
            rule: StreakRule::default(),
        },
        store,
        alerts,
        _dir: dir,
    }
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

/// Asserts the headers every PiSync response carries, errors included.
pub fn assert_standard_headers(headers: &lambda_http::http::HeaderMap, context: &str) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            headers.get(name).map(|v| v.to_str().unwrap()),
            Some(value),
            "{context}: {name}"
        );
    }
    assert!(headers.contains_key("strict-transport-security"), "{context}");
}

pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("content-type", "application/json"),
];
