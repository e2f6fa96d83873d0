//! The storage contract: every port, run against the embedded SQLite adapter and the
//! DynamoDB adapter on DynamoDB Local (PISYNC_TEST_DYNAMODB_ENDPOINT).

use chrono::Weekday;
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::domain::applied::StreamPosition;
use pisync_shared::domain::assignment::{assign, Assigned};
use pisync_shared::domain::delivery::deliver_pending;
use pisync_shared::domain::detection::{self, DeviceBatch, Record, Rules};
use pisync_shared::domain::device::{DeviceState, Status};
use pisync_shared::domain::fleet::{Day, DayAddition, SchoolDays};
use pisync_shared::domain::school::SchoolId;
use pisync_shared::domain::streak::RunWindow;
use pisync_shared::domain::sweep::check_silent_devices;
use pisync_shared::ports::{
    DeviceKey, DeviceStates, FailingKey, HistoryQuery, ListFailing, ManageSchools, Order, Outbox,
    ReadDevices, ReadFleet, ReadHistory, ReadSchools, RecordDays, RecordEvents, Recorded, Saved,
    SchoolDeleted, SchoolPut, SilenceWatch, StateWrite, Store, Within,
};
use pisync_shared::test_util::{
    device as dev, dynamodb_local_store, minute as t, reported_event, school, stored_event as event,
    RecordingAlerts,
};
use pisync_shared::{EventTime, StoredEvent};
use std::sync::Arc;

/// One store behind each of its ports.
struct Fixture {
    events: Arc<dyn RecordEvents>,
    history: Arc<dyn ReadHistory>,
    states: Arc<dyn DeviceStates>,
    failing: Arc<dyn ListFailing>,
    devices: Arc<dyn ReadDevices>,
    fleet: Arc<dyn ReadFleet>,
    days: Arc<dyn RecordDays>,
    outbox: Arc<dyn Outbox>,
    watch: Arc<dyn SilenceWatch>,
    schools: Arc<dyn ReadSchools>,
    manage: Arc<dyn ManageSchools>,
    audit: Arc<dyn pisync_shared::ports::AuditTrail>,
    notices: Arc<dyn pisync_shared::ports::NoticeHistory>,
    ledger: Arc<dyn pisync_shared::ports::DigestLedger>,
    export: Arc<dyn pisync_shared::ports::ExportEvents>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn of<S: Store + 'static>(store: S, dir: Option<tempfile::TempDir>) -> Self {
        let store: Arc<dyn Store> = Arc::new(store);
        Fixture {
            events: store.clone(),
            history: store.clone(),
            states: store.clone(),
            failing: store.clone(),
            devices: store.clone(),
            fleet: store.clone(),
            days: store.clone(),
            outbox: store.clone(),
            watch: store.clone(),
            schools: store.clone(),
            manage: store.clone(),
            audit: store.clone(),
            notices: store.clone(),
            ledger: store.clone(),
            export: store,
            _dir: dir,
        }
    }

    /// Detection's sequence for one event, through this store.
    async fn apply(&self, e: &StoredEvent, now: EventTime) -> DeviceBatch {
        apply(&self.states, e, now).await
    }

    /// Stores `e`, then applies it as detection would.
    async fn report(&self, e: StoredEvent) -> DeviceBatch {
        self.events.record(e.clone()).await.unwrap();
        self.apply(&e, e.received_at).await
    }

    async fn state(&self, device: &str) -> Option<DeviceState> {
        self.states.load(&dev(device)).await.unwrap().map(|v| v.state)
    }

    /// Adds the days of `events` (each with its device's school) as detection does
    /// when it applies them.
    async fn add_days(&self, events: &[(Option<SchoolId>, StoredEvent)]) {
        let events: Vec<_> = events
            .iter()
            .map(|(school, e)| (school.clone().map(SchoolDays::utc), e.clone()))
            .collect();
        let addition = DayAddition::of(&events).expect("events");
        self.days.add_days(&addition, addition.at).await.unwrap();
    }

    /// The periodic check's roll-up, well after `at` (in a real run no addition comes
    /// after it for a slot it rolled up: it lags the clock by a margin).
    async fn roll_up(&self, at: EventTime) {
        self.days.roll_up_days(at.plus_millis(30 * 60_000)).await.unwrap();
    }

    /// The notices waiting in the outbox, by type.
    async fn waiting(&self) -> Vec<&'static str> {
        let pending = self.outbox.pending(100).await.unwrap();
        pending.iter().map(|e| e.notice.event_type()).collect()
    }
}

async fn apply(states: &Arc<dyn DeviceStates>, e: &StoredEvent, now: EventTime) -> DeviceBatch {
    detection::apply_event(states.as_ref(), Rules::default(), e, now)
        .await
        .unwrap()
}

/// `event`, received at `received` minutes.
fn received(device: &str, m: i64, errors: u32, received: i64) -> StoredEvent {
    StoredEvent {
        received_at: t(received),
        ..event(device, m, errors)
    }
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
    // Speeds at the edges of f64 are stored exactly, and a device's state keeps them.
    for (i, speed) in [1e300, 5e-324, 0.1 + 0.2, f64::MAX].into_iter().enumerate() {
        let mut e = event("d-speed", i as i64, 0);
        e.internet_speed = speed;
        f.events.record(e.clone()).await.unwrap();
        assert_eq!(
            f.events.record(e.clone()).await.unwrap(),
            Recorded::Replayed(e.clone()),
            "{speed}"
        );
        let applied = f.apply(&e, t(100)).await;
        assert_eq!(applied.state.last_internet_speed, Some(speed));
    }
    assert_eq!(
        f.state("d-speed").await.unwrap().last_internet_speed,
        Some(f64::MAX)
    );
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
    let records: Vec<Record> = events
        .iter()
        .enumerate()
        .map(|(i, e)| Record::new(StreamPosition::parse(&format!("{}", 100 + i)), e.clone()))
        .collect();
    let first = detection::apply_records(f.states.as_ref(), Rules::default(), &records[..1], t(100))
        .await
        .unwrap();
    assert_eq!(first.new_events.len(), 1);
    assert_eq!(first.state.consecutive_failures(), 1);
    let again = detection::apply_records(f.states.as_ref(), Rules::default(), &records, t(101))
        .await
        .unwrap();
    assert_eq!(
        again.new_events,
        [events[1].clone()],
        "the redelivered record changes nothing"
    );
    assert_eq!(streak(&f, "d1").await, 2);
    // Redelivering the whole batch again (a retry) changes nothing either.
    let retry = detection::apply_records(f.states.as_ref(), Rules::default(), &records, t(104))
        .await
        .unwrap();
    assert!(retry.new_events.is_empty());
    let state = f.state("d1").await.unwrap();
    assert_eq!((state.consecutive_failures(), state.totals.syncs), (2, 2));
    assert_eq!(f.state("nobody").await, None);
}

async fn late_events_and_the_outbox(f: Fixture) {
    f.report(reported_event("d1", 0, 0)).await;
    f.report(reported_event("d1", 30, 1)).await;
    f.report(reported_event("d1", 10, 1)).await;
    let third = f.report(reported_event("d1", 20, 1)).await;
    assert_eq!(third.state.consecutive_failures(), 3);
    assert_eq!(third.notices.len(), 1, "the alert, decided with the late failure");
    assert_eq!(
        f.waiting().await,
        ["device.repeated_sync_failures"],
        "saved with the state"
    );
    // A late success lands inside the run: the store counts the failures after it.
    let split = f.report(reported_event("d1", 15, 0)).await;
    assert_eq!(split.state.consecutive_failures(), 2);
    assert_eq!(split.state.streak.as_ref().unwrap().started_at, t(20));
    let recovered = f.report(reported_event("d1", 40, 0)).await;
    assert_eq!(recovered.state.consecutive_failures(), 0);
    assert_eq!(
        f.waiting().await,
        ["device.repeated_sync_failures", "device.sync_recovered"],
        "oldest first"
    );
    // Delivery publishes them in order and empties the outbox; a failing channel
    // leaves them waiting.
    let alerts = RecordingAlerts::default();
    alerts.set_failing(true);
    let round = deliver_pending(f.outbox.as_ref(), &alerts).await.unwrap();
    assert_eq!(
        (round.published.len(), round.failed),
        (0, 1),
        "the device's later notice waits behind it"
    );
    assert_eq!(f.waiting().await.len(), 2);
    alerts.set_failing(false);
    deliver_pending(f.outbox.as_ref(), &alerts).await.unwrap();
    assert_eq!(
        alerts.kinds(),
        ["device.repeated_sync_failures", "device.sync_recovered"]
    );
    assert!(f.waiting().await.is_empty());
}

async fn runs_are_counted_in_a_window(f: Fixture) {
    for (m, errors) in [(1, 1), (2, 0), (3, 1), (4, 2), (5, 0), (6, 1)] {
        f.events.record(event("counted", m, errors)).await.unwrap();
    }
    let count = |after: Option<i64>, through: i64| {
        let f = &f;
        async move {
            f.states
                .count_run(
                    &dev("counted"),
                    RunWindow {
                        after: after.map(t),
                        through: t(through),
                    },
                )
                .await
                .unwrap()
        }
    };
    let all = count(None, 6).await;
    assert_eq!((all.failures, all.first_failure), (4, Some(t(1))));
    let after_success = count(Some(2), 5).await;
    assert_eq!(
        (after_success.failures, after_success.first_failure),
        (2, Some(t(3)))
    );
    assert_eq!(count(Some(6), 6).await.failures, 0, "after is exclusive");
    assert_eq!(count(Some(5), 6).await.failures, 1, "through is inclusive");
}

async fn repeated_failures_are_ordered_and_paged(f: Fixture) {
    for (device, failures) in [("a", 4u32), ("b", 3), ("c", 2), ("d", 6), ("e", 3), ("f", 3)] {
        for m in 0..failures {
            f.report(event(device, i64::from(m), 1)).await;
        }
    }
    let want = [("d", 6), ("a", 4), ("b", 3), ("e", 3), ("f", 3)];
    let mut got = Vec::new();
    let mut after: Option<FailingKey> = None;
    loop {
        let page = f
            .failing
            .repeated_failures(2, after.as_ref(), &Within::Fleet)
            .await
            .unwrap();
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
    f.report(event("d", 100, 0)).await;
    let page = f
        .failing
        .repeated_failures(10, None, &Within::Fleet)
        .await
        .unwrap();
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

/// Every page of the fleet's device list, in order, `limit` at a time.
async fn list_all(f: &Fixture, status: Option<Status>, limit: usize) -> Vec<String> {
    list_within(f, status, limit, &Within::Fleet).await
}

/// Every page of a device list `within` some schools, in order, `limit` at a time.
async fn list_within(f: &Fixture, status: Option<Status>, limit: usize, within: &Within) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after: Option<DeviceKey> = None;
    loop {
        let page = f
            .devices
            .devices(status, limit, after.as_ref(), within)
            .await
            .unwrap();
        assert!(page.devices.len() <= limit);
        seen.extend(page.devices.iter().map(|s| s.device_id.to_string()));
        match (page.more, page.devices.last()) {
            (true, Some(last)) => after = Some(DeviceKey::of(status, last)),
            _ => return seen,
        }
    }
}

async fn devices_are_listed_by_status_and_silence_is_found(f: Fixture) {
    // Healthy h1..h3, failing f4 (4 in a row) and f3 (3), quiet q1 and q2: their last
    // reports long ago (q2's older). Minutes from a fixed start; 48 hours = 2,880.
    for d in ["h2", "h1", "h3"] {
        f.report(received(d, 0, 0, 12_000)).await;
    }
    for (d, n) in [("f3", 3), ("f4", 4)] {
        // Failing as they report: news.
        for m in 0..n {
            f.report(received(d, 11_990 + m, 1, 12_000)).await;
        }
    }
    f.report(received("q1", 0, 0, 9_000)).await;
    f.report(received("q2", 0, 1, 8_500)).await;
    let all = list_all(&f, None, 2).await;
    assert_eq!(
        all,
        ["f3", "f4", "h1", "h2", "h3", "q1", "q2"],
        "all, by device id"
    );
    assert_eq!(
        list_all(&f, Some(Status::Failing), 1).await,
        ["f4", "f3"],
        "longest streak first"
    );
    // The silence check: q1 and q2 have not reported for 48 hours; the others have.
    let now = t(12_060);
    let alerts = RecordingAlerts::default();
    let report = check_silent_devices(f.states.as_ref(), f.watch.as_ref(), Rules::default(), now)
        .await
        .unwrap();
    let silent: Vec<String> = report
        .notices
        .iter()
        .map(|n| n.notice.subject_id().to_owned())
        .collect();
    let mut sorted = silent.clone();
    sorted.sort();
    assert_eq!(sorted, ["q1", "q2"], "{report:?}");
    let again = check_silent_devices(
        f.states.as_ref(),
        f.watch.as_ref(),
        Rules::default(),
        now.plus_millis(60_000),
    )
    .await
    .unwrap();
    assert!(again.notices.is_empty(), "one notice per silence");
    deliver_pending(f.outbox.as_ref(), &alerts).await.unwrap();
    assert_eq!(
        alerts.kinds(),
        [
            "device.repeated_sync_failures",
            "device.repeated_sync_failures",
            "device.silent",
            "device.silent"
        ],
        "f3's and f4's alerts, then the silences"
    );
    assert_eq!(
        list_all(&f, Some(Status::Silent), 1).await,
        ["q2", "q1"],
        "longest silence first"
    );
    assert_eq!(list_all(&f, Some(Status::Healthy), 2).await, ["h1", "h2", "h3"]);
    let counts = f.fleet.counts(&Within::Fleet).await.unwrap();
    assert_eq!(
        (counts.total, counts.healthy, counts.failing, counts.silent),
        (7, 3, 2, 2)
    );
    // q1 reports again: back online, once; healthy again.
    let back = f.report(received("q1", 1, 0, 12_100)).await;
    assert_eq!(
        back.notices
            .iter()
            .map(|n| n.notice.event_type())
            .collect::<Vec<_>>(),
        ["device.back_online"]
    );
    assert_eq!(list_all(&f, Some(Status::Silent), 10).await, ["q2"]);
    let counts = f.fleet.counts(&Within::Fleet).await.unwrap();
    assert_eq!((counts.healthy, counts.silent), (4, 1));
    // A failing device that goes silent is silent, and still a repeated failure.
    let later = t(12_100 + 3 * 24 * 60);
    check_silent_devices(f.states.as_ref(), f.watch.as_ref(), Rules::default(), later)
        .await
        .unwrap();
    assert!(list_all(&f, Some(Status::Silent), 10)
        .await
        .contains(&"f4".to_owned()));
    assert!(list_all(&f, Some(Status::Failing), 10).await.is_empty());
    let failing = f
        .failing
        .repeated_failures(10, None, &Within::Fleet)
        .await
        .unwrap();
    assert_eq!(failing.devices.len(), 2, "f4 and f3 still failing, though silent");
}

/// Minute of the fixed start's clock (Wednesday 2025-05-07 06:40Z) at `day` days later,
/// `hh:mm` UTC.
fn at(day: i64, hh: i64, mm: i64) -> i64 {
    day * 1440 + hh * 60 + mm - (6 * 60 + 40)
}

/// A device of a school open weekdays 08:00–16:00 is not silent over the weekend and
/// becomes so after 16 hours of open time; an unassigned one after 48 hours of wall
/// clock. Each check looks only at the devices due, and an assignment puts a device on
/// its new school's clock at once.
async fn silence_counts_a_schools_open_time(f: Fixture) {
    use pisync_shared::domain::notice::Notice;
    use pisync_shared::domain::school::{Hours, LocalTime, School};
    use std::time::Duration;
    let weekdays = School {
        hours: Some(Hours {
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            open: LocalTime::parse("08:00", false).unwrap(),
            close: LocalTime::parse("16:00", false).unwrap(),
        }),
        ..school("weekdays")
    };
    let hourly = School {
        silent_after: Some(Duration::from_secs(3600)),
        ..school("hourly")
    };
    for s in [&weekdays, &hourly] {
        f.manage.put_school(s, true).await.unwrap();
    }
    let assign_to = |device: &'static str, school: &'static str, now: i64| {
        let states = f.states.clone();
        async move {
            let school = SchoolId::parse(school).unwrap();
            let moved = assign(
                states.as_ref(),
                &dev(device),
                Some(&school),
                Default::default(),
                |_| true,
                t(now),
            )
            .await
            .unwrap();
            assert_eq!(moved, Assigned::Moved { from: None });
        }
    };
    assign_to("w1", "weekdays", 0).await;
    // Friday 15:00: w1 (weekdays), u1 and m1 (no school) report for the last time.
    let friday = at(2, 15, 0);
    for d in ["w1", "u1", "m1"] {
        f.report(received(d, friday, 0, friday)).await;
    }
    // m1 joins a school whose silent period is an hour of open time (all day, every day).
    assign_to("m1", "hourly", at(2, 15, 30)).await;
    let check = |m: i64| {
        let (states, watch) = (f.states.clone(), f.watch.clone());
        async move {
            let report = check_silent_devices(states.as_ref(), watch.as_ref(), Rules::default(), t(m))
                .await
                .unwrap();
            let mut silent: Vec<(String, f64)> = report
                .notices
                .iter()
                .map(|n| match &n.notice {
                    Notice::Silent(s) => (s.device_id.to_string(), s.silent_after_hours),
                    other => panic!("only silences: {other:?}"),
                })
                .collect();
            silent.sort_by(|a, b| a.0.cmp(&b.0));
            (report.checked, silent)
        }
    };
    assert_eq!(
        check(at(2, 16, 1)).await,
        (1, vec![("m1".to_owned(), 1.0)]),
        "m1 on its new school's clock; nobody else due"
    );
    // (DynamoDB also looks at m1 again: its earlier check time is still on the agenda.)
    assert_eq!(
        check(at(4, 16, 0)).await.1,
        [("u1".to_owned(), 48.0)],
        "Sunday: u1 after 48 hours of wall clock; w1 has had one hour of school"
    );
    assert_eq!(check(at(6, 14, 59)).await, (0, vec![]), "Tuesday 14:59: 15 hours");
    assert_eq!(
        check(at(6, 15, 0)).await,
        (1, vec![("w1".to_owned(), 16.0)]),
        "Tuesday 15:00: 16 hours of open time"
    );
    assert_eq!(
        list_all(&f, Some(Status::Silent), 10).await,
        ["m1", "u1", "w1"],
        "all three silent (one last report: by id)"
    );
}

async fn days_and_counts_add_up(f: Fixture) {
    let fleet = |e: StoredEvent| (None, e);
    let events = [
        fleet(event("a", 0, 0)),
        fleet(event("a", 1, 2)),
        fleet(event("b", 1, 0)),
        fleet(event("b", 24 * 60, 1)),
    ];
    f.add_days(&events).await;
    f.add_days(&events[2..3]).await;
    f.roll_up(events[0].1.received_at).await;
    let first = Day::of(t(0));
    let days = f
        .fleet
        .days(first.plus(-1), first.plus(2), &Within::Fleet)
        .await
        .unwrap();
    assert_eq!(days.len(), 2, "days without syncs are absent: {days:?}");
    let day = &days[&first];
    assert_eq!((day.syncs, day.failures, day.files_synced), (4, 1, 12));
    assert!((day.speed_sum - 6.0).abs() < 1e-9);
    assert_eq!(days[&first.plus(1)].failures, 1);
    assert!(f
        .fleet
        .days(first.plus(5), first.plus(9), &Within::Fleet)
        .await
        .unwrap()
        .is_empty());
    let none = f.fleet.counts(&Within::Fleet).await.unwrap();
    assert_eq!(none.total, 0, "no device saved yet");
}

/// A school's days hold its devices' syncs only; the fleet's hold every school's.
async fn days_are_kept_per_school(f: Fixture) {
    let (north, south) = (SchoolId::parse("north"), SchoolId::parse("south"));
    let events = [
        (north.clone(), event("n1", 0, 0)),
        (north.clone(), event("n2", 0, 1)),
        (south.clone(), event("s1", 0, 0)),
        (None, event("x1", 0, 0)),
    ];
    f.add_days(&events).await;
    f.roll_up(events[0].1.received_at).await;
    let day = Day::of(t(0));
    let syncs = |within: Within| {
        let fleet = f.fleet.clone();
        async move {
            fleet
                .days(day, day, &within)
                .await
                .unwrap()
                .get(&day)
                .map(|d| (d.syncs, d.failures))
        }
    };
    let north = north.unwrap();
    let south = south.unwrap();
    assert_eq!(syncs(Within::Fleet).await, Some((4, 1)));
    assert_eq!(syncs(Within::Schools(vec![north.clone()])).await, Some((2, 1)));
    assert_eq!(syncs(Within::Schools(vec![south.clone()])).await, Some((1, 0)));
    assert_eq!(
        syncs(Within::Schools(vec![north, south])).await,
        Some((3, 1)),
        "summed"
    );
    assert_eq!(
        syncs(Within::Schools(vec![SchoolId::parse("west").unwrap()])).await,
        None
    );
}

/// A retried addition (an error whose outcome was unknown, then the same request
/// again) counts once, whether detection applied it on time or late.
async fn a_retried_day_addition_counts_once(f: Fixture) {
    let events = [(None, event("r", 0, 1)), (None, event("r", 24 * 60, 0))];
    let addition = DayAddition::of(&events).expect("events");
    f.days.add_days(&addition, addition.at).await.unwrap();
    f.days
        .add_days(&addition, addition.at.plus_millis(1_000))
        .await
        .unwrap();
    // The retry came so late that the first attempt's slot may be rolled up already.
    f.days
        .add_days(&addition, addition.at.plus_millis(20 * 60_000))
        .await
        .unwrap();
    f.roll_up(addition.at).await;
    let first = Day::of(t(0));
    let days = f.fleet.days(first, first.plus(1), &Within::Fleet).await.unwrap();
    assert_eq!(days[&first].syncs, 1);
    assert_eq!(days[&first].failures, 1);
    assert_eq!(days[&first.plus(1)].syncs, 1);
    // Applied late (detection was down for an hour), then retried.
    let late = DayAddition::of(&[(None, event("r", 5, 0))]).expect("an event");
    let an_hour_later = late.at.plus_millis(3_600_000);
    f.days.add_days(&late, an_hour_later).await.unwrap();
    f.days
        .add_days(&late, an_hour_later.plus_millis(5_000))
        .await
        .unwrap();
    f.roll_up(an_hour_later).await;
    assert_eq!(
        f.fleet.days(first, first, &Within::Fleet).await.unwrap()[&first].syncs,
        2,
        "another key adds, once"
    );
    // Rolling up again adds nothing.
    f.roll_up(an_hour_later).await;
    assert_eq!(
        f.fleet.days(first, first, &Within::Fleet).await.unwrap()[&first].syncs,
        2
    );
}

/// The export reads every stored event once, page by page, with its device's school,
/// and only those received in the window asked for.
async fn every_stored_event_is_exported_once(f: Fixture) {
    let id = SchoolId::parse("north").unwrap();
    f.manage.put_school(&school("north"), true).await.unwrap();
    assign(
        f.states.as_ref(),
        &dev("x-in"),
        Some(&id),
        Default::default(),
        |_| true,
        t(0),
    )
    .await
    .unwrap();
    let mut stored = Vec::new();
    for m in 0..7 {
        stored.push(
            f.report(received("x-in", m, m as u32 % 2, m))
                .await
                .new_events
                .len(),
        );
        f.report(received("x-out", m, 0, m)).await;
    }
    assert_eq!(stored.iter().sum::<usize>(), 7);
    // Received at minutes 0 to 6; the window takes 2 to 5.
    let (from, until) = (t(2), t(6));
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let page = f
            .export
            .export_page(from, until, after.as_deref(), 3)
            .await
            .unwrap();
        for e in page.events {
            let school = e.school_id.map(|s| s.to_string());
            seen.push((e.event.device_id.to_string(), e.event.received_at, school));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    seen.sort();
    let mut expected = Vec::new();
    for device in ["x-in", "x-out"] {
        for m in 2..6 {
            let school = (device == "x-in").then(|| "north".to_owned());
            expected.push((device.to_owned(), t(m), school));
        }
    }
    expected.sort();
    assert_eq!(seen, expected);
}

/// A day's summary keeps a sketch of its speeds and of its devices: percentiles and
/// distinct devices add up across batches, retries, late additions and roll-ups, and a
/// school's days are its local days while the fleet's are UTC days.
async fn day_summaries_keep_speeds_and_devices(f: Fixture) {
    let tokyo = SchoolDays {
        school: SchoolId::parse("tokyo").unwrap(),
        timezone: chrono_tz::Asia::Tokyo,
    };
    // Minute 540 is 15:40 UTC: already the next day in Tokyo. Ten devices, speeds 1 to 100.
    let synced = |i: i64| StoredEvent {
        internet_speed: i as f64,
        ..event(&format!("k{}", i % 10), 540 + i, u32::from(i % 4 == 0))
    };
    let events: Vec<_> = (1..=100).map(|i| (Some(tokyo.clone()), synced(i))).collect();
    for chunk in events.chunks(30) {
        let addition = DayAddition::of(chunk).expect("events");
        f.days.add_days(&addition, addition.at).await.unwrap();
        f.days.add_days(&addition, addition.at).await.unwrap(); // a retry
    }
    f.roll_up(events[0].1.received_at).await;
    // One more device's event, applied an hour late, then retried.
    let late_event = StoredEvent {
        internet_speed: 1000.0,
        ..event("k-late", 590, 0)
    };
    let late = DayAddition::of(&[(Some(tokyo.clone()), late_event)]).expect("an event");
    let an_hour_later = late.at.plus_millis(3_600_000);
    f.days.add_days(&late, an_hour_later).await.unwrap();
    f.days
        .add_days(&late, an_hour_later.plus_millis(5_000))
        .await
        .unwrap();
    f.roll_up(an_hour_later).await;
    f.roll_up(an_hour_later).await;
    let utc_day = Day::of(events[0].1.timestamp);
    let local_day = Day::local(events[0].1.timestamp, tokyo.timezone);
    assert_eq!(local_day, utc_day.plus(1));
    let school = Within::Schools(vec![tokyo.school.clone()]);
    let days = f.fleet.days(utc_day, local_day, &school).await.unwrap();
    assert_eq!(
        days.keys().copied().collect::<Vec<_>>(),
        [local_day],
        "local days"
    );
    let fleet = f.fleet.days(utc_day, local_day, &Within::Fleet).await.unwrap();
    assert_eq!(fleet.keys().copied().collect::<Vec<_>>(), [utc_day], "UTC days");
    for day in [&days[&local_day], &fleet[&utc_day]] {
        assert_eq!((day.syncs, day.failures), (101, 25));
        assert_eq!(day.devices.estimate(), 11, "k0 to k9, and k-late");
        let p50 = day.speeds.quantile(0.5).unwrap();
        let p90 = day.speeds.quantile(0.9).unwrap();
        assert!((p50 / 51.0 - 1.0).abs() <= 0.01, "p50 {p50}");
        assert!((p90 / 91.0 - 1.0).abs() <= 0.01, "p90 {p90}");
    }
}

/// A device's day totals ride on its state save where the store takes them (the
/// embedded store: one commit per batch), and a stale save adds none of them. A store
/// that does not take them adds nothing on a save (detection adds the batch's days).
async fn a_save_adds_its_days_only_where_the_store_takes_them(f: Fixture) {
    let e = event("w", 0, 1);
    let applied = f.report(e.clone()).await;
    assert_eq!(applied.new_events.len(), 1);
    f.roll_up(e.received_at).await;
    let day = Day::of(t(0));
    let syncs = || async {
        let days = f.fleet.days(day, day, &Within::Fleet).await.unwrap();
        days.get(&day).map(|d| (d.syncs, d.failures))
    };
    let with_state = f.states.adds_days_with_state();
    assert_eq!(syncs().await, with_state.then_some((1, 1)));
    // A save against an old version changes nothing, its days included.
    let loaded = f.states.load(&dev("w")).await.unwrap().expect("saved");
    let more = DayAddition::of(&[(None, event("w", 1, 0))]).expect("an event");
    let stale = StateWrite {
        state: &loaded.state,
        expected: loaded.version + 1,
        status: loaded.state.listed_status(Rules::default().streak),
        failing: false,
        notices: &[],
        counts: Vec::new(),
        requires_school: None,
        watch_at: None,
        now: t(2),
        days: Some(&more),
    };
    assert_eq!(f.states.save(&stale).await.unwrap(), Saved::Stale);
    f.roll_up(e.received_at).await;
    assert_eq!(syncs().await, with_state.then_some((1, 1)));
}

/// Schools are created, replaced, listed by id and deleted; a school with devices is
/// not deleted.
async fn schools_are_kept_and_listed(f: Fixture) {
    for id in ["c", "a", "b"] {
        assert_eq!(
            f.manage.put_school(&school(id), true).await.unwrap(),
            SchoolPut::Created
        );
    }
    let mut renamed = school("a");
    renamed.name = "Renamed".into();
    assert_eq!(
        f.manage.put_school(&renamed, false).await.unwrap(),
        SchoolPut::Replaced
    );
    assert_eq!(
        f.manage.put_school(&school("new"), false).await.unwrap(),
        SchoolPut::NotFound
    );
    assert_eq!(
        f.schools.school(&SchoolId::parse("new").unwrap()).await.unwrap(),
        None,
        "only replaced"
    );
    let a = SchoolId::parse("a").unwrap();
    assert_eq!(f.schools.school(&a).await.unwrap(), Some(renamed));
    let first = f.schools.schools(None, 2).await.unwrap();
    let ids = |page: &pisync_shared::ports::SchoolPage| -> Vec<String> {
        page.schools.iter().map(|s| s.school_id.to_string()).collect()
    };
    assert_eq!(
        (ids(&first), first.more),
        (vec!["a".to_owned(), "b".to_owned()], true)
    );
    let rest = f
        .schools
        .schools(Some(&first.schools[1].school_id), 2)
        .await
        .unwrap();
    assert_eq!((ids(&rest), rest.more), (vec!["c".to_owned()], false));
    // A device assigned to b keeps it from being deleted.
    let b = SchoolId::parse("b").unwrap();
    let moved = assign(
        f.states.as_ref(),
        &dev("d1"),
        Some(&b),
        Default::default(),
        |_| true,
        t(1),
    )
    .await
    .unwrap();
    assert_eq!(moved, Assigned::Moved { from: None });
    assert_eq!(f.manage.delete_school(&b).await.unwrap(), SchoolDeleted::NotEmpty);
    assert!(f.schools.school(&b).await.unwrap().is_some());
    assert_eq!(f.manage.delete_school(&a).await.unwrap(), SchoolDeleted::Deleted);
    assert_eq!(f.manage.delete_school(&a).await.unwrap(), SchoolDeleted::NotFound);
    assert_eq!(f.schools.school(&a).await.unwrap(), None);
    // Moved out of b, the device no longer holds it.
    assign(
        f.states.as_ref(),
        &dev("d1"),
        None,
        Default::default(),
        |_| true,
        t(2),
    )
    .await
    .unwrap();
    assert_eq!(f.manage.delete_school(&b).await.unwrap(), SchoolDeleted::Deleted);
}

/// Assignment moves a device and its counts between schools; a school that does not
/// exist gains nothing; lists and counts within a school hold its devices only.
async fn assignment_moves_devices_and_counts(f: Fixture) {
    for id in ["north", "south"] {
        f.manage.put_school(&school(id), true).await.unwrap();
    }
    let (north, south) = (
        SchoolId::parse("north").unwrap(),
        SchoolId::parse("south").unwrap(),
    );
    let rule = Rules::default().streak;
    let to = |device: &'static str, school: Option<SchoolId>| {
        let states = f.states.clone();
        async move {
            assign(
                states.as_ref(),
                &dev(device),
                school.as_ref(),
                rule,
                |_| true,
                t(500),
            )
            .await
            .unwrap()
        }
    };
    // n-fail fails three times, then joins north; n-new joins before it reports.
    for m in 0..3 {
        f.report(event("n-fail", m, 1)).await;
    }
    f.report(event("s-ok", 0, 0)).await;
    assert_eq!(
        to("n-fail", Some(north.clone())).await,
        Assigned::Moved { from: None }
    );
    assert_eq!(
        to("n-new", Some(north.clone())).await,
        Assigned::Moved { from: None }
    );
    assert_eq!(to("n-new", Some(north.clone())).await, Assigned::Unchanged);
    assert_eq!(
        to("s-ok", Some(south.clone())).await,
        Assigned::Moved { from: None }
    );
    assert_eq!(to("x", SchoolId::parse("nowhere")).await, Assigned::NoSuchSchool);
    assert_eq!(f.state("x").await, None, "nothing written");
    let in_north = Within::Schools(vec![north.clone()]);
    assert_eq!(
        list_within(&f, None, 1, &in_north).await,
        ["n-fail"],
        "only reported devices are listed"
    );
    assert_eq!(
        list_within(&f, Some(Status::Failing), 10, &in_north).await,
        ["n-fail"]
    );
    assert!(list_within(&f, Some(Status::Healthy), 10, &in_north)
        .await
        .is_empty());
    let failing = f.failing.repeated_failures(10, None, &in_north).await.unwrap();
    assert_eq!(failing.devices.len(), 1);
    assert!(f
        .failing
        .repeated_failures(10, None, &Within::Schools(vec![south.clone()]))
        .await
        .unwrap()
        .devices
        .is_empty());
    let counts = f
        .schools
        .school_counts(&[north.clone(), south.clone()])
        .await
        .unwrap();
    assert_eq!(
        (
            counts[0].assigned,
            counts[0].devices.total,
            counts[0].devices.failing
        ),
        (2, 1, 1)
    );
    assert_eq!((counts[1].assigned, counts[1].devices.healthy), (1, 1));
    // A move carries the device's counts along.
    assert_eq!(
        to("n-fail", Some(south.clone())).await,
        Assigned::Moved {
            from: Some(north.clone())
        }
    );
    let counts = f
        .schools
        .school_counts(&[north.clone(), south.clone()])
        .await
        .unwrap();
    assert_eq!(
        (
            counts[0].assigned,
            counts[0].devices.total,
            counts[0].devices.failing
        ),
        (1, 0, 0)
    );
    assert_eq!(
        (
            counts[1].assigned,
            counts[1].devices.total,
            counts[1].devices.failing
        ),
        (2, 2, 1)
    );
    let both = f
        .fleet
        .counts(&Within::Schools(vec![north.clone(), south.clone()]))
        .await
        .unwrap();
    assert_eq!((both.total, both.failing, both.healthy), (2, 1, 1));
    let fleet = f.fleet.counts(&Within::Fleet).await.unwrap();
    assert_eq!(
        (fleet.total, fleet.failing),
        (2, 1),
        "moves leave the fleet's counts alone"
    );
    // A refused move writes nothing.
    let refused = assign(
        f.states.as_ref(),
        &dev("s-ok"),
        None,
        rule,
        |from| from.is_none(),
        t(501),
    )
    .await
    .unwrap();
    assert_eq!(
        refused,
        Assigned::Refused {
            current: Some(south.clone())
        }
    );
    assert_eq!(f.state("s-ok").await.unwrap().school_id, Some(south));
    // Events applied after the move count toward the new school.
    f.report(event("n-new", 0, 0)).await;
    assert_eq!(list_within(&f, None, 10, &in_north).await, ["n-new"]);
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
    // Concurrent detection of one device's events, as overlapping deliveries would
    // cause: four workers each apply their own five, in different orders.
    let events: Vec<StoredEvent> = (10..30).map(|m| event("race", m, 1)).collect();
    for e in &events {
        f.events.record(e.clone()).await.unwrap();
    }
    let tasks: Vec<_> = events
        .chunks(5)
        .map(|mine| {
            let states = f.states.clone();
            let mut mine = mine.to_vec();
            mine.reverse();
            tokio::spawn(async move {
                for e in mine {
                    apply(&states, &e, t(500)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    f.apply(&e, t(500)).await;
    assert_eq!(streak(&f, "race").await, 21);
    assert_eq!(
        f.state("race").await.unwrap().totals.syncs,
        21,
        "every event counted once"
    );
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
    late_events_and_the_outbox,
    runs_are_counted_in_a_window,
    repeated_failures_are_ordered_and_paged,
    devices_are_listed_by_status_and_silence_is_found,
    silence_counts_a_schools_open_time,
    days_and_counts_add_up,
    days_are_kept_per_school,
    a_retried_day_addition_counts_once,
    day_summaries_keep_speeds_and_devices,
    every_stored_event_is_exported_once,
    a_save_adds_its_days_only_where_the_store_takes_them,
    schools_are_kept_and_listed,
    assignment_moves_devices_and_counts,
    concurrent_writers,
    the_audit_trail_is_paged_newest_first_and_scoped,
    every_decided_notice_is_kept_and_paged,
    a_flapping_device_is_found_stable_by_the_periodic_check,
    a_schools_digest_is_sent_once_a_day,
);

/// The daily digest through the store: due at the school's `digest_at` on an open day;
/// composed from the school's counts, its failing and silent lists, the notices it held
/// back and yesterday's totals; saved (history and outbox) once per date however many
/// checks run — the mark is the store's, not only the process's.
async fn a_schools_digest_is_sent_once_a_day(f: Fixture) {
    use pisync_shared::domain::school::LocalTime;
    use pisync_shared::domain::school_digest::{send_due_digests, DigestRound, DigestSources, SentDigests};
    use pisync_shared::ports::NoticeQuery;
    let id = SchoolId::parse("north").unwrap();
    let mut north = school("north");
    north.digest_at = LocalTime::parse("07:00", false);
    north.silent_after = Some(std::time::Duration::from_secs(600));
    f.manage.put_school(&north, true).await.unwrap();
    for d in ["n-fail", "n-late", "n-ok"] {
        assign(
            f.states.as_ref(),
            &dev(d),
            Some(&id),
            Default::default(),
            |_| true,
            t(0),
        )
        .await
        .unwrap();
    }
    // Minute 0 is 06:40 UTC. n-ok reports once and then goes silent; n-late's streak
    // of two days ago arrives late (held back as stale, with its recovery); n-fail
    // fails three times as it happens.
    f.report(reported_event("n-ok", 1, 0)).await;
    for (m, errors) in [(-2000, 1), (-1999, 1), (-1998, 1), (-1997, 0)] {
        f.report(received("n-late", m, errors, 12)).await;
    }
    for m in 15..=17 {
        f.report(reported_event("n-fail", m, 1)).await;
    }
    let silence = check_silent_devices(f.states.as_ref(), f.watch.as_ref(), Rules::default(), t(18))
        .await
        .unwrap();
    assert_eq!(silence.notices.len(), 1, "n-ok is silent: {silence:?}");
    // Yesterday (2025-05-06): two syncs, one failed.
    f.add_days(&[
        (Some(id.clone()), received("n-ok", -1000, 0, 12)),
        (Some(id.clone()), received("n-fail", -990, 1, 12)),
    ])
    .await;
    f.roll_up(t(12)).await;

    async fn send(f: &Fixture, sent: &SentDigests, at: EventTime) -> DigestRound {
        let sources = DigestSources {
            schools: f.schools.as_ref(),
            devices: f.devices.as_ref(),
            notices: f.notices.as_ref(),
            days: f.fleet.as_ref(),
        };
        send_due_digests(sources, f.ledger.as_ref(), sent, at)
            .await
            .unwrap()
    }
    let sent = SentDigests::default();
    assert!(send(&f, &sent, t(19)).await.sent.is_empty(), "07:00 has not come");
    let round = send(&f, &sent, t(21)).await;
    assert!(round.failed.is_empty(), "{:?}", round.failed);
    let [digest] = round.sent.as_slice() else {
        panic!("one digest: {round:?}");
    };
    assert_eq!(digest.date, "2025-05-07");
    let c = digest.devices;
    assert_eq!((c.total, c.healthy, c.failing, c.silent), (3, 1, 1, 1));
    assert_eq!(digest.failing, [dev("n-fail")]);
    assert_eq!(digest.silent, [dev("n-ok")]);
    assert_eq!(digest.unpublished, 2, "n-late's alert and recovery");
    let y = &digest.yesterday;
    assert_eq!(
        (y.date.as_str(), y.syncs, y.failures, y.failure_rate),
        ("2025-05-06", 2, 1, 0.5)
    );

    assert!(send(&f, &sent, t(22)).await.sent.is_empty(), "sent today");
    assert!(
        send(&f, &SentDigests::default(), t(23)).await.sent.is_empty(),
        "a new process finds the store's mark"
    );
    assert_eq!(
        f.ledger.last_digest(&id).await.unwrap(),
        "2025-05-07".parse().ok()
    );
    let again = f
        .ledger
        .save_digest(digest, "2025-05-07".parse().unwrap())
        .await
        .unwrap();
    assert!(!again, "a second save of the date writes nothing");
    let waiting = f.waiting().await;
    assert_eq!(
        waiting.iter().filter(|k| **k == "school.digest").count(),
        1,
        "{waiting:?}"
    );
    let within = Within::Schools(vec![id.clone()]);
    let query = NoticeQuery {
        within: &within,
        kind: Some("school.digest"),
        before: None,
        limit: 10,
    };
    let kept = f.notices.notice_feed(&query).await.unwrap();
    assert_eq!(kept.notices.len(), 1);
    assert!(kept.notices[0].1.published);
    assert_eq!(kept.notices[0].1.notice.school_id(), Some(&id));
    for d in ["n-fail", "n-late", "n-ok"] {
        let own = f.notices.device_notices(&dev(d), None, 10).await.unwrap();
        assert!(
            own.notices
                .iter()
                .all(|(_, r)| r.notice.event_type() != "school.digest"),
            "a digest is no device's notice"
        );
    }

    let tomorrow = send(&f, &sent, t(21 + 24 * 60)).await;
    let [next] = tomorrow.sent.as_slice() else {
        panic!("the next day's digest: {tomorrow:?}");
    };
    assert_eq!(next.date, "2025-05-08");
    assert_eq!(next.unpublished, 0, "held back more than 24 hours ago");
}

/// Flapping through the store: the third alert in a day becomes `device.flapping`,
/// and the periodic check — finding the device through the store's own schedule, not
/// a read of the fleet — sends `device.stable` a whole window after the last alert.
async fn a_flapping_device_is_found_stable_by_the_periodic_check(f: Fixture) {
    // Three rounds of three failures and a success, reported as they happen.
    for i in 0..12 {
        f.report(reported_event("flappy", 10 * i, u32::from(i % 4 != 3)))
            .await;
    }
    assert_eq!(
        f.waiting().await,
        [
            "device.repeated_sync_failures",
            "device.sync_recovered",
            "device.repeated_sync_failures",
            "device.sync_recovered",
            "device.flapping",
        ]
    );
    // The third alert was received at minute 100.
    let day = 24 * 60;
    let early = check_silent_devices(
        f.states.as_ref(),
        f.watch.as_ref(),
        Rules::default(),
        t(100 + day - 1),
    )
    .await
    .unwrap();
    assert!(early.notices.is_empty(), "not a whole window yet: {early:?}");
    let due = check_silent_devices(
        f.states.as_ref(),
        f.watch.as_ref(),
        Rules::default(),
        t(100 + day),
    )
    .await
    .unwrap();
    let kinds: Vec<&str> = due.notices.iter().map(|n| n.notice.event_type()).collect();
    assert_eq!(kinds, ["device.stable"], "{due:?}");
    assert_eq!(f.state("flappy").await.unwrap().flapping, None);
}

/// The notice history: every decision (published or held back as stale) kept with
/// the state that decided it, paged newest first per device and per feed (district,
/// school, type); only published notices reach the outbox.
async fn every_decided_notice_is_kept_and_paged(f: Fixture) {
    use pisync_shared::domain::notice::Withheld;
    use pisync_shared::ports::NoticeQuery;
    let north = SchoolId::parse("north").unwrap();
    f.manage.put_school(&school("north"), true).await.unwrap();
    assign(
        f.states.as_ref(),
        &dev("n-1"),
        Some(&north),
        Default::default(),
        |_| true,
        t(0),
    )
    .await
    .unwrap();
    // n-1 (north): three failures, news. u-1 (no school): a backlog received two days
    // late, whose streak ended: recorded, not published.
    for m in 1..=3 {
        f.report(reported_event("n-1", m, 1)).await;
    }
    let late = |m: i64, errors: u32| StoredEvent {
        received_at: t(10 + 2 * 24 * 60),
        ..event("u-1", m, errors)
    };
    for (m, errors) in [(4, 1), (5, 1), (6, 1), (7, 0)] {
        f.report(late(m, errors)).await;
    }
    let pending: Vec<String> = f
        .outbox
        .pending(10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.notice.subject_id().to_owned())
        .collect();
    assert_eq!(pending, ["n-1"], "the stale streak was not published");
    let kinds = |page: &pisync_shared::ports::NoticePage| -> Vec<(String, bool, Option<Withheld>)> {
        page.notices
            .iter()
            .map(|(_, r)| (r.notice.subject_id().to_owned(), r.published, r.reason))
            .collect()
    };
    let u1 = f.notices.device_notices(&dev("u-1"), None, 10).await.unwrap();
    assert_eq!(
        kinds(&u1),
        [
            ("u-1".into(), false, Some(Withheld::Stale)),
            ("u-1".into(), false, Some(Withheld::Stale)),
        ]
    );
    assert_eq!(u1.notices[0].1.notice.event_type(), "device.sync_recovered");
    let feed = |within: &Within, kind: Option<&'static str>, before: Option<String>, limit| {
        let notices = f.notices.clone();
        let within = within.clone();
        async move {
            let query = NoticeQuery {
                within: &within,
                kind,
                before: before.as_deref(),
                limit,
            };
            notices.notice_feed(&query).await.unwrap()
        }
    };
    let first = feed(&Within::Fleet, None, None, 2).await;
    assert_eq!(
        (kinds(&first), first.more),
        (
            vec![
                ("u-1".into(), false, Some(Withheld::Stale)),
                ("u-1".into(), false, Some(Withheld::Stale)),
            ],
            true
        )
    );
    let rest = feed(&Within::Fleet, None, Some(first.notices[1].0.clone()), 2).await;
    assert_eq!(
        (kinds(&rest), rest.more),
        (vec![("n-1".into(), true, None)], false)
    );
    let alerts = feed(&Within::Fleet, Some("device.repeated_sync_failures"), None, 10).await;
    assert_eq!(alerts.notices.len(), 2);
    let north_feed = feed(&Within::Schools(vec![north.clone()]), None, None, 10).await;
    assert_eq!(kinds(&north_feed), [("n-1".into(), true, None)]);
    assert_eq!(north_feed.notices[0].1.notice.school_id(), Some(&north));
    let none = feed(&Within::Schools(vec![north]), Some("device.silent"), None, 10).await;
    assert!(none.notices.is_empty() && !none.more);
}

/// The audit trail: newest first, paged by key; a school's entries (also those that
/// moved a device out of it) for its admins, no other; a retried record kept once.
async fn the_audit_trail_is_paged_newest_first_and_scoped(f: Fixture) {
    use pisync_shared::domain::audit::{AuditAction, AuditEntry};
    let north = SchoolId::parse("north").unwrap();
    let south = SchoolId::parse("south").unwrap();
    let entry = |m: i64, target: &str, school: Option<&SchoolId>, previous: Option<&SchoolId>| AuditEntry {
        at: t(m),
        actor: "ana".into(),
        action: AuditAction::DeviceAssigned,
        target: target.into(),
        school_id: school.cloned(),
        previous_school_id: previous.cloned(),
        request_id: format!("req-{m}"),
    };
    let entries = [
        entry(1, "d-1", None, None),
        entry(2, "d-2", Some(&north), None),
        entry(3, "d-3", Some(&south), None),
        entry(4, "d-2", Some(&south), Some(&north)),
        entry(5, "d-5", Some(&north), None),
    ];
    for e in &entries {
        f.audit.record_action(e).await.unwrap();
    }
    f.audit.record_action(&entries[4]).await.unwrap();
    let targets = |page: &pisync_shared::ports::AuditPage| -> Vec<i64> {
        page.entries
            .iter()
            .map(|e| e.at.millis() / 60_000 - t(0).millis() / 60_000)
            .collect()
    };
    let first = f.audit.audit_entries(&Within::Fleet, None, 3).await.unwrap();
    assert_eq!((targets(&first), first.more), (vec![5, 4, 3], true));
    let rest = f
        .audit
        .audit_entries(&Within::Fleet, Some(&first.entries[2].key()), 3)
        .await
        .unwrap();
    assert_eq!((targets(&rest), rest.more), (vec![2, 1], false));
    let north_only = f
        .audit
        .audit_entries(&Within::Schools(vec![north.clone()]), None, 10)
        .await
        .unwrap();
    assert_eq!(
        targets(&north_only),
        [5, 4, 2],
        "moved out of north: north's admins see it"
    );
    let both = f
        .audit
        .audit_entries(&Within::Schools(vec![north, south]), None, 2)
        .await
        .unwrap();
    assert_eq!(
        (targets(&both), both.more),
        (vec![5, 4], true),
        "an entry about both once"
    );
    assert_eq!(both.entries[1], entries[3]);
}

/// A long count, in small pages: page by page through the port, then a late success
/// inside a run longer than a batch's pages, finished by the periodic check.
async fn a_long_count_is_read_page_by_page(f: Fixture) {
    // 40 failures 2 minutes apart; a success late at minute 9 leaves 36 after it.
    for m in 1..=40 {
        f.report(event("long", 2 * m, 1)).await;
    }
    let window = RunWindow {
        after: Some(t(9)),
        through: t(80),
    };
    let (mut rest, mut total, mut first, mut pages) = (window, 0, None, 0);
    loop {
        let page = f.states.count_run(&dev("long"), rest).await.unwrap();
        total += page.failures;
        first = first.or(page.first_failure);
        pages += 1;
        match page.read_through {
            Some(t) => rest.after = Some(t),
            None => break,
        }
    }
    assert_eq!((total, first), (36, Some(t(10))));
    assert!(pages > 16, "pages of 2: {pages}");
    // Detected now, so the periodic check (at the real time) finds it on its agenda.
    let late = event("long", 9, 0);
    f.events.record(late.clone()).await.unwrap();
    f.apply(&late, EventTime::now()).await;
    let state = f.state("long").await.unwrap();
    assert!(state.counting.is_some(), "more than one batch's pages");
    assert_eq!(state.consecutive_failures(), 40, "unchanged until counted");
    let rules = Rules::default();
    for _ in 0..5 {
        let now = EventTime::now(); // the reports were received now: none is silent
        check_silent_devices(f.states.as_ref(), f.watch.as_ref(), rules, now)
            .await
            .unwrap();
    }
    let state = f.state("long").await.unwrap();
    assert_eq!(state.counting, None, "the periodic check finished it");
    assert_eq!(state.consecutive_failures(), 36);
    assert_eq!(state.streak.unwrap().started_at, t(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_long_count_is_read_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db"))
        .unwrap()
        .with_count_page_rows(2);
    a_long_count_is_read_page_by_page(Fixture::of(store, Some(dir))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_a_long_count_is_read_page_by_page() {
    let store = dynamodb_local_store("long-count").await.with_count_page_items(2);
    a_long_count_is_read_page_by_page(Fixture::of(store, None)).await;
}

/// A request's events become visible to the local change feed together, never part
/// of them: detection then applies a backlog as one batch. (Queued one by one, the
/// writer used to commit the first events of a request before the rest arrived.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_requests_events_reach_the_change_feed_together() {
    const EVENTS: usize = 100;
    let (_dir, store) = pisync_shared::test_util::sqlite_store();
    let watcher = store.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_watching = stop.clone();
    let watching = tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop_watching.load(std::sync::atomic::Ordering::Relaxed) {
            let changes = watcher.changes_after(0, 100_000).await.unwrap();
            for request in 0..20 {
                let device = format!("batch-{request:02}");
                seen.push(
                    changes
                        .iter()
                        .filter(|(_, e)| e.device_id.as_str() == device)
                        .count(),
                );
            }
            tokio::task::yield_now().await;
        }
        seen
    });
    for request in 0..20 {
        let device = format!("batch-{request:02}");
        let events: Vec<StoredEvent> = (0..EVENTS as i64).map(|m| event(&device, m, 0)).collect();
        let outcomes = store.record_many(events).await;
        assert!(outcomes.iter().all(|o| matches!(o, Ok(Recorded::Created(_)))));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watching.await.unwrap();
    let partial: Vec<&usize> = seen.iter().filter(|n| **n != 0 && **n != EVENTS).collect();
    assert!(partial.is_empty(), "the feed saw part of a request: {partial:?}");
}

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
    use pisync_shared::adapters::dynamodb::item::{failing_pk, StateItem, FAILING_SHARDS, LEGACY_FAILING_PK};
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
    let mut state = DeviceState::new(dev("shard-legacy"));
    for m in 0..9 {
        state.apply(
            &event("shard-legacy", m, 1),
            Rules::default().streak,
            t(100),
            &mut Vec::new(),
        );
    }
    let mut item: serde_dynamo::Item =
        serde_dynamo::to_item(StateItem::new(&state, 1, Some(Status::Failing), true).unwrap()).unwrap();
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
        let page = store
            .repeated_failures(7, after.as_ref(), &Within::Fleet)
            .await
            .unwrap();
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

/// A data directory as PiSync wrote it before schools (and before each device had its
/// silence check time): one healthy device, `old-1`, last seen at minute `last_seen`,
/// and a day of the fleet's totals.
fn data_dir_from_before_schools(last_seen: i64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE devices (
                 device_id TEXT PRIMARY KEY, version INTEGER NOT NULL, status TEXT NOT NULL,
                 failing INTEGER NOT NULL, streak_count INTEGER NOT NULL, streak_started_at INTEGER,
                 last_failure_at INTEGER, last_sync_at INTEGER, last_seen_at INTEGER, state TEXT NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE days (
                 day INTEGER PRIMARY KEY, syncs INTEGER NOT NULL, failures INTEGER NOT NULL,
                 files_synced INTEGER NOT NULL, speed_sum REAL NOT NULL
             );",
        )
        .unwrap();
        let mut state = DeviceState::new(dev("old-1"));
        state.apply(
            &received("old-1", 0, 0, last_seen),
            Rules::default().streak,
            t(1),
            &mut Vec::new(),
        );
        conn.execute(
            "INSERT INTO devices VALUES ('old-1', 1, 'healthy', 0, 0, NULL, NULL, ?1, ?2, ?3)",
            rusqlite::params![
                t(0).millis(),
                t(last_seen).millis(),
                serde_json::to_string(&state).unwrap()
            ],
        )
        .unwrap();
        let day = Day::of(t(0)).number();
        conn.execute("INSERT INTO days VALUES (?1, 7, 2, 70, 14.0)", [day])
            .unwrap();
    }
    Fixture::of(SqliteStore::open(&path).unwrap(), Some(dir))
}

/// Its devices are on the silence check's agenda: one quiet for the silent period is
/// found at the next check.
#[tokio::test]
async fn sqlite_devices_from_before_the_check_schedule_are_checked() {
    let f = data_dir_from_before_schools(100);
    let check = |m: i64| {
        let (states, watch) = (f.states.clone(), f.watch.clone());
        async move {
            check_silent_devices(states.as_ref(), watch.as_ref(), Rules::default(), t(m))
                .await
                .unwrap()
        }
    };
    let early = check(100 + 60).await;
    assert_eq!(
        (early.checked, early.notices.len()),
        (1, 0),
        "looked at once, not yet silent"
    );
    assert_eq!(check(100 + 2_000).await.checked, 0, "next due at 48 hours");
    let due = check(100 + 2_880).await;
    assert_eq!(
        due.notices
            .iter()
            .map(|n| n.notice.subject_id().to_owned())
            .collect::<Vec<_>>(),
        ["old-1"]
    );
}

/// A data directory from before schools (its devices without `school_id`, the fleet's
/// days in `days`) opens with its devices listed, its days in the summary, and devices
/// that can be assigned.
#[tokio::test]
async fn sqlite_a_data_dir_from_before_schools_is_upgraded() {
    let f = data_dir_from_before_schools(100_000);
    assert_eq!(list_all(&f, None, 10).await, ["old-1"]);
    let day = Day::of(t(0));
    let days = f.fleet.days(day, day, &Within::Fleet).await.unwrap();
    assert_eq!(
        (days[&day].syncs, days[&day].failures),
        (7, 2),
        "the old days in the fleet's"
    );
    f.manage.put_school(&school("north"), true).await.unwrap();
    let north = SchoolId::parse("north").unwrap();
    let moved = assign(
        f.states.as_ref(),
        &dev("old-1"),
        Some(&north),
        Default::default(),
        |_| true,
        t(2),
    )
    .await
    .unwrap();
    assert_eq!(moved, Assigned::Moved { from: None });
    assert_eq!(
        list_within(&f, None, 10, &Within::Schools(vec![north])).await,
        ["old-1"]
    );
}
