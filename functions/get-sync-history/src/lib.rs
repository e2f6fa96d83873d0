//! `GET /device/{id}/sync-history`: one device's events, paged, newest first by default.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::validate::FieldError;
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::http::routes::GET_SYNC_HISTORY;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::{HistoryQuery, Order, ReadHistory};
use pisync_shared::{DeviceId, EventTime, StoredEvent};
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone)]
pub struct GetSyncHistory {
    pub log: Arc<dyn ReadHistory>,
    pub cursor_key: CursorKey,
    pub auth: Authenticator,
}

#[derive(Serialize)]
struct HistoryBody {
    device_id: DeviceId,
    events: Vec<StoredEvent>,
    next_cursor: Option<String>,
}

const PARAMS: [&str; 5] = ["limit", "cursor", "from", "to", "order"];

pub async fn handle(deps: &GetSyncHistory, req: Request) -> Response<Body> {
    match Call::admit(&GET_SYNC_HISTORY, &req, &deps.auth).await {
        Ok(call) => call.reply(history(deps, &call).await.map(|body| (StatusCode::OK, body))),
        Err(refused) => *refused,
    }
}

async fn history(deps: &GetSyncHistory, call: &Call<'_>) -> Result<HistoryBody, ApiError> {
    let request_id = call.request_id.as_str();
    let mut problems = Vec::new();
    let device = DeviceId::parse(call.path_param("id"));
    if device.is_none() {
        problems.push(FieldError::new("id", DeviceId::RULE));
    }
    let params = call.query(&PARAMS, &mut problems);
    let limit = http::parse_limit(&params, &mut problems);
    let mut bound = |name: &str| {
        params.get(name).and_then(|v| {
            let t = EventTime::parse_rfc3339(v);
            if t.is_none() {
                problems.push(FieldError::new(
                    name,
                    "must be an RFC 3339 timestamp with an offset",
                ));
            }
            t
        })
    };
    let (from, to) = (bound("from"), bound("to"));
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            problems.push(FieldError::new("from", "must not be later than to"));
        }
    }
    let order = match params.get("order") {
        None | Some("desc") => Order::Desc,
        Some("asc") => Order::Asc,
        Some(_) => {
            problems.push(FieldError::new("order", "must be asc or desc"));
            Order::Desc
        }
    };
    let (Some(device), true) = (device, problems.is_empty()) else {
        return Err(ApiError::invalid_request(problems));
    };
    // The cursor is bound to everything that shapes the sequence it pages through.
    let context = format!(
        "history\n{device}\n{}\n{}\n{}",
        order.as_str(),
        from.map(|t| t.to_string()).unwrap_or_default(),
        to.map(|t| t.to_string()).unwrap_or_default()
    );
    let after = match params.get("cursor") {
        None => None,
        Some(cursor) => Some(
            deps.cursor_key
                .open(&context, cursor)
                .and_then(|position| EventTime::parse_rfc3339(&position))
                .ok_or_else(|| {
                    ApiError::invalid_request(vec![FieldError::new(
                        "cursor",
                        "is not a cursor this endpoint issued for this device and these parameters",
                    )])
                })?,
        ),
    };
    let query = HistoryQuery {
        from,
        to,
        order,
        limit,
        after,
    };
    let page = deps
        .log
        .history(&device, &query)
        .await
        .map_err(|e| http::store_failure(&e, request_id))?;
    if page.events.is_empty() && after.is_none() {
        let exists = deps
            .log
            .device_exists(&device)
            .await
            .map_err(|e| http::store_failure(&e, request_id))?;
        if !exists {
            return Err(ApiError::device_not_found(device.as_str()));
        }
    }
    let next_cursor = match (page.more, page.events.last()) {
        (true, Some(last)) => Some(deps.cursor_key.seal(&context, &last.timestamp.to_string())),
        _ => None,
    };
    Ok(HistoryBody {
        device_id: device,
        events: page.events,
        next_cursor,
    })
}
