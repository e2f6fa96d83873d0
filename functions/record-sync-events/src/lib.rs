//! `POST /sync-events`: a device's backlog, up to 100 reports in one request. Each
//! item is answered exactly as `POST /sync-event` would answer it alone (201, 200
//! replay, 400, 403, 409, 503), in request order; one item's problem never affects
//! another, and every 200/201 item is durable when the reply is sent.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::validate::{parse_batch, parse_sync_event, EventRules, FieldError};
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::RECORD_SYNC_EVENTS;
use pisync_shared::http::{ApiError, Call};
use pisync_shared::metrics;
use pisync_shared::ports::{LimitDevices, RecordEvents, Recorded, StoreError};
use pisync_shared::{EventTime, StoredEvent};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

pub struct RecordSyncEvents {
    log: Arc<dyn RecordEvents>,
    limits: Arc<dyn LimitDevices>,
    rules: EventRules,
    auth: Authenticator,
}

#[derive(Serialize)]
pub struct BatchReply {
    results: Vec<ItemResult>,
    created: usize,
    replayed: usize,
    rejected: usize,
}

/// One item's answer: the stored event, or the error `POST /sync-event` would give.
#[derive(Serialize)]
#[serde(untagged)]
enum ItemResult {
    Stored { status: u16, event: StoredEvent },
    Refused { status: u16, error: ItemError },
}

#[derive(Serialize)]
struct ItemError {
    code: &'static str,
    message: String,
    details: Vec<FieldError>,
}

impl ItemResult {
    fn refused(err: ApiError) -> Self {
        ItemResult::Refused {
            status: err.status.as_u16(),
            error: ItemError {
                code: err.code,
                message: err.message,
                details: err.details,
            },
        }
    }

    fn status(&self) -> u16 {
        match self {
            ItemResult::Stored { status, .. } | ItemResult::Refused { status, .. } => *status,
        }
    }
}

impl HttpFunction for RecordSyncEvents {
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
impl HttpHandler for RecordSyncEvents {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&RECORD_SYNC_EVENTS, &req, &self.auth).await {
            Ok(call) => call.reply(record(self, &call).await.map(|reply| (StatusCode::OK, reply))),
            Err(refused) => *refused,
        }
    }
}

async fn record(deps: &RecordSyncEvents, call: &Call<'_>) -> Result<BatchReply, ApiError> {
    let now = EventTime::now();
    let items = parse_batch(call.body());
    // A batch is counted (and refused) whole, by how many events it carries.
    let events = items
        .as_ref()
        .map_or(0, |items| u32::try_from(items.len()).unwrap_or(u32::MAX));
    call.within_limits(deps.limits.as_ref(), events, now).await?;
    let items = items.map_err(ApiError::invalid_batch)?;
    let mut results: Vec<Option<ItemResult>> = Vec::with_capacity(items.len());
    // The first item of each identity goes to the store; later ones with the same
    // identity are answered against what the first one found (a replay or a conflict).
    let mut first_of: HashMap<(String, EventTime), usize> = HashMap::new();
    let (mut to_store, mut owners, mut repeats) = (Vec::new(), Vec::new(), Vec::new());
    for (i, raw) in items.iter().enumerate() {
        results.push(None);
        match parse_sync_event(raw.get().as_bytes(), now, deps.rules) {
            Err(details) => results[i] = Some(ItemResult::refused(ApiError::invalid_event(details))),
            Ok(event) if !call.caller.may_record(event.device_id.as_str()) => {
                results[i] = Some(ItemResult::refused(ApiError::forbidden(
                    "a device token may record only its own device's events",
                )))
            }
            Ok(event) => {
                let stored = event.into_stored(now);
                let identity = (stored.device_id.as_str().to_owned(), stored.timestamp);
                match first_of.get(&identity) {
                    Some(&first) => repeats.push((i, first, stored)),
                    None => {
                        first_of.insert(identity, to_store.len());
                        owners.push(i);
                        to_store.push(stored);
                    }
                }
            }
        }
    }
    let sent = to_store.clone();
    let outcomes = deps.log.record_many(to_store).await;
    for ((owner, outcome), event) in owners.iter().zip(&outcomes).zip(&sent) {
        results[*owner] = Some(answer(outcome, event, &call.request_id));
    }
    for (i, first, event) in repeats {
        // Against the stored copy the first item found or made: the same figures are a
        // replay of it, different ones a conflict with it.
        let outcome = match &outcomes[first] {
            Ok(Recorded::Created(e) | Recorded::Replayed(e) | Recorded::Conflict(e)) => {
                Ok(if e.differences(&event).is_empty() {
                    Recorded::Replayed(e.clone())
                } else {
                    Recorded::Conflict(e.clone())
                })
            }
            Err(_) => Err(StoreError::unavailable_because(
                "the same event earlier in the batch was not stored",
            )),
        };
        results[i] = Some(answer(&outcome, &event, &call.request_id));
    }
    let results: Vec<ItemResult> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| ItemResult::refused(ApiError::internal())))
        .collect();
    for result in &results {
        metrics::event_answered(result.status());
    }
    let count = |status: u16| results.iter().filter(|r| r.status() == status).count();
    let (created, replayed) = (count(201), count(200));
    Ok(BatchReply {
        rejected: results.len() - created - replayed,
        created,
        replayed,
        results,
    })
}

/// One stored item's answer, as `POST /sync-event` gives it.
fn answer(outcome: &Result<Recorded, StoreError>, sent: &StoredEvent, request_id: &str) -> ItemResult {
    match outcome {
        Ok(Recorded::Created(e)) => ItemResult::Stored {
            status: 201,
            event: e.clone(),
        },
        Ok(Recorded::Replayed(e)) => ItemResult::Stored {
            status: 200,
            event: e.clone(),
        },
        Ok(Recorded::Conflict(existing)) => ItemResult::refused(ApiError::conflicting_event(existing, sent)),
        Err(err) => {
            tracing::error!(error = %err, source = ?std::error::Error::source(err), request_id, "a batch item was not stored");
            ItemResult::refused(ApiError::unavailable())
        }
    }
}
