//! `POST /device/{id}/credentials` (admin): a new token for the device. Only its
//! digest is stored, replacing the device's earlier credential, so every earlier token
//! stops working. The token is in the reply and nowhere else.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::{token, KeyRing};
use pisync_shared::http::routes::ISSUE_DEVICE_CREDENTIALS;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::{DeviceCredential, ManageCredentials};
use pisync_shared::{auth::Authenticator, DeviceId, EventTime};
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone)]
pub struct IssueDeviceCredentials {
    pub credentials: Arc<dyn ManageCredentials>,
    pub keys: Arc<KeyRing>,
    pub auth: Authenticator,
}

#[derive(Serialize)]
pub struct Issued {
    pub device_id: DeviceId,
    pub token: String,
    pub issued_at: EventTime,
}

pub async fn handle(deps: &IssueDeviceCredentials, req: Request) -> Response<Body> {
    match Call::admit(&ISSUE_DEVICE_CREDENTIALS, &req, &deps.auth).await {
        Ok(call) => {
            let device = call.device_id().map_err(|e| ApiError::invalid_request(vec![e]));
            let outcome = match device {
                Ok(device) => issue(deps, device)
                    .await
                    .map_err(|e| http::store_failure(&e, &call.request_id)),
                Err(e) => Err(e),
            };
            call.reply(outcome.map(|issued| (StatusCode::CREATED, issued)))
        }
        Err(refused) => *refused,
    }
}

/// Issues a token for `device_id` and makes it the device's only credential (also the
/// local runner's `token device` command).
pub async fn issue(
    deps: &IssueDeviceCredentials,
    device_id: DeviceId,
) -> Result<Issued, pisync_shared::ports::StoreError> {
    let token = token::sign_device(&deps.keys.current(), device_id.as_str()).map_err(|e| {
        pisync_shared::ports::StoreError::unavailable("OS randomness", std::io::Error::other(e))
    })?;
    let issued_at = EventTime::now();
    deps.credentials
        .replace(&DeviceCredential {
            device_id: device_id.as_str().to_owned(),
            token_digest: token::digest(&token),
            issued_at,
        })
        .await?;
    Ok(Issued {
        device_id,
        token,
        issued_at,
    })
}
