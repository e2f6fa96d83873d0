//! What a late event inside a very long run of failures costs detection: a device with
//! RUN failures in a row, then 20 late failures and one late success landing inside
//! the run, each stored and applied as its own stream record. Prints a Markdown table.
//!
//!   cargo run --release -p pisync-local --example late_events -- sqlite 1000000
//!   cargo run --release -p pisync-local --example late_events -- ENDPOINT 100000
//!
//! `sqlite` measures the embedded store (time per late event); an endpoint measures
//! DynamoDB Local (time, and the read and write units it reports).

use pisync_shared::adapters::dynamodb::item::EventItem;
use pisync_shared::adapters::dynamodb::{CapacityMeter, DynamoStore};
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::domain::detection::{apply_records, Record, Rules, COUNT_PAGES_PER_BATCH};
use pisync_shared::domain::sweep::check_silent_devices;
use pisync_shared::ports::{DeviceStates, RecordEvents, SilenceWatch};
use pisync_shared::{DeviceId, EventTime, Outcome, StoredEvent};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Failure = Box<dyn std::error::Error + Send + Sync>;

const DEVICE: &str = "long-run";
const LATE: usize = 20;

/// The device's event at `second` seconds after a fixed start (a run has room for
/// late events between its failures: they are 10 s apart).
fn event(second: i64, errors: u32) -> StoredEvent {
    let t = EventTime::from_millis(1_746_600_000_000 + second * 1000).unwrap_or_else(EventTime::now);
    StoredEvent {
        device_id: DeviceId::parse(DEVICE).expect("a valid id"),
        timestamp: t,
        total_files_synced: 1,
        total_errors: errors,
        internet_speed: 1.0,
        outcome: Outcome::of(errors),
        received_at: EventTime::now(),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Stores the run (the success before it, then `run` failures) without detection.
async fn load_run(store: &dyn RecordEvents, run: usize) -> Result<(), Failure> {
    store.record(event(0, 0)).await?;
    let mut batch = Vec::with_capacity(1000);
    for i in 0..run {
        batch.push(event(10 * (i as i64 + 1), 1));
        if batch.len() == 1000 || i + 1 == run {
            for outcome in store.record_many(std::mem::take(&mut batch)).await {
                outcome?;
            }
        }
    }
    Ok(())
}

/// Detection applies the run as the stream would deliver it (batches of 100), then
/// the late events one record each; returns the time of each late event's record.
async fn measure(
    states: &dyn DeviceStates,
    watch: &dyn SilenceWatch,
    events: &dyn RecordEvents,
    run: usize,
    meter: Option<&CapacityMeter>,
) -> Result<(), Failure> {
    let rules = Rules::default();
    let mut position = 0u64;
    let mut next = |e: StoredEvent| {
        position += 1;
        Record::new(
            pisync_shared::domain::applied::StreamPosition::parse(&position.to_string()),
            e,
        )
    };
    let mut batch = vec![next(event(0, 0))];
    for i in 0..run {
        batch.push(next(event(10 * (i as i64 + 1), 1)));
        if batch.len() == 100 || i + 1 == run {
            apply_records(states, rules, &std::mem::take(&mut batch), EventTime::now()).await?;
        }
    }
    let loaded = states
        .load(&DeviceId::parse(DEVICE).expect("valid"))
        .await?
        .ok_or("no state")?;
    assert_eq!(loaded.state.consecutive_failures() as usize, run);
    if let Some(meter) = meter {
        meter.take();
    }
    // Late failures, spread over the run (between its failures).
    let mut times = Vec::new();
    let mut units = (0.0, 0.0);
    for k in 0..LATE {
        let second = 10 * (((k + 1) * run / (LATE + 1)) as i64) + 5;
        let late = event(second, 2);
        events.record(late.clone()).await?;
        let record = next(late);
        let began = Instant::now();
        apply_records(states, rules, &[record], EventTime::now()).await?;
        times.push(began.elapsed());
        if let Some(meter) = meter {
            let (r, w) = meter.take();
            units = (units.0 + r, units.1 + w);
        }
    }
    let state = states
        .load(&DeviceId::parse(DEVICE).expect("valid"))
        .await?
        .ok_or("no state")?;
    assert_eq!(
        state.state.consecutive_failures() as usize,
        run + LATE,
        "each late failure joined the run once"
    );
    let per = |u: f64| u / LATE as f64;
    println!(
        "| {run} | late failure inside the run | {:.3} ms | {} |",
        median(times).as_secs_f64() * 1000.0,
        meter.map_or("-".into(), |_| format!(
            "{:.2} RRU + {:.2} WRU",
            per(units.0),
            per(units.1)
        ))
    );
    // One late success halfway: the failures after it are counted, a bounded number of
    // pages in the batch that brings it, the rest by the periodic check (each run of
    // it as much again).
    let second = 10 * (run as i64 / 2) + 7;
    let success = event(second, 0);
    events.record(success.clone()).await?;
    let record = next(success);
    let began = Instant::now();
    apply_records(states, rules, &[record], EventTime::now()).await?;
    let took = began.elapsed();
    let (r, w) = meter.map_or((0.0, 0.0), CapacityMeter::take);
    let load = || async {
        states
            .load(&DeviceId::parse(DEVICE).expect("valid"))
            .await?
            .ok_or_else(|| Failure::from("no state"))
    };
    let pending = load().await?.state.counting.is_some();
    println!(
        "| {run} | late success halfway: its batch (reads at most {COUNT_PAGES_PER_BATCH} pages{}) | {:.1} ms | {} |",
        if pending { "; more to count" } else { "; counted" },
        took.as_secs_f64() * 1000.0,
        meter.map_or("-".into(), |_| format!("{r:.1} RRU + {w:.2} WRU"))
    );
    let (mut checks, mut slowest, mut units) = (0, Duration::ZERO, (0.0, 0.0));
    while load().await?.state.counting.is_some() {
        let began = Instant::now();
        check_silent_devices(states, watch, rules, EventTime::now()).await?;
        slowest = slowest.max(began.elapsed());
        checks += 1;
        if let Some(meter) = meter {
            let (r, w) = meter.take();
            units = (units.0 + r, units.1 + w);
        }
        if checks > 10_000 {
            return Err("the count never finished".into());
        }
    }
    let state = load().await?.state;
    println!(
        "| {run} | … the rest, by {checks} periodic checks (counts the {} failures after it) | slowest check {:.1} ms | {} |",
        state.consecutive_failures(),
        slowest.as_secs_f64() * 1000.0,
        meter.map_or("-".into(), |_| format!("{:.1} RRU + {:.2} WRU in all", units.0, units.1))
    );
    let late_after = (0..LATE)
        .filter(|k| 10 * (((k + 1) * run / (LATE + 1)) as i64) + 5 > second)
        .count();
    assert_eq!(
        state.consecutive_failures() as usize,
        run - run / 2 + late_after,
        "the failures after the success, exactly"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let target = args.next().ok_or("usage: late_events sqlite|ENDPOINT [RUN]")?;
    let run: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(100_000);
    println!("| run (failures) | late event | time to apply | capacity per event |");
    println!("| --- | --- | --- | --- |");
    if target == "sqlite" {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(&dir.path().join("late.db"))?;
        load_run(&store, run).await?;
        measure(&store, &store, &store, run, None).await?;
    } else {
        let aws = pisync_shared::adapters::aws::for_endpoint(&Default::default(), &target).await?;
        let client = aws_sdk_dynamodb::Client::new(&aws);
        let table = format!("late-{}", std::process::id());
        let meter = Arc::new(CapacityMeter::default());
        let store = DynamoStore::new(client.clone(), &table).with_capacity_meter(meter.clone());
        store.create_table_if_missing().await?;
        // The run is written with BatchWriteItem (not measured): fast to load.
        let items: Vec<_> = std::iter::once(event(0, 0))
            .chain((0..run).map(|i| event(10 * (i as i64 + 1), 1)))
            .map(|e| EventItem::new(&e, None).to_item())
            .collect::<Result<_, _>>()?;
        store.put_items(items).await?;
        measure(&store, &store, &store, run, Some(&meter)).await?;
        client.delete_table().table_name(&table).send().await?;
    }
    Ok(())
}
