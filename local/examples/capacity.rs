//! Measures the DynamoDB capacity each PiSync operation consumes, on DynamoDB Local
//! (`ReturnConsumedCapacity=TOTAL`). Prints a Markdown table.
//!
//!   cargo run --release -p pisync-local --example capacity -- ENDPOINT [STORED_EVENTS] [DEVICES] [SCHOOLS]
//!
//! STORED_EVENTS (default 10000) healthy events are loaded first, spread over 1000
//! devices, so the list figures can be compared across table sizes; DEVICES (default
//! 1000) device states are loaded too (90% healthy, 5% failing, 5% silent), spread in
//! blocks of 20 over SCHOOLS schools (default 10), so the fleet and school reads can be
//! compared across fleet and district sizes. The school reads are measured on one more
//! school, `bench`, with the same 60 devices (48 healthy, 6 failing, 6 silent) in every
//! run: what a school's page costs beside a fleet and a district of any size.

use pisync_shared::adapters::dynamodb::item::{EventItem, StateItem};
use pisync_shared::adapters::dynamodb::{CapacityMeter, DynamoStore};
use pisync_shared::domain::delivery::deliver_pending;
use pisync_shared::domain::detection::{apply_event, apply_records, Record, Rules};
use pisync_shared::domain::device::{DeviceState, Status};
use pisync_shared::domain::fleet::{Day, DayAddition, SchoolDays};
use pisync_shared::domain::school::SchoolId;
use pisync_shared::domain::school_digest::{compose_digest, DigestSources};
use pisync_shared::domain::sweep::check_silent_devices;
use pisync_shared::ports::{
    AlertPublisher, DigestLedger, HistoryQuery, ListFailing, ManageSchools, Order, PublishError, ReadDevices,
    ReadFleet, ReadHistory, ReadSchools, RecordDays, RecordEvents, Within,
};
use pisync_shared::{DeviceId, EventTime, Outcome, StoredEvent};
use std::sync::Arc;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn t(minute: i64) -> EventTime {
    EventTime::from_millis(1_746_600_000_000 + minute * 60_000).unwrap_or_else(EventTime::now)
}

fn event(device: &str, minute: i64, errors: u32) -> StoredEvent {
    StoredEvent {
        device_id: DeviceId::parse(device).expect("valid id"),
        timestamp: t(minute),
        total_files_synced: 42,
        total_errors: errors,
        internet_speed: 5.3,
        outcome: Outcome::of(errors),
        received_at: EventTime::now(),
    }
}

/// Publishes nowhere (the capacity of the outbox is what is measured).
struct Discard;

#[async_trait::async_trait]
impl AlertPublisher for Discard {
    async fn publish(&self, _: &pisync_shared::domain::notice::Notice) -> Result<(), PublishError> {
        Ok(())
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
    let endpoint = args
        .next()
        .ok_or("usage: capacity ENDPOINT [STORED_EVENTS] [DEVICES] [SCHOOLS]")?;
    let stored: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10_000);
    let fleet: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1_000);
    let school_count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10).max(1);
    let school_ids: Vec<SchoolId> = (0..school_count)
        .map(|k| SchoolId::parse(&format!("school-{k:03}")).ok_or("a valid school id"))
        .collect::<Result<_, _>>()?;
    let aws = pisync_shared::adapters::aws::for_endpoint(&Default::default(), &endpoint).await?;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let table = format!("capacity-{}", std::process::id());
    let meter = Arc::new(CapacityMeter::default());
    let store = DynamoStore::new(client.clone(), &table).with_capacity_meter(meter.clone());
    store.create_table_if_missing().await?;
    let rules = Rules::default();

    // Background, not measured: healthy devices' events, and `fleet` device states.
    type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;
    let mut items: Vec<Item> = Vec::with_capacity(stored + fleet);
    // The same events' day summaries, as detection would have kept them: the fleet's
    // and the bench school's days, their speeds spread 1–370 Mbit/s.
    let mut summaries: Option<DayAddition> = None;
    let bench_days = SchoolDays::utc(SchoolId::parse("bench").ok_or("a valid school id")?);
    for chunk in (0..stored).collect::<Vec<_>>().chunks(10_000) {
        let mut counted = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let e = event(&format!("healthy-{}", i % 1000), (i / 1000) as i64, 0);
            items.push(EventItem::new(&e, None).to_item()?);
            let spread = StoredEvent {
                internet_speed: 1.0 + (i % 997) as f64 * 0.37,
                ..e
            };
            counted.push((Some(bench_days.clone()), spread));
        }
        if let Some(addition) = DayAddition::of(&counted) {
            match &mut summaries {
                Some(all) => all.merge(&addition),
                None => summaries = Some(addition),
            }
        }
    }
    // A reported device of `school`: one in `every` silent, the next failing.
    let reported = |id: String,
                    school: &SchoolId,
                    i: usize,
                    every: usize|
     -> Result<Item, Box<dyn std::error::Error + Send + Sync>> {
        let mut state = DeviceState::new(DeviceId::parse(&id).ok_or("a valid id")?);
        state.school_id = Some(school.clone());
        let errors = u32::from(i % every == 1);
        for m in 0..3 {
            state.apply(
                &event(state.device_id.as_str(), m, errors),
                rules.streak,
                t(10),
                &mut Vec::new(),
            );
        }
        let status = match i % every {
            0 => {
                state.silent_since = state.last_seen_at;
                Status::Silent
            }
            1 => Status::Failing,
            _ => Status::Healthy,
        };
        let failing = state.is_failing(rules.streak);
        Ok(serde_dynamo::to_item(StateItem::new(
            &state,
            1,
            Some(status),
            failing,
        )?)?)
    };
    for i in 0..fleet {
        items.push(reported(
            format!("fleet-{i:07}"),
            &school_ids[(i / 20) % school_count],
            i,
            20,
        )?);
    }
    // The bench school's 60 devices, and every school's counts item as state saves
    // would have kept it.
    let bench = SchoolId::parse("bench").ok_or("a valid school id")?;
    for i in 0..60 {
        items.push(reported(format!("bench-{i:02}"), &bench, i, 10)?);
    }
    let mut counts: std::collections::BTreeMap<String, [i64; 3]> = std::collections::BTreeMap::new();
    for item in &items {
        let (
            Some(aws_sdk_dynamodb::types::AttributeValue::S(school)),
            Some(aws_sdk_dynamodb::types::AttributeValue::S(status)),
        ) = (item.get("school_id"), item.get("status"))
        else {
            continue;
        };
        let tally = counts.entry(school.clone()).or_default();
        tally[0] += 1;
        tally[1] += i64::from(status == "failing");
        tally[2] += i64::from(status == "silent");
    }
    for (id, [total, failing, silent]) in &counts {
        let n = |v: i64| aws_sdk_dynamodb::types::AttributeValue::N(v.to_string());
        let mut item = Item::new();
        item.insert(
            "pk".into(),
            aws_sdk_dynamodb::types::AttributeValue::S(format!("SCHOOL#{id}")),
        );
        item.insert(
            "sk".into(),
            aws_sdk_dynamodb::types::AttributeValue::S("COUNTS".into()),
        );
        item.insert("assigned".into(), n(*total));
        item.insert("total".into(), n(*total));
        item.insert("failing".into(), n(*failing));
        item.insert("silent".into(), n(*silent));
        items.push(item);
    }
    store.put_items(items).await?;
    for id in school_ids.iter().chain([&bench]) {
        store
            .put_school(&pisync_shared::test_util::school(id.as_str()), true)
            .await?;
    }
    if let Some(all) = &summaries {
        // Added as a late batch is (straight into its days), so the roll-up's cursor is
        // left for the batches measured below.
        store.add_days(all, all.at.plus_millis(3_600_000)).await?;
    }
    meter.take();

    println!(
        "| operation ({stored} stored events, {fleet} devices, {school_count} schools) | read units | write units | note |"
    );
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
    let applied = apply_event(&store, rules, &event(d, 0, 0), EventTime::now()).await?;
    row(
        "detect: first event of a device",
        meter.take(),
        "GetItem + a transaction: the state, +1 device in the counts, its silence check",
    );
    assert_eq!(applied.new_events.len(), 1);
    apply_event(&store, rules, &event(d, 1, 1), EventTime::now()).await?;
    row(
        "detect: failure extending a run",
        meter.take(),
        "GetItem + conditional PutItem (status and totals ride along)",
    );
    apply_event(&store, rules, &event(d, 2, 1), EventTime::now()).await?;
    meter.take();
    apply_event(&store, rules, &event(d, 3, 1), EventTime::now()).await?;
    row(
        "detect: failure that alerts",
        meter.take(),
        "GetItem + a transaction: the state (enters the failing index), the outbox entry, the counts",
    );
    deliver_pending(&store, &Discard).await?;
    row(
        "deliver: one notice from the outbox",
        meter.take(),
        "Query of the outbox + DeleteItem once published",
    );
    // A failing device's next failure, in no school and in one: the failing index
    // entries move (their sort key is the streak).
    for (device, school) in [("detect-fail", None), ("detect-school", Some(&bench))] {
        let id = DeviceId::parse(device).ok_or("a valid id")?;
        if school.is_some() {
            pisync_shared::domain::assignment::assign(
                &store,
                &id,
                school,
                rules.streak,
                |_| true,
                EventTime::now(),
            )
            .await?;
        }
        for m in 0..5 {
            store.record(event(device, m, 1)).await?;
        }
        for m in 0..4 {
            apply_event(&store, rules, &event(device, m, 1), EventTime::now()).await?;
        }
        deliver_pending(&store, &Discard).await?;
        meter.take();
        apply_event(&store, rules, &event(device, 4, 1), EventTime::now()).await?;
        row(
            &format!(
                "detect: failure extending a failing run{}",
                if school.is_some() {
                    ", device in a school"
                } else {
                    ""
                }
            ),
            meter.take(),
            "GetItem + PutItem; the failing index's entry moves (and the school's, in a school)",
        );
    }
    apply_event(&store, rules, &event(d, 3, 1), EventTime::now()).await?;
    row(
        "detect: redelivered record",
        meter.take(),
        "GetItem only: the state already reflects it",
    );
    // In order: the success at minute 4 recovers the device, then a failure at 7; the
    // late failure at 6 makes a run of two (no alert, so the row is the plain write).
    for m in [4, 7] {
        let e = event(d, m, u32::from(m != 4));
        if m != 4 {
            store.record(e.clone()).await?;
        }
        apply_event(&store, rules, &e, EventTime::now()).await?;
    }
    deliver_pending(&store, &Discard).await?;
    let late_failure = event(d, 6, 1);
    store.record(late_failure.clone()).await?;
    meter.take();
    apply_event(&store, rules, &late_failure, EventTime::now()).await?;
    row(
        "detect: late failure inside a run",
        meter.take(),
        "GetItem + PutItem: the run is not read",
    );
    let late = event(d, 6, 0).clone();
    let late = StoredEvent {
        timestamp: late.timestamp.plus_millis(1),
        ..late
    };
    store.record(late.clone()).await?;
    meter.take();
    apply_event(&store, rules, &late, EventTime::now()).await?;
    row(
        "detect: late success inside a run",
        meter.take(),
        "GetItem + a Query counting the failures after it (1 here) + PutItem",
    );
    let school = Some(SchoolDays::utc(bench.clone()));
    let addition = DayAddition::of(&[(school.clone(), event(d, 10, 0)), (school, event(d, 11, 1))])
        .ok_or("no events")?;
    store.add_days(&addition, addition.at).await?;
    row(
        "detect: day totals, per stream batch",
        meter.take(),
        "one conditional PutItem of the batch's totals into its 5-minute slot, idempotent",
    );
    // A fuller batch: 50 events of 50 devices (5 s of a busy district), whose sketches
    // make the delta larger.
    let fifty: Vec<(Option<SchoolDays>, StoredEvent)> = (0..50)
        .map(|i| {
            let e = StoredEvent {
                internet_speed: 2.0 + f64::from(i) * 1.7,
                ..event(&format!("batch-{i:02}"), 12, u32::from(i % 10 == 0))
            };
            (Some(SchoolDays::utc(bench.clone())), e)
        })
        .collect();
    let fuller = DayAddition::of(&fifty).ok_or("no events")?;
    store.add_days(&fuller, fuller.at).await?;
    row(
        "detect: day totals, per stream batch of 50 events (50 devices)",
        meter.take(),
        "the same PutItem; its sketches (50 device hashes and the speeds' bins, fleet and school) in base64",
    );
    store.roll_up_days(addition.at.plus_millis(30 * 60_000)).await?;
    row(
        "roll-up of the day totals (per run, 2 batches waiting)",
        meter.take(),
        "cursor GetItem, one Query per slot since the last run, per scope and day touched a GetItem and a conditional PutItem of its totals and sketches + the cursor",
    );

    for n in 0..60 {
        let device = format!("failing-{n:02}");
        for m in 0..3 {
            let e = event(&device, m, 1);
            store.record(e.clone()).await?;
            apply_event(&store, rules, &e, EventTime::now()).await?;
        }
    }
    meter.take();
    let page = store.repeated_failures(50, None, &Within::Fleet).await?;
    row(
        &format!("GET repeated-failures page ({} devices)", page.devices.len()),
        meter.take(),
        "one Query per partition of the failing index (4 shards, silent, legacy)",
    );

    store.device(&DeviceId::parse(d).ok_or("a valid id")?).await?;
    row("GET device", meter.take(), "GetItem, eventually consistent");
    for (name, status) in [
        ("all", None),
        ("healthy", Some(Status::Healthy)),
        ("failing", Some(Status::Failing)),
        ("silent", Some(Status::Silent)),
    ] {
        let page = store.devices(status, 50, None, &Within::Fleet).await?;
        row(
            &format!("GET devices page, {name} ({} devices)", page.devices.len()),
            meter.take(),
            "index Query (3 partitions for all, 5 for failing) + BatchGetItem of the page's states",
        );
    }
    let one_school = Within::Schools(vec![bench.clone()]);
    for (name, status) in [
        ("all", None),
        ("healthy", Some(Status::Healthy)),
        ("failing", Some(Status::Failing)),
        ("silent", Some(Status::Silent)),
    ] {
        let page = store.devices(status, 50, None, &one_school).await?;
        row(
            &format!(
                "GET devices?school= page, {name} ({} devices)",
                page.devices.len()
            ),
            meter.take(),
            "school index Query (one partition per status) + BatchGetItem of the page's states",
        );
    }
    let page = store.repeated_failures(50, None, &one_school).await?;
    row(
        &format!(
            "GET repeated-failures?school= page ({} devices)",
            page.devices.len()
        ),
        meter.take(),
        "school failing index: two partitions (reporting, silent)",
    );
    store.school(&bench).await?;
    store.school_counts(std::slice::from_ref(&bench)).await?;
    row(
        "GET school",
        meter.take(),
        "GetItem of the school + GetItem of its counts",
    );
    let schools = store.schools(None, 50).await?;
    let ids: Vec<SchoolId> = schools.schools.iter().map(|s| s.school_id.clone()).collect();
    store.school_counts(&ids).await?;
    row(
        &format!("GET schools page ({} schools)", ids.len()),
        meter.take(),
        "one Query of the schools partition + BatchGetItem of their counts items",
    );
    let today = Day::of(t(0));
    store.counts(&Within::Fleet).await?;
    store.days(today.plus(-13), today, &Within::Fleet).await?;
    row(
        "GET fleet summary (14 days)",
        meter.take(),
        "GetItem of the counts + one Query of the days (+ 4 of the day shards written before schools)",
    );
    store.school(&bench).await?;
    store.counts(&one_school).await?;
    store.days(today.plus(-13), today, &one_school).await?;
    row(
        "GET fleet summary?school= (14 days)",
        meter.take(),
        "GetItem of the school + of its counts + one Query of its days",
    );

    // Analytics: the same day items, with their sketches (the stored events' days).
    store.days(today.plus(-13), today, &Within::Fleet).await?;
    row(
        "GET analytics/daily (14 days, the fleet)",
        meter.take(),
        "one Query of the fleet's days (+ 4 of the day shards written before schools)",
    );
    store.school(&bench).await?;
    store.days(today.plus(-13), today, &one_school).await?;
    row(
        "GET analytics/daily?school= (14 days)",
        meter.take(),
        "GetItem of the school + one Query of its days",
    );
    let ranked =
        pisync_shared::domain::analytics::rank_schools(&store, &store, &Within::Fleet, 7, t(60)).await?;
    row(
        &format!("GET analytics/schools (7 days, {} schools)", ranked.len()),
        meter.take(),
        "Query of the schools, per 16 schools a BatchGetItem of their counts, one Query of days per school",
    );

    // The daily digest: composing the bench school's (60 devices), saving it once,
    // and the check's look for digests due (the schools list, every run).
    let bench_school = store.school(&bench).await?.ok_or("the bench school")?;
    meter.take();
    let now = EventTime::now();
    let sources = DigestSources {
        schools: &store,
        devices: &store,
        notices: &store,
        days: &store,
    };
    let digest = compose_digest(sources, &bench_school, bench_school.local_date(now), now).await?;
    row(
        "digest: compose (60 devices)",
        meter.take(),
        "counts GetItem, a page of failing and of silent (index Query + BatchGetItem each), notice feed Query, yesterday's day",
    );
    store.save_digest(&digest, bench_school.local_date(now)).await?;
    row(
        "digest: save",
        meter.take(),
        "one transaction: the school's mark (conditional), the outbox item, four history items",
    );
    let listed = store.schools(None, 100).await?;
    row(
        &format!("digest check: schools page ({} schools)", listed.schools.len()),
        meter.take(),
        "one Query of the schools partition per 100 schools, every run",
    );

    // The silence check: `fleet` devices are due now... none here (they were loaded
    // directly); measure one device due but still reporting, and one gone silent.
    let quiet = "quiet-1";
    let mut e = event(quiet, 0, 0);
    e.received_at = EventTime::now().plus_millis(-49 * 3_600_000);
    store.record(e.clone()).await?;
    apply_event(&store, rules, &e, e.received_at).await?;
    let reporting = "reporting-1";
    let mut r = event(reporting, 0, 0);
    r.received_at = EventTime::now().plus_millis(-3_600_000);
    store.record(r.clone()).await?;
    apply_records(&store, rules, &[Record::new(None, r.clone())], r.received_at).await?;
    meter.take();
    let report = check_silent_devices(
        &store,
        &store,
        rules,
        EventTime::now().plus_millis(47 * 3_600_000),
    )
    .await?;
    row(
        &format!("silence check run ({} devices due, {} silent)", report.checked, report.notices.len()),
        meter.take(),
        "cursor GetItem, one Query per 5-minute slot since the last run, per device a GetItem + a reschedule PutItem or the silent transaction",
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
        // Its second batch: the device exists, as for most uploads.
        let later: Vec<StoredEvent> = (n..2 * n)
            .map(|m| event(&device, m as i64, u32::from(m % 10 == 9)))
            .collect();
        for outcome in store.record_many(later.clone()).await {
            outcome?;
        }
        apply_records(&store, rules, &records(&events), EventTime::now()).await?;
        meter.take();
        apply_records(&store, rules, &records(&later), EventTime::now()).await?;
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

fn records(events: &[StoredEvent]) -> Vec<Record> {
    events.iter().map(|e| Record::new(None, e.clone())).collect()
}
