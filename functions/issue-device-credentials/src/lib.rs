//! `POST /device/{id}/credentials` (admin): a new token for the device. Only its
//! digest is stored, replacing the device's earlier credential, so every earlier token
//! stops working. The token is in the reply and nowhere else.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::auth::{issue_device_credential, KeyRing};
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::ISSUE_DEVICE_CREDENTIALS;
use pisync_shared::http::{ApiError, Call};
use pisync_shared::ports::ManageCredentials;
use std::sync::Arc;

pub struct IssueDeviceCredentials {
    credentials: Arc<dyn ManageCredentials>,
    keys: Arc<KeyRing>,
    auth: Authenticator,
}

impl HttpFunction for IssueDeviceCredentials {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            credentials: aws.credentials().await?,
            keys: aws.signing_keys().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            credentials: local.credentials.clone(),
            keys: local.keys.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for IssueDeviceCredentials {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&ISSUE_DEVICE_CREDENTIALS, &req, &self.auth).await {
            Ok(call) => {
                let device = call.device_id().map_err(|e| ApiError::invalid_request(vec![e]));
                let outcome = match device {
                    Ok(device) => issue_device_credential(&self.keys, self.credentials.as_ref(), device)
                        .await
                        .map_err(ApiError::from),
                    Err(e) => Err(e),
                };
                call.reply(outcome.map(|issued| (StatusCode::CREATED, issued)))
            }
            Err(refused) => *refused,
        }
    }
}
