//! `PUT /device/{id}/school` with `{"school_id": "…"}`: moves the device to that
//! school (`null`: to none, district admins only). The caller must administer the
//! target school and the device's current one, if it has one. A device need not have
//! reported yet. Its school's threshold and hours apply from its next event.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::assignment::parse_school_choice;
use pisync_shared::domain::assignment::Assigned;
use pisync_shared::domain::audit::AuditAction;
use pisync_shared::domain::school::SchoolId;
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::ASSIGN_DEVICE_SCHOOL;
use pisync_shared::http::{scope, ApiError, Call};
use pisync_shared::ports::{AuditTrail, DeviceStates};
use pisync_shared::DeviceId;
use serde::Serialize;
use std::sync::Arc;

pub struct AssignDeviceSchool {
    states: Arc<dyn DeviceStates>,
    audit: Arc<dyn AuditTrail>,
    /// The fleet's rule: the device's list placement is kept as detection saved it.
    rule: StreakRule,
    auth: Authenticator,
}

#[derive(Serialize)]
struct AssignedBody {
    device_id: DeviceId,
    school_id: Option<SchoolId>,
}

impl HttpFunction for AssignDeviceSchool {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            audit: aws.store().await?,
            states: aws.store().await?,
            rule: aws.config.rule,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            audit: local.store.clone(),
            states: local.store.clone(),
            rule: local.config.rule,
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for AssignDeviceSchool {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&ASSIGN_DEVICE_SCHOOL, &req, &self.auth).await {
            Ok(call) => call.reply(self.assign(&call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

impl AssignDeviceSchool {
    async fn assign(&self, call: &Call<'_>) -> Result<AssignedBody, ApiError> {
        let mut problems = Vec::new();
        let device = call.device_id().map_err(|e| problems.push(e)).ok();
        let school = parse_school_choice(call.body())
            .map_err(|e| problems.extend(e))
            .ok();
        let (Some(device), Some(school)) = (device, school) else {
            return Err(ApiError::invalid_request(problems));
        };
        let assigned = scope::assign_as(
            &call.caller,
            self.states.as_ref(),
            &device,
            school.as_ref(),
            self.rule,
        )
        .await?;
        tracing::info!(
            device = device.as_str(),
            school = school.as_ref().map(SchoolId::as_str),
            outcome = ?assigned,
            actor = call.caller.actor(),
            request_id = call.request_id,
            "device assigned"
        );
        if let Assigned::Moved { from } = assigned {
            let entry = call.audit_entry(AuditAction::DeviceAssigned, device.as_str(), school.clone(), from);
            self.audit.record_action(&entry).await?;
        }
        Ok(AssignedBody {
            device_id: device,
            school_id: school,
        })
    }
}
