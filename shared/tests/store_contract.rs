//! The storage contract: every port method, run against the embedded SQLite adapter
//! and the DynamoDB adapter on DynamoDB Local (PISYNC_TEST_DYNAMODB_ENDPOINT).
#![cfg(all(feature = "sqlite", feature = "dynamodb"))]

use pisync_shared::adapters::dynamodb::DynamoStore;
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::store::{EventLog, FailingKey, FailureStates, HistoryQuery, Order, Recorded};
use pisync_shared::streak::StreakRule;
use pisync_shared::{DeviceId, EventTime, Outcome, StoredEvent};
use std::sync::Arc;

struct Fixture {
    log: Arc<dyn EventLog>,
    states: Arc<dyn FailureStates>,
    _dir: Option<tempfile::TempDir>,
}

fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db"), StreakRule::default()).unwrap();
    Fixture {
        log: Arc::new(store.clone()),
        states: Arc::new(store),
        _dir: Some(dir),
    }
}

async fn dynamodb() -> Fixture {
    let endpoint = std::env::var("PISYNC_TEST_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("PISYNC_TEST_DYNAMODB_ENDPOINT is not set: run the suite with scripts/test.sh, which starts DynamoDB Local")
    });
    // The functions' own SDK settings (HTTPS client, trust store), pointed at DynamoDB Local.
    let config = pisync_shared::adapters::aws::loader()
        .expect("AWS settings")
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "l", "l", None, None, "test",
        ))
        .load()
        .await;
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let table = format!(
        "contract-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        table,
        StreakRule::default(),
    );
    store
        .create_table_if_missing()
        .await
        .expect("table created on DynamoDB Local");
    Fixture {
        log: Arc::new(store.clone()),
        states: Arc::new(store),
        _dir: None,
    }
}

fn dev(id: &str) -> DeviceId {
    DeviceId::parse(id).unwrap()
}

fn t(minute: i64) -> EventTime {
    EventTime::from_millis(1_746_600_000_000 + minute * 60_000).unwrap()
}

fn event(device: &str, minute: i64, errors: u32) -> StoredEvent {
    StoredEvent {
        device_id: dev(device),
        timestamp: t(minute),
        total_files_synced: 3,
        total_errors: errors,
        internet_speed: 1.5,
        outcome: Outcome::of(errors),
        received_at: t(1000),
    }
}

/// The device's current run of failures as the store keeps it (the device must have state).
async fn streak(f: &Fixture, device: &str) -> u32 {
    f.states
        .state(&dev(device))
        .await
        .unwrap()
        .expect("device has state")
        .consecutive_failures()
}

fn query(order: Order, limit: usize) -> HistoryQuery {
    HistoryQuery {
        from: None,
        to: None,
        order,
        limit,
        after: None,
    }
}

async fn record_replay_conflict(f: Fixture) {
    let e = event("d1", 1, 0);
    assert_eq!(
        f.log.record(e.clone()).await.unwrap(),
        Recorded::Created(e.clone())
    );
    let mut replay = e.clone();
    replay.received_at = t(2000);
    assert_eq!(
        f.log.record(replay).await.unwrap(),
        Recorded::Replayed(e.clone()),
        "stored copy, original received_at"
    );
    let mut conflict = e.clone();
    conflict.internet_speed = 9.0;
    assert_eq!(
        f.log.record(conflict).await.unwrap(),
        Recorded::Conflict(e.clone())
    );
    // Speeds at the edges of f64 are stored exactly.
    for (i, speed) in [1e300, 5e-324, 0.1 + 0.2, f64::MAX].into_iter().enumerate() {
        let mut e = event("d-speed", i as i64, 0);
        e.internet_speed = speed;
        f.log.record(e.clone()).await.unwrap();
        assert_eq!(
            f.log.record(e.clone()).await.unwrap(),
            Recorded::Replayed(e),
            "{speed}"
        );
    }
}

async fn history_pages_with_bounds_in_both_orders(f: Fixture) {
    for m in [5, 1, 9, 3, 7, 2, 8, 4, 6, 0] {
        f.log.record(event("d1", m, 0)).await.unwrap();
        f.log.record(event("d2", m, 1)).await.unwrap();
    }
    assert!(f.log.device_exists(&dev("d1")).await.unwrap());
    assert!(!f.log.device_exists(&dev("nobody")).await.unwrap());
    for order in [Order::Asc, Order::Desc] {
        for (from, to) in [
            (None, None),
            (Some(t(2)), Some(t(7))),
            (Some(t(9)), None),
            (None, Some(t(0))),
            (Some(t(4)), Some(t(4))),
        ] {
            for limit in [1, 3, 10, 11] {
                let mut expected: Vec<EventTime> = (0..10)
                    .map(t)
                    .filter(|x| from.is_none_or(|f| *x >= f) && to.is_none_or(|to| *x <= to))
                    .collect();
                if order == Order::Desc {
                    expected.reverse();
                }
                let mut got = Vec::new();
                let mut q = HistoryQuery {
                    from,
                    to,
                    order,
                    limit,
                    after: None,
                };
                loop {
                    let page = f.log.history(&dev("d1"), &q).await.unwrap();
                    assert!(page.events.len() <= limit);
                    assert!(page.events.iter().all(|e| e.device_id == dev("d1")));
                    got.extend(page.events.iter().map(|e| e.timestamp));
                    if !page.more {
                        break;
                    }
                    assert_eq!(page.events.len(), limit, "a page with more after it is full");
                    q.after = page.events.last().map(|e| e.timestamp);
                }
                assert_eq!(got, expected, "{order:?} {from:?}..{to:?} limit {limit}");
            }
        }
    }
    let empty = f
        .log
        .history(&dev("nobody"), &query(Order::Desc, 5))
        .await
        .unwrap();
    assert!(empty.events.is_empty() && !empty.more);
}

async fn apply_is_exactly_once(f: Fixture) {
    let events = [event("d1", 1, 1), event("d1", 2, 1)];
    for e in &events {
        f.log.record(e.clone()).await.unwrap();
    }
    let first = f.states.apply(&events[0], t(100)).await.unwrap();
    assert!(first.newly_applied);
    assert_eq!(first.state.consecutive_failures(), 1);
    let again = f.states.apply(&events[0], t(101)).await.unwrap();
    assert!(!again.newly_applied);
    assert_eq!(again.state, first.state);
    f.states.apply(&events[1], t(102)).await.unwrap();
    assert_eq!(streak(&f, "d1").await, 2);
    // Redelivering an older record after a newer one was applied changes nothing either.
    let late_redelivery = f.states.apply(&events[0], t(104)).await.unwrap();
    assert!(!late_redelivery.newly_applied);
    assert_eq!(late_redelivery.state.consecutive_failures(), 2);
    assert_eq!(streak(&f, "d1").await, 2);
    assert_eq!(f.states.state(&dev("nobody")).await.unwrap(), None);
}

async fn streak_state_with_late_events_and_outbox(f: Fixture) {
    let apply = |e: StoredEvent| {
        let f = (f.log.clone(), f.states.clone());
        async move {
            f.0.record(e.clone()).await.unwrap();
            f.1.apply(&e, t(500)).await.unwrap()
        }
    };
    apply(event("d1", 0, 0)).await;
    apply(event("d1", 30, 1)).await;
    apply(event("d1", 10, 1)).await;
    let third = apply(event("d1", 20, 1)).await;
    assert_eq!(third.state.consecutive_failures(), 3);
    assert_eq!(third.state.pending_notices.len(), 1, "alert in the outbox");
    let ids = third.state.pending_notice_ids();
    // A late success lands inside the run: the run is re-read from the stored timeline.
    let split = apply(event("d1", 15, 0)).await;
    assert_eq!(split.state.consecutive_failures(), 2);
    assert_eq!(split.state.streak.as_ref().unwrap().started_at, t(20));
    f.states.clear_notices(&dev("d1"), &ids).await.unwrap();
    let state = f.states.state(&dev("d1")).await.unwrap().unwrap();
    assert!(state.pending_notices.is_empty());
    assert_eq!(state.consecutive_failures(), 2);
    let recovered = apply(event("d1", 40, 0)).await;
    assert_eq!(recovered.state.consecutive_failures(), 0);
    assert_eq!(recovered.state.pending_notices.len(), 1, "recovery notice");
    assert_eq!(
        recovered.state.pending_notices[0].event_type(),
        "device.sync_recovered"
    );
}

async fn repeated_failures_are_ordered_and_paged(f: Fixture) {
    for (device, failures) in [("a", 4u32), ("b", 3), ("c", 2), ("d", 6), ("e", 3), ("f", 3)] {
        for m in 0..failures {
            let e = event(device, i64::from(m), 1);
            f.log.record(e.clone()).await.unwrap();
            f.states.apply(&e, t(500)).await.unwrap();
        }
    }
    let want = [("d", 6), ("a", 4), ("b", 3), ("e", 3), ("f", 3)];
    let mut got = Vec::new();
    let mut after: Option<FailingKey> = None;
    loop {
        let page = f.states.repeated_failures(2, after.as_ref()).await.unwrap();
        got.extend(
            page.devices
                .iter()
                .map(|d| (d.device_id.to_string(), d.consecutive_failures)),
        );
        if !page.more {
            break;
        }
        after = page.devices.last().map(|d| d.key());
    }
    let want: Vec<(String, u32)> = want.iter().map(|(d, n)| (d.to_string(), *n)).collect();
    assert_eq!(got, want);
    // A success removes the device from the list.
    let e = event("d", 100, 0);
    f.log.record(e.clone()).await.unwrap();
    f.states.apply(&e, t(500)).await.unwrap();
    let page = f.states.repeated_failures(10, None).await.unwrap();
    assert_eq!(
        page.devices.first().map(|d| d.device_id.to_string()),
        Some("a".into())
    );
    let d = &page.devices[0];
    assert_eq!(
        (d.streak_started_at, d.last_failure_at, d.last_sync_at),
        (t(0), t(3), t(3))
    );
}

async fn concurrent_writers(f: Fixture) {
    let e = event("race", 1, 1);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (log, e) = (f.log.clone(), e.clone());
            tokio::spawn(async move { log.record(e).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Recorded::Created(_) => created += 1,
            Recorded::Replayed(_) => {}
            Recorded::Conflict(c) => panic!("identical writes conflicted: {c:?}"),
        }
    }
    assert_eq!(created, 1);
    // Concurrent detection of one device's events, as overlapping redelivered batches
    // would cause: four workers apply all twenty, in different orders.
    let events: Vec<StoredEvent> = (10..30).map(|m| event("race", m, 1)).collect();
    for e in &events {
        f.log.record(e.clone()).await.unwrap();
    }
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let states = f.states.clone();
            let mut mine = events.clone();
            mine.rotate_left(w * 5);
            if w % 2 == 1 {
                mine.reverse();
            }
            tokio::spawn(async move {
                let mut newly = 0u32;
                for e in mine {
                    newly += u32::from(states.apply(&e, t(500)).await.unwrap().newly_applied);
                }
                newly
            })
        })
        .collect();
    let mut newly = 0;
    for task in tasks {
        newly += task.await.unwrap();
    }
    assert!(
        (1..=20).contains(&newly),
        "{newly} state changes for 20 events delivered four times"
    );
    f.states.apply(&e, t(500)).await.unwrap();
    assert_eq!(streak(&f, "race").await, 21);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::sqlite()).await }
            )*
        }
        mod dynamodb_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::dynamodb().await).await }
            )*
        }
    };
}

contract!(
    record_replay_conflict,
    history_pages_with_bounds_in_both_orders,
    apply_is_exactly_once,
    streak_state_with_late_events_and_outbox,
    repeated_failures_are_ordered_and_paged,
    concurrent_writers,
);
