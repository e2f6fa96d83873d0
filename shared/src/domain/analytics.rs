//! Analytics: per day, and per school over a window, how many syncs there were, how
//! they went, how many devices reported and how fast their links were (median and
//! slow tail, not only a mean). Everything comes from the day summaries kept as events
//! are applied ([`super::fleet::DayTotals`]); a query reads days, never events.

use super::fleet::{Day, DayTotals, FleetCounts};
use super::school::{School, SchoolId};
use super::time::EventTime;
use crate::ports::{ReadFleet, ReadSchools, StoreError, Within};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::BTreeMap;

/// Schools `GET /analytics/schools` ranks at most (a district has tens to hundreds);
/// a larger district's first ones by id.
pub const MAX_RANKED_SCHOOLS: usize = 1_000;
/// Schools whose days are read at once.
const SCHOOLS_AT_ONCE: usize = 16;

/// How fast the links were: within 1 % of the true percentiles.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SpeedFigures {
    pub p50: f64,
    pub p90: f64,
    pub mean: f64,
}

/// The figures of some syncs (a day's, or a school's window's).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyncFigures {
    pub syncs: u64,
    pub failures: u64,
    /// A fraction between 0 and 1 (0 without syncs).
    pub failure_rate: f64,
    pub files_synced: u64,
    /// Distinct devices that synced: exact up to 2,048, else within 2 %.
    pub devices_reporting: u64,
    /// `null` without syncs.
    pub internet_speed: Option<SpeedFigures>,
}

impl SyncFigures {
    pub fn of(t: &DayTotals) -> Self {
        let speed = (t.syncs > 0).then(|| SpeedFigures {
            p50: t.speeds.quantile(0.5).unwrap_or(0.0),
            p90: t.speeds.quantile(0.9).unwrap_or(0.0),
            mean: t.speed_sum / t.syncs as f64,
        });
        Self {
            syncs: t.syncs,
            failures: t.failures,
            failure_rate: match t.syncs {
                0 => 0.0,
                n => t.failures as f64 / n as f64,
            },
            files_synced: t.files_synced,
            devices_reporting: t.devices.estimate(),
            internet_speed: speed,
        }
    }
}

/// One day of `GET /analytics/daily`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnalyticsDay {
    pub date: String,
    #[serde(flatten)]
    pub figures: SyncFigures,
}

/// The last `days` days up to `today`, oldest first, days without syncs included.
pub fn daily(today: Day, days: u32, stored: &BTreeMap<Day, DayTotals>) -> Vec<AnalyticsDay> {
    (0..i64::from(days))
        .rev()
        .map(|back| {
            let day = today.plus(-back);
            AnalyticsDay {
                date: day.text(),
                figures: SyncFigures::of(&stored.get(&day).cloned().unwrap_or_default()),
            }
        })
        .collect()
}

/// The fleet's calendar: its days are UTC days.
pub const FLEET_CALENDAR: Tz = chrono_tz::UTC;

/// The calendar a read's days are on: a school's own timezone, the fleet's UTC, or for
/// several schools their shared timezone (UTC when they differ: each school's rows
/// are still its own local days, the window ends on the UTC date).
pub fn calendar(schools: &[&School]) -> Tz {
    match schools.split_first() {
        Some((first, rest)) if rest.iter().all(|s| s.timezone == first.timezone) => first.timezone,
        _ => FLEET_CALENDAR,
    }
}

/// The window of `days` days ending today on `timezone`'s calendar.
pub fn window(now: EventTime, timezone: Tz, days: u32) -> (Day, Day) {
    let today = Day::local(now, timezone);
    (today.plus(1 - i64::from(days)), today)
}

/// One school of `GET /analytics/schools`: its devices now, and its syncs over the
/// window (devices reporting: distinct over the whole window).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SchoolFigures {
    pub school_id: SchoolId,
    pub name: String,
    pub devices: FleetCounts,
    #[serde(flatten)]
    pub figures: SyncFigures,
}

/// The schools `within` reach (at most [`MAX_RANKED_SCHOOLS`]), each with its figures
/// over the last `days` of its own calendar, highest failure rate first (ties by id).
/// Reads each school, its counts and its days: the cost grows with schools and days,
/// never with events.
pub async fn rank_schools(
    schools: &dyn ReadSchools,
    fleet: &dyn ReadFleet,
    within: &Within,
    days: u32,
    now: EventTime,
) -> Result<Vec<SchoolFigures>, StoreError> {
    let listed = reached_schools(schools, within).await?;
    let mut ranked = Vec::with_capacity(listed.len());
    for chunk in listed.chunks(SCHOOLS_AT_ONCE) {
        let ids: Vec<SchoolId> = chunk.iter().map(|s| s.school_id.clone()).collect();
        let counts = schools.school_counts(&ids).await?;
        let reads = chunk.iter().map(|school| async move {
            let (first, last) = window(now, school.timezone, days);
            let only = Within::Schools(vec![school.school_id.clone()]);
            fleet.days(first, last, &only).await
        });
        let stored = futures_util::future::join_all(reads).await;
        for ((school, counts), stored) in chunk.iter().zip(counts).zip(stored) {
            let mut sum = DayTotals::default();
            stored?.values().for_each(|day| sum.add(day));
            ranked.push(SchoolFigures {
                school_id: school.school_id.clone(),
                name: school.name.clone(),
                devices: counts.devices,
                figures: SyncFigures::of(&sum),
            });
        }
    }
    rank(&mut ranked);
    Ok(ranked)
}

/// Highest failure rate first, ties by school id.
pub fn rank(schools: &mut [SchoolFigures]) {
    schools.sort_by(|a, b| {
        b.figures
            .failure_rate
            .total_cmp(&a.figures.failure_rate)
            .then_with(|| a.school_id.cmp(&b.school_id))
    });
}

/// The schools a read reaches, by id (a school deleted meanwhile is left out).
async fn reached_schools(schools: &dyn ReadSchools, within: &Within) -> Result<Vec<School>, StoreError> {
    let mut found = Vec::new();
    match within {
        Within::Schools(ids) => {
            for id in ids.iter().take(MAX_RANKED_SCHOOLS) {
                found.extend(schools.school(id).await?);
            }
        }
        Within::Fleet => {
            let mut after: Option<SchoolId> = None;
            while found.len() < MAX_RANKED_SCHOOLS {
                let page = schools.schools(after.as_ref(), 100).await?;
                after = page.schools.last().map(|s| s.school_id.clone());
                found.extend(page.schools);
                if !page.more || after.is_none() {
                    break;
                }
            }
            found.truncate(MAX_RANKED_SCHOOLS);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{DeviceId, Outcome, StoredEvent};
    use crate::domain::fleet::day_totals;

    fn synced(device: &str, at: &str, errors: u32, speed: f64) -> StoredEvent {
        let t = EventTime::parse_rfc3339(at).unwrap();
        StoredEvent {
            device_id: DeviceId::parse(device).unwrap(),
            timestamp: t,
            total_files_synced: 2,
            total_errors: errors,
            internet_speed: speed,
            outcome: Outcome::of(errors),
            received_at: t,
        }
    }

    #[test]
    fn a_days_figures_come_from_its_summary() {
        let events: Vec<StoredEvent> = (1..=10)
            .map(|i| {
                synced(
                    &format!("d{}", i % 4),
                    "2025-05-07T10:00:00Z",
                    u32::from(i > 8),
                    i as f64,
                )
            })
            .collect();
        let stored = day_totals(&events);
        let today = Day::parse("2025-05-08").unwrap();
        let days = daily(today, 2, &stored);
        assert_eq!(days.len(), 2);
        let d = &days[0].figures;
        assert_eq!(days[0].date, "2025-05-07");
        assert_eq!(
            (d.syncs, d.failures, d.files_synced, d.devices_reporting),
            (10, 2, 20, 4)
        );
        assert_eq!(d.failure_rate, 0.2);
        let speed = d.internet_speed.unwrap();
        assert!((speed.p50 / 5.0 - 1.0).abs() <= 0.01, "{speed:?}");
        assert!((speed.p90 / 9.0 - 1.0).abs() <= 0.01, "{speed:?}");
        assert_eq!(speed.mean, 5.5);
        assert_eq!(days[1].figures, SyncFigures::of(&DayTotals::default()));
        assert_eq!(days[1].figures.internet_speed, None);
    }

    #[test]
    fn schools_rank_by_failure_rate_then_id() {
        let figures = |id: &str, failures: u64| SchoolFigures {
            school_id: SchoolId::parse(id).unwrap(),
            name: id.into(),
            devices: FleetCounts::default(),
            figures: SyncFigures::of(&DayTotals {
                syncs: 10,
                failures,
                ..DayTotals::default()
            }),
        };
        let mut schools = [figures("b", 1), figures("c", 5), figures("a", 1), figures("d", 0)];
        rank(&mut schools);
        let order: Vec<&str> = schools.iter().map(|s| s.school_id.as_str()).collect();
        assert_eq!(order, ["c", "a", "b", "d"]);
    }

    #[test]
    fn the_window_ends_on_the_calendars_today() {
        let now = EventTime::parse_rfc3339("2025-05-07T23:30:00Z").unwrap();
        let (first, last) = window(now, chrono_tz::Asia::Tokyo, 7);
        assert_eq!(
            (first.text(), last.text()),
            ("2025-05-02".into(), "2025-05-08".into())
        );
        assert_eq!(window(now, chrono_tz::UTC, 1).1.text(), "2025-05-07");
    }
}
