//! `GET /device/{id}`: one device's status, times, current streak and totals. Reads
//! the device's state, never its events.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::device::DeviceStatus;
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::http::routes::GET_DEVICE;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::ReadDevices;
use std::sync::Arc;

#[derive(Clone)]
pub struct GetDevice {
    pub devices: Arc<dyn ReadDevices>,
    /// The rule detection saves states with; it decides `failing`.
    pub rule: StreakRule,
    pub auth: Authenticator,
}

pub async fn handle(deps: &GetDevice, req: Request) -> Response<Body> {
    match Call::admit(&GET_DEVICE, &req, &deps.auth).await {
        Ok(call) => call.reply(device(deps, &call).await.map(|body| (StatusCode::OK, body))),
        Err(refused) => *refused,
    }
}

async fn device(deps: &GetDevice, call: &Call<'_>) -> Result<DeviceStatus, ApiError> {
    let mut problems = Vec::new();
    let device = call.device_id().map_err(|e| problems.push(e)).ok();
    call.query(&[], &mut problems);
    let (Some(device), true) = (device, problems.is_empty()) else {
        return Err(ApiError::invalid_request(problems));
    };
    let state = deps
        .devices
        .device(&device)
        .await
        .map_err(|e| http::store_failure(&e, &call.request_id))?;
    match state {
        // A device with credentials but no stored report has no state: not seen.
        Some(state) if state.last_seen_at.is_some() => Ok(state.view(deps.rule)),
        _ => Err(ApiError::device_not_found(device.as_str())),
    }
}
