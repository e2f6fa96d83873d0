//! `POST /device/{id}/credentials` (admin): a new token for the device. Only its
//! digest is stored, replacing the device's earlier credential, so every earlier token
//! stops working. The token is in the reply and nowhere else.
//!
//! An optional body `{"school_id": "…"}` assigns the device first (issue and assign in
//! one call). A school admin issues only for devices in its schools: for any other
//! device it must name one of its schools.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::auth::{issue_device_credential, Issued, KeyRing};
use pisync_shared::domain::assignment::parse_school_choice;
use pisync_shared::domain::assignment::Assigned;
use pisync_shared::domain::audit::AuditAction;
use pisync_shared::domain::school::SchoolId;
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::domain::validate::FieldError;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::ISSUE_DEVICE_CREDENTIALS;
use pisync_shared::http::{scope, ApiError, Call};
use pisync_shared::ports::{AuditTrail, DeviceStates, ManageCredentials};
use serde::Serialize;
use std::sync::Arc;

pub struct IssueDeviceCredentials {
    credentials: Arc<dyn ManageCredentials>,
    states: Arc<dyn DeviceStates>,
    audit: Arc<dyn AuditTrail>,
    keys: Arc<KeyRing>,
    rule: StreakRule,
    auth: Authenticator,
}

/// The new token, and the school the device is in.
#[derive(Serialize)]
struct IssuedBody {
    #[serde(flatten)]
    issued: Issued,
    school_id: Option<SchoolId>,
}

impl HttpFunction for IssueDeviceCredentials {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            audit: aws.store().await?,
            credentials: aws.credentials().await?,
            states: aws.store().await?,
            keys: aws.signing_keys().await?,
            rule: aws.config.rule,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            audit: local.store.clone(),
            credentials: local.credentials.clone(),
            states: local.store.clone(),
            keys: local.keys.clone(),
            rule: local.config.rule,
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for IssueDeviceCredentials {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&ISSUE_DEVICE_CREDENTIALS, &req, &self.auth).await {
            Ok(call) => call.reply(self.issue(&call).await.map(|body| (StatusCode::CREATED, body))),
            Err(refused) => *refused,
        }
    }
}

impl IssueDeviceCredentials {
    async fn issue(&self, call: &Call<'_>) -> Result<IssuedBody, ApiError> {
        let mut problems = Vec::new();
        let device = call.device_id().map_err(|e| problems.push(e)).ok();
        let body = call.body();
        let school = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match parse_school_choice(body) {
                Ok(Some(school)) => Some(school),
                Ok(None) => {
                    problems.push(FieldError::new(
                        "school_id",
                        "must be the school to assign the device to",
                    ));
                    None
                }
                Err(errors) => {
                    problems.extend(errors);
                    None
                }
            }
        };
        let (Some(device), true) = (device, problems.is_empty()) else {
            return Err(ApiError::invalid_request(problems));
        };
        let caller = &call.caller;
        let school_id = match school {
            Some(school) => {
                let assigned =
                    scope::assign_as(caller, self.states.as_ref(), &device, Some(&school), self.rule).await?;
                if let Assigned::Moved { from } = assigned {
                    let entry = call.audit_entry(
                        AuditAction::DeviceAssigned,
                        device.as_str(),
                        Some(school.clone()),
                        from,
                    );
                    self.audit.record_action(&entry).await?;
                }
                Some(school)
            }
            None => {
                let current = self.states.load(&device).await?.and_then(|v| v.state.school_id);
                let allowed =
                    caller.is_district_admin() || current.as_ref().is_some_and(|s| caller.administers(s));
                if !allowed {
                    return Err(match current {
                        Some(_) if caller.sees(current.as_ref()) => {
                            ApiError::forbidden("you do not administer the device's school")
                        }
                        // Unassigned, another school's, or unknown: the same answer.
                        _ => ApiError::invalid_request(vec![FieldError::new(
                            "school_id",
                            "is required: name one of your schools to assign the device to",
                        )]),
                    });
                }
                current
            }
        };
        let issued = issue_device_credential(&self.keys, self.credentials.as_ref(), device).await?;
        tracing::info!(
            device = issued.device_id.as_str(),
            actor = caller.actor(),
            request_id = call.request_id,
            "device credentials issued"
        );
        let entry = call.audit_entry(
            AuditAction::CredentialsIssued,
            issued.device_id.as_str(),
            school_id.clone(),
            None,
        );
        self.audit.record_action(&entry).await?;
        Ok(IssuedBody { issued, school_id })
    }
}
