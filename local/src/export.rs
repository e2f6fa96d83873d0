//! `pisync-local export`: every stored event as Parquet, in the layout the AWS export
//! writes to S3 (`events/date=YYYY-MM-DD/`, the UTC date each event was received) and
//! with the Glue table's columns, so the documented Athena queries run on it unchanged
//! (DuckDB: docs/analytics.md). One file per date, written beside its final name and
//! renamed into place when complete.

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use pisync_shared::domain::fleet::Day;
use pisync_shared::ports::{ExportEvents, ExportedEvent, StoreError};
use pisync_shared::EventTime;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows read from the store per page.
const PAGE_ROWS: usize = 5_000;
/// Rows per Parquet row group (what a reader skips or reads at once).
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// The file each date's folder holds.
const FILE_NAME: &str = "part-00000.parquet";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    #[error("writing {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("writing Parquet {path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("building a batch of rows: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// What an export wrote.
#[derive(Debug, Default, PartialEq)]
pub struct Exported {
    pub events: u64,
    /// One per UTC date received, in date order.
    pub files: Vec<PathBuf>,
}

/// The columns: the Glue table's (template.yaml, `ExportEventsTable`).
pub fn schema() -> SchemaRef {
    let time = || DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, false),
        Field::new("school_id", DataType::Utf8, true),
        Field::new("timestamp", time(), false),
        Field::new("received_at", time(), false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("total_files_synced", DataType::Int64, false),
        Field::new("total_errors", DataType::Int64, false),
        Field::new("internet_speed", DataType::Float64, false),
    ]))
}

/// Writes the events received on the UTC dates `first` to `last` (inclusive; `None`:
/// unbounded) under `out`.
pub async fn export(
    store: &dyn ExportEvents,
    out: &Path,
    first: Option<Day>,
    last: Option<Day>,
) -> Result<Exported, ExportError> {
    let start = |day: Day| EventTime::from_millis(day.number() * 86_400_000);
    let from = first.and_then(start).unwrap_or(EventTime::FIRST);
    let until = last
        .and_then(|d| start(d.plus(1)))
        .unwrap_or(EventTime::LAST.plus_millis(1));
    let mut files: BTreeMap<Day, DateFile> = BTreeMap::new();
    let mut exported = Exported::default();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .export_page(from, until, after.as_deref(), PAGE_ROWS)
            .await?;
        let mut by_date: BTreeMap<Day, Vec<ExportedEvent>> = BTreeMap::new();
        for e in page.events {
            by_date.entry(Day::of(e.event.received_at)).or_default().push(e);
        }
        for (day, events) in by_date {
            let file = match files.entry(day) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => v.insert(DateFile::create(out, day)?),
            };
            file.write(&events)?;
            exported.events += events.len() as u64;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    for file in files.into_values() {
        exported.files.push(file.finish()?);
    }
    Ok(exported)
}

/// One date's file while it is written.
struct DateFile {
    writer: ArrowWriter<File>,
    partial: PathBuf,
    done: PathBuf,
}

impl DateFile {
    fn create(out: &Path, day: Day) -> Result<Self, ExportError> {
        let dir = out.join("events").join(format!("date={}", day.text()));
        std::fs::create_dir_all(&dir).map_err(|source| ExportError::Io {
            path: dir.clone(),
            source,
        })?;
        let partial = dir.join(format!(".{FILE_NAME}.partial"));
        let file = File::create(&partial).map_err(|source| ExportError::Io {
            path: partial.clone(),
            source,
        })?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(file, schema(), Some(properties)).map_err(|source| {
            ExportError::Parquet {
                path: partial.clone(),
                source,
            }
        })?;
        Ok(Self {
            writer,
            done: dir.join(FILE_NAME),
            partial,
        })
    }

    fn write(&mut self, events: &[ExportedEvent]) -> Result<(), ExportError> {
        let batch = rows(events)?;
        self.writer.write(&batch).map_err(|source| ExportError::Parquet {
            path: self.partial.clone(),
            source,
        })
    }

    fn finish(self) -> Result<PathBuf, ExportError> {
        let Self {
            writer,
            partial,
            done,
        } = self;
        writer.close().map_err(|source| ExportError::Parquet {
            path: partial.clone(),
            source,
        })?;
        std::fs::rename(&partial, &done).map_err(|source| ExportError::Io {
            path: done.clone(),
            source,
        })?;
        Ok(done)
    }
}

/// The events as one batch of the export's columns.
fn rows(events: &[ExportedEvent]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let n = events.len();
    let mut device = StringBuilder::with_capacity(n, n * 16);
    let mut school = StringBuilder::with_capacity(n, n * 12);
    let mut timestamp = TimestampMicrosecondBuilder::with_capacity(n);
    let mut received = TimestampMicrosecondBuilder::with_capacity(n);
    let mut outcome = StringBuilder::with_capacity(n, n * 7);
    let mut files = Int64Builder::with_capacity(n);
    let mut errors = Int64Builder::with_capacity(n);
    let mut speed = Float64Builder::with_capacity(n);
    for ExportedEvent { event, school_id } in events {
        device.append_value(event.device_id.as_str());
        school.append_option(school_id.as_ref().map(|s| s.as_str()));
        timestamp.append_value(event.timestamp.millis() * 1000);
        received.append_value(event.received_at.millis() * 1000);
        outcome.append_value(event.outcome.as_str());
        files.append_value(i64::from(event.total_files_synced));
        errors.append_value(i64::from(event.total_errors));
        speed.append_value(event.internet_speed);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(device.finish()),
        Arc::new(school.finish()),
        Arc::new(timestamp.finish()),
        Arc::new(received.finish()),
        Arc::new(outcome.finish()),
        Arc::new(files.finish()),
        Arc::new(errors.finish()),
        Arc::new(speed.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}
