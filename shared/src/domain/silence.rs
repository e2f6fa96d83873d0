//! Devices gone silent: no report *received* for the silent period (server time,
//! since device clocks drift). For a device in a school the period counts the school's
//! open time only ([`SilenceClock::OpenTime`]); for an unassigned device, wall-clock
//! time. A periodic check finds them and sends one `device.silent` per silence; the
//! device's next report ends it with `device.back_online`
//! ([`crate::domain::device::DeviceState::apply`]).

use crate::domain::device::{silence_id, DeviceState};
use crate::domain::notice::{Notice, SilentNotice};
use crate::domain::school::School;
use crate::domain::time::EventTime;
use std::time::Duration;

/// When a school is not open long enough in the next ten years to make a device silent,
/// the check looks again after this long (its hours may have changed by then).
pub const NEVER_DUE_RECHECK: Duration = Duration::from_secs(30 * 86_400);

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
        millis(self.after)
    }

    /// When a device last seen at `last_seen_at` becomes silent.
    pub fn due(self, last_seen_at: EventTime) -> EventTime {
        last_seen_at.plus_millis(self.after_millis())
    }
}

/// What a device's silent period is measured on.
#[derive(Clone, Copy, Debug)]
pub enum SilenceClock<'a> {
    /// Wall-clock time: an unassigned device (the fleet's `--silent-after`).
    WallClock(SilenceRule),
    /// Its school's open time: hours and days in the school's timezone, minus closures.
    OpenTime(&'a School),
}

impl<'a> SilenceClock<'a> {
    /// The clock of a device of `school` (`None`: unassigned, or its school is gone).
    pub fn of(fleet: SilenceRule, school: Option<&'a School>) -> Self {
        match school {
            Some(school) => Self::OpenTime(school),
            None => Self::WallClock(fleet),
        }
    }

    /// The silent period.
    pub fn after(self) -> Duration {
        match self {
            Self::WallClock(rule) => rule.after,
            Self::OpenTime(school) => school.silent_after(),
        }
    }

    /// When a device last seen at `last_seen_at` becomes silent; `None` if its school is
    /// not open that long in the next ten years.
    pub fn due(self, last_seen_at: EventTime) -> Option<EventTime> {
        match self {
            Self::WallClock(rule) => Some(rule.due(last_seen_at)),
            Self::OpenTime(school) => school.add_open_time(last_seen_at, school.silent_after()),
        }
    }

    /// When to check a device last seen at `last_seen_at` at the latest: when it
    /// becomes silent, or (never, by its school's hours) a while after `now`.
    pub fn next_check(self, last_seen_at: EventTime, now: EventTime) -> EventTime {
        self.due(last_seen_at)
            .unwrap_or_else(|| now.plus_millis(millis(NEVER_DUE_RECHECK)))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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
    pub fn check_silence(&mut self, clock: SilenceClock, now: EventTime) -> SilenceCheck {
        let Some(last_seen_at) = self.last_seen_at else {
            return SilenceCheck::Nothing;
        };
        if self.silent_since.is_some() {
            return SilenceCheck::Nothing;
        }
        let due = clock.next_check(last_seen_at, now);
        if due > now {
            return SilenceCheck::DueAt(due);
        }
        self.silent_since = Some(last_seen_at);
        SilenceCheck::WentSilent(Notice::Silent(SilentNotice {
            device_id: self.device_id.clone(),
            school_id: self.school_id.clone(),
            last_seen_at,
            silent_after_hours: clock.after().as_secs_f64() / 3600.0,
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
    use crate::domain::notice::Decided;
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
        let clock = SilenceClock::WallClock(rule);
        assert_eq!(
            state.check_silence(clock, hours(47)),
            SilenceCheck::DueAt(hours(48))
        );
        let SilenceCheck::WentSilent(Notice::Silent(silent)) = state.check_silence(clock, hours(49)) else {
            panic!("silent after 48 hours");
        };
        assert_eq!((silent.last_seen_at, silent.silent_after_hours), (hours(0), 48.0));
        assert_eq!(
            state.check_silence(clock, hours(50)),
            SilenceCheck::Nothing,
            "one notice per silence"
        );
        state.apply(
            &received_event("quiet", 1, 0, hours(60)),
            StreakRule::default(),
            hours(60),
            &mut notices,
        );
        let [Decided {
            notice: Notice::BackOnline(back),
            withheld: None,
        }] = notices.as_slice()
        else {
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
            state.check_silence(SilenceClock::WallClock(SilenceRule::default()), hours(1000)),
            SilenceCheck::Nothing
        );
    }

    /// The contract's example school: weekdays 08:00–16:00 in London, 16 hours.
    fn riverside(closures: &str) -> School {
        let body = format!(
            r#"{{"name": "Riverside", "timezone": "Europe/London",
                "hours": {{"days": ["mon", "tue", "wed", "thu", "fri"], "open": "08:00", "close": "16:00"}},
                "closures": [{closures}]}}"#
        );
        crate::domain::school::parse_school(
            body.as_bytes(),
            crate::domain::school::SchoolId::parse("riverside").unwrap(),
            crate::domain::school::WebhookRule::HttpsOnly,
        )
        .unwrap()
    }

    fn utc(text: &str) -> EventTime {
        EventTime::from_millis(
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_millis(),
        )
        .unwrap()
    }

    fn seen_at(at: EventTime) -> DeviceState {
        let mut state = DeviceState::new(DeviceId::parse("pibook-1").unwrap());
        let event = StoredEvent {
            timestamp: at,
            ..received_event("pibook-1", 0, 0, at)
        };
        state.apply(&event, StreakRule::default(), at, &mut Vec::new());
        state
    }

    #[test]
    fn a_device_quiet_from_friday_afternoon_is_not_silent_at_the_weekend() {
        let school = riverside("");
        let clock = SilenceClock::OpenTime(&school);
        // Friday 15:00 (GMT in November): one hour that day, eight on Monday, seven on
        // Tuesday make sixteen.
        let mut state = seen_at(utc("2026-11-27T15:00:00Z"));
        assert_eq!(
            state.check_silence(clock, utc("2026-11-29T23:00:00Z")),
            SilenceCheck::DueAt(utc("2026-12-01T15:00:00Z")),
            "Sunday night: one hour of open time"
        );
        let SilenceCheck::WentSilent(Notice::Silent(silent)) =
            state.check_silence(clock, utc("2026-12-01T15:00:00Z"))
        else {
            panic!("silent after sixteen open hours");
        };
        assert_eq!(silent.silent_after_hours, 16.0);
    }

    #[test]
    fn a_closure_does_not_count_and_summer_time_is_local() {
        let closed_monday = riverside(r#"{"from": "2026-11-30", "to": "2026-11-30", "reason": "Staff day"}"#);
        assert_eq!(
            SilenceClock::OpenTime(&closed_monday).due(utc("2026-11-27T15:00:00Z")),
            Some(utc("2026-12-02T15:00:00Z")),
            "Monday closed: Wednesday instead of Tuesday"
        );
        // In June London is UTC+1: 16:00 local closes at 15:00 UTC.
        assert_eq!(
            SilenceClock::OpenTime(&riverside("")).due(utc("2026-06-05T14:00:00Z")),
            Some(utc("2026-06-09T14:00:00Z")),
        );
    }

    #[test]
    fn a_school_closed_for_years_has_its_devices_checked_again_in_a_month() {
        let school = riverside(r#"{"from": "2026-01-01", "to": "2040-12-31"}"#);
        let seen = utc("2026-11-27T15:00:00Z");
        let mut state = seen_at(seen);
        let now = utc("2026-11-28T00:00:00Z");
        assert_eq!(SilenceClock::OpenTime(&school).due(seen), None);
        assert_eq!(
            state.check_silence(SilenceClock::OpenTime(&school), now),
            SilenceCheck::DueAt(now.plus_millis(30 * 86_400_000))
        );
    }

    #[test]
    fn an_unassigned_device_or_one_whose_school_is_gone_uses_the_wall_clock() {
        let rule = SilenceRule {
            after: Duration::from_secs(3600),
        };
        let seen = utc("2026-11-28T10:00:00Z");
        assert_eq!(
            SilenceClock::of(rule, None).due(seen),
            Some(utc("2026-11-28T11:00:00Z"))
        );
        let school = riverside("");
        assert_eq!(
            SilenceClock::of(rule, Some(&school)).after(),
            Duration::from_secs(16 * 3600)
        );
    }
}
