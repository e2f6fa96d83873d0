//! watch-devices' run, called directly as the schedule would (`events/watch-devices/`),
//! over an embedded store: a device quiet for the silent period goes silent once, and
//! notices waiting in the outbox are published.

use pisync_shared::ports::{DeviceStates, Outbox, ReadFleet};
use pisync_shared::test_util::lambda_events::files_of;
use pisync_shared::test_util::{
    device, local, record_and_apply, sqlite_store, stored_event, RecordingAlerts, TempDir,
};
use pisync_shared::{EventTime, StoredEvent};
use std::sync::Arc;
use watch_devices::{watch, WatchDevices};

fn setup() -> (
    TempDir,
    pisync_shared::adapters::sqlite::SqliteStore,
    Arc<RecordingAlerts>,
    WatchDevices,
) {
    let (dir, store) = sqlite_store();
    let alerts = Arc::new(RecordingAlerts::default());
    let mut local = local(store.clone());
    local.alerts = alerts.clone();
    let deps = WatchDevices::from_local(&local);
    (dir, store, alerts, deps)
}

fn received(device: &str, minute: i64, errors: u32, at: EventTime) -> StoredEvent {
    StoredEvent {
        received_at: at,
        ..stored_event(device, minute, errors)
    }
}

#[test]
fn the_schedule_event_is_the_only_example() {
    // The run ignores the schedule's event: nothing in it changes what it does.
    assert_eq!(files_of("watch-devices"), ["watch-devices/every-minute.json"]);
}

#[tokio::test]
async fn a_quiet_device_goes_silent_once_and_the_notice_goes_out() {
    let (_dir, store, alerts, deps) = setup();
    let now = EventTime::now();
    let quiet = received("quiet", 0, 0, now.plus_millis(-49 * 3_600_000));
    let busy = received("busy", 0, 0, now.plus_millis(-3_600_000));
    for e in [&quiet, &busy] {
        record_and_apply(&store, e).await;
    }
    let figures = watch(&deps, now).await;
    assert_eq!(alerts.kinds(), ["device.silent"]);
    assert_eq!(figures.notices, [("device.silent", 1)]);
    watch(&deps, now.plus_millis(60_000)).await;
    assert_eq!(alerts.kinds().len(), 1, "one notice per silence");
    let state = store.load(&device("quiet")).await.unwrap().unwrap().state;
    assert_eq!(state.silent_since, Some(quiet.received_at));
    assert_eq!(
        store
            .counts(&pisync_shared::ports::Within::Fleet)
            .await
            .unwrap()
            .silent,
        1
    );
}

#[tokio::test]
async fn notices_left_in_the_outbox_go_out_without_the_device_reporting_again() {
    let (_dir, store, alerts, deps) = setup();
    // Three failures while the channel was down: the alert waits in the outbox.
    let now = EventTime::now();
    for m in 0..3 {
        // Reported as they happen: news.
        let e = StoredEvent {
            timestamp: now.plus_millis((m - 3) * 60_000),
            ..received("failing", m, 1, now)
        };
        record_and_apply(&store, &e).await;
    }
    assert_eq!(store.pending(10).await.unwrap().len(), 1);
    alerts.set_failing(true);
    let figures = watch(&deps, EventTime::now()).await;
    assert_eq!(figures.publish_failures, 1);
    alerts.set_failing(false);
    watch(&deps, EventTime::now()).await;
    assert_eq!(alerts.kinds(), ["device.repeated_sync_failures"]);
    assert!(store.pending(10).await.unwrap().is_empty());
}

/// A school with `digest_at` gets its `school.digest` from the run once its time has
/// come on an open day, published in the same run, and once a day.
#[tokio::test]
async fn a_schools_digest_goes_out_once_its_time_has_come() {
    use pisync_shared::domain::school::LocalTime;
    use pisync_shared::ports::ManageSchools;
    let (_dir, store, alerts, deps) = setup();
    let mut riverside = pisync_shared::test_util::school("riverside");
    riverside.digest_at = LocalTime::parse("07:00", false);
    store.put_school(&riverside, true).await.unwrap();
    let morning = EventTime::parse_rfc3339("2026-12-02T06:59:00Z").unwrap();
    watch(&deps, morning).await;
    assert!(alerts.kinds().is_empty(), "not 07:00 yet");
    let seven = EventTime::parse_rfc3339("2026-12-02T07:00:30Z").unwrap();
    let figures = watch(&deps, seven).await;
    assert_eq!(alerts.kinds(), ["school.digest"]);
    assert_eq!(figures.notices, [("school.digest", 1)]);
    watch(&deps, seven.plus_millis(60_000)).await;
    assert_eq!(alerts.kinds().len(), 1, "one digest a day");
}

/// A district whose schools share a `digest_at` gets its digests over a few runs,
/// each run's work bounded, none lost or sent twice.
#[tokio::test]
async fn many_digests_due_at_once_are_spread_over_runs() {
    use pisync_shared::domain::school::LocalTime;
    use pisync_shared::domain::school_digest::DIGESTS_PER_ROUND;
    use pisync_shared::ports::{ManageSchools, NoticeHistory};
    let (_dir, store, alerts, deps) = setup();
    let schools = DIGESTS_PER_ROUND + 1;
    for n in 0..schools {
        let mut school = pisync_shared::test_util::school(&format!("school-{n:03}"));
        school.digest_at = LocalTime::parse("07:00", false);
        store.put_school(&school, true).await.unwrap();
    }
    // Saved, not only published (a delivery round publishes at most 100 too).
    let saved = || async {
        let query = pisync_shared::ports::NoticeQuery {
            within: &pisync_shared::ports::Within::Fleet,
            kind: Some("school.digest"),
            before: None,
            limit: 100,
        };
        let first = store.notice_feed(&query).await.unwrap();
        let before = first.notices.last().map(|(key, _)| key.clone());
        let rest = pisync_shared::ports::NoticeQuery {
            before: before.as_deref(),
            ..query.clone()
        };
        first.notices.len() + store.notice_feed(&rest).await.unwrap().notices.len()
    };
    let seven = EventTime::parse_rfc3339("2026-12-02T07:00:30Z").unwrap();
    watch(&deps, seven).await;
    assert_eq!(saved().await, DIGESTS_PER_ROUND, "one round's worth");
    watch(&deps, seven.plus_millis(60_000)).await;
    watch(&deps, seven.plus_millis(120_000)).await;
    assert_eq!(saved().await, schools, "the rest in the next run");
    assert_eq!(alerts.kinds().len(), schools, "each published once");
}
