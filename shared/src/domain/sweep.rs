//! The periodic check: every device whose check is due is loaded; one that has been
//! quiet for the silent period (on its own clock: its school's open time, else
//! wall-clock) is marked silent, a flapping one without an alert for a whole flap
//! window is stable again, and any other is checked again when it could next become
//! silent or stable; the notices are saved with the state (history and outbox). A
//! device with a run count in progress gets its next pages counted here too, so a
//! quiet device's count finishes. Devices are found through [`SilenceWatch`], never
//! by reading every device.

use crate::domain::detection::{contention_pause, count_pages, kept_changing, Rules};
use crate::domain::event::DeviceId;
use crate::domain::fleet::count_changes;
use crate::domain::notice::Decided;
use crate::domain::silence::{SilenceCheck, SilenceClock};
use crate::domain::time::EventTime;
use crate::ports::{DeviceStates, Saved, SilenceWatch, StateWrite, StoreError};

/// Most devices one check looks at; the rest wait for the next run.
pub const CHECKS_PER_RUN: usize = 2_000;

/// What one silence check did.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SilenceReport {
    /// Devices looked at.
    pub checked: usize,
    /// Notices decided (saved with the state: all to the history, the published ones
    /// to the outbox).
    pub notices: Vec<Decided>,
}

/// Checks every device whose check is due at `now`.
pub async fn check_silent_devices(
    states: &dyn DeviceStates,
    watch: &dyn SilenceWatch,
    rules: Rules,
    now: EventTime,
) -> Result<SilenceReport, StoreError> {
    let due = watch.due(now, CHECKS_PER_RUN).await?;
    let mut report = SilenceReport::default();
    for device in &due.devices {
        report
            .notices
            .extend(check_device(states, watch, rules, device, now).await?);
        report.checked += 1;
    }
    if let Some(mark) = due.mark {
        watch.checked(mark).await?;
    }
    Ok(report)
}

/// Goes on with the device's count in progress, if any; marks it silent if it is;
/// schedules its next check.
async fn check_device(
    states: &dyn DeviceStates,
    watch: &dyn SilenceWatch,
    rules: Rules,
    device: &DeviceId,
    now: EventTime,
) -> Result<Vec<Decided>, StoreError> {
    for attempt in 0..10 {
        contention_pause(attempt).await;
        let Some(loaded) = states.load(device).await? else {
            return Ok(Vec::new());
        };
        let mut state = loaded.state;
        // Through the store's own school cache on DynamoDB, as detection reads it.
        let school = match &state.school_id {
            Some(id) => states.school(id).await?,
            None => None,
        };
        let rules = rules.for_school(school.as_ref());
        let clock = SilenceClock::of(rules.silence, school.as_ref());
        let before = state.listed_status(rules.streak);
        let mut notices = Vec::new();
        let counting = state.counting.is_some();
        count_pages(
            states,
            &mut state,
            rules,
            now,
            &mut notices,
            rules.count_pages_per_batch,
        )
        .await?;
        let mut next_check = None;
        match state.check_silence(clock, now) {
            SilenceCheck::Nothing => {}
            SilenceCheck::DueAt(at) => next_check = Some(at),
            SilenceCheck::WentSilent(notice) => notices.push(Decided::published(notice)),
        }
        if let Some(stable) = state.check_stable(rules.streak, now) {
            notices.push(Decided::published(stable));
        }
        // Still flapping: checked again when it could be stable (a later alert moves
        // that on; the check then finds it not yet due and comes back).
        next_check = match (next_check, state.stable_at(rules.streak)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if !counting && notices.is_empty() {
            if let Some(at) = next_check {
                watch.recheck(device, at).await?;
            }
            return Ok(notices);
        }
        let after = state.listed_status(rules.streak);
        let school_id = state.school_id.as_ref();
        let write = StateWrite {
            state: &state,
            expected: loaded.version,
            status: after,
            failing: state.is_failing(rules.streak),
            notices: &notices,
            counts: count_changes((school_id, before), (school_id, after)),
            requires_school: None,
            // An unfinished count: the next check goes on with it.
            watch_at: state.counting.is_some().then_some(now),
            now,
            days: None,
        };
        if states.save(&write).await? == Saved::Written {
            if let Some(at) = next_check {
                watch.recheck(device, at).await?;
            }
            return Ok(notices);
        }
        // Stale: load again.
    }
    Err(kept_changing(device))
}
