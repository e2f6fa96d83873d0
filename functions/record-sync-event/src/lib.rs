//! `POST /sync-event`: validates a device's sync report and stores it exactly once.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use pisync_shared::http::{self, ApiError};
use pisync_shared::store::{EventLog, Recorded};
use pisync_shared::validate::{parse_sync_event, EventRules, FieldError};
use pisync_shared::{EventTime, StoredEvent};
use std::sync::Arc;

/// What the handler needs, built once per Lambda instance.
#[derive(Clone)]
pub struct RecordSyncEvent {
    pub log: Arc<dyn EventLog>,
    pub rules: EventRules,
}

pub async fn handle(deps: &RecordSyncEvent, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    match record(deps, &req, &request_id).await {
        Ok((status, event)) => http::json(status, &event, &request_id),
        Err(err) => http::error(&err, &request_id),
    }
}

async fn record(
    deps: &RecordSyncEvent,
    req: &Request,
    request_id: &str,
) -> Result<(StatusCode, StoredEvent), ApiError> {
    http::require_method(req, Method::POST, "POST")?;
    let body = http::json_body(req)?;
    let now = EventTime::now();
    let event = parse_sync_event(body, now, deps.rules).map_err(ApiError::invalid_event)?;
    let stored = event.into_stored(now);
    match deps.log.record(stored.clone()).await {
        Ok(Recorded::Created(event)) => Ok((StatusCode::CREATED, event)),
        Ok(Recorded::Replayed(event)) => Ok((StatusCode::OK, event)),
        Ok(Recorded::Conflict(existing)) => Err(ApiError {
            details: differences(&existing, &stored),
            ..ApiError::conflict(format!(
                "device {} already reported a sync at {} with different figures",
                existing.device_id, existing.timestamp
            ))
        }),
        Err(err) => Err(http::store_failure(&err, request_id)),
    }
}

/// The fields where a conflicting report differs from the stored one.
fn differences(stored: &StoredEvent, sent: &StoredEvent) -> Vec<FieldError> {
    let stored_value = |name: &str, value: String| FieldError::new(name, format!("stored value is {value}"));
    let mut details = Vec::new();
    if stored.total_files_synced != sent.total_files_synced {
        details.push(stored_value(
            "total_files_synced",
            stored.total_files_synced.to_string(),
        ));
    }
    if stored.total_errors != sent.total_errors {
        details.push(stored_value("total_errors", stored.total_errors.to_string()));
    }
    if stored.internet_speed.to_bits() != sent.internet_speed.to_bits() {
        details.push(stored_value("internet_speed", stored.internet_speed.to_string()));
    }
    details
}
