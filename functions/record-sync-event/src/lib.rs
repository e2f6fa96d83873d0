//! `POST /sync-event`: validates a device's sync report and stores it exactly once.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::validate::{parse_sync_event, EventRules, FieldError};
use pisync_shared::http::routes::RECORD_SYNC_EVENT;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::{RecordEvents, Recorded};
use pisync_shared::{EventTime, StoredEvent};
use std::sync::Arc;

/// What the handler needs, built once per Lambda instance.
#[derive(Clone)]
pub struct RecordSyncEvent {
    pub log: Arc<dyn RecordEvents>,
    pub rules: EventRules,
    pub auth: Authenticator,
}

pub async fn handle(deps: &RecordSyncEvent, req: Request) -> Response<Body> {
    match Call::admit(&RECORD_SYNC_EVENT, &req, &deps.auth).await {
        Ok(call) => call.reply(record(deps, &call).await),
        Err(refused) => *refused,
    }
}

async fn record(deps: &RecordSyncEvent, call: &Call<'_>) -> Result<(StatusCode, StoredEvent), ApiError> {
    let now = EventTime::now();
    let event = parse_sync_event(call.body(), now, deps.rules).map_err(ApiError::invalid_event)?;
    if !call.caller.may_record(event.device_id.as_str()) {
        return Err(ApiError::forbidden(
            "a device token may record only its own device's events",
        ));
    }
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
        Err(err) => Err(http::store_failure(&err, &call.request_id)),
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
