//! Seeds an embedded store with a known set of synced events for the export checks,
//! and writes what the documented export queries must answer over it.
//!
//!   cargo run -p pisync-local --example export_sample -- DATA_DIR [EVENTS]
//!
//! EVENTS (default 2,000) events from 40 devices in three schools (and a few in no
//! school), over the last five days, with speeds drawn from a log-normal and about
//! one in eight failing; received a day after their device time or on it. Writes
//! `DATA_DIR/expected.json`: per school and UTC day the syncs, failures and failure
//! rate, and per school the syncs and the exact p50 and p90 of the speeds (the rank
//! ⌊q·(n−1)⌋). scripts/export-queries.py compares DuckDB's answers with it; with a
//! million EVENTS the same data measures the export's throughput
//! (docs/performance.md, "Export").

use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::domain::assignment::assign;
use pisync_shared::domain::school::SchoolId;
use pisync_shared::domain::sketch::TestRandom;
use pisync_shared::ports::{ManageSchools, RecordEvents};
use pisync_shared::{DeviceId, EventTime, Outcome, StoredEvent};
use std::collections::BTreeMap;

type Failure = Box<dyn std::error::Error + Send + Sync>;

const SCHOOLS: [&str; 3] = ["north", "south", "west"];
const DEVICES: usize = 40;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: export_sample DATA_DIR [EVENTS]")?);
    let count: usize = args.next().map_or(Ok(2_000), |n| n.parse())?;
    std::fs::create_dir_all(&dir)?;
    let store = SqliteStore::open(&dir.join("pisync.db"))?;
    let now = EventTime::now();
    for school in SCHOOLS {
        let mut settings = pisync_shared::test_util::school(school);
        settings.name = school.to_uppercase();
        store.put_school(&settings, true).await?;
    }
    // Devices 0–35 in a school (by id), 36–39 in none.
    let school_of = |d: usize| (d < 36).then(|| SCHOOLS[d % 3]);
    for d in 0..DEVICES {
        if let Some(school) = school_of(d) {
            let id = SchoolId::parse(school).ok_or("school id")?;
            assign(&store, &device(d), Some(&id), Default::default(), |_| true, now).await?;
        }
    }
    let mut random = TestRandom::seeded(2026);
    let mut events = Vec::with_capacity(count);
    let mut taken = std::collections::HashSet::new();
    for i in 0..count {
        let d = i % DEVICES;
        // Spread over five days; a device's timestamps distinct (its events' identity).
        let back = (random.unit() * 5.0 * 86_400_000.0) as i64;
        if !taken.insert((d, back)) {
            continue;
        }
        let timestamp = now.plus_millis(-back - 1);
        let errors = u32::from(random.unit() < 0.125) * 2;
        let received_at = match i % 4 {
            0 => timestamp.plus_millis(86_400_000).min(now),
            _ => timestamp,
        };
        events.push(StoredEvent {
            device_id: device(d),
            timestamp,
            total_files_synced: (random.unit() * 50.0) as u32,
            total_errors: errors,
            internet_speed: (random.log_normal(30.0, 1.0) * 1000.0).round() / 1000.0,
            outcome: Outcome::of(errors),
            received_at,
        });
    }
    let mut stored = Vec::with_capacity(count);
    for chunk in events.chunks(1_000) {
        for (e, recorded) in chunk.iter().zip(store.record_many(chunk.to_vec()).await) {
            if matches!(recorded?, pisync_shared::ports::Recorded::Created(_)) {
                stored.push(e.clone());
            }
        }
    }
    std::fs::write(
        dir.join("expected.json"),
        expected(&stored, school_of).to_string(),
    )?;
    eprintln!("stored {} events in {}", stored.len(), dir.display());
    Ok(())
}

fn device(d: usize) -> DeviceId {
    DeviceId::parse(&format!("pibook-{d:03}")).expect("a device id")
}

/// The answers of the two documented queries, computed exactly from the events.
fn expected(events: &[StoredEvent], school_of: impl Fn(usize) -> Option<&'static str>) -> serde_json::Value {
    let school = |e: &StoredEvent| {
        let d: usize = e.device_id.as_str()[7..].parse().unwrap_or(usize::MAX);
        school_of(d)
    };
    let mut days: BTreeMap<(Option<&str>, String), (u64, u64)> = BTreeMap::new();
    let mut speeds: BTreeMap<Option<&str>, Vec<f64>> = BTreeMap::new();
    for e in events {
        let day = e.timestamp.to_string()[..10].to_owned();
        let entry = days.entry((school(e), day)).or_default();
        entry.0 += 1;
        entry.1 += u64::from(e.outcome == Outcome::Failure);
        speeds.entry(school(e)).or_default().push(e.internet_speed);
    }
    let days: Vec<_> = days
        .into_iter()
        .map(|((school, day), (syncs, failures))| {
            serde_json::json!({"school_id": school, "day": day, "syncs": syncs, "failures": failures,
                               "failure_rate": failures as f64 / syncs as f64})
        })
        .collect();
    let speeds: Vec<_> = speeds
        .into_iter()
        .map(|(school, mut s)| {
            s.sort_by(f64::total_cmp);
            let at = |q: f64| s[(q * (s.len() - 1) as f64).floor() as usize];
            serde_json::json!({"school_id": school, "syncs": s.len(), "p50": at(0.5), "p90": at(0.9)})
        })
        .collect();
    serde_json::json!({"failure_rate_per_school_per_day": days, "speed_per_school": speeds})
}
