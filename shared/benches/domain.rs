//! Domain micro-benchmarks: parsing + validating one event, the streak rule, and
//! checking a device token.

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

criterion_group!(benches, parse, streak, tokens);
criterion_main!(benches);
