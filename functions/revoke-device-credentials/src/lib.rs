//! `DELETE /device/{id}/credentials` (admin): the device's tokens stop working.
//! Answers 204 whether or not the device had a credential (revoking is idempotent). A
//! school admin revokes only its schools' devices: any other device is not found.

use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::audit::AuditAction;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::REVOKE_DEVICE_CREDENTIALS;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::{AuditTrail, DeviceStates, ManageCredentials};
use std::sync::Arc;

pub struct RevokeDeviceCredentials {
    credentials: Arc<dyn ManageCredentials>,
    states: Arc<dyn DeviceStates>,
    audit: Arc<dyn AuditTrail>,
    auth: Authenticator,
}

impl HttpFunction for RevokeDeviceCredentials {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            audit: aws.store().await?,
            credentials: aws.credentials().await?,
            states: aws.store().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            audit: local.store.clone(),
            credentials: local.credentials.clone(),
            states: local.store.clone(),
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
        match self.revoke(&call).await {
            Ok(()) => http::no_content(&call.request_id),
            Err(e) => http::error(&e, &call.request_id),
        }
    }
}

impl RevokeDeviceCredentials {
    async fn revoke(&self, call: &Call<'_>) -> Result<(), ApiError> {
        let device = call.device_id().map_err(|e| ApiError::invalid_request(vec![e]))?;
        let current = self.states.load(&device).await?.and_then(|v| v.state.school_id);
        if !call.caller.is_district_admin() {
            match &current {
                Some(school) if call.caller.administers(school) => {}
                Some(school) if call.caller.sees(Some(school)) => {
                    return Err(ApiError::forbidden("you do not administer the device's school"))
                }
                _ => return Err(ApiError::device_not_found(device.as_str())),
            }
        }
        let had = self.credentials.revoke(device.as_str()).await?;
        tracing::info!(
            device = device.as_str(),
            had_credential = had,
            actor = call.caller.actor(),
            request_id = call.request_id,
            "device credentials revoked"
        );
        let entry = call.audit_entry(AuditAction::CredentialsRevoked, device.as_str(), current, None);
        self.audit.record_action(&entry).await?;
        Ok(())
    }
}
