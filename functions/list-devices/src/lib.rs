//! `GET /devices`: the fleet, page by page — all devices or those of one status, each
//! with its status, times, streak and totals. All and healthy devices come by device
//! id, failing ones longest streak first, silent ones longest silence first. A page
//! reads its own devices through an index, never the event log.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::device::{DeviceStatus, Status};
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::domain::validate::FieldError;
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::http::routes::LIST_DEVICES;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::{DeviceKey, ReadDevices};
use pisync_shared::{DeviceId, EventTime};
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone)]
pub struct ListDevices {
    pub devices: Arc<dyn ReadDevices>,
    /// The rule detection saves states with; it decides `failing`.
    pub rule: StreakRule,
    pub cursor_key: CursorKey,
    pub auth: Authenticator,
}

#[derive(Serialize)]
struct DevicesBody {
    devices: Vec<DeviceStatus>,
    next_cursor: Option<String>,
}

const PARAMS: [&str; 3] = ["status", "limit", "cursor"];

pub async fn handle(deps: &ListDevices, req: Request) -> Response<Body> {
    match Call::admit(&LIST_DEVICES, &req, &deps.auth).await {
        Ok(call) => call.reply(list(deps, &call).await.map(|body| (StatusCode::OK, body))),
        Err(refused) => *refused,
    }
}

async fn list(deps: &ListDevices, call: &Call<'_>) -> Result<DevicesBody, ApiError> {
    let mut problems = Vec::new();
    let params = call.query(&PARAMS, &mut problems);
    let limit = http::parse_limit(&params, &mut problems);
    let status = params.get("status").and_then(|v| {
        let status = Status::parse(v);
        if status.is_none() {
            problems.push(FieldError::new("status", "must be healthy, failing or silent"));
        }
        status
    });
    // A cursor belongs to one list: its order depends on the status asked for.
    let context = format!(
        "devices\n{}\n{}",
        status.map_or("all", Status::as_str),
        deps.rule.threshold
    );
    let after = params.get("cursor").and_then(|cursor| {
        let key = deps
            .cursor_key
            .open(&context, cursor)
            .and_then(|p| parse_position(&p));
        if key.is_none() {
            problems.push(FieldError::new(
                "cursor",
                "is not a cursor this endpoint issued for this status",
            ));
        }
        key
    });
    if !problems.is_empty() {
        return Err(ApiError::invalid_request(problems));
    }
    let page = deps
        .devices
        .devices(status, limit, after.as_ref())
        .await
        .map_err(|e| http::store_failure(&e, &call.request_id))?;
    let next_cursor = match (page.more, page.devices.last()) {
        (true, Some(last)) => Some(
            deps.cursor_key
                .seal(&context, &position(&DeviceKey::of(status, last))),
        ),
        _ => None,
    };
    Ok(DevicesBody {
        devices: page.devices.iter().map(|s| s.view(deps.rule)).collect(),
        next_cursor,
    })
}

fn position(key: &DeviceKey) -> String {
    match key {
        DeviceKey::Id(device) => format!("id\n{device}"),
        DeviceKey::Streak {
            consecutive_failures,
            device_id,
        } => format!("streak\n{consecutive_failures}\n{device_id}"),
        DeviceKey::Silence {
            last_seen_at,
            device_id,
        } => format!("silence\n{last_seen_at}\n{device_id}"),
    }
}

fn parse_position(text: &str) -> Option<DeviceKey> {
    let mut parts = text.split('\n');
    let key = match (parts.next()?, parts.next()?, parts.next()) {
        ("id", device, None) => DeviceKey::Id(DeviceId::parse(device)?),
        ("streak", count, Some(device)) => DeviceKey::Streak {
            consecutive_failures: count.parse().ok()?,
            device_id: DeviceId::parse(device)?,
        },
        ("silence", at, Some(device)) => DeviceKey::Silence {
            last_seen_at: EventTime::parse_rfc3339(at)?,
            device_id: DeviceId::parse(device)?,
        },
        _ => return None,
    };
    parts.next().is_none().then_some(key)
}
