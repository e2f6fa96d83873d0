//! `GET /device/{id}`: one device's status, times, current streak and totals. Reads
//! the device's state, never its events. A school operator sees its schools' devices
//! only.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::device::DeviceStatus;
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::GET_DEVICE;
use pisync_shared::http::{scope, ApiError, Call};
use pisync_shared::ports::ReadDevices;
use std::sync::Arc;

pub struct GetDevice {
    devices: Arc<dyn ReadDevices>,
    /// The rule detection saves states with; it decides `failing`.
    rule: StreakRule,
    auth: Authenticator,
}

impl HttpFunction for GetDevice {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            devices: aws.store().await?,
            rule: aws.config.rule,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            devices: local.store.clone(),
            rule: local.config.rule,
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for GetDevice {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&GET_DEVICE, &req, &self.auth).await {
            Ok(call) => call.reply(self.device(&call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

impl GetDevice {
    async fn device(&self, call: &Call<'_>) -> Result<DeviceStatus, ApiError> {
        let mut problems = Vec::new();
        let device = call.device_id().map_err(|e| problems.push(e)).ok();
        call.query(&[], &mut problems);
        let (Some(device), true) = (device, problems.is_empty()) else {
            return Err(ApiError::invalid_request(problems));
        };
        // A device that has not reported (assigned, or holding credentials only), or
        // one outside a school operator's schools, is not found.
        let state = self.devices.device(&device).await?;
        Ok(scope::visible_device(&call.caller, &device, state)?.view(self.rule))
    }
}
