//! The notices a realistic month decides: 500 devices in 5 schools (five timezones,
//! weekdays 08:00–16:00, two of them with a holiday week), each reporting hourly while
//! its school is open and off otherwise; two devices per school offline for a week
//! that upload the week's backlog on the next Monday (a failure streak inside it); one
//! device per school that flaps (three failures, a success, all day long). Events are
//! stored and applied as detection applies them (one stream batch per request), and
//! the periodic check (silence, and each school's 07:00 digest) runs every 15 minutes
//! of the simulated month. The same seed
//! gives the same month. Prints a Markdown table of the notices decided, by type: published, and recorded
//! only (held back as stale or flapping).
//!
//!   cargo run --release -p pisync-local --example alert_scenario
//!
//! docs/performance.md keeps its figures before and after each change to what is
//! alerted.

use chrono::{Datelike, Duration as Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Weekday};
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::domain::assignment::assign;
use pisync_shared::domain::detection::{apply_records, Record, Rules};
use pisync_shared::domain::notice::{Decided, Withheld};
use pisync_shared::domain::school::{School, SchoolId};
use pisync_shared::domain::school_digest::{send_due_digests, DigestSources, SentDigests};
use pisync_shared::domain::sweep::check_silent_devices;
use pisync_shared::ports::{ManageSchools, RecordEvents};
use pisync_shared::{DeviceId, EventTime, Outcome, StoredEvent};
use std::collections::BTreeMap;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Monday 2026-09-07, four weeks.
const FIRST_DAY: Ymd = (2026, 9, 7);
const DAYS: i64 = 28;
const DEVICES_PER_SCHOOL: usize = 100;
/// Reports a device sends on an open day, hourly from 08:30 local.
const REPORTS_PER_DAY: u32 = 8;
/// Chance that a report is a failure (ordinary devices).
const FAILURE_CHANCE: f64 = 0.04;
const CHECK_EVERY_MINUTES: i64 = 15;
const SEED: u64 = 2026;

/// A calendar date, (year, month, day).
type Ymd = (i32, u32, u32);

/// (school, timezone, holiday week's Monday)
const SCHOOLS: [(&str, &str, Option<Ymd>); 5] = [
    ("north", "Europe/London", None),
    ("east", "Asia/Kolkata", Some((2026, 9, 21))),
    ("west", "America/New_York", None),
    ("south", "Australia/Sydney", Some((2026, 9, 28))),
    ("central", "UTC", None),
];

/// The week the backlog devices are offline (they upload it the Monday after).
const OFFLINE_WEEK: Ymd = (2026, 9, 14);

/// splitmix64: a reproducible month without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Minutes in -range..=range.
    fn jitter(&mut self, range: i64) -> i64 {
        (self.next() % (2 * range as u64 + 1)) as i64 - range
    }
}

fn date((y, m, d): Ymd) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn school(id: &str, timezone: &str, holiday: Option<Ymd>) -> Result<School, Failure> {
    let closures = match holiday {
        Some(monday) => {
            let from = date(monday);
            vec![
                serde_json::json!({"from": from.to_string(), "to": (from + Days::days(4)).to_string(), "reason": "Holiday week"}),
            ]
        }
        None => Vec::new(),
    };
    Ok(serde_json::from_value(serde_json::json!({
        "school_id": id, "name": id, "timezone": timezone,
        "hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "open": "08:00", "close": "16:00"},
        "closures": closures, "failure_threshold": null, "silent_after": null,
        "webhook_url": null, "digest_at": "07:00",
    }))?)
}

/// The instant of a local date and time at `school`.
fn local(school: &School, day: NaiveDate, minutes: i64) -> Option<EventTime> {
    let at = NaiveDateTime::new(day, NaiveTime::MIN) + Days::minutes(minutes);
    let t = school.timezone.from_local_datetime(&at).earliest()?;
    EventTime::from_millis(t.timestamp_millis())
}

fn event(device: &DeviceId, at: EventTime, received_at: EventTime, failed: bool) -> StoredEvent {
    let errors = u32::from(failed);
    StoredEvent {
        device_id: device.clone(),
        timestamp: at,
        total_files_synced: 12,
        total_errors: errors,
        internet_speed: 8.5,
        outcome: Outcome::of(errors),
        received_at,
    }
}

/// One request to PiSync: its events, received together.
struct Upload {
    received_at: EventTime,
    events: Vec<StoredEvent>,
}

/// Every upload of the month, in the order they are received.
fn month(schools: &[School]) -> Vec<Upload> {
    let mut random = Random(SEED);
    let first = date(FIRST_DAY);
    let offline = date(OFFLINE_WEEK);
    let mut uploads = Vec::new();
    for school in schools {
        for n in 0..DEVICES_PER_SCHOOL {
            let device = device_id(school, n);
            let backlog_device = n < 2;
            let flapping = n == 10;
            let mut backlog = Vec::new();
            for d in 0..DAYS {
                let day = first + Days::days(d);
                if !school.is_open_day(day) {
                    continue;
                }
                let in_offline_week = backlog_device && day >= offline && day < offline + Days::days(5);
                for k in 0..REPORTS_PER_DAY {
                    let minutes = 8 * 60 + 30 + 60 * i64::from(k) + random.jitter(10);
                    let Some(at) = local(school, day, minutes) else {
                        continue;
                    };
                    let failed = if flapping {
                        k % 4 != 3
                    } else if in_offline_week && day.weekday() == Weekday::Wed {
                        (2..=5).contains(&k)
                    } else {
                        random.chance(FAILURE_CHANCE)
                    };
                    if in_offline_week {
                        backlog.push(event(&device, at, at, failed));
                    } else {
                        uploads.push(Upload {
                            received_at: at,
                            events: vec![event(&device, at, at, failed)],
                        });
                    }
                }
            }
            // The backlog arrives on the Monday after, at 08:05 local, in one request.
            if let Some(received_at) = local(school, offline + Days::days(7), 8 * 60 + 5) {
                if !backlog.is_empty() {
                    let events = backlog
                        .into_iter()
                        .map(|e| StoredEvent { received_at, ..e })
                        .collect();
                    uploads.push(Upload { received_at, events });
                }
            }
        }
    }
    uploads.sort_by_key(|u| u.received_at);
    uploads
}

fn device_id(school: &School, n: usize) -> DeviceId {
    DeviceId::parse(&format!("{}-{n:03}", school.school_id)).expect("a valid id")
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    // On tmpfs where there is one: the month is 80,000 commits.
    let base = std::path::Path::new("/dev/shm");
    let dir = match base.is_dir() {
        true => tempfile::tempdir_in(base)?,
        false => tempfile::tempdir()?,
    };
    let store = SqliteStore::open(&dir.path().join("scenario.db"))?;
    let rules = Rules::default();
    let schools = SCHOOLS
        .iter()
        .map(|(id, tz, holiday)| school(id, tz, *holiday))
        .collect::<Result<Vec<_>, _>>()?;
    let start = local(&schools[4], date(FIRST_DAY), 0).ok_or("a start")?;
    for school in &schools {
        store.put_school(school, true).await?;
        let id: &SchoolId = &school.school_id;
        for n in 0..DEVICES_PER_SCHOOL {
            assign(
                &store,
                &device_id(school, n),
                Some(id),
                rules.streak,
                |_| true,
                start,
            )
            .await?;
        }
    }
    let uploads = month(&schools);
    let events: usize = uploads.iter().map(|u| u.events.len()).sum();
    // Per type: published, recorded as stale, recorded as flapping.
    let mut decided: BTreeMap<&'static str, [usize; 3]> = BTreeMap::new();
    let mut tally = |notices: &[Decided]| {
        for n in notices {
            let counts = decided.entry(n.notice.event_type()).or_default();
            match n.withheld {
                None => counts[0] += 1,
                Some(Withheld::Stale) => counts[1] += 1,
                Some(Withheld::Flapping) => counts[2] += 1,
            }
        }
    };
    // Each school's digest at 07:00 local on its open days: always published.
    let (digests_sent, mut digests) = (SentDigests::default(), 0);
    let end = start.plus_millis(DAYS * 86_400_000);
    let mut next_check = start;
    let mut uploads = uploads.into_iter().peekable();
    while next_check <= end {
        while let Some(upload) = uploads.next_if(|u| u.received_at < next_check) {
            for outcome in store.record_many(upload.events.clone()).await {
                outcome?;
            }
            let records: Vec<Record> = upload.events.into_iter().map(|e| Record::new(None, e)).collect();
            let batch = apply_records(&store, rules, &records, upload.received_at).await?;
            tally(&batch.notices);
        }
        let report = check_silent_devices(&store, &store, rules, next_check).await?;
        tally(&report.notices);
        let sources = DigestSources {
            schools: &store,
            devices: &store,
            notices: &store,
            days: &store,
        };
        let round = send_due_digests(sources, &store, &digests_sent, next_check).await?;
        digests += round.sent.len();
        next_check = next_check.plus_millis(CHECK_EVERY_MINUTES * 60_000);
    }
    decided.insert("school.digest", [digests, 0, 0]);
    println!(
        "{} devices in {} schools, {DAYS} days, {events} events\n",
        schools.len() * DEVICES_PER_SCHOOL,
        schools.len()
    );
    println!("| notice | published | recorded: stale | recorded: flapping |\n| --- | ---: | ---: | ---: |");
    let mut all = [0; 3];
    for (kind, [p, s, f]) in &decided {
        println!("| `{kind}` | {p} | {s} | {f} |");
        all = [all[0] + p, all[1] + s, all[2] + f];
    }
    println!("| all | {} | {} | {} |", all[0], all[1], all[2]);
    Ok(())
}
