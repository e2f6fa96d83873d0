//! detect-failures: consumes the table's change stream, keeps each device's failure
//! streak, and publishes alerts and recovery notices.
//!
//! Exactly-once state: a device's records arrive in commit order, so the state tells
//! which events it already reflects; late events re-read the run from the timeline
//! (see [`pisync_shared::domain::streak`] and [`pisync_shared::domain::detection`]).
//! Redelivered or re-split batches change nothing.
//! At-least-once notices: a notice is saved in the state's outbox in the same write as
//! the state change, published, then cleared; a crash in between republishes it on the
//! retry, with the same `alert_id`.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use pisync_shared::adapters::dynamodb::item::event_from_image;
use pisync_shared::domain::detection;
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::ports::{AlertPublisher, DeviceStates};
use pisync_shared::{EventTime, StoredEvent};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct DetectFailures {
    pub states: Arc<dyn DeviceStates>,
    pub alerts: Arc<dyn AlertPublisher>,
    pub rule: StreakRule,
}

/// Processes one batch. Records are grouped by device; each device's are applied
/// together in device-timestamp order, with one state read and one state write. If a
/// device's records cannot be processed, the lowest stream position among them is
/// reported, so Lambda retries from there and nothing after it is skipped; records
/// that did succeed are no-ops on the retry.
pub async fn handle(deps: &DetectFailures, event: Event) -> DynamoDbEventResponse {
    let mut by_device: BTreeMap<String, Vec<(usize, StoredEvent)>> = BTreeMap::new();
    let mut first_failed: Option<usize> = None;
    for (position, record) in event.records.iter().enumerate() {
        if record.event_name != "INSERT" {
            continue; // MODIFY and REMOVE (TTL expiry) are not new events
        }
        match event_from_image(record.change.new_image.clone()) {
            None => {} // a state item
            Some(Ok(e)) => by_device
                .entry(e.device_id.to_string())
                .or_default()
                .push((position, e)),
            Some(Err(err)) => {
                tracing::error!(error = %err, sequence = ?record.change.sequence_number, "undecodable event image");
                first_failed = first_failed.min(Some(position)).or(Some(position));
            }
        }
    }
    // Devices are independent: process them concurrently (their store round trips
    // overlap, and the embedded store commits them together); each device's events
    // in order.
    let devices = by_device.into_values().map(|events| async move {
        // A device's records are applied together (one state read and write), so if
        // anything fails, none of them is known to be fully processed: the lowest
        // stream position among them is where the retry must start.
        let lowest = events.iter().map(|(position, _)| *position).min();
        let events: Vec<StoredEvent> = events.into_iter().map(|(_, e)| e).collect();
        match process(deps, &events).await {
            Ok(()) => None,
            Err(err) => {
                tracing::error!(error = %err, device_id = %events[0].device_id, records = events.len(), "detection failed; will retry");
                lowest
            }
        }
    });
    for failed in futures_util::future::join_all(devices)
        .await
        .into_iter()
        .flatten()
    {
        first_failed = first_failed.min(Some(failed)).or(Some(failed));
    }
    let mut response = DynamoDbEventResponse::default();
    if let Some(position) = first_failed {
        response
            .batch_item_failures
            .push(failure(&event.records[position]));
    }
    response
}

fn failure(record: &EventRecord) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = record.change.sequence_number.clone();
    failure
}

/// Applies one device's events and delivers whatever notices it has waiting.
async fn process(
    deps: &DetectFailures,
    events: &[StoredEvent],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let applied = detection::apply_events(deps.states.as_ref(), deps.rule, events, EventTime::now()).await?;
    let pending = &applied.state.pending_notices;
    if pending.is_empty() {
        return Ok(());
    }
    for notice in pending {
        deps.alerts.publish(notice).await?;
        tracing::info!(event_type = notice.event_type(), device_id = %notice.device_id(), "notice published");
    }
    detection::clear_notices(
        deps.states.as_ref(),
        deps.rule,
        &applied.state.device_id,
        &applied.state.pending_notice_ids(),
    )
    .await?;
    Ok(())
}
