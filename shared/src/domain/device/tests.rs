use super::*;
use crate::domain::applied::StreamPosition;
use crate::domain::detection::{apply_records, Record, Rules};
use crate::domain::streak::RunWindow;
use crate::domain::sweep::check_silent_devices;
use crate::ports::{DeviceStates, DueChecks, Saved, SilenceWatch, StateWrite, StoreError, Versioned};
use async_trait::async_trait;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Mutex;

fn at(secs: i64) -> EventTime {
    EventTime::from_millis(secs * 1000).unwrap()
}

fn event(secs: i64, errors: u32) -> StoredEvent {
    StoredEvent {
        device_id: DeviceId::parse("dev").unwrap(),
        timestamp: at(secs),
        total_files_synced: 2,
        total_errors: errors,
        internet_speed: secs as f64,
        outcome: Outcome::of(errors),
        // Received ten minutes after it happened: news ([`StreakRule::is_fresh`]).
        received_at: at(secs + 600),
    }
}

/// A store stand-in for the domain's own tests: the stored timeline and one state.
/// The adapters themselves are tested against the same contract in
/// shared/tests/store_contract.rs.
#[derive(Default)]
struct Timeline {
    stored: Mutex<BTreeMap<EventTime, StoredEvent>>,
    state: Mutex<Option<(DeviceState, u64)>>,
    /// Every published notice saved with a state, in order.
    outbox: Mutex<Vec<Notice>>,
    /// Every notice decided, published or not, in order.
    history: Mutex<Vec<Decided>>,
    /// Failures one count reads at most (`None`: the whole window at once).
    count_page: Option<usize>,
}

impl Timeline {
    fn with_count_page(count_page: Option<usize>) -> Self {
        Self {
            count_page,
            ..Self::default()
        }
    }
}

/// The periodic check sees this device whenever it runs.
#[async_trait]
impl SilenceWatch for Timeline {
    async fn due(&self, _: EventTime, _: usize) -> Result<DueChecks, StoreError> {
        Ok(DueChecks {
            devices: vec![DeviceId::parse("dev").unwrap()],
            mark: None,
        })
    }

    async fn recheck(&self, _: &DeviceId, _: EventTime) -> Result<(), StoreError> {
        Ok(())
    }

    async fn checked(&self, _: i64) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl DeviceStates for Timeline {
    async fn load(&self, _: &DeviceId) -> Result<Option<Versioned>, StoreError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .clone()
            .map(|(state, version)| Versioned { state, version }))
    }

    async fn save(&self, write: &StateWrite<'_>) -> Result<Saved, StoreError> {
        let mut slot = self.state.lock().unwrap();
        let version = slot.as_ref().map_or(0, |(_, v)| *v);
        if version != write.expected {
            return Ok(Saved::Stale);
        }
        *slot = Some((write.state.clone(), version + 1));
        let published = write.notices.iter().filter(|n| n.is_published());
        self.outbox
            .lock()
            .unwrap()
            .extend(published.map(|n| n.notice.clone()));
        self.history.lock().unwrap().extend(write.notices.iter().cloned());
        Ok(Saved::Written)
    }

    async fn count_run(&self, _: &DeviceId, window: RunWindow) -> Result<RunCount, StoreError> {
        let stored = self.stored.lock().unwrap();
        let in_window: Vec<&StoredEvent> = stored
            .values()
            .filter(|e| window.after.is_none_or(|a| e.timestamp > a) && e.timestamp <= window.through)
            .collect();
        // A page reads events (failed or not), as DynamoDB's pages do.
        let page = self.count_page.unwrap_or(usize::MAX).min(in_window.len());
        let read = &in_window[..page];
        let failures: Vec<EventTime> = read
            .iter()
            .filter(|e| e.outcome == Outcome::Failure)
            .map(|e| e.timestamp)
            .collect();
        Ok(RunCount {
            failures: failures.len() as u32,
            first_failure: failures.first().copied(),
            read_through: (page < in_window.len())
                .then(|| read.last().map(|e| e.timestamp))
                .flatten(),
        })
    }

    async fn school(
        &self,
        _: &crate::domain::school::SchoolId,
    ) -> Result<Option<crate::domain::school::School>, StoreError> {
        Ok(None) // the device model has no schools: every device is in the fleet only
    }
}

impl Timeline {
    fn store(&self, e: &StoredEvent) -> bool {
        let mut stored = self.stored.lock().unwrap();
        if stored.contains_key(&e.timestamp) {
            return false; // a replay: nothing written, no stream record
        }
        stored.insert(e.timestamp, e.clone());
        true
    }

    /// Runs the periodic check until no count is in progress (each run reads a bounded
    /// number of pages).
    async fn finish_counts(&self, rules: Rules) {
        for _ in 0..1000 {
            if self.state().counting.is_none() {
                return;
            }
            check_silent_devices(self, self, rules, at(10_000)).await.unwrap();
        }
        panic!("the count never finished");
    }

    fn state(&self) -> DeviceState {
        self.state
            .lock()
            .unwrap()
            .clone()
            .map(|(s, _)| s)
            .unwrap_or_else(|| DeviceState::new(DeviceId::parse("dev").unwrap()))
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.outbox
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.event_type())
            .collect()
    }

    /// Brute force over everything stored: what the state must say.
    fn expected(&self) -> Summary {
        let stored = self.stored.lock().unwrap();
        let run: Vec<&StoredEvent> = stored
            .values()
            .rev()
            .take_while(|e| e.outcome == Outcome::Failure)
            .collect();
        let newest_of = |outcome| {
            stored
                .values()
                .rev()
                .find(|e| e.outcome == outcome)
                .map(|e| e.timestamp)
        };
        let mut totals = Totals::default();
        for e in stored.values() {
            totals.syncs += 1;
            totals.files_synced += u64::from(e.total_files_synced);
            totals.errors += u64::from(e.total_errors);
            totals.failures += u64::from(e.outcome == Outcome::Failure);
        }
        Summary {
            run: run.len() as u32,
            started_at: run.last().map(|e| e.timestamp),
            last_failure_in_run: run.first().map(|e| e.timestamp),
            last_success_at: newest_of(Outcome::Success),
            last_failure_at: newest_of(Outcome::Failure),
            last_sync_at: stored.keys().next_back().copied(),
            last_internet_speed: stored.values().next_back().map(|e| e.internet_speed),
            first_seen_at: stored.values().map(|e| e.received_at).min(),
            last_seen_at: stored.values().map(|e| e.received_at).max(),
            totals,
        }
    }
}

#[derive(Debug, PartialEq)]
struct Summary {
    run: u32,
    started_at: Option<EventTime>,
    last_failure_in_run: Option<EventTime>,
    last_success_at: Option<EventTime>,
    last_failure_at: Option<EventTime>,
    last_sync_at: Option<EventTime>,
    last_internet_speed: Option<f64>,
    first_seen_at: Option<EventTime>,
    last_seen_at: Option<EventTime>,
    totals: Totals,
}

fn observed(s: &DeviceState) -> Summary {
    Summary {
        run: s.consecutive_failures(),
        started_at: s.streak.as_ref().map(|s| s.started_at),
        last_failure_in_run: s.streak.as_ref().map(|s| s.last_failure_at),
        last_success_at: s.last_success_at,
        last_failure_at: s.last_failure_at,
        last_sync_at: s.last_sync_at,
        last_internet_speed: s.last_internet_speed,
        first_seen_at: s.first_seen_at,
        last_seen_at: s.last_seen_at,
        totals: s.totals,
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Few count pages per batch, so these short timelines have counts that span batches
/// and checks.
fn rules(threshold: u32) -> Rules {
    Rules {
        streak: StreakRule {
            threshold,
            ..StreakRule::default()
        },
        count_pages_per_batch: 3,
        ..Rules::default()
    }
}

/// Each event stored, then delivered alone, in arrival order.
fn one_by_one(events: &[StoredEvent], threshold: u32) -> Timeline {
    one_by_one_paged(events, threshold, None)
}

/// The same, with counts read `count_page` events at a time; counts still in progress
/// at the end are finished by the periodic check.
fn one_by_one_paged(events: &[StoredEvent], threshold: u32, count_page: Option<usize>) -> Timeline {
    let timeline = Timeline::with_count_page(count_page);
    block_on(async {
        for (i, e) in events.iter().enumerate() {
            if timeline.store(e) {
                let position = StreamPosition::parse(&(i + 1).to_string());
                apply_records(
                    &timeline,
                    rules(threshold),
                    &[Record::new(position, e.clone())],
                    at(10_000),
                )
                .await
                .unwrap();
            }
        }
        timeline.finish_counts(rules(threshold)).await;
    });
    timeline
}

fn alert(timeline: &Timeline, i: usize) -> FailureAlert {
    match &timeline.outbox.lock().unwrap()[i] {
        Notice::RepeatedFailures(a) => a.clone(),
        other => panic!("not an alert: {other:?}"),
    }
}

#[test]
fn three_failures_in_order_alert_once() {
    let t = one_by_one(&[event(1, 1), event(2, 2), event(3, 5), event(4, 1)], 3);
    assert_eq!(t.kinds(), ["device.repeated_sync_failures"]);
    let a = alert(&t, 0);
    assert_eq!((a.consecutive_failures, a.threshold), (3, 3));
    assert_eq!(
        (a.streak_started_at, a.last_failure_at, a.last_total_errors),
        (at(1), at(3), 5)
    );
    assert_eq!(t.state().consecutive_failures(), 4);
}

#[test]
fn success_after_alert_sends_recovery_with_the_same_alert_id() {
    let t = one_by_one(
        &[event(1, 0), event(2, 1), event(3, 1), event(4, 1), event(5, 0)],
        3,
    );
    assert_eq!(
        t.kinds(),
        ["device.repeated_sync_failures", "device.sync_recovered"]
    );
    let notices = t.outbox.lock().unwrap().clone();
    let Notice::Recovered(r) = &notices[1] else {
        unreachable!()
    };
    assert_eq!((r.failures_before_recovery, r.recovered_at), (3, at(5)));
    assert_eq!(notices[0].alert_id(), notices[1].alert_id());
    assert_eq!(notices[0].alert_id(), format!("dev@{}", at(1)));
    assert_ne!(notices[0].notice_id(), notices[1].notice_id());
    assert_eq!(t.state().alert_id, None);
}

#[test]
fn success_without_alert_sends_nothing() {
    let t = one_by_one(&[event(1, 1), event(2, 1), event(3, 0)], 3);
    assert!(t.kinds().is_empty());
}

#[test]
fn late_failure_before_newest_success_changes_only_totals() {
    let t = one_by_one(&[event(10, 0), event(11, 1), event(5, 1), event(6, 1)], 3);
    let state = t.state();
    assert_eq!(state.consecutive_failures(), 1);
    assert_eq!(state.totals.failures, 3);
    assert!(t.kinds().is_empty());
}

#[test]
fn late_failures_completing_a_run_alert() {
    // Arrival 3, 1, 2: the run becomes 3 when the second late one lands.
    let t = one_by_one(&[event(3, 1), event(1, 1), event(2, 1)], 3);
    assert_eq!(t.kinds(), ["device.repeated_sync_failures"]);
    let a = alert(&t, 0);
    assert_eq!((a.streak_started_at, a.last_failure_at), (at(1), at(3)));
}

#[test]
fn late_success_inside_a_run_splits_it_without_recovery() {
    let t = one_by_one(
        &[event(1, 1), event(2, 1), event(4, 1), event(5, 1), event(3, 0)],
        3,
    );
    let state = t.state();
    assert_eq!(state.consecutive_failures(), 2);
    assert_eq!(state.streak.as_ref().unwrap().started_at, at(4));
    assert_eq!(
        t.kinds(),
        ["device.repeated_sync_failures"],
        "newest sync still failed"
    );
    assert!(state.alert_id.is_some());
}

#[test]
fn a_late_failure_in_a_counted_stretch_is_counted_not_added() {
    // 3 splits the run; 4.5 arrives later, inside the stretch the split counted.
    let events = [
        event(1, 1),
        event(2, 1),
        event(4, 1),
        event(5, 1),
        event(3, 0),
        event(4, 1),
    ];
    let t = one_by_one(&events, 3);
    assert_eq!(
        t.state().consecutive_failures(),
        2,
        "the replay of 4 is not stored"
    );
    let t = one_by_one(
        &[event(1, 1), event(4, 1), event(5, 1), event(3, 0), event(6, 1)],
        9,
    );
    assert_eq!(t.state().consecutive_failures(), 3);
    assert_eq!(t.state().counted_through, Some(at(5)));
}

#[test]
fn threshold_is_configurable() {
    assert_eq!(
        one_by_one(&[event(1, 1)], 1).kinds(),
        ["device.repeated_sync_failures"]
    );
    assert!(one_by_one(&[event(1, 1), event(2, 1), event(3, 1)], 4)
        .kinds()
        .is_empty());
}

#[test]
fn alert_json_matches_the_contract() {
    let t = one_by_one(&[event(1, 1), event(2, 1), event(3, 2)], 3);
    let json: serde_json::Value = serde_json::from_str(&t.outbox.lock().unwrap()[0].to_json()).unwrap();
    assert_eq!(json["type"], "device.repeated_sync_failures");
    assert_eq!(json["device_id"], "dev");
    assert_eq!(json["consecutive_failures"], 3);
    assert_eq!(json["threshold"], 3);
    assert_eq!(json["streak_started_at"], "1970-01-01T00:00:01.000Z");
    assert_eq!(json["last_failure_at"], "1970-01-01T00:00:03.000Z");
    assert_eq!(json["last_total_errors"], 2);
    assert_eq!(json["detected_at"], at(10_000).to_string());
}

#[test]
fn status_and_totals_follow_the_reports() {
    let t = one_by_one(&[event(1, 0), event(2, 3), event(3, 1), event(4, 2)], 3);
    let view = t.state().view(StreakRule::default());
    assert_eq!(view.status, Status::Failing);
    assert_eq!(
        view.totals,
        Totals {
            syncs: 4,
            failures: 3,
            files_synced: 8,
            errors: 6
        }
    );
    assert_eq!(
        (view.first_seen_at, view.last_seen_at),
        (Some(at(601)), Some(at(604)))
    );
    assert_eq!(
        (view.last_success_at, view.last_failure_at),
        (Some(at(1)), Some(at(4)))
    );
    assert_eq!(view.last_internet_speed, Some(4.0));
    assert_eq!(view.streak_started_at, Some(at(2)));
}

#[test]
fn a_redelivered_batch_changes_nothing() {
    let timeline = Timeline::default();
    let records: Vec<Record> = [event(3, 1), event(1, 1), event(2, 0)]
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            timeline.store(&e);
            Record::new(StreamPosition::parse(&(i + 10).to_string()), e)
        })
        .collect();
    block_on(async {
        let first = apply_records(&timeline, rules(3), &records, at(10_000))
            .await
            .unwrap();
        assert_eq!(first.new_events.len(), 3);
        let again = apply_records(&timeline, rules(3), &records[1..], at(10_000))
            .await
            .unwrap();
        assert!(again.new_events.is_empty(), "bisected retry of the same batch");
        assert_eq!(again.state, first.state);
    });
    assert_eq!(timeline.state().totals.syncs, 3);
}

/// A timeline of unique timestamps with random outcomes, arriving in a random order,
/// with random replays (which are not stored and produce no stream record).
/// Some timelines are mostly failures, so long runs (and long counts) occur.
fn arrivals() -> impl Strategy<Value = (Vec<StoredEvent>, u32)> {
    (0.3f64..0.97)
        .prop_flat_map(|failing| {
            (
                proptest::collection::vec((proptest::bool::weighted(failing), 1u32..4), 1..60),
                1u32..5,
            )
        })
        .prop_flat_map(|(outcomes, threshold)| {
            let events: Vec<StoredEvent> = outcomes
                .iter()
                .enumerate()
                .map(|(i, (failed, errors))| event(i as i64, if *failed { *errors } else { 0 }))
                .collect();
            let n = events.len();
            (
                Just(events).prop_shuffle(),
                proptest::collection::vec(0..n, 0..n),
                Just(threshold),
            )
        })
        .prop_map(|(mut events, replays, threshold)| {
            for (k, i) in replays.into_iter().enumerate() {
                let e = events[i].clone();
                let at = (i + k) % (events.len() + 1);
                events.insert(at.min(events.len()), e);
            }
            (events, threshold)
        })
}

/// How the stream delivers: batch sizes, how far storage runs ahead of delivery, and
/// which batches fail part-way (retried from a random record, or bisected).
/// A 4 runs the periodic check between batches.
fn delivery() -> impl Strategy<Value = Vec<(usize, usize, u8)>> {
    proptest::collection::vec((1usize..8, 0usize..6, 0u8..5), 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn delivered_at_least_once_the_state_equals_a_recount(
        (events, threshold) in arrivals(),
        plan in delivery(),
        count_page in proptest::option::of(1usize..4),
    ) {
        let timeline = Timeline::with_count_page(count_page);
        // Stored events become stream records in commit order.
        let mut stream: Vec<Record> = Vec::new();
        let mut arrived = events.iter();
        let mut store_up_to = |n: usize, stream: &mut Vec<Record>| {
            while stream.len() < n {
                let Some(e) = arrived.next() else { break };
                if timeline.store(e) {
                    let position = StreamPosition::parse(&(stream.len() + 1).to_string());
                    stream.push(Record::new(position, e.clone()));
                }
            }
        };
        let mut checkpoint = 0;
        let mut plan = plan.into_iter().cycle();
        block_on(async {
            loop {
                let (size, ahead, failure) = plan.next().unwrap();
                // Devices keep reporting while earlier records wait for delivery.
                store_up_to(checkpoint + size + ahead, &mut stream);
                if checkpoint >= stream.len() {
                    store_up_to(usize::MAX, &mut stream);
                    if checkpoint >= stream.len() {
                        break;
                    }
                }
                let end = (checkpoint + size).min(stream.len());
                let batch = &stream[checkpoint..end];
                apply_records(&timeline, rules(threshold), batch, at(10_000)).await.unwrap();
                match failure {
                    // Another device's record failed before these: all redelivered.
                    1 => {
                        apply_records(&timeline, rules(threshold), batch, at(10_000)).await.unwrap();
                    }
                    // Bisected: each half again.
                    2 if batch.len() > 1 => {
                        let (a, b) = batch.split_at(batch.len() / 2);
                        apply_records(&timeline, rules(threshold), a, at(10_000)).await.unwrap();
                        apply_records(&timeline, rules(threshold), b, at(10_000)).await.unwrap();
                    }
                    // Retried from a record in the middle, with newer ones appended.
                    3 => {
                        let from = checkpoint + batch.len() / 2;
                        store_up_to(end + 2, &mut stream);
                        let retry_end = (from + size + 2).min(stream.len());
                        apply_records(&timeline, rules(threshold), &stream[from..retry_end], at(10_000)).await.unwrap();
                        checkpoint = retry_end;
                        continue;
                    }
                    // The periodic check goes on with a count in progress.
                    4 => {
                        check_silent_devices(&timeline, &timeline, rules(threshold), at(10_000)).await.unwrap();
                    }
                    _ => {}
                }
                checkpoint = end;
            }
            timeline.finish_counts(rules(threshold)).await;
        });
        prop_assert_eq!(observed(&timeline.state()), timeline.expected());
        let state = timeline.state();
        if state.consecutive_failures() >= threshold {
            prop_assert!(state.alert_id.is_some(), "over the threshold means alerted");
        }
        // Published alerts and recoveries alternate, starting with an alert: never two
        // alerts for one failure condition, never a recovery without its alert (a
        // flapping device's are held, both).
        let kinds = timeline.kinds();
        let streaks = kinds.iter().filter(|k| !matches!(**k, "device.flapping" | "device.stable"));
        for (i, kind) in streaks.enumerate() {
            let want = if i % 2 == 0 { "device.repeated_sync_failures" } else { "device.sync_recovered" };
            prop_assert_eq!(*kind, want);
        }
    }

    #[test]
    fn arrival_order_does_not_change_the_final_state(
        (events, threshold) in arrivals(),
        count_page in proptest::option::of(1usize..4),
    ) {
        let a = one_by_one_paged(&events, threshold, count_page).state();
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| e.timestamp);
        let b = one_by_one(&sorted, threshold).state();
        prop_assert_eq!(observed(&a), observed(&b));
    }
}

#[test]
fn a_long_count_goes_on_in_later_batches_and_checks() {
    // 40 failures (2, 4, … 80 s), then a success late at 9 s: 36 failures to count,
    // one per page, a few pages per batch.
    let timeline = Timeline::with_count_page(Some(1));
    let mut position = 0;
    let mut apply = |e: StoredEvent| {
        assert!(timeline.store(&e), "a new event");
        position += 1;
        let record = Record::new(StreamPosition::parse(&position.to_string()), e);
        block_on(apply_records(&timeline, rules(3), &[record], at(10_000))).unwrap();
    };
    for s in 1..=40 {
        apply(event(2 * s, 1));
    }
    apply(event(9, 0));
    let state = timeline.state();
    assert!(state.counting.is_some(), "some pages read, more to go");
    assert_eq!(
        state.consecutive_failures(),
        40,
        "the run keeps its figures meanwhile"
    );
    // A newer failure is reached by the count (it is stored first), not added twice;
    // a late one where the count has already read makes it start again.
    apply(event(82, 1));
    apply(event(11, 1));
    assert!(timeline.state().counting.is_some());
    block_on(timeline.finish_counts(rules(3)));
    let state = timeline.state();
    assert_eq!(state.counting, None);
    assert_eq!(state.consecutive_failures(), 38, "10, 11, 12, … 80, 82");
    assert_eq!(state.streak.as_ref().unwrap().started_at, at(10));
    assert_eq!(observed(&state), timeline.expected());
    assert_eq!(
        timeline.kinds(),
        ["device.repeated_sync_failures"],
        "no second alert"
    );
}

/// An event received at `received` (seconds), whatever its device time.
fn received(secs: i64, errors: u32, received: i64) -> StoredEvent {
    StoredEvent {
        received_at: at(received),
        ..event(secs, errors)
    }
}

const DAY: i64 = 86_400;

fn decided(timeline: &Timeline) -> Vec<(&'static str, Option<Withheld>)> {
    let history = timeline.history.lock().unwrap();
    history
        .iter()
        .map(|d| (d.notice.event_type(), d.withheld))
        .collect()
}

#[test]
fn a_backlogs_ended_streak_is_recorded_not_published() {
    // Three failures and a recovery a week ago, uploaded today.
    let today = 8 * DAY;
    let backlog = [
        received(DAY, 0, today),
        received(DAY + 60, 1, today),
        received(DAY + 120, 1, today),
        received(DAY + 180, 1, today),
        received(DAY + 240, 0, today),
    ];
    let t = one_by_one(&backlog, 3);
    assert!(t.kinds().is_empty(), "nothing published: {:?}", t.kinds());
    assert_eq!(
        decided(&t),
        [
            ("device.repeated_sync_failures", Some(Withheld::Stale)),
            ("device.sync_recovered", Some(Withheld::Stale)),
        ]
    );
    assert_eq!(t.state().totals.failures, 3, "the backlog still counts");
}

#[test]
fn a_stale_streak_is_published_once_a_fresh_failure_joins_it() {
    let today = 8 * DAY;
    let t = one_by_one(
        &[
            received(DAY, 1, today),
            received(DAY + 60, 1, today),
            received(DAY + 120, 1, today),
            // Still failing today: news.
            received(today - 60, 2, today),
            received(today + 60, 0, today + 120),
        ],
        3,
    );
    assert_eq!(
        decided(&t),
        [
            ("device.repeated_sync_failures", Some(Withheld::Stale)),
            ("device.repeated_sync_failures", None),
            ("device.sync_recovered", None),
        ]
    );
    let history = t.history.lock().unwrap();
    assert_eq!(history[0].notice.alert_id(), history[1].notice.alert_id());
    assert_eq!(alert(&t, 0).consecutive_failures, 4);
}

#[test]
fn a_failure_from_a_clock_ahead_of_the_servers_is_news() {
    // The device's clock runs 10 minutes fast.
    let t = one_by_one(
        &[
            received(1_000, 1, 400),
            received(1_060, 1, 460),
            received(1_120, 1, 520),
        ],
        3,
    );
    assert_eq!(t.kinds(), ["device.repeated_sync_failures"]);
}

#[test]
fn freshness_is_a_setting() {
    // Received an hour late: news by default, history with a 30-minute window.
    let late = [
        received(0, 1, 3_600),
        received(60, 1, 3_660),
        received(120, 1, 3_720),
    ];
    let timeline = Timeline::default();
    let strict = Rules {
        streak: StreakRule {
            freshness: std::time::Duration::from_secs(1_800),
            ..StreakRule::default()
        },
        ..Rules::default()
    };
    block_on(async {
        for e in &late {
            timeline.store(e);
            apply_records(&timeline, strict, &[Record::new(None, e.clone())], at(10_000))
                .await
                .unwrap();
        }
    });
    assert_eq!(
        decided(&timeline),
        [("device.repeated_sync_failures", Some(Withheld::Stale))]
    );
    assert_eq!(one_by_one(&late, 3).kinds(), ["device.repeated_sync_failures"]);
}

/// Uploads: each request carries a run of the device's reports (in device-time order)
/// and is received some time after its newest one — minutes, or days for a backlog;
/// requests go out in any order (a backlog after newer reports).
fn uploads() -> impl Strategy<Value = (Vec<StoredEvent>, u32)> {
    (
        proptest::collection::vec(
            (
                proptest::collection::vec((proptest::bool::weighted(0.6), 1u32..4), 1..8),
                prop_oneof![Just(60i64), Just(3 * 3_600), Just(3 * DAY)],
            ),
            1..12,
        ),
        1u32..5,
    )
        .prop_flat_map(|(requests, threshold)| {
            let mut secs = 0i64;
            let requests: Vec<(Vec<(i64, u32)>, i64)> = requests
                .into_iter()
                .map(|(reports, delay)| {
                    let reports = reports
                        .into_iter()
                        .map(|(failed, errors)| {
                            secs += 600;
                            (secs, if failed { errors } else { 0 })
                        })
                        .collect();
                    (reports, delay)
                })
                .collect();
            (Just(requests).prop_shuffle(), Just(threshold))
        })
        .prop_map(|(requests, threshold)| {
            let mut events = Vec::new();
            let mut clock = 0i64;
            for (reports, delay) in requests {
                let newest = reports.iter().map(|(t, _)| *t).max().unwrap_or(0);
                // Each request is received at its own moment.
                clock = (clock + 1).max(newest + delay);
                events.extend(reports.into_iter().map(|(t, errors)| received(t, errors, clock)));
            }
            (events, threshold)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn what_is_published_does_not_depend_on_the_batches(
        (events, threshold) in uploads(),
        cuts in proptest::collection::vec(1usize..6, 1..40),
    ) {
        // Everything is stored before the stream delivers any of it, so both see the
        // same counts; only the batches differ.
        let records: Vec<Record> = events
            .iter()
            .enumerate()
            .map(|(i, e)| Record::new(StreamPosition::parse(&(i + 1).to_string()), e.clone()))
            .collect();
        let deliver = |sizes: Vec<usize>| {
            let timeline = Timeline::default();
            events.iter().for_each(|e| { timeline.store(e); });
            block_on(async {
                let mut from = 0;
                for size in sizes.iter().cycle() {
                    if from >= records.len() {
                        break;
                    }
                    let to = (from + size).min(records.len());
                    apply_records(&timeline, rules(threshold), &records[from..to], at(10_000)).await.unwrap();
                    from = to;
                }
                timeline.finish_counts(rules(threshold)).await;
            });
            timeline
        };
        let alone = deliver(vec![1]);
        let batched = deliver(cuts);
        let published = |t: &Timeline| -> Vec<String> {
            t.outbox.lock().unwrap().iter().map(Notice::notice_id).collect()
        };
        prop_assert_eq!(published(&batched), published(&alone));
        prop_assert_eq!(decided(&batched), decided(&alone));
    }
}

/// `cycles` rounds of three failures and a success, a minute apart, from `from` s.
fn flaps(from: i64, cycles: i64) -> Vec<StoredEvent> {
    (0..cycles * 4)
        .map(|i| event(from + 60 * i, if i % 4 == 3 { 0 } else { 1 }))
        .collect()
}

fn published_kinds(timeline: &Timeline) -> Vec<&'static str> {
    timeline.kinds()
}

#[test]
fn the_alert_that_reaches_the_flap_count_becomes_one_flapping_notice() {
    let t = one_by_one(&flaps(0, 4), 3);
    assert_eq!(
        published_kinds(&t),
        [
            "device.repeated_sync_failures",
            "device.sync_recovered",
            "device.repeated_sync_failures",
            "device.sync_recovered",
            "device.flapping",
        ]
    );
    let held: Vec<_> = decided(&t)
        .into_iter()
        .filter(|(_, reason)| reason.is_some())
        .collect();
    assert_eq!(
        held,
        [
            ("device.repeated_sync_failures", Some(Withheld::Flapping)),
            ("device.sync_recovered", Some(Withheld::Flapping)),
            ("device.repeated_sync_failures", Some(Withheld::Flapping)),
            ("device.sync_recovered", Some(Withheld::Flapping)),
        ],
        "the third alert is replaced, the fourth held, recoveries follow their alerts"
    );
    let Notice::Flapping(flapping) = &t.outbox.lock().unwrap()[4] else {
        unreachable!()
    };
    assert_eq!((flapping.alerts_in_window, flapping.window_seconds), (3, 86_400));
}

#[test]
fn a_flapping_device_is_stable_after_a_window_without_alerts() {
    let t = one_by_one(&flaps(0, 3), 3);
    let last_alert = t.state().flapping.unwrap().last_alert_at;
    let check = |secs: i64| {
        block_on(check_silent_devices(
            &t,
            &t,
            rules(3),
            last_alert.plus_millis(secs * 1000),
        ))
        .unwrap()
    };
    assert!(check(DAY - 1).notices.is_empty(), "not a whole window yet");
    let report = check(DAY);
    let [Decided {
        notice: Notice::Stable(stable),
        withheld: None,
    }] = report.notices.as_slice()
    else {
        panic!("one stable notice: {report:?}");
    };
    assert_eq!(stable.stable_since, last_alert);
    assert_eq!(stable.alert_id, format!("dev@flapping@{last_alert}"));
    assert!(check(DAY + 60).notices.is_empty(), "stable once");
    // Publishing resumes: the next streak's alert goes out.
    let later = 3 * DAY;
    for e in flaps(later, 1) {
        t.store(&e);
        block_on(apply_records(&t, rules(3), &[Record::new(None, e)], at(later))).unwrap();
    }
    let kinds = published_kinds(&t);
    assert_eq!(
        kinds[kinds.len() - 3..],
        [
            "device.stable",
            "device.repeated_sync_failures",
            "device.sync_recovered"
        ]
    );
}

#[test]
fn alerts_further_apart_than_the_window_are_not_flapping() {
    let mut events = Vec::new();
    for day in 0..5 {
        events.extend(flaps(day * (DAY + 3_600), 1));
    }
    let t = one_by_one(&events, 3);
    assert!(!published_kinds(&t).contains(&"device.flapping"));
    assert_eq!(published_kinds(&t).len(), 10, "five alerts, five recoveries");
}
