//! detect-failures: consumes the table's change stream and keeps each device's state —
//! streak, status, totals — and the fleet's per-day totals; decides alerts and
//! recovery and back-online notices, and publishes them.
//!
//! Exactly-once state: each device's records are applied together, each stored event
//! once however often Lambda delivers it ([`pisync_shared::domain::applied`]).
//! At-least-once notices: a notice is saved to the outbox in the same write as the
//! state change that decided it, then published and removed; if publishing fails the
//! record still succeeds and the notice waits for the next delivery round (here, or
//! the scheduled watch-devices), so a channel that is down never stalls detection.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use pisync_shared::adapters::dynamodb::item::event_from_image;
use pisync_shared::domain::applied::StreamPosition;
use pisync_shared::domain::delivery::{deliver_pending, Owed};
use pisync_shared::domain::detection::{apply_records, Record, Rules};
use pisync_shared::domain::fleet::{DayAddition, SchoolDays};
use pisync_shared::function::{Aws, BoxError, EventFunction, Local};
use pisync_shared::metrics::Figures;
use pisync_shared::ports::{AlertPublisher, DeviceStates, ExportedEvent, Outbox, RecordDays, SendExport};
use pisync_shared::{EventTime, Outcome, StoredEvent};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Tries at adding a batch's day totals: about 8 s of a store outage.
const DAY_TOTAL_ATTEMPTS: u32 = 5;

#[derive(Clone)]
pub struct DetectFailures {
    states: Arc<dyn DeviceStates>,
    days: Arc<dyn RecordDays>,
    outbox: Arc<dyn Outbox>,
    alerts: Arc<dyn AlertPublisher>,
    /// Where applied events go on to the data team's export (AWS: Firehose; none
    /// locally, where `pisync-local export` reads the store).
    export: Option<Arc<dyn SendExport>>,
    rules: Rules,
    /// Shared by the clones: a round that left notices behind makes the next batch
    /// deliver too.
    owed: Arc<Owed>,
}

impl EventFunction for DetectFailures {
    const NAME: &'static str = env!("CARGO_PKG_NAME");
    type Event = Event;
    type Response = DynamoDbEventResponse;

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        let store = aws.store().await?;
        Ok(Self {
            states: store.clone(),
            days: store.clone(),
            outbox: store,
            alerts: aws.alerts().await?,
            export: aws.export().await?,
            rules: aws.config.rules(),
            owed: Arc::default(),
        })
    }

    /// Processes one batch (see [`detect`]), adds its figures to the process's
    /// metrics and answers Lambda.
    async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        let detected = detect(self, event).await;
        detected.figures.record();
        detected.response
    }
}

impl DetectFailures {
    /// The local runner's detector: the runner's store, notices and rules.
    pub fn from_local(local: &Local) -> Self {
        Self {
            states: local.store.clone(),
            days: local.store.clone(),
            outbox: local.store.clone(),
            alerts: local.alerts.clone(),
            export: None,
            rules: local.config.rules(),
            owed: local.owed.clone(),
        }
    }

    /// The same, loading and saving device states through `states` instead (a test's
    /// store that fails on demand).
    pub fn with_states(self, states: Arc<dyn DeviceStates>) -> Self {
        Self { states, ..self }
    }

    /// The same, sending applied events on to `export`.
    pub fn with_export(self, export: Arc<dyn SendExport>) -> Self {
        Self {
            export: Some(export),
            ..self
        }
    }

    /// The same, with other rules.
    pub fn with_rules(self, rules: Rules) -> Self {
        Self { rules, ..self }
    }
}

/// What one batch did: Lambda's answer, and the figures to report.
pub struct Detected {
    pub response: DynamoDbEventResponse,
    pub figures: Figures,
}

/// Records are grouped by device; each device's are applied together in
/// device-timestamp order, with one state read and one state write. If a device's
/// records cannot be applied, the lowest stream position among them is reported, so
/// Lambda retries from there and nothing after it is skipped; records that did
/// succeed are recognised on the retry and change nothing.
pub async fn detect(deps: &DetectFailures, mut event: Event) -> Detected {
    let now = EventTime::now();
    let mut figures = Figures::default();
    let mut by_device: BTreeMap<String, Vec<(usize, Record)>> = BTreeMap::new();
    let mut first_failed: Option<usize> = None;
    for (position, record) in event.records.iter_mut().enumerate() {
        if record.event_name != "INSERT" {
            continue; // MODIFY and REMOVE (TTL expiry) are not new events
        }
        // The image is read once: taken, not cloned (a failure is reported by its
        // sequence number, which stays).
        match event_from_image(std::mem::take(&mut record.change.new_image)) {
            None => {} // not an event item
            Some(Ok(e)) => {
                let sequence = record
                    .change
                    .sequence_number
                    .as_deref()
                    .and_then(StreamPosition::parse);
                by_device
                    .entry(e.device_id.to_string())
                    .or_default()
                    .push((position, Record::new(sequence, e)));
            }
            Some(Err(err)) => {
                tracing::error!(error = %err, sequence = ?record.change.sequence_number, "undecodable event image");
                first_failed = first_failed.min(Some(position)).or(Some(position));
            }
        }
    }
    // Devices are independent: process them concurrently (their store round trips
    // overlap, and the embedded store commits them together).
    let devices = by_device.into_values().map(|records| async move {
        // A device's records are applied together (one state read and write), so if
        // anything fails, none of them is known to be applied: the lowest stream
        // position among them is where the retry must start.
        let lowest = records.iter().map(|(position, _)| *position).min();
        let records: Vec<Record> = records.into_iter().map(|(_, r)| r).collect();
        match apply_records(deps.states.as_ref(), deps.rules, &records, now).await {
            Ok(applied) => Ok((lowest, records, applied)),
            Err(err) => {
                tracing::error!(error = %err, device_id = %records[0].event.device_id, records = records.len(), "detection failed; will retry");
                Err(lowest)
            }
        }
    });
    // Each new event with its device's school when it was applied.
    let mut new_events: Vec<(Option<SchoolDays>, StoredEvent)> = Vec::new();
    // Every applied record (a redelivered one again: the export is at least once), and
    // the lowest stream position among them.
    let mut exported: Vec<ExportedEvent> = Vec::new();
    let mut lowest_exported: Option<usize> = None;
    let mut decided = 0;
    for result in futures_util::future::join_all(devices).await {
        match result {
            Ok((lowest, records, applied)) => {
                if deps.export.is_some() {
                    lowest_exported = lowest_exported.min(lowest).or(lowest);
                    exported.extend(records.into_iter().map(|r| ExportedEvent {
                        event: r.event,
                        school_id: applied.state.school_id.clone(),
                    }));
                }
                decided += applied.notices.len();
                let school = applied.school_days;
                new_events.extend(applied.new_events.into_iter().map(|e| (school.clone(), e)));
            }
            Err(lowest) => {
                figures.records_failed += 1;
                if let Some(failed) = lowest {
                    first_failed = first_failed.min(Some(failed)).or(Some(failed));
                }
            }
        }
    }
    for (_, e) in &new_events {
        match e.outcome {
            Outcome::Success => figures.syncs_succeeded += 1,
            Outcome::Failure => figures.syncs_failed += 1,
        }
        figures.lag(e.received_at, now);
    }
    // The day totals follow the device states they came from: in their saves where the
    // store takes them (the embedded store), else one addition for the batch. Retrying
    // the records would not help (they are applied now), so the add is retried here for
    // a few seconds — idempotently, by the addition's key; after that the loss is
    // logged and counted, never doubled (docs/design.md).
    let addition = match deps.states.adds_days_with_state() {
        true => None,
        false => DayAddition::of(&new_events),
    };
    if let Some(addition) = addition {
        let mut attempt = 0;
        while let Err(err) = deps.days.add_days(&addition, now).await {
            attempt += 1;
            if attempt == DAY_TOTAL_ATTEMPTS {
                tracing::error!(error = %err, events = new_events.len(), "day totals not added");
                figures.day_totals_lost += new_events.len() as u64;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
        }
    }
    // A refused export has the batch delivered again from its lowest exported record
    // (the states recognise what they applied; the export sends it again).
    if let (Some(export), false) = (&deps.export, exported.is_empty()) {
        if let Err(err) = export.send(&exported).await {
            tracing::error!(error = %err, events = exported.len(), "export not sent; will retry");
            figures.records_failed += 1;
            if let Some(lowest) = lowest_exported {
                first_failed = first_failed.min(Some(lowest)).or(Some(lowest));
            }
        }
    }
    if decided > 0 || deps.owed.is_owed() {
        // What fails waits in the outbox for the next round (the next batch here, or
        // the scheduled one); the records succeed.
        let round = deliver_pending(deps.outbox.as_ref(), deps.alerts.as_ref()).await;
        deps.owed.after(&round);
        figures.delivered(round);
    }
    let mut response = DynamoDbEventResponse::default();
    if let Some(position) = first_failed {
        response
            .batch_item_failures
            .push(failure(&event.records[position]));
    }
    Detected { response, figures }
}

fn failure(record: &EventRecord) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = record.change.sequence_number.clone();
    failure
}
