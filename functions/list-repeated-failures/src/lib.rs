//! `GET /devices/repeated-failures`: devices whose current failure streak is at least
//! the threshold, longest first. Reads per-device state, never the event log.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use pisync_shared::cursor::CursorKey;
use pisync_shared::http::{self, ApiError, QueryParams};
use pisync_shared::store::{FailingDevice, FailingKey, FailureStates};
use pisync_shared::validate::FieldError;
use pisync_shared::DeviceId;
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone)]
pub struct ListRepeatedFailures {
    pub states: Arc<dyn FailureStates>,
    pub cursor_key: CursorKey,
}

#[derive(Serialize)]
struct FailuresBody {
    threshold: u32,
    devices: Vec<FailingDevice>,
    next_cursor: Option<String>,
}

const PARAMS: [&str; 2] = ["limit", "cursor"];

pub async fn handle(deps: &ListRepeatedFailures, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    match list(deps, &req, &request_id).await {
        Ok(body) => http::json(StatusCode::OK, &body, &request_id),
        Err(err) => http::error(&err, &request_id),
    }
}

async fn list(
    deps: &ListRepeatedFailures,
    req: &Request,
    request_id: &str,
) -> Result<FailuresBody, ApiError> {
    http::require_method(req, Method::GET, "GET")?;
    let threshold = deps.states.rule().threshold;
    let mut problems = Vec::new();
    let params = QueryParams::parse(req, &PARAMS, &mut problems);
    let limit = http::parse_limit(&params, &mut problems);
    let context = format!("repeated-failures\n{threshold}");
    let after = params.get("cursor").and_then(|cursor| {
        let key = deps
            .cursor_key
            .open(&context, cursor)
            .and_then(|p| parse_position(&p));
        if key.is_none() {
            problems.push(FieldError::new("cursor", "is not a cursor this endpoint issued"));
        }
        key
    });
    if !problems.is_empty() {
        return Err(ApiError::invalid_request(problems));
    }
    let page = deps
        .states
        .repeated_failures(limit, after.as_ref())
        .await
        .map_err(|e| http::store_failure(&e, request_id))?;
    let next_cursor = match (page.more, page.devices.last()) {
        (true, Some(last)) => Some(deps.cursor_key.seal(&context, &position(&last.key()))),
        _ => None,
    };
    Ok(FailuresBody {
        threshold,
        devices: page.devices,
        next_cursor,
    })
}

fn position(key: &FailingKey) -> String {
    format!("{}\n{}", key.consecutive_failures, key.device_id)
}

fn parse_position(text: &str) -> Option<FailingKey> {
    let (count, device) = text.split_once('\n')?;
    Some(FailingKey {
        consecutive_failures: count.parse().ok()?,
        device_id: DeviceId::parse(device)?,
    })
}
