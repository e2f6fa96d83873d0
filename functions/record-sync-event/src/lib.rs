//! `POST /sync-event`: validates a device's sync report and stores it exactly once.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::validate::{parse_sync_event, EventRules};
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
        Ok(Recorded::Conflict(existing)) => Err(ApiError::conflicting_event(&existing, &stored)),
        Err(err) => Err(http::store_failure(&err, &call.request_id)),
    }
}
