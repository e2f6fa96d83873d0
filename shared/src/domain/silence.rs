//! Devices gone silent: no report *received* for the silent period (server time,
//! since device clocks drift). A periodic check finds them and sends one
//! `device.silent` per silence; the device's next report ends it with
//! `device.back_online` ([`crate::domain::device::DeviceState::apply`]).

use crate::domain::device::{silence_id, DeviceState};
use crate::domain::notice::{Notice, SilentNotice};
use crate::domain::time::EventTime;
use std::time::Duration;

/// How long without a report makes a device silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SilenceRule {
    pub after: Duration,
}

impl Default for SilenceRule {
    fn default() -> Self {
        Self {
            after: Duration::from_secs(48 * 3600),
        }
    }
}

impl SilenceRule {
    fn after_millis(self) -> i64 {
        i64::try_from(self.after.as_millis()).unwrap_or(i64::MAX)
    }

    /// When a device last seen at `last_seen_at` becomes silent.
    pub fn due(self, last_seen_at: EventTime) -> EventTime {
        last_seen_at.plus_millis(self.after_millis())
    }

    /// Devices last seen at or before this are silent at `now`.
    pub fn cutoff(self, now: EventTime) -> EventTime {
        now.plus_millis(-self.after_millis())
    }

    pub fn hours(self) -> f64 {
        self.after.as_secs_f64() / 3600.0
    }
}

/// What a silence check of one device found.
#[derive(Clone, Debug, PartialEq)]
pub enum SilenceCheck {
    /// Silent now: the state is marked and the notice decided.
    WentSilent(Notice),
    /// Not yet: check again at this time.
    DueAt(EventTime),
    /// Already known to be silent, or never seen: nothing to do.
    Nothing,
}

impl DeviceState {
    /// Marks the device silent if it is, deciding its `device.silent` notice.
    pub fn check_silence(&mut self, rule: SilenceRule, now: EventTime) -> SilenceCheck {
        let Some(last_seen_at) = self.last_seen_at else {
            return SilenceCheck::Nothing;
        };
        if self.silent_since.is_some() {
            return SilenceCheck::Nothing;
        }
        let due = rule.due(last_seen_at);
        if due > now {
            return SilenceCheck::DueAt(due);
        }
        self.silent_since = Some(last_seen_at);
        SilenceCheck::WentSilent(Notice::Silent(SilentNotice {
            device_id: self.device_id.clone(),
            school_id: self.school_id.clone(),
            last_seen_at,
            silent_after_hours: rule.hours(),
            detected_at: now,
            alert_id: silence_id(&self.device_id, last_seen_at),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::DeviceId;
    use crate::domain::event::{Outcome, StoredEvent};
    use crate::domain::streak::StreakRule;

    fn received_event(device: &str, minute: i64, errors: u32, received_at: EventTime) -> StoredEvent {
        StoredEvent {
            device_id: DeviceId::parse(device).unwrap(),
            timestamp: EventTime::from_millis(minute * 60_000).unwrap(),
            total_files_synced: 1,
            total_errors: errors,
            internet_speed: 1.0,
            outcome: Outcome::of(errors),
            received_at,
        }
    }

    fn hours(h: i64) -> EventTime {
        EventTime::from_millis(1_746_600_000_000 + h * 3_600_000).unwrap()
    }

    #[test]
    fn silent_once_then_back_online_once() {
        let rule = SilenceRule::default();
        let mut state = DeviceState::new(DeviceId::parse("quiet").unwrap());
        let mut notices = Vec::new();
        state.apply(
            &received_event("quiet", 0, 0, hours(0)),
            StreakRule::default(),
            hours(0),
            &mut notices,
        );
        assert_eq!(
            state.check_silence(rule, hours(47)),
            SilenceCheck::DueAt(hours(48))
        );
        let SilenceCheck::WentSilent(Notice::Silent(silent)) = state.check_silence(rule, hours(49)) else {
            panic!("silent after 48 hours");
        };
        assert_eq!((silent.last_seen_at, silent.silent_after_hours), (hours(0), 48.0));
        assert_eq!(
            state.check_silence(rule, hours(50)),
            SilenceCheck::Nothing,
            "one notice per silence"
        );
        state.apply(
            &received_event("quiet", 1, 0, hours(60)),
            StreakRule::default(),
            hours(60),
            &mut notices,
        );
        let [Notice::BackOnline(back)] = notices.as_slice() else {
            panic!("one back-online notice: {notices:?}");
        };
        assert_eq!((back.silent_since, back.back_at), (hours(0), hours(60)));
        assert_eq!(back.alert_id, silent.alert_id);
        assert_eq!(state.silent_since, None);
    }

    #[test]
    fn a_device_never_seen_is_not_silent() {
        let mut state = DeviceState::new(DeviceId::parse("ghost").unwrap());
        assert_eq!(
            state.check_silence(SilenceRule::default(), hours(1000)),
            SilenceCheck::Nothing
        );
    }
}
