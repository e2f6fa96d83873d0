use super::*;
use crate::domain::event::{DeviceId, Outcome, StoredEvent};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn at(secs: i64) -> EventTime {
    EventTime::from_millis(secs * 1000).unwrap()
}

fn event(secs: i64, errors: u32) -> StoredEvent {
    StoredEvent {
        device_id: DeviceId::parse("dev").unwrap(),
        timestamp: at(secs),
        total_files_synced: 1,
        total_errors: errors,
        internet_speed: 1.0,
        outcome: Outcome::of(errors),
        received_at: at(0),
    }
}

/// (streak count, started_at, last_failure_at, last_total_errors, last_success_at, last_sync_at)
type Summary = (
    u32,
    Option<EventTime>,
    Option<EventTime>,
    Option<u32>,
    Option<EventTime>,
    Option<EventTime>,
);

/// A store stand-in: the stored events, by timestamp.
#[derive(Default)]
struct Timeline {
    stored: BTreeMap<EventTime, StoredEvent>,
}

impl Timeline {
    /// What a storage adapter does for one stream record of `e` (already stored).
    fn process(&self, state: &mut FailureState, e: &StoredEvent, rule: StreakRule) {
        match state.step(e) {
            Step::NoChange => {}
            Step::InOrder => state.apply_in_order(e, rule, at(10_000)),
            Step::Recount { after } => {
                let mut recount = Recount::default();
                let newer = self
                    .stored
                    .iter()
                    .rev()
                    .take_while(|(t, _)| after.is_none_or(|a| **t > a));
                for (t, e) in newer {
                    if !recount.push(*t, e.outcome, e.total_errors) {
                        break;
                    }
                }
                state.apply_recount(recount, rule, at(10_000));
            }
        }
    }

    /// A device reports `e`: stored (unless a replay) and, if new, delivered once.
    fn apply(&mut self, state: &mut FailureState, e: &StoredEvent, rule: StreakRule) -> bool {
        if self.stored.contains_key(&e.timestamp) {
            return false; // replay: nothing written, no stream record
        }
        self.stored.insert(e.timestamp, e.clone());
        self.process(state, e, rule);
        true
    }

    /// Brute force: the trailing run of failures in timestamp order.
    fn expected(&self) -> Summary {
        let run: Vec<&StoredEvent> = self
            .stored
            .values()
            .rev()
            .take_while(|e| e.outcome == Outcome::Failure)
            .collect();
        let last_success = self
            .stored
            .values()
            .rev()
            .find(|e| e.outcome == Outcome::Success)
            .map(|e| e.timestamp);
        (
            run.len() as u32,
            run.last().map(|e| e.timestamp),
            run.first().map(|e| e.timestamp),
            run.first().map(|e| e.total_errors),
            last_success,
            self.stored.keys().next_back().copied(),
        )
    }
}

fn observed(s: &FailureState) -> Summary {
    (
        s.consecutive_failures(),
        s.streak.as_ref().map(|s| s.started_at),
        s.streak.as_ref().map(|s| s.last_failure_at),
        s.streak.as_ref().map(|s| s.last_total_errors),
        s.last_success_at,
        s.last_sync_at,
    )
}

fn run(events: &[StoredEvent], rule: StreakRule) -> (FailureState, Timeline) {
    let mut state = FailureState::new(DeviceId::parse("dev").unwrap());
    let mut timeline = Timeline::default();
    for e in events {
        timeline.apply(&mut state, e, rule);
    }
    (state, timeline)
}

fn kinds(state: &FailureState) -> Vec<&'static str> {
    state.pending_notices.iter().map(|n| n.event_type()).collect()
}

#[test]
fn three_failures_in_order_alert_once() {
    let rule = StreakRule::default();
    let (state, _) = run(&[event(1, 1), event(2, 2), event(3, 5), event(4, 1)], rule);
    assert_eq!(kinds(&state), ["device.repeated_sync_failures"]);
    let Notice::RepeatedFailures(alert) = &state.pending_notices[0] else {
        unreachable!()
    };
    assert_eq!(alert.consecutive_failures, 3);
    assert_eq!(alert.threshold, 3);
    assert_eq!(alert.streak_started_at, at(1));
    assert_eq!(alert.last_failure_at, at(3));
    assert_eq!(alert.last_total_errors, 5);
    assert_eq!(state.consecutive_failures(), 4);
}

#[test]
fn success_after_alert_sends_recovery() {
    let (state, _) = run(
        &[event(1, 1), event(2, 1), event(3, 1), event(4, 0)],
        StreakRule::default(),
    );
    assert_eq!(
        kinds(&state),
        ["device.repeated_sync_failures", "device.sync_recovered"]
    );
    let Notice::Recovered(r) = &state.pending_notices[1] else {
        unreachable!()
    };
    assert_eq!(r.failures_before_recovery, 3);
    assert_eq!(r.recovered_at, at(4));
    assert_eq!(
        state.pending_notices[0].device_id(),
        state.pending_notices[1].device_id()
    );
    assert_eq!(state.alert_id, None);
}

#[test]
fn success_without_alert_sends_nothing() {
    let (state, _) = run(&[event(1, 1), event(2, 1), event(3, 0)], StreakRule::default());
    assert!(state.pending_notices.is_empty());
}

#[test]
fn late_failure_before_newest_success_changes_nothing() {
    let (state, _) = run(
        &[event(10, 0), event(11, 1), event(5, 1), event(6, 1)],
        StreakRule::default(),
    );
    assert_eq!(state.consecutive_failures(), 1);
    assert!(state.pending_notices.is_empty());
}

#[test]
fn late_failures_completing_a_run_alert() {
    // Arrival 3, 1, 2: the run becomes 3 when the second late one lands.
    let (state, _) = run(&[event(3, 1), event(1, 1), event(2, 1)], StreakRule::default());
    assert_eq!(kinds(&state), ["device.repeated_sync_failures"]);
    let Notice::RepeatedFailures(alert) = &state.pending_notices[0] else {
        unreachable!()
    };
    assert_eq!((alert.streak_started_at, alert.last_failure_at), (at(1), at(3)));
}

#[test]
fn late_success_inside_a_run_splits_it_without_recovery() {
    let (state, _) = run(
        &[event(1, 1), event(2, 1), event(3, 1), event(4, 1), event(2500, 0)],
        StreakRule::default(),
    );
    // 2500 s is after all four: a real recovery.
    assert_eq!(
        kinds(&state),
        ["device.repeated_sync_failures", "device.sync_recovered"]
    );
    let (state, _) = run(
        &[event(1, 1), event(2, 1), event(4, 1), event(5, 1), event(3, 0)],
        StreakRule::default(),
    );
    assert_eq!(state.consecutive_failures(), 2);
    assert_eq!(state.streak.as_ref().unwrap().started_at, at(4));
    assert_eq!(
        kinds(&state),
        ["device.repeated_sync_failures"],
        "newest sync still failed"
    );
    assert!(state.alert_id.is_some());
}

#[test]
fn threshold_is_configurable() {
    let (state, _) = run(&[event(1, 1)], StreakRule { threshold: 1 });
    assert_eq!(kinds(&state), ["device.repeated_sync_failures"]);
    let (state, _) = run(
        &[event(1, 1), event(2, 1), event(3, 1)],
        StreakRule { threshold: 4 },
    );
    assert!(state.pending_notices.is_empty());
}

#[test]
fn alert_and_recovery_share_the_streak_id() {
    let (state, _) = run(
        &[event(1, 0), event(2, 1), event(3, 1), event(4, 1), event(5, 0)],
        StreakRule::default(),
    );
    let ids: Vec<String> = state
        .pending_notices
        .iter()
        .map(|n| match n {
            Notice::RepeatedFailures(a) => a.alert_id.clone(),
            Notice::Recovered(r) => r.alert_id.clone(),
        })
        .collect();
    assert_eq!(ids, vec![format!("dev@{}", at(1)); 2]);
    assert_ne!(
        state.pending_notices[0].notice_id(),
        state.pending_notices[1].notice_id()
    );
}

#[test]
fn alert_json_matches_the_contract() {
    let (state, _) = run(&[event(1, 1), event(2, 1), event(3, 2)], StreakRule::default());
    let json: serde_json::Value = serde_json::from_str(&state.pending_notices[0].to_json()).unwrap();
    assert_eq!(json["type"], "device.repeated_sync_failures");
    assert_eq!(json["device_id"], "dev");
    assert_eq!(json["consecutive_failures"], 3);
    assert_eq!(json["threshold"], 3);
    assert_eq!(json["streak_started_at"], "1970-01-01T00:00:01.000Z");
    assert_eq!(json["last_failure_at"], "1970-01-01T00:00:03.000Z");
    assert_eq!(json["last_total_errors"], 2);
    assert_eq!(json["detected_at"], at(10_000).to_string());
}

/// A timeline of unique timestamps with random outcomes, delivered in a random order
/// with random redeliveries.
fn arrivals() -> impl Strategy<Value = (Vec<StoredEvent>, u32)> {
    (
        proptest::collection::vec((any::<bool>(), 1u32..4), 1..40),
        1u32..5,
    )
        .prop_flat_map(|(outcomes, threshold)| {
            let events: Vec<StoredEvent> = outcomes
                .iter()
                .enumerate()
                .map(|(i, (failed, errors))| event(i as i64, if *failed { *errors } else { 0 }))
                .collect();
            let n = events.len();
            let replays = proptest::collection::vec(0..n, 0..n);
            (Just(events).prop_shuffle(), replays, Just(threshold))
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn incremental_state_equals_brute_force((events, threshold) in arrivals(), redeliver in proptest::collection::vec(any::<prop::sample::Index>(), 0..20)) {
        let rule = StreakRule { threshold };
        let mut state = FailureState::new(DeviceId::parse("dev").unwrap());
        let mut timeline = Timeline::default();
        let mut delivered: Vec<StoredEvent> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if timeline.apply(&mut state, e, rule) {
                delivered.push(e.clone());
            }
            // Lambda may deliver an earlier record again: nothing may change.
            if let Some(pick) = redeliver.get(i).filter(|_| !delivered.is_empty()) {
                let before = state.clone();
                timeline.process(&mut state, pick.get(&delivered), rule);
                prop_assert_eq!(&state, &before);
            }
            prop_assert_eq!(observed(&state), timeline.expected());
            // Over threshold always means alerted; a run always has a start.
            if state.consecutive_failures() >= threshold {
                prop_assert!(state.alert_id.is_some());
            }
        }
        // Alerts and recoveries alternate, starting with an alert: never two alerts
        // for one failure condition, never a recovery without an alert.
        let kinds = kinds(&state);
        for (i, kind) in kinds.iter().enumerate() {
            let want = if i % 2 == 0 { "device.repeated_sync_failures" } else { "device.sync_recovered" };
            prop_assert_eq!(*kind, want);
        }
    }

    #[test]
    fn batches_applied_in_timestamp_order_equal_brute_force((events, threshold) in arrivals(), cut in 1usize..8) {
        // A backlog: several events are stored before their records are processed,
        // then each batch is processed in device-timestamp order (as detect-failures does).
        let rule = StreakRule { threshold };
        let mut state = FailureState::new(DeviceId::parse("dev").unwrap());
        let mut timeline = Timeline::default();
        for chunk in events.chunks(cut) {
            let mut batch: Vec<StoredEvent> = Vec::new();
            for e in chunk {
                if let std::collections::btree_map::Entry::Vacant(slot) = timeline.stored.entry(e.timestamp) {
                    slot.insert(e.clone());
                    batch.push(e.clone());
                }
            }
            batch.sort_by_key(|e| e.timestamp);
            for e in &batch {
                timeline.process(&mut state, e, rule);
            }
            prop_assert_eq!(observed(&state), timeline.expected());
        }
    }

    #[test]
    fn arrival_order_does_not_change_the_final_streak((events, threshold) in arrivals()) {
        let rule = StreakRule { threshold };
        let (a, _) = run(&events, rule);
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| e.timestamp);
        let (b, _) = run(&sorted, rule);
        prop_assert_eq!(observed(&a), observed(&b));
    }
}
