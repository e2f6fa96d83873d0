//! `POST /sync-event`: validates a device's sync report and stores it exactly once.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::validate::{parse_sync_event, EventRules};
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::RECORD_SYNC_EVENT;
use pisync_shared::http::{ApiError, Call};
use pisync_shared::metrics;
use pisync_shared::ports::{LimitDevices, RecordEvents, Recorded};
use pisync_shared::{EventTime, StoredEvent};
use std::sync::Arc;

/// What the handler needs, built once per Lambda instance.
pub struct RecordSyncEvent {
    log: Arc<dyn RecordEvents>,
    limits: Arc<dyn LimitDevices>,
    rules: EventRules,
    auth: Authenticator,
}

impl HttpFunction for RecordSyncEvent {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            log: aws.store().await?,
            limits: aws.device_limits().await?,
            rules: aws.config.event_rules,
            // No gateway authorizer on this route: device tokens are checked here.
            auth: aws.device_auth().await?,
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            log: local.store.clone(),
            limits: local.limits.clone(),
            rules: local.config.event_rules,
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for RecordSyncEvent {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&RECORD_SYNC_EVENT, &req, &self.auth).await {
            Ok(call) => {
                let outcome = record(self, &call).await;
                metrics::event_answered(outcome.as_ref().map_or_else(|e| e.status, |(s, _)| *s).as_u16());
                call.reply(outcome)
            }
            Err(refused) => *refused,
        }
    }
}

async fn record(deps: &RecordSyncEvent, call: &Call<'_>) -> Result<(StatusCode, StoredEvent), ApiError> {
    let now = EventTime::now();
    call.within_limits(deps.limits.as_ref(), 1, now).await?;
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
        Err(err) => Err(err.into()),
    }
}
