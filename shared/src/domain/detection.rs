//! Detection's sequence for one event: load the device's state, decide the step,
//! apply it (re-reading the run for a late event), and save it with a version check,
//! again from the load if another writer got there first. Clearing published notices
//! from the outbox follows the same sequence. Adapters only load and save
//! ([`DeviceStates`]); the rule itself is [`FailureState`]'s.

use crate::domain::event::{DeviceId, StoredEvent};
use crate::domain::streak::{FailureState, Step, StreakRule};
use crate::domain::time::EventTime;
use crate::ports::{DeviceStates, Saved, StoreError};
use std::time::Duration;

/// Attempts at an optimistic state update before giving up (the stream retries).
const MAX_STATE_ATTEMPTS: u32 = 10;

/// The result of applying one event to its device's failure state.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// False when the state already reflected the event (a redelivered record, or an
    /// event older than the newest success): nothing was written.
    pub newly_applied: bool,
    /// The state afterwards, with any notices still to publish.
    pub state: FailureState,
}

/// Applies a stored event to its device's state. The new state is saved only if it
/// changed; applying the same event again changes nothing (`newly_applied: false`).
pub async fn apply_event(
    states: &dyn DeviceStates,
    rule: StreakRule,
    event: &StoredEvent,
    now: EventTime,
) -> Result<Applied, StoreError> {
    apply_events(states, rule, std::slice::from_ref(event), now).await
}

/// Applies one device's stored events (a stream batch's, or a backlog's) with one
/// state read and one state write, not one per event: the events are applied in
/// device-timestamp order to the loaded state, which is then saved once (again from
/// the load if another writer got there first). Same notices and same state as
/// applying them one by one in that order.
pub async fn apply_events(
    states: &dyn DeviceStates,
    rule: StreakRule,
    events: &[StoredEvent],
    now: EventTime,
) -> Result<Applied, StoreError> {
    let Some(first) = events.first() else {
        return Err(StoreError::unavailable_because("no events to apply"));
    };
    let device = &first.device_id;
    let mut ordered: Vec<&StoredEvent> = events.iter().filter(|e| e.device_id == *device).collect();
    ordered.sort_by_key(|e| e.timestamp);
    for attempt in 0..MAX_STATE_ATTEMPTS {
        contention_pause(attempt).await;
        let (mut state, version) = loaded(states, device).await?;
        let before = state.clone();
        for event in &ordered {
            match state.step(event) {
                Step::NoChange => {}
                Step::InOrder => state.apply_in_order(event, rule, now),
                Step::Recount { after } => {
                    let recount = states.recount(device, after).await?;
                    state.apply_recount(recount, rule, now);
                }
            }
        }
        if state == before {
            return Ok(Applied {
                newly_applied: false,
                state,
            });
        }
        if states.save(&state, version, state.is_failing(rule)).await? == Saved::Written {
            return Ok(Applied {
                newly_applied: true,
                state,
            });
        }
    }
    Err(kept_changing(device))
}

/// Removes published notices (by [`crate::domain::notice::Notice::notice_id`]) from
/// the device's outbox.
pub async fn clear_notices(
    states: &dyn DeviceStates,
    rule: StreakRule,
    device: &DeviceId,
    notice_ids: &[String],
) -> Result<(), StoreError> {
    for attempt in 0..MAX_STATE_ATTEMPTS {
        contention_pause(attempt).await;
        let Some(loaded) = states.load(device).await? else {
            return Ok(());
        };
        let mut state = loaded.state;
        if !state.clear_notices(notice_ids) {
            return Ok(());
        }
        if states
            .save(&state, loaded.version, state.is_failing(rule))
            .await?
            == Saved::Written
        {
            return Ok(());
        }
    }
    Err(kept_changing(device))
}

async fn loaded(states: &dyn DeviceStates, device: &DeviceId) -> Result<(FailureState, u64), StoreError> {
    Ok(match states.load(device).await? {
        Some(v) => (v.state, v.version),
        None => (FailureState::new(device.clone()), 0),
    })
}

fn kept_changing(device: &DeviceId) -> StoreError {
    StoreError::unavailable_because(format!("state of {device} kept changing"))
}

/// Before a retry of a state write that lost a race: a short, jittered pause.
async fn contention_pause(attempt: u32) {
    if attempt == 0 {
        return;
    }
    let ceiling = 1u64 << attempt.min(6);
    let jitter = u64::from(chrono::Utc::now().timestamp_subsec_nanos()) % (1 + ceiling);
    tokio::time::sleep(Duration::from_millis(ceiling + jitter)).await;
}
