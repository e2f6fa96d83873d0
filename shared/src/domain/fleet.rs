//! The fleet at a glance: how many devices are healthy, failing and silent, and per
//! day (of the device timestamps: UTC days for the fleet, a school's local days for
//! it) how many syncs there were, how they went, how fast the links were and how many
//! devices reported.

use crate::digest::short_sha256;
use crate::domain::device::Status;
use crate::domain::event::{Outcome, StoredEvent};
use crate::domain::school::SchoolId;
use crate::domain::sketch::{DeviceSketch, SpeedSketch};
use crate::domain::time::EventTime;
use chrono::Datelike;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const DAY_MILLIS: i64 = 86_400_000;

/// Largest speed a day's mean takes in, in Mbit/s: the contract accepts any finite
/// speed, and a few absurd ones (1e300) would otherwise make the day's sum
/// unrepresentable in the store.
pub const MAX_SPEED_IN_MEAN: f64 = 1e12;

/// A calendar day: a UTC day (the fleet's), or a school's local day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i64);

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const EPOCH_FROM_CE: i64 = 719_163;

impl Day {
    /// The UTC day of `t`.
    pub fn of(t: EventTime) -> Self {
        Self(t.millis().div_euclid(DAY_MILLIS))
    }

    /// The day of `t` on the calendar of `timezone`.
    pub fn local(t: EventTime, timezone: Tz) -> Self {
        match chrono::DateTime::from_timestamp_millis(t.millis()) {
            Some(utc) => {
                Self(i64::from(utc.with_timezone(&timezone).date_naive().num_days_from_ce()) - EPOCH_FROM_CE)
            }
            None => Self::of(t),
        }
    }

    /// Days since 1970-01-01 (how stores key a day).
    pub fn number(self) -> i64 {
        self.0
    }

    pub fn from_number(days: i64) -> Self {
        Self(days)
    }

    pub fn plus(self, days: i64) -> Self {
        Self(self.0 + days)
    }

    /// `YYYY-MM-DD`.
    pub fn text(self) -> String {
        EventTime::from_millis(self.0 * DAY_MILLIS)
            .map(|t| t.to_string()[..10].to_owned())
            .unwrap_or_default()
    }

    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 10 {
            return None;
        }
        EventTime::parse_rfc3339(&format!("{text}T00:00:00Z")).map(Self::of)
    }
}

/// One day's syncs: counts, and mergeable sketches of the speeds and of the devices
/// that reported (so a day of any scope adds up from its parts in any order).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DayTotals {
    pub syncs: u64,
    pub failures: u64,
    pub files_synced: u64,
    /// Sum of the syncs' speeds (each at most [`MAX_SPEED_IN_MEAN`]).
    pub speed_sum: f64,
    pub speeds: SpeedSketch,
    pub devices: DeviceSketch,
}

impl DayTotals {
    pub fn add(&mut self, other: &DayTotals) {
        self.syncs += other.syncs;
        self.failures += other.failures;
        self.files_synced += other.files_synced;
        self.speed_sum += other.speed_sum;
        self.speeds.merge(&other.speeds);
        self.devices.merge(&other.devices);
    }

    fn count(&mut self, e: &StoredEvent) {
        self.syncs += 1;
        self.files_synced += u64::from(e.total_files_synced);
        self.speed_sum += speed_for_mean(e.internet_speed);
        self.speeds.add(e.internet_speed);
        self.devices.add(&e.device_id);
        if e.outcome == Outcome::Failure {
            self.failures += 1;
        }
    }
}

/// A speed as a day's mean takes it in: at most [`MAX_SPEED_IN_MEAN`], and anything
/// below a bit per second counted as 0 (so a sum never needs more than a store's
/// number range).
pub fn speed_for_mean(speed: f64) -> f64 {
    if speed < 1e-6 {
        0.0
    } else {
        speed.min(MAX_SPEED_IN_MEAN)
    }
}

/// What `events` add to each day they fall on.
pub fn day_totals<'a>(events: impl IntoIterator<Item = &'a StoredEvent>) -> BTreeMap<Day, DayTotals> {
    let mut days: BTreeMap<Day, DayTotals> = BTreeMap::new();
    for e in events {
        days.entry(Day::of(e.timestamp)).or_default().count(e);
    }
    days
}

impl CountScope {
    /// How stores key the scope: `FLEET`, or `SCHOOL#<id>`.
    pub fn key(&self) -> String {
        match self {
            CountScope::Fleet => "FLEET".into(),
            CountScope::School(id) => format!("SCHOOL#{id}"),
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        match key {
            "FLEET" => Some(CountScope::Fleet),
            other => SchoolId::parse(other.strip_prefix("SCHOOL#")?).map(CountScope::School),
        }
    }
}

/// Newly applied events' day totals, for the fleet and for each event's school, with a
/// key that makes adding them idempotent: adding the same addition again (a retry after
/// an error whose outcome is unknown, such as a timeout) changes nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct DayAddition {
    /// 32 hex digits (DynamoDB's idempotency token takes at most 36 characters).
    pub key: String,
    /// When the latest of the events was received: a store that rolls additions up
    /// later files it under this time, the same on every retry.
    pub at: EventTime,
    pub days: BTreeMap<(CountScope, Day), DayTotals>,
}

/// The school an applied event counts in, and the timezone of that school's days.
#[derive(Clone, Debug, PartialEq)]
pub struct SchoolDays {
    pub school: SchoolId,
    pub timezone: Tz,
}

impl SchoolDays {
    /// A school whose days are UTC days (one whose settings could not be read).
    pub fn utc(school: SchoolId) -> Self {
        Self {
            school,
            timezone: chrono_tz::UTC,
        }
    }
}

impl DayAddition {
    /// Newly applied events, each with its device's school when it was applied. The
    /// key comes from the first event's identity: every stored event is applied (new)
    /// exactly once, so no other addition can have it.
    pub fn of(events: &[(Option<SchoolDays>, StoredEvent)]) -> Option<Self> {
        Self::counting(events.iter().map(|(school, e)| (school.as_ref(), e)))
    }

    /// One device's newly applied events, all counted in its `school` (and the fleet).
    pub fn of_device(school: Option<&SchoolDays>, events: &[StoredEvent]) -> Option<Self> {
        Self::counting(events.iter().map(|e| (school, e)))
    }

    fn counting<'a>(events: impl Iterator<Item = (Option<&'a SchoolDays>, &'a StoredEvent)>) -> Option<Self> {
        let mut events = events.peekable();
        let &(_, first) = events.peek()?;
        let key = short_sha256(format!("{}|{}", first.device_id, first.timestamp).as_bytes());
        let mut at = first.received_at;
        let mut days: BTreeMap<(CountScope, Day), DayTotals> = BTreeMap::new();
        for (school, e) in events {
            at = at.max(e.received_at);
            days.entry((CountScope::Fleet, Day::of(e.timestamp)))
                .or_default()
                .count(e);
            if let Some(SchoolDays { school, timezone }) = school {
                let day = Day::local(e.timestamp, *timezone);
                days.entry((CountScope::School(school.clone()), day))
                    .or_default()
                    .count(e);
            }
        }
        Some(Self { key, at, days })
    }

    /// Adds `other`'s days to these (merging additions before they are stored).
    pub fn merge(&mut self, other: &DayAddition) {
        for (key, totals) in &other.days {
            self.days.entry(key.clone()).or_default().add(totals);
        }
    }
}

/// Devices by status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FleetCounts {
    pub total: u64,
    pub healthy: u64,
    pub failing: u64,
    pub silent: u64,
}

impl FleetCounts {
    /// From the stored totals; healthy is what is neither failing nor silent.
    pub fn from_totals(total: i64, failing: i64, silent: i64) -> Self {
        let clamp = |n: i64| u64::try_from(n).unwrap_or(0);
        let (total, failing, silent) = (clamp(total), clamp(failing), clamp(silent));
        Self {
            total,
            healthy: total.saturating_sub(failing + silent),
            failing,
            silent,
        }
    }
}

/// How one state save changes a set of device counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FleetDelta {
    pub total: i64,
    pub failing: i64,
    pub silent: i64,
}

impl FleetDelta {
    /// From the status a device was counted under before the save to after it
    /// (`None`: not counted — never seen, or not in this set).
    pub fn between(before: Option<Status>, after: Option<Status>) -> Self {
        let weight = |status: Option<Status>, which: Status| i64::from(status == Some(which));
        Self {
            total: i64::from(after.is_some()) - i64::from(before.is_some()),
            failing: weight(after, Status::Failing) - weight(before, Status::Failing),
            silent: weight(after, Status::Silent) - weight(before, Status::Silent),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

/// Whose counts: the fleet's, or one school's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CountScope {
    Fleet,
    School(SchoolId),
}

/// One change a state save makes to the counts of one scope: devices assigned (a
/// school's devices, reported or not) and devices by status (reported ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountChange {
    pub scope: CountScope,
    pub assigned: i64,
    pub delta: FleetDelta,
}

/// A device's place in the counts: its school and the status it is counted under.
pub type Placement<'a> = (Option<&'a SchoolId>, Option<Status>);

/// The count changes of a save that moves a device from `before` to `after`: the
/// fleet's by status, and each school's it leaves or joins (or stays in).
pub fn count_changes(before: Placement<'_>, after: Placement<'_>) -> Vec<CountChange> {
    let mut changes = Vec::new();
    let mut push = |scope, assigned, delta: FleetDelta| {
        if assigned != 0 || !delta.is_zero() {
            changes.push(CountChange {
                scope,
                assigned,
                delta,
            });
        }
    };
    push(CountScope::Fleet, 0, FleetDelta::between(before.1, after.1));
    match (before.0, after.0) {
        (Some(a), Some(b)) if a == b => push(
            CountScope::School(a.clone()),
            0,
            FleetDelta::between(before.1, after.1),
        ),
        (left, joined) => {
            if let Some(a) = left {
                push(
                    CountScope::School(a.clone()),
                    -1,
                    FleetDelta::between(before.1, None),
                );
            }
            if let Some(b) = joined {
                push(
                    CountScope::School(b.clone()),
                    1,
                    FleetDelta::between(None, after.1),
                );
            }
        }
    }
    changes
}

/// Devices of one school: assigned (whether they reported or not) and by status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
pub struct SchoolCounts {
    #[serde(skip)]
    pub assigned: u64,
    #[serde(flatten)]
    pub devices: FleetCounts,
}

/// One day of `GET /fleet/summary`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DaySummary {
    pub date: String,
    pub syncs: u64,
    pub failures: u64,
    /// A fraction between 0 and 1 (0 without syncs).
    pub failure_rate: f64,
    pub files_synced: u64,
    /// `null` without syncs.
    pub mean_internet_speed: Option<f64>,
}

/// The last `days` days up to `today`, oldest first, days without syncs included.
pub fn summarize_days(today: Day, days: u32, stored: &BTreeMap<Day, DayTotals>) -> Vec<DaySummary> {
    (0..i64::from(days))
        .rev()
        .map(|back| {
            let day = today.plus(-back);
            let t = stored.get(&day).cloned().unwrap_or_default();
            let rate = |part: u64| {
                if t.syncs == 0 {
                    0.0
                } else {
                    part as f64 / t.syncs as f64
                }
            };
            DaySummary {
                date: day.text(),
                syncs: t.syncs,
                failures: t.failures,
                failure_rate: rate(t.failures),
                files_synced: t.files_synced,
                mean_internet_speed: (t.syncs > 0).then(|| t.speed_sum / t.syncs as f64),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        let t = EventTime::parse_rfc3339("2025-05-07T23:59:59.999+00:00").unwrap();
        assert_eq!(Day::of(t).text(), "2025-05-07");
        let t = EventTime::parse_rfc3339("2025-05-08T01:00:00+05:30").unwrap();
        assert_eq!(Day::of(t).text(), "2025-05-07", "normalised to UTC first");
        let before_epoch = EventTime::parse_rfc3339("1969-12-31T12:00:00Z").unwrap();
        assert_eq!(Day::of(before_epoch).text(), "1969-12-31");
        assert_eq!(Day::parse("2025-05-07"), Some(Day::of(t)));
        assert_eq!(Day::parse("2025-5-7"), None);
    }

    #[test]
    fn a_status_change_moves_one_device_between_counts() {
        use Status::*;
        assert_eq!(
            FleetDelta::between(None, Some(Healthy)),
            FleetDelta {
                total: 1,
                failing: 0,
                silent: 0
            }
        );
        assert_eq!(
            FleetDelta::between(Some(Healthy), Some(Failing)),
            FleetDelta {
                total: 0,
                failing: 1,
                silent: 0
            }
        );
        assert_eq!(
            FleetDelta::between(Some(Failing), Some(Silent)),
            FleetDelta {
                total: 0,
                failing: -1,
                silent: 1
            }
        );
        assert!(FleetDelta::between(Some(Silent), Some(Silent)).is_zero());
        assert_eq!(FleetCounts::from_totals(10, 2, 3).healthy, 5);
    }

    #[test]
    fn moving_a_device_moves_it_between_schools_counts() {
        use Status::*;
        let (a, b) = (SchoolId::parse("a").unwrap(), SchoolId::parse("b").unwrap());
        let change = |scope, assigned, total, failing, silent| CountChange {
            scope,
            assigned,
            delta: FleetDelta {
                total,
                failing,
                silent,
            },
        };
        // An unseen device assigned: the school counts it as assigned only.
        assert_eq!(
            count_changes((None, None), (Some(&a), None)),
            [change(CountScope::School(a.clone()), 1, 0, 0, 0)]
        );
        // A failing device moved from a to b: the fleet does not change.
        assert_eq!(
            count_changes((Some(&a), Some(Failing)), (Some(&b), Some(Failing))),
            [
                change(CountScope::School(a.clone()), -1, -1, -1, 0),
                change(CountScope::School(b.clone()), 1, 1, 1, 0)
            ]
        );
        // Its first report, in school a, healthy.
        assert_eq!(
            count_changes((Some(&a), None), (Some(&a), Some(Healthy))),
            [
                change(CountScope::Fleet, 0, 1, 0, 0),
                change(CountScope::School(a.clone()), 0, 1, 0, 0)
            ]
        );
        assert!(count_changes((Some(&a), Some(Silent)), (Some(&a), Some(Silent))).is_empty());
    }

    #[test]
    fn a_schools_days_are_its_local_days_and_the_fleets_utc_days() {
        let tokyo = SchoolDays {
            school: SchoolId::parse("tokyo").unwrap(),
            timezone: chrono_tz::Asia::Tokyo,
        };
        let late_evening_utc = stored("pibox-1", "2025-05-07T16:30:00Z", 1);
        let addition = DayAddition::of_device(Some(&tokyo), std::slice::from_ref(&late_evening_utc)).unwrap();
        let days: Vec<(CountScope, String)> =
            addition.days.keys().map(|(s, d)| (s.clone(), d.text())).collect();
        assert_eq!(
            days,
            [
                (CountScope::Fleet, "2025-05-07".into()),
                (CountScope::School(tokyo.school.clone()), "2025-05-08".into()),
            ]
        );
        let t = late_evening_utc.timestamp;
        assert_eq!(Day::local(t, chrono_tz::UTC), Day::of(t));
        assert_eq!(
            Day::local(t, chrono_tz::America::Los_Angeles).text(),
            "2025-05-07"
        );
        let before_epoch = EventTime::parse_rfc3339("1969-12-31T20:00:00-05:00").unwrap();
        assert_eq!(
            Day::local(before_epoch, chrono_tz::America::New_York).text(),
            "1969-12-31"
        );
    }

    #[test]
    fn summaries_cover_every_day_oldest_first() {
        let today = Day::parse("2025-05-07").unwrap();
        let mut stored = BTreeMap::new();
        stored.insert(
            today.plus(-1),
            DayTotals {
                syncs: 4,
                failures: 1,
                files_synced: 10,
                speed_sum: 8.0,
                ..DayTotals::default()
            },
        );
        let days = summarize_days(today, 3, &stored);
        let dates: Vec<&str> = days.iter().map(|d| d.date.as_str()).collect();
        assert_eq!(dates, ["2025-05-05", "2025-05-06", "2025-05-07"]);
        assert_eq!(
            (days[1].failure_rate, days[1].mean_internet_speed),
            (0.25, Some(2.0))
        );
        assert_eq!(
            (days[2].syncs, days[2].failure_rate, days[2].mean_internet_speed),
            (0, 0.0, None)
        );
    }

    fn stored(device: &str, at: &str, errors: u32) -> StoredEvent {
        let t = EventTime::parse_rfc3339(at).unwrap();
        StoredEvent {
            device_id: crate::domain::event::DeviceId::parse(device).unwrap(),
            timestamp: t,
            total_files_synced: 1,
            total_errors: errors,
            internet_speed: 1.0,
            outcome: Outcome::of(errors),
            received_at: t,
        }
    }

    #[test]
    fn an_addition_is_keyed_by_its_first_events_identity() {
        let school = SchoolId::parse("north");
        let a = (
            school.clone().map(SchoolDays::utc),
            stored("pibox-1", "2025-05-07T10:00:00Z", 0),
        );
        let b = (None, stored("pibox-2", "2025-05-08T10:00:00Z", 1));
        let both = DayAddition::of(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(both.at, b.1.received_at, "the latest received");
        assert_eq!(both.key.len(), 32);
        assert!(both.key.bytes().all(|c| c.is_ascii_hexdigit()));
        let scopes: Vec<(CountScope, String)> =
            both.days.keys().map(|(s, d)| (s.clone(), d.text())).collect();
        assert_eq!(
            scopes,
            [
                (CountScope::Fleet, "2025-05-07".into()),
                (CountScope::Fleet, "2025-05-08".into()),
                (CountScope::School(school.unwrap()), "2025-05-07".into()),
            ],
            "each day for the fleet, and for the school of the device that synced"
        );
        assert_eq!(
            DayAddition::of(std::slice::from_ref(&a)).unwrap().key,
            both.key,
            "same first event"
        );
        assert_ne!(DayAddition::of(&[b.clone(), a.clone()]).unwrap().key, both.key);
        assert_eq!(DayAddition::of(&[]), None);
        // One device's events, all in its school: the same as each with that school.
        let (c, d) = (a.1.clone(), stored("pibox-1", "2025-05-08T11:00:00Z", 2));
        assert_eq!(
            DayAddition::of_device(a.0.as_ref(), &[c.clone(), d.clone()]),
            DayAddition::of(&[(a.0.clone(), c), (a.0.clone(), d)])
        );
        assert_eq!(DayAddition::of_device(None, &[]), None);
        let fleet_day = &both.days[&(CountScope::Fleet, Day::parse("2025-05-07").unwrap())];
        assert_eq!(
            (fleet_day.devices.estimate(), fleet_day.speeds.count()),
            (1, 1),
            "sketched"
        );
        assert_eq!(
            CountScope::from_key(&CountScope::Fleet.key()),
            Some(CountScope::Fleet)
        );
        let north = CountScope::School(SchoolId::parse("north").unwrap());
        assert_eq!(CountScope::from_key(&north.key()), Some(north));
    }
}
