//! The periodic silence check: every device whose check is due is loaded; one that
//! has been quiet for the silent period is marked silent (its `device.silent` notice
//! saved to the outbox with the state), any other is checked again when it could
//! next become silent. Devices are found through [`SilenceWatch`], never by reading
//! every device.

use crate::domain::detection::{contention_pause, kept_changing, Rules};
use crate::domain::event::DeviceId;
use crate::domain::fleet::FleetDelta;
use crate::domain::notice::Notice;
use crate::domain::silence::SilenceCheck;
use crate::domain::time::EventTime;
use crate::ports::{DeviceStates, Saved, SilenceWatch, StateWrite, StoreError};

/// Most devices one check looks at; the rest wait for the next run.
pub const CHECKS_PER_RUN: usize = 2_000;

/// What one silence check did.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SilenceReport {
    /// Devices looked at.
    pub checked: usize,
    /// Notices decided (saved to the outbox).
    pub notices: Vec<Notice>,
}

/// Checks every device whose check is due at `now`.
pub async fn check_silent_devices(
    states: &dyn DeviceStates,
    watch: &dyn SilenceWatch,
    rules: Rules,
    now: EventTime,
) -> Result<SilenceReport, StoreError> {
    let due = watch.due(now, rules.silence.cutoff(now), CHECKS_PER_RUN).await?;
    let mut report = SilenceReport::default();
    for device in &due.devices {
        if let Some(notice) = check_device(states, watch, rules, device, now).await? {
            report.notices.push(notice);
        }
        report.checked += 1;
    }
    if let Some(mark) = due.mark {
        watch.checked(mark).await?;
    }
    Ok(report)
}

/// Marks one device silent if it is; otherwise schedules its next check.
async fn check_device(
    states: &dyn DeviceStates,
    watch: &dyn SilenceWatch,
    rules: Rules,
    device: &DeviceId,
    now: EventTime,
) -> Result<Option<Notice>, StoreError> {
    for attempt in 0..10 {
        contention_pause(attempt).await;
        let Some(loaded) = states.load(device).await? else {
            return Ok(None);
        };
        let mut state = loaded.state;
        let before = state.status(rules.streak);
        let notice = match state.check_silence(rules.silence, now) {
            SilenceCheck::Nothing => return Ok(None),
            SilenceCheck::DueAt(at) => {
                watch.recheck(device, at).await?;
                return Ok(None);
            }
            SilenceCheck::WentSilent(notice) => notice,
        };
        let after = state.status(rules.streak);
        let notices = [notice];
        let write = StateWrite {
            state: &state,
            expected: loaded.version,
            status: after,
            failing: state.is_failing(rules.streak),
            notices: &notices,
            counts: FleetDelta::between(Some(before), after),
            watch_at: None,
            now,
        };
        if states.save(&write).await? == Saved::Written {
            let [notice] = notices;
            return Ok(Some(notice));
        }
    }
    Err(kept_changing(device))
}
