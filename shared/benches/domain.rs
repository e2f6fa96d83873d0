//! Domain micro-benchmarks: parsing + validating one event, the streak rule, checking
//! a device token, and keeping the day summaries (sketches included).

use criterion::{criterion_group, criterion_main, Criterion};
use pisync_shared::domain::device::DeviceState;
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::domain::validate::{parse_sync_event, EventRules};
use pisync_shared::{DeviceId, EventTime, Outcome, StoredEvent};
use std::hint::black_box;

const BODY: &[u8] = br#"{"device_id":"device_12345","timestamp":"2025-05-07T10:30:00Z","total_files_synced":42,"total_errors":2,"internet_speed":5.3}"#;
const BAD: &[u8] = br#"{"device_id":"bad id","timestamp":"soon","total_files_synced":-1,"total_errors":1.5,"internet_speed":-2,"colour":"red"}"#;

fn parse(c: &mut Criterion) {
    let now = EventTime::parse_rfc3339("2025-05-07T12:00:00Z").unwrap();
    c.bench_function("parse+validate valid event", |b| {
        b.iter(|| parse_sync_event(black_box(BODY), now, EventRules::default()).unwrap())
    });
    c.bench_function("parse+validate invalid event (6 problems)", |b| {
        b.iter(|| parse_sync_event(black_box(BAD), now, EventRules::default()).unwrap_err())
    });
}

fn streak(c: &mut Criterion) {
    let device = DeviceId::parse("device_12345").unwrap();
    let event = |m: i64, errors: u32| StoredEvent {
        device_id: device.clone(),
        timestamp: EventTime::from_millis(1_746_600_000_000 + m * 60_000).unwrap(),
        total_files_synced: 1,
        total_errors: errors,
        internet_speed: 1.0,
        outcome: Outcome::of(errors),
        received_at: EventTime::from_millis(0).unwrap(),
    };
    let failure = event(100, 1);
    let mut running = DeviceState::new(device.clone());
    let now = EventTime::from_millis(0).unwrap();
    for m in 0..50 {
        running.apply(&event(m, 1), StreakRule::default(), now, &mut Vec::new());
    }
    c.bench_function(
        "streak rule: apply a failure to a long run (status, totals)",
        |b| {
            b.iter(|| {
                let mut s = running.clone();
                let mut notices = Vec::new();
                assert!(!s.applied.contains(failure.timestamp, s.last_sync_at));
                assert_eq!(
                    s.apply(black_box(&failure), StreakRule::default(), now, &mut notices),
                    None
                );
                s
            })
        },
    );
    let late = event(25, 1);
    let mut with_gap = DeviceState::new(device.clone());
    for m in (0..50).filter(|m| *m != 25) {
        with_gap.apply(&event(m, 1), StreakRule::default(), now, &mut Vec::new());
    }
    c.bench_function(
        "streak rule: a late failure inside a 49-failure run (no read)",
        |b| {
            b.iter(|| {
                let mut s = with_gap.clone();
                assert_eq!(
                    s.apply(black_box(&late), StreakRule::default(), now, &mut Vec::new()),
                    None
                );
                s
            })
        },
    );
    let success = event(200, 0);
    c.bench_function("streak rule: recovery (success after an alerted run)", |b| {
        b.iter(|| {
            let mut s = running.clone();
            let mut notices = Vec::new();
            s.apply(black_box(&success), StreakRule::default(), now, &mut notices);
            (s, notices)
        })
    });
}

fn tokens(c: &mut Criterion) {
    use pisync_shared::auth::token::{digest, sign_device, verify};
    use pisync_shared::auth::SigningKeys;
    let keys = SigningKeys::new("k1", [("k1", &[7u8; 32][..])]).unwrap();
    let token = sign_device(&keys, "device_12345").unwrap();
    c.bench_function("device token: verify signature + digest", |b| {
        b.iter(|| {
            verify(&keys, black_box(&token), 0).unwrap();
            digest(black_box(&token))
        })
    });
}

/// What a day summary costs to keep: a stream batch's addition (its events' counts and
/// sketches, for the fleet and the school), and folding it into a fleet day that holds
/// a HyperLogLog (the roll-up's merge and the bytes it reads and writes).
fn summaries(c: &mut Criterion) {
    use pisync_shared::domain::fleet::{DayAddition, DayTotals, SchoolDays};
    use pisync_shared::domain::school::SchoolId;
    let school = SchoolDays::utc(SchoolId::parse("north").unwrap());
    let t = EventTime::parse_rfc3339("2025-05-07T10:00:00Z").unwrap();
    let batch: Vec<(Option<SchoolDays>, StoredEvent)> = (0..100)
        .map(|i| {
            let event = StoredEvent {
                device_id: DeviceId::parse(&format!("pibook-{i:05}")).unwrap(),
                timestamp: t.plus_millis(i * 1000),
                total_files_synced: 3,
                total_errors: u32::from(i % 9 == 0),
                internet_speed: 1.0 + i as f64 * 0.7,
                outcome: Outcome::of(u32::from(i % 9 == 0)),
                received_at: t.plus_millis(i * 1000),
            };
            (Some(school.clone()), event)
        })
        .collect();
    c.bench_function(
        "day summary: a 100-event batch's addition (fleet + school)",
        |b| b.iter(|| DayAddition::of(black_box(&batch)).unwrap()),
    );
    let addition = DayAddition::of(&batch).unwrap();
    let batch_day = addition.days.values().next().unwrap().clone();
    let mut fleet_day = DayTotals::default();
    for chunk in 0..50 {
        let many: Vec<(Option<SchoolDays>, StoredEvent)> = batch
            .iter()
            .map(|(s, e)| {
                let id = format!("{}-{chunk}", e.device_id);
                let e = StoredEvent {
                    device_id: DeviceId::parse(&id).unwrap(),
                    ..e.clone()
                };
                (s.clone(), e)
            })
            .collect();
        fleet_day.add(DayAddition::of(&many).unwrap().days.values().next().unwrap());
    }
    c.bench_function(
        "day summary: roll a batch into a fleet day of 5,000 devices (bytes in, merge, bytes out)",
        |b| {
            b.iter(|| {
                let mut day = DayTotals {
                    speeds: pisync_shared::domain::sketch::SpeedSketch::from_bytes(
                        &fleet_day.speeds.to_bytes(),
                    )
                    .unwrap(),
                    devices: pisync_shared::domain::sketch::DeviceSketch::from_bytes(
                        &fleet_day.devices.to_bytes(),
                    )
                    .unwrap(),
                    ..fleet_day.clone()
                };
                day.add(black_box(&batch_day));
                (day.speeds.to_bytes(), day.devices.to_bytes())
            })
        },
    );
}

criterion_group!(benches, parse, streak, tokens, summaries);
criterion_main!(benches);
