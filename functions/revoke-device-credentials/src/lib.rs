//! `DELETE /device/{id}/credentials` (admin): the device's tokens stop working.
//! Answers 204 whether or not the device had a credential (revoking is idempotent).

use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::http::routes::REVOKE_DEVICE_CREDENTIALS;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::ManageCredentials;
use std::sync::Arc;

#[derive(Clone)]
pub struct RevokeDeviceCredentials {
    pub credentials: Arc<dyn ManageCredentials>,
    pub auth: Authenticator,
}

pub async fn handle(deps: &RevokeDeviceCredentials, req: Request) -> Response<Body> {
    let call = match Call::admit(&REVOKE_DEVICE_CREDENTIALS, &req, &deps.auth).await {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    let device = match call.device_id() {
        Ok(device) => device,
        Err(e) => return http::error(&ApiError::invalid_request(vec![e]), &call.request_id),
    };
    match deps.credentials.revoke(device.as_str()).await {
        Ok(had) => {
            tracing::info!(
                device = device.as_str(),
                had_credential = had,
                "device credentials revoked"
            );
            http::no_content(&call.request_id)
        }
        Err(e) => http::error(&http::store_failure(&e, &call.request_id), &call.request_id),
    }
}
