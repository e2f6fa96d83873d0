//! `pisync-local export` against the real runner's store, on both stores: every event
//! received in the dates asked for, once, as Parquet under `events/date=…/`, with the
//! Glue table's columns and each device's school.

use crate::support::runner::{Backend, TestApp};
use crate::support::{day_entry, days_ago, on_both_backends, wait_for};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

/// One exported row: device, school, timestamp (µs), outcome, files, errors, speed.
type Row = (String, Option<String>, i64, String, i64, i64, f64);

fn read_rows(file: &std::path::Path) -> Vec<Row> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "device_id",
                "school_id",
                "timestamp",
                "received_at",
                "outcome",
                "total_files_synced",
                "total_errors",
                "internet_speed"
            ]
        );
        let text = |i: usize| batch.column(i).as_string::<i32>().clone();
        let (device, school, outcome) = (text(0), text(1), text(4));
        let timestamp = batch.column(2).as_primitive::<TimestampMicrosecondType>();
        let files = batch.column(5).as_primitive::<Int64Type>();
        let errors = batch.column(6).as_primitive::<Int64Type>();
        let speed = batch.column(7).as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            rows.push((
                device.value(i).to_owned(),
                school.is_valid(i).then(|| school.value(i).to_owned()),
                timestamp.value(i),
                outcome.value(i).to_owned(),
                files.value(i),
                errors.value(i),
                speed.value(i),
            ));
        }
    }
    rows
}

async fn every_event_is_exported_once_by_received_date(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let admin = app.administrator();
    assert_eq!(
        admin
            .put_school("north", json!({"name": "North", "timezone": "UTC"}))
            .await
            .status,
        201
    );
    assert_eq!(admin.assign_school("ex-1", Some("north")).await.status, 200);
    // A backlog from three days ago: its partition is the date it is received (this
    // run's, or the next for a run across midnight), never the date it was synced.
    let noon = days_ago(3);
    let synced = |device: &str, minute: u32, errors: u32| {
        let timestamp = noon.replace(":00:00", &format!(":{minute:02}:00"));
        json!({"device_id": device, "timestamp": timestamp, "total_files_synced": 7,
               "total_errors": errors, "internet_speed": 12.5})
    };
    let received = chrono::Utc::now().date_naive();
    let ex1 = [synced("ex-1", 1, 0), synced("ex-1", 2, 2)];
    assert_eq!(app.post_sync_events("ex-1", &ex1).await.status, 200);
    let ex2 = synced("ex-2", 3, 0);
    assert_eq!(app.post_sync_event(&ex2).await.status, 201);
    // A replay is not a second event.
    assert_eq!(app.post_sync_event(&ex2).await.status, 200);
    // Detection has applied them (the export reads the store, not the feed).
    wait_for("three syncs applied", || async {
        let body = app.daily_analytics("days=7").await.body;
        (day_entry(&body, &noon[..10])?["syncs"] == 3).then_some(())
    })
    .await;
    let out = dir.path().join("export");
    let files = app.export(&out, &["--from", &received.to_string()]);
    let partitions: Vec<_> = [Some(received), received.succ_opt()]
        .into_iter()
        .flatten()
        .map(|date| out.join("events").join(format!("date={date}")))
        .collect();
    assert!(!files.is_empty());
    for file in &files {
        assert!(
            partitions.iter().any(|p| file.parent() == Some(p.as_path())),
            "{} is not under a date received",
            file.display()
        );
    }
    let mut rows: Vec<Row> = files.iter().flat_map(|f| read_rows(f)).collect();
    rows.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
    let summary: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {:?} {} {} {} {}", r.0, r.1, r.3, r.4, r.5, r.6))
        .collect();
    assert_eq!(
        summary,
        [
            "ex-1 Some(\"north\") success 7 0 12.5",
            "ex-1 Some(\"north\") failure 7 2 12.5",
            "ex-2 None success 7 0 12.5",
        ]
    );
    let sent = chrono::DateTime::parse_from_rfc3339(ex1[0]["timestamp"].as_str().unwrap()).unwrap();
    assert_eq!(rows[0].2, sent.timestamp_micros(), "the device time, in µs UTC");
    // Dates before any event: nothing written.
    let none = app.export(
        &dir.path().join("empty"),
        &["--from", "2001-01-01", "--to", "2001-12-31"],
    );
    assert!(none.is_empty());
}

on_both_backends!(every_event_is_exported_once_by_received_date);
