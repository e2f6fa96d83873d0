//! Detection's sequence for one device's stream records: load its state, apply each
//! event not applied before (in device-timestamp order), count a window of the run
//! when a late event needs it, and save the state with its notices, count changes and
//! silence check — once, with a version check, again from the load if another writer
//! got there first. Adapters only load, count and save ([`DeviceStates`]); the rules
//! are [`DeviceState`]'s.

use crate::domain::applied::StreamPosition;
use crate::domain::device::DeviceState;
use crate::domain::event::{DeviceId, Outcome, StoredEvent};
use crate::domain::fleet::{count_changes, DayAddition, SchoolDays};
use crate::domain::notice::{Decided, Notice};
use crate::domain::school::School;
use crate::domain::silence::{SilenceClock, SilenceRule};
use crate::domain::streak::StreakRule;
use crate::domain::time::EventTime;
use crate::ports::{DeviceStates, Saved, StateWrite, StoreError};
use std::time::Duration;

/// Attempts at an optimistic state update before giving up (the stream retries).
const MAX_STATE_ATTEMPTS: u32 = 10;

/// Pages of a run count one batch (or one periodic check) may read by default: about
/// 16 MB of a device's events on DynamoDB, a second or two. A longer count goes on in
/// the next batch or check ([`crate::domain::streak::PendingCount`]).
pub const COUNT_PAGES_PER_BATCH: u32 = 16;

/// The rules detection applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub streak: StreakRule,
    pub silence: SilenceRule,
    /// Pages of a run count one batch or check reads at most (the domain's own tests
    /// use a few, so their short timelines have counts that span batches and checks).
    pub count_pages_per_batch: u32,
}

impl Rules {
    /// The rules for a device of `school`: its failure threshold if it sets one.
    pub fn for_school(self, school: Option<&School>) -> Self {
        match school.and_then(|s| s.failure_threshold) {
            Some(threshold) => Self {
                streak: StreakRule {
                    threshold,
                    ..self.streak
                },
                ..self
            },
            None => self,
        }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            streak: StreakRule::default(),
            silence: SilenceRule::default(),
            count_pages_per_batch: COUNT_PAGES_PER_BATCH,
        }
    }
}

/// A stream record: a stored event and its position in the stream (when known).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub position: Option<StreamPosition>,
    pub event: StoredEvent,
}

impl Record {
    pub fn new(position: Option<StreamPosition>, event: StoredEvent) -> Self {
        Self { position, event }
    }
}

/// What applying a device's records did.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceBatch {
    /// The state afterwards.
    pub state: DeviceState,
    /// Events applied now, each for the first time (redelivered ones are not here).
    pub new_events: Vec<StoredEvent>,
    /// Where the events count in the day totals: the device's school and its
    /// timezone (`None`: in no school).
    pub school_days: Option<SchoolDays>,
    /// Notices decided now; they were saved with the state (the published ones to
    /// the outbox, all of them to the history).
    pub notices: Vec<Decided>,
}

/// Applies one device's records (a stream batch's) with one state read and one state
/// write: the same state and notices as applying them one by one in the order they
/// were received (one request's in device-timestamp order), so how the stream cuts
/// its batches changes nothing. Records of other devices are ignored.
pub async fn apply_records(
    states: &dyn DeviceStates,
    rules: Rules,
    records: &[Record],
    now: EventTime,
) -> Result<DeviceBatch, StoreError> {
    let Some(first) = records.first() else {
        return Err(StoreError::unavailable_because("no records to apply"));
    };
    let device = &first.event.device_id;
    let mut ordered: Vec<&Record> = records.iter().filter(|r| r.event.device_id == *device).collect();
    ordered.sort_by_key(|r| (r.event.received_at, r.event.timestamp));
    let positions: Vec<Option<StreamPosition>> = ordered.iter().map(|r| r.position.clone()).collect();
    for attempt in 0..MAX_STATE_ATTEMPTS {
        contention_pause(attempt).await;
        // The first try may read a moment-old state (cheaper); if it was old, the save
        // fails its version check and the next try reads the latest.
        let loaded = match attempt {
            0 => states.load_recent(device).await?,
            _ => states.load(device).await?,
        };
        let (mut state, version) = match loaded {
            Some(v) => (v.state, v.version),
            None => (DeviceState::new(device.clone()), 0),
        };
        // Counted before under the threshold it was saved with; from now on its
        // school's (else the fleet's).
        let before = state.listed_status(rules.streak);
        let school = match &state.school_id {
            Some(id) => states.school(id).await?,
            None => None,
        };
        let rules = rules.for_school(school.as_ref());
        state.threshold = rules.streak.threshold;
        state.applied.start_batch(&positions);
        let mut new_events = Vec::new();
        let mut notices = Vec::new();
        // A count finished in this batch includes every event of the batch: all of
        // them were stored before the batch was delivered.
        let mut counted_in_batch = false;
        let mut pages = rules.count_pages_per_batch;
        for record in &ordered {
            let e = &record.event;
            if state.applied.contains(e.timestamp, state.last_sync_at) {
                continue;
            }
            let window = state.apply(e, rules.streak, now, &mut notices);
            state.applied.record(e.timestamp, record.position.as_ref());
            new_events.push(e.clone());
            if state.counted_through.is_none() {
                counted_in_batch = false;
            }
            if let Some(window) = window {
                if e.outcome == Outcome::Failure && counted_in_batch {
                    continue; // already in this batch's count
                }
                state.start_count(window);
                pages = count_pages(states, &mut state, rules, now, &mut notices, pages).await?;
                counted_in_batch = state.counting.is_none();
            }
        }
        // A count left by an earlier batch goes on too.
        let pages = count_pages(states, &mut state, rules, now, &mut notices, pages).await?;
        let counted = pages < rules.count_pages_per_batch;
        if new_events.is_empty() && !counted {
            return Ok(DeviceBatch {
                state,
                new_events,
                school_days: None,
                notices,
            });
        }
        let status = state.listed_status(rules.streak);
        let back_online = notices.iter().any(|n| matches!(n.notice, Notice::BackOnline(_)));
        let began_flapping = notices.iter().any(|n| matches!(n.notice, Notice::Flapping(_)));
        let watch_at = match state.last_seen_at {
            // A count left unfinished is continued by the next periodic check.
            _ if state.counting.is_some() => Some(now),
            // A first report (its state may exist already: assigned to a school before it
            // reported) or a return from silence: watch it from now on.
            // Or a device that began flapping: checked when it could be stable, or silent
            // if that comes first.
            Some(seen) if before.is_none() || back_online || began_flapping => {
                let silent = SilenceClock::of(rules.silence, school.as_ref()).next_check(seen, now);
                Some(
                    state
                        .stable_at(rules.streak)
                        .map_or(silent, |stable| stable.min(silent)),
                )
            }
            _ => None,
        };
        let school_id = state.school_id.as_ref();
        // A school's days are its local days; a deleted school's, UTC days.
        let school_days = school_id.map(|id| match &school {
            Some(school) => SchoolDays {
                school: id.clone(),
                timezone: school.timezone,
            },
            None => SchoolDays::utc(id.clone()),
        });
        // The batch's day totals ride on this save where the store can take them.
        let days = match states.adds_days_with_state() {
            true => DayAddition::of_device(school_days.as_ref(), &new_events),
            false => None,
        };
        let write = StateWrite {
            state: &state,
            expected: version,
            status,
            failing: state.is_failing(rules.streak),
            notices: &notices,
            counts: count_changes((school_id, before), (school_id, status)),
            requires_school: None,
            watch_at,
            now,
            days: days.as_ref(),
        };
        match states.save(&write).await? {
            Saved::Written => {
                return Ok(DeviceBatch {
                    state,
                    new_events,
                    school_days,
                    notices,
                })
            }
            Saved::Stale | Saved::NoSuchSchool => {}
        }
    }
    Err(kept_changing(device))
}

/// Reads up to `pages` pages of the count in progress, if any; returns the pages left.
pub(crate) async fn count_pages(
    states: &dyn DeviceStates,
    state: &mut DeviceState,
    rules: Rules,
    now: EventTime,
    notices: &mut Vec<Decided>,
    mut pages: u32,
) -> Result<u32, StoreError> {
    while pages > 0 {
        let Some(window) = state.count_to_read() else {
            break;
        };
        let page = states.count_run(&state.device_id, window).await?;
        state.add_count_page(page, rules.streak, now, notices);
        pages -= 1;
    }
    Ok(pages)
}

/// Applies one stored event (a stream record without a known position).
pub async fn apply_event(
    states: &dyn DeviceStates,
    rules: Rules,
    event: &StoredEvent,
    now: EventTime,
) -> Result<DeviceBatch, StoreError> {
    apply_records(states, rules, &[Record::new(None, event.clone())], now).await
}

pub(crate) fn kept_changing(device: &DeviceId) -> StoreError {
    StoreError::unavailable_because(format!("state of {device} kept changing"))
}

/// Before a retry of a state write that lost a race: a short, jittered pause.
pub(crate) async fn contention_pause(attempt: u32) {
    if attempt == 0 {
        return;
    }
    let ceiling = 1u64 << attempt.min(6);
    let jitter = u64::from(chrono::Utc::now().timestamp_subsec_nanos()) % (1 + ceiling);
    tokio::time::sleep(Duration::from_millis(ceiling + jitter)).await;
}
