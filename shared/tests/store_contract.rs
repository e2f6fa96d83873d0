//! The storage contract: every port, run against the embedded SQLite adapter and the
//! DynamoDB adapter on DynamoDB Local (PISYNC_TEST_DYNAMODB_ENDPOINT).

use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::domain::detection::{self, Applied};
use pisync_shared::domain::streak::{FailureState, StreakRule};
use pisync_shared::ports::{
    DeviceStates, FailingKey, HistoryQuery, ListFailing, Order, ReadHistory, RecordEvents, Recorded,
};
use pisync_shared::test_util::{device as dev, dynamodb_local_store, minute as t, stored_event as event};
use pisync_shared::{EventTime, StoredEvent};
use std::sync::Arc;

/// One store behind each of its ports.
struct Fixture {
    events: Arc<dyn RecordEvents>,
    history: Arc<dyn ReadHistory>,
    states: Arc<dyn DeviceStates>,
    failing: Arc<dyn ListFailing>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn of<S: RecordEvents + ReadHistory + DeviceStates + ListFailing + Clone + 'static>(
        store: S,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        Fixture {
            events: Arc::new(store.clone()),
            history: Arc::new(store.clone()),
            states: Arc::new(store.clone()),
            failing: Arc::new(store),
            _dir: dir,
        }
    }

    /// Detection's sequence for one event, through this store.
    async fn apply(&self, e: &StoredEvent, now: EventTime) -> Applied {
        apply(&self.states, e, now).await
    }

    async fn state(&self, device: &str) -> Option<FailureState> {
        self.states.load(&dev(device)).await.unwrap().map(|v| v.state)
    }
}

async fn apply(states: &Arc<dyn DeviceStates>, e: &StoredEvent, now: EventTime) -> Applied {
    detection::apply_event(states.as_ref(), StreakRule::default(), e, now)
        .await
        .unwrap()
}

fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    Fixture::of(store, Some(dir))
}

async fn dynamodb() -> Fixture {
    Fixture::of(dynamodb_local_store("contract").await, None)
}

/// The device's current run of failures as the store keeps it (the device must have state).
async fn streak(f: &Fixture, device: &str) -> u32 {
    f.state(device)
        .await
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
        f.events.record(e.clone()).await.unwrap(),
        Recorded::Created(e.clone())
    );
    let mut replay = e.clone();
    replay.received_at = t(2000);
    assert_eq!(
        f.events.record(replay).await.unwrap(),
        Recorded::Replayed(e.clone()),
        "stored copy, original received_at"
    );
    let mut conflict = e.clone();
    conflict.internet_speed = 9.0;
    assert_eq!(
        f.events.record(conflict).await.unwrap(),
        Recorded::Conflict(e.clone())
    );
    // Speeds at the edges of f64 are stored exactly.
    for (i, speed) in [1e300, 5e-324, 0.1 + 0.2, f64::MAX].into_iter().enumerate() {
        let mut e = event("d-speed", i as i64, 0);
        e.internet_speed = speed;
        f.events.record(e.clone()).await.unwrap();
        assert_eq!(
            f.events.record(e.clone()).await.unwrap(),
            Recorded::Replayed(e),
            "{speed}"
        );
    }
}

async fn history_pages_with_bounds_in_both_orders(f: Fixture) {
    for m in [5, 1, 9, 3, 7, 2, 8, 4, 6, 0] {
        f.events.record(event("d1", m, 0)).await.unwrap();
        f.events.record(event("d2", m, 1)).await.unwrap();
    }
    assert!(f.history.device_exists(&dev("d1")).await.unwrap());
    assert!(!f.history.device_exists(&dev("nobody")).await.unwrap());
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
                    let page = f.history.history(&dev("d1"), &q).await.unwrap();
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
        .history
        .history(&dev("nobody"), &query(Order::Desc, 5))
        .await
        .unwrap();
    assert!(empty.events.is_empty() && !empty.more);
}

async fn apply_is_exactly_once(f: Fixture) {
    let events = [event("d1", 1, 1), event("d1", 2, 1)];
    for e in &events {
        f.events.record(e.clone()).await.unwrap();
    }
    let first = f.apply(&events[0], t(100)).await;
    assert!(first.newly_applied);
    assert_eq!(first.state.consecutive_failures(), 1);
    let again = f.apply(&events[0], t(101)).await;
    assert!(!again.newly_applied);
    assert_eq!(again.state, first.state);
    f.apply(&events[1], t(102)).await;
    assert_eq!(streak(&f, "d1").await, 2);
    // Redelivering an older record after a newer one was applied changes nothing either.
    let late_redelivery = f.apply(&events[0], t(104)).await;
    assert!(!late_redelivery.newly_applied);
    assert_eq!(late_redelivery.state.consecutive_failures(), 2);
    assert_eq!(streak(&f, "d1").await, 2);
    assert_eq!(f.state("nobody").await, None);
}

async fn streak_state_with_late_events_and_outbox(f: Fixture) {
    let apply = |e: StoredEvent| {
        let f = &f;
        async move {
            f.events.record(e.clone()).await.unwrap();
            f.apply(&e, t(500)).await
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
    detection::clear_notices(f.states.as_ref(), StreakRule::default(), &dev("d1"), &ids)
        .await
        .unwrap();
    let state = f.state("d1").await.unwrap();
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
            f.events.record(e.clone()).await.unwrap();
            f.apply(&e, t(500)).await;
        }
    }
    let want = [("d", 6), ("a", 4), ("b", 3), ("e", 3), ("f", 3)];
    let mut got = Vec::new();
    let mut after: Option<FailingKey> = None;
    loop {
        let page = f.failing.repeated_failures(2, after.as_ref()).await.unwrap();
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
    f.events.record(e.clone()).await.unwrap();
    f.apply(&e, t(500)).await;
    let page = f.failing.repeated_failures(10, None).await.unwrap();
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
            let (log, e) = (f.events.clone(), e.clone());
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
        f.events.record(e.clone()).await.unwrap();
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
                    newly += u32::from(apply(&states, &e, t(500)).await.newly_applied);
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
    f.apply(&e, t(500)).await;
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

/// Retention counts from when PiSync received an event, never from the device's
/// clock: a backlog report a year old is kept for the whole retention period.
#[tokio::test]
async fn dynamodb_retention_counts_from_receipt() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use pisync_shared::adapters::dynamodb::item::{device_pk, event_sk};
    let store = dynamodb_local_store("retention")
        .await
        .with_retention_days(Some(30));
    let received = EventTime::now();
    let mut old = event("dev-backlog", 0, 1);
    old.timestamp = received.plus_millis(-400 * 86_400_000);
    old.received_at = received;
    store.record(old.clone()).await.unwrap();
    let item = store
        .client()
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(device_pk(&old.device_id)))
        .key("sk", AttributeValue::S(event_sk(old.timestamp)))
        .send()
        .await
        .unwrap()
        .item
        .expect("stored");
    let Some(AttributeValue::N(expires)) = item.get("expires_at") else {
        panic!("no TTL attribute: {item:?}");
    };
    let expires: i64 = expires.parse().unwrap();
    assert_eq!(expires, received.millis() / 1000 + 30 * 86_400);
}

/// The failing index is sharded: a page merges every shard in the list's order, and
/// paging returns each failing device once. A device saved as failing before the
/// sharding (legacy partition) is still listed.
#[tokio::test]
async fn dynamodb_failing_list_merges_its_shards() {
    use pisync_shared::adapters::dynamodb::item::{failing_pk, FAILING_SHARDS, LEGACY_FAILING_PK};
    let store = dynamodb_local_store("shards").await;
    let states: Arc<dyn DeviceStates> = Arc::new(store.clone());
    // 40 devices with streaks of 3 to 7 failures.
    for n in 0..40u32 {
        let device = format!("shard-{n:02}");
        for m in 0..(3 + n % 5) {
            let e = event(&device, i64::from(m), 1);
            store.record(e.clone()).await.unwrap();
            apply(&states, &e, t(100)).await;
        }
    }
    // One legacy entry, as an earlier version wrote it.
    let legacy = event("shard-legacy", 0, 1);
    let mut state = FailureState::new(legacy.device_id.clone());
    for m in 0..9 {
        state.apply_in_order(&event("shard-legacy", m, 1), StreakRule::default(), t(100));
    }
    let mut item: serde_dynamo::Item = serde_dynamo::to_item(
        pisync_shared::adapters::dynamodb::item::StateItem::new(state, 1, true),
    )
    .unwrap();
    item.insert(
        "failing_pk".into(),
        serde_dynamo::AttributeValue::S(LEGACY_FAILING_PK.into()),
    );
    store
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(item.into()))
        .send()
        .await
        .unwrap();
    let mut seen: Vec<(u32, String)> = Vec::new();
    let mut after: Option<FailingKey> = None;
    loop {
        let page = store.repeated_failures(7, after.as_ref()).await.unwrap();
        seen.extend(
            page.devices
                .iter()
                .map(|d| (d.consecutive_failures, d.device_id.to_string())),
        );
        match (page.more, page.devices.last()) {
            (true, Some(last)) => after = Some(last.key()),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 41, "each failing device once");
    assert_eq!(
        seen[0],
        (9, "shard-legacy".to_owned()),
        "the legacy entry, longest streak"
    );
    let mut expected = seen.clone();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(
        seen, expected,
        "longest streak first, then device id, across shards"
    );
    let shards: std::collections::HashSet<String> = seen
        .iter()
        .filter(|(_, d)| d != "shard-legacy")
        .map(|(_, d)| failing_pk(&dev(d)))
        .collect();
    assert_eq!(
        shards.len(),
        usize::from(FAILING_SHARDS),
        "the 40 devices span every shard"
    );
}
