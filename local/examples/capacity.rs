//! Measures the DynamoDB capacity each PiSync operation consumes, on DynamoDB Local
//! (`ReturnConsumedCapacity=TOTAL`). Prints a Markdown table.
//!
//!   cargo run --release -p pisync-local --example capacity -- ENDPOINT [STORED_EVENTS]
//!
//! STORED_EVENTS (default 10000) healthy events are loaded first, spread over 1000
//! devices, so the repeated-failures figure can be compared across table sizes.

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use pisync_shared::adapters::dynamodb::item::EventItem;
use pisync_shared::adapters::dynamodb::{CapacityMeter, DynamoStore};
use pisync_shared::domain::detection::{apply_event, apply_events, clear_notices};
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::ports::{HistoryQuery, ListFailing, Order, ReadHistory, RecordEvents};
use pisync_shared::{DeviceId, EventTime, Outcome, StoredEvent};
use std::sync::Arc;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn event(device: &str, minute: i64, errors: u32) -> StoredEvent {
    let t = |m: i64| EventTime::from_millis(1_746_600_000_000 + m * 60_000).unwrap_or_else(EventTime::now);
    StoredEvent {
        device_id: DeviceId::parse(device).expect("valid id"),
        timestamp: t(minute),
        total_files_synced: 42,
        total_errors: errors,
        internet_speed: 5.3,
        outcome: Outcome::of(errors),
        received_at: t(minute),
    }
}

/// Read units of one eventually consistent credential `GetItem` (the adapter does not
/// meter; the same request is made here with capacity reporting on).
async fn credentials_capacity(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<f64, Failure> {
    use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
    client
        .put_item()
        .table_name(table)
        .item("device_id", AttributeValue::S("device_12345".into()))
        .item("token_sha256", AttributeValue::B(vec![7u8; 32].into()))
        .item("issued_at", AttributeValue::N("1".into()))
        .send()
        .await?;
    let out = client
        .get_item()
        .table_name(table)
        .key("device_id", AttributeValue::S("device_12345".into()))
        .consistent_read(false)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await?;
    Ok(out
        .consumed_capacity()
        .and_then(|c| c.capacity_units())
        .unwrap_or(0.0))
}

fn row(name: &str, (read, write): (f64, f64), note: &str) {
    println!("| {name} | {read:.2} | {write:.2} | {note} |");
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().ok_or("usage: capacity ENDPOINT [STORED_EVENTS]")?;
    let stored: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10_000);
    let aws = pisync_shared::adapters::aws::for_endpoint(&endpoint).await?;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let table = format!("capacity-{}", std::process::id());
    let meter = Arc::new(CapacityMeter::default());
    let store = DynamoStore::new(client.clone(), &table).with_capacity_meter(meter.clone());
    store.create_table_if_missing().await?;

    // Background: healthy devices' events, written directly (not measured), by 16
    // concurrent batch writers.
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..16usize {
        let (client, table) = (client.clone(), table.clone());
        writers.spawn(async move {
            let mut batch = Vec::new();
            for i in (w..stored).step_by(16) {
                let e = event(&format!("healthy-{}", i % 1000), (i / 1000) as i64, 0);
                let item = EventItem::new(&e, None).to_item()?;
                batch.push(
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                        .build(),
                );
                if batch.len() == 25 || i + 16 >= stored {
                    let mut pending = Some(std::mem::take(&mut batch));
                    while let Some(requests) = pending.take().filter(|r| !r.is_empty()) {
                        let out = client
                            .batch_write_item()
                            .request_items(&table, requests)
                            .send()
                            .await?;
                        pending = out.unprocessed_items.and_then(|mut u| u.remove(&table));
                    }
                }
            }
            Ok::<(), Failure>(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    meter.take();

    println!("| operation ({stored} stored events) | read units | write units | note |");
    println!("| --- | --- | --- | --- |");
    let e = event("device_12345", 0, 2);
    store.record(e.clone()).await?;
    row("POST new event", meter.take(), "conditional PutItem");
    store.record(e.clone()).await?;
    row(
        "POST exact replay",
        meter.take(),
        "failed condition returns the stored item: no write",
    );
    let mut other = e.clone();
    other.total_files_synced = 1;
    store.record(other).await?;
    row("POST conflict", meter.take(), "as replay");

    for m in 1..=120 {
        store.record(event("device_12345", m, 0)).await?;
    }
    meter.take();
    let q = HistoryQuery {
        from: None,
        to: None,
        order: Order::Desc,
        limit: 50,
        after: None,
    };
    store
        .history(&DeviceId::parse("device_12345").expect("valid"), &q)
        .await?;
    row(
        "GET history page (50 events)",
        meter.take(),
        "one Query, strongly consistent, 51 items",
    );

    // Detection: first event of a device, a failure extending a run, the alert, a recovery.
    let d = "detect-1";
    for (m, errors) in [(0, 0), (1, 1), (2, 1), (3, 1), (4, 0)] {
        store.record(event(d, m, errors)).await?;
    }
    meter.take();
    let applied = apply_event(&store, StreakRule::default(), &event(d, 0, 0), EventTime::now()).await?;
    row(
        "detect: first event of a device",
        meter.take(),
        "GetItem + conditional PutItem of the state",
    );
    assert!(applied.newly_applied);
    apply_event(&store, StreakRule::default(), &event(d, 1, 1), EventTime::now()).await?;
    row(
        "detect: failure extending a run",
        meter.take(),
        "GetItem + conditional PutItem",
    );
    apply_event(&store, StreakRule::default(), &event(d, 2, 1), EventTime::now()).await?;
    meter.take();
    let alerted = apply_event(&store, StreakRule::default(), &event(d, 3, 1), EventTime::now()).await?;
    clear_notices(
        &store,
        StreakRule::default(),
        &DeviceId::parse(d).expect("valid"),
        &alerted.state.pending_notice_ids(),
    )
    .await?;
    row(
        "detect: failure that alerts (+ outbox clear)",
        meter.take(),
        "state enters the sparse index; + GetItem + PutItem to clear the outbox",
    );
    apply_event(&store, StreakRule::default(), &event(d, 3, 1), EventTime::now()).await?;
    row(
        "detect: redelivered record",
        meter.take(),
        "GetItem only: the state already reflects it",
    );
    // In order: the success at minute 4 recovers the device, then failures at 5 and 7.
    for m in [4, 5, 7] {
        let e = event(d, m, u32::from(m != 4));
        if m != 4 {
            store.record(e.clone()).await?;
        }
        let applied = apply_event(&store, StreakRule::default(), &e, EventTime::now()).await?;
        clear_notices(
            &store,
            StreakRule::default(),
            &e.device_id,
            &applied.state.pending_notice_ids(),
        )
        .await?;
    }
    let late = event(d, 6, 0); // a success uploaded late, landing inside the run
    store.record(late.clone()).await?;
    meter.take();
    apply_event(&store, StreakRule::default(), &late, EventTime::now()).await?;
    row(
        "detect: late success inside a run",
        meter.take(),
        "GetItem + Query re-reading the run (2 events) + PutItem",
    );

    for n in 0..60 {
        let device = format!("failing-{n:02}");
        for m in 0..3 {
            let e = event(&device, m, 1);
            store.record(e.clone()).await?;
            apply_event(&store, StreakRule::default(), &e, EventTime::now()).await?;
        }
    }
    meter.take();
    let page = store.repeated_failures(50, None).await?;
    row(
        &format!(
            "GET repeated-failures page ({} of 61 failing devices)",
            page.devices.len()
        ),
        meter.take(),
        "one Query per shard of the sparse index (4, and the legacy partition)",
    );

    // Backlogs: one device's N events through POST /sync-events' store call, then
    // detection of them as one stream batch (one state read and write per device).
    for n in [1usize, 10, 100] {
        let device = format!("backlog-{n}");
        let events: Vec<StoredEvent> = (0..n)
            .map(|m| event(&device, m as i64, u32::from(m % 10 == 9)))
            .collect();
        meter.take();
        for outcome in store.record_many(events.clone()).await {
            outcome?;
        }
        let (r, w) = meter.take();
        row(
            &format!("backlog of {n}: record, per event"),
            (r / n as f64, w / n as f64),
            "conditional PutItem each, 16 in flight",
        );
        apply_events(&store, StreakRule::default(), &events, EventTime::now()).await?;
        let (r, w) = meter.take();
        row(
            &format!("backlog of {n}: detection, per event"),
            (r / n as f64, w / n as f64),
            "one GetItem + one PutItem of the state for the whole batch",
        );
    }

    // Device authentication: the credential read (eventually consistent) per request
    // whose verdict is not cached.
    let credentials = pisync_shared::adapters::dynamodb::DynamoCredentials::new(
        client.clone(),
        format!("{table}-credentials"),
    );
    credentials.create_table_if_missing().await?;
    let credential_meter = credentials_capacity(&client, &format!("{table}-credentials")).await?;
    row(
        "device token check: credential read",
        (credential_meter, 0.0),
        "GetItem, eventually consistent (strongly consistent only on a mismatch: 1.0)",
    );
    client
        .delete_table()
        .table_name(format!("{table}-credentials"))
        .send()
        .await?;
    client.delete_table().table_name(&table).send().await?;
    Ok(())
}
