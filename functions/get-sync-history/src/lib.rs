//! `GET /device/{id}/sync-history`: one device's events, paged, newest first by default.
//! A school operator first reads the device's state (its school): a device outside its
//! schools is answered as one that never reported.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::auth::Reach;
use pisync_shared::domain::validate::FieldError;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::http::routes::GET_SYNC_HISTORY;
use pisync_shared::http::scope;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::{HistoryQuery, Order, ReadDevices, ReadHistory};
use pisync_shared::{DeviceId, EventTime, StoredEvent};
use serde::Serialize;
use std::sync::Arc;

pub struct GetSyncHistory {
    log: Arc<dyn ReadHistory>,
    devices: Arc<dyn ReadDevices>,
    cursor_key: CursorKey,
    auth: Authenticator,
}

#[derive(Serialize)]
struct HistoryBody {
    device_id: DeviceId,
    events: Vec<StoredEvent>,
    next_cursor: Option<String>,
}

const PARAMS: [&str; 5] = ["limit", "cursor", "from", "to", "order"];

impl HttpFunction for GetSyncHistory {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        let store = aws.store().await?;
        Ok(Self {
            log: store.clone(),
            devices: store,
            cursor_key: aws.cursor_key().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            log: local.store.clone(),
            devices: local.store.clone(),
            cursor_key: local.cursor_key.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for GetSyncHistory {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&GET_SYNC_HISTORY, &req, &self.auth).await {
            Ok(call) => call.reply(history(self, &call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

async fn history(deps: &GetSyncHistory, call: &Call<'_>) -> Result<HistoryBody, ApiError> {
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
    let order = match params.get("order") {
        None => None,
        Some("desc") => Some(Order::Desc),
        Some("asc") => Some(Order::Asc),
        Some(_) => {
            problems.push(FieldError::new("order", "must be asc or desc"));
            None
        }
    };
    // A cursor carries the query it pages through (order, from, to) and is bound to
    // the device: the next page needs only the cursor, and parameters given with it
    // must be the cursor's. It is checked with the rest: every problem at once.
    let context = format!("history\n{}", device.as_ref().map_or("", DeviceId::as_str));
    let cursor = params.get("cursor").and_then(|cursor| {
        let opened = deps
            .cursor_key
            .open(&context, cursor)
            .and_then(|position| Position::parse(&position));
        match opened {
            None => problems.push(FieldError::new(
                "cursor",
                "is not a cursor this endpoint issued for this device",
            )),
            Some(ref p) if !p.agrees(order, from, to) => problems.push(FieldError::new(
                "cursor",
                "was issued for another order, from or to",
            )),
            Some(_) => {}
        }
        opened
    });
    let (order, from, to) = match &cursor {
        Some(p) => (p.order, p.from, p.to),
        None => (order.unwrap_or(Order::Desc), from, to),
    };
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            problems.push(FieldError::new("from", "must not be later than to"));
        }
    }
    let (Some(device), true) = (device, problems.is_empty()) else {
        return Err(ApiError::invalid_request(problems));
    };
    if call.caller.reach() != Some(&Reach::District) {
        let state = deps.devices.device(&device).await?;
        scope::visible_device(&call.caller, &device, state)?;
    }
    let after = cursor.map(|p| p.after);
    let query = HistoryQuery {
        from,
        to,
        order,
        limit,
        after,
    };
    let page = deps.log.history(&device, &query).await?;
    if page.events.is_empty() && after.is_none() {
        let exists = deps.log.device_exists(&device).await?;
        if !exists {
            return Err(ApiError::device_not_found(device.as_str()));
        }
    }
    let next_cursor = match (page.more, page.events.last()) {
        (true, Some(last)) => {
            let position = Position {
                after: last.timestamp,
                order,
                from,
                to,
            };
            Some(deps.cursor_key.seal(&context, &position.to_text()))
        }
        _ => None,
    };
    Ok(HistoryBody {
        device_id: device,
        events: page.events,
        next_cursor,
    })
}

/// Where a history cursor resumes, and the query it belongs to.
struct Position {
    after: EventTime,
    order: Order,
    from: Option<EventTime>,
    to: Option<EventTime>,
}

impl Position {
    fn to_text(&self) -> String {
        let time = |t: Option<EventTime>| t.map(|t| t.to_string()).unwrap_or_default();
        format!(
            "{}\n{}\n{}\n{}",
            self.after,
            self.order.as_str(),
            time(self.from),
            time(self.to)
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('\n');
        let after = EventTime::parse_rfc3339(parts.next()?)?;
        let order = match parts.next()? {
            "asc" => Order::Asc,
            "desc" => Order::Desc,
            _ => return None,
        };
        // An empty bound is none; anything else must be a time.
        let time = |t: &str| -> Option<Option<EventTime>> {
            if t.is_empty() {
                Some(None)
            } else {
                EventTime::parse_rfc3339(t).map(Some)
            }
        };
        let from = time(parts.next()?)?;
        let to = time(parts.next()?)?;
        parts.next().is_none().then_some(Self {
            after,
            order,
            from,
            to,
        })
    }

    /// Whether the parameters given with the cursor (if any) are its own.
    fn agrees(&self, order: Option<Order>, from: Option<EventTime>, to: Option<EventTime>) -> bool {
        order.is_none_or(|o| o == self.order)
            && from.is_none_or(|f| Some(f) == self.from)
            && to.is_none_or(|t| Some(t) == self.to)
    }
}
