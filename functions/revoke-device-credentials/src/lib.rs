//! `DELETE /device/{id}/credentials` (admin): the device's tokens stop working.
//! Answers 204 whether or not the device had a credential (revoking is idempotent).

use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::REVOKE_DEVICE_CREDENTIALS;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::ManageCredentials;
use std::sync::Arc;

pub struct RevokeDeviceCredentials {
    credentials: Arc<dyn ManageCredentials>,
    auth: Authenticator,
}

impl HttpFunction for RevokeDeviceCredentials {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            credentials: aws.credentials().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            credentials: local.credentials.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for RevokeDeviceCredentials {
    async fn handle(&self, req: Request) -> Response<Body> {
        let call = match Call::admit(&REVOKE_DEVICE_CREDENTIALS, &req, &self.auth).await {
            Ok(call) => call,
            Err(refused) => return *refused,
        };
        let device = match call.device_id() {
            Ok(device) => device,
            Err(e) => return http::error(&ApiError::invalid_request(vec![e]), &call.request_id),
        };
        match self.credentials.revoke(device.as_str()).await {
            Ok(had) => {
                tracing::info!(
                    device = device.as_str(),
                    had_credential = had,
                    "device credentials revoked"
                );
                http::no_content(&call.request_id)
            }
            Err(e) => http::error(&e.into(), &call.request_id),
        }
    }
}
