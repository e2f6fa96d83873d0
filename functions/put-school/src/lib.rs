//! `PUT /schools/{school_id}`: creates (district admin) or replaces (district admin, or
//! an admin of that school) a school; 201 created, 200 replaced, with the stored
//! school. Every problem with the body is reported at once (400 `invalid_school`). A
//! school's new threshold and hours apply to each of its devices from its next event.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::audit::AuditAction;
use pisync_shared::domain::school::{parse_school, School, WebhookRule};
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::PUT_SCHOOL;
use pisync_shared::http::{scope, ApiError, Call};
use pisync_shared::ports::{AuditTrail, ManageSchools, SchoolPut};
use std::sync::Arc;

pub struct PutSchool {
    schools: Arc<dyn ManageSchools>,
    audit: Arc<dyn AuditTrail>,
    /// `https://` only in AWS; the local runner also takes `http://` to this machine.
    webhooks: WebhookRule,
    auth: Authenticator,
}

impl HttpFunction for PutSchool {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            audit: aws.store().await?,
            schools: aws.store().await?,
            webhooks: WebhookRule::HttpsOnly,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            audit: local.store.clone(),
            schools: local.store.clone(),
            webhooks: WebhookRule::HttpsOrLoopback,
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for PutSchool {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&PUT_SCHOOL, &req, &self.auth).await {
            Ok(call) => call.reply(self.put(&call).await),
            Err(refused) => *refused,
        }
    }
}

impl PutSchool {
    async fn put(&self, call: &Call<'_>) -> Result<(StatusCode, School), ApiError> {
        let id = scope::school_path(call.path_param("school_id"))?;
        let caller = &call.caller;
        // Who may: checked before the body, so a caller learns nothing from it about a
        // school it may not see.
        if !caller.sees(Some(&id)) {
            return Err(ApiError::school_not_found(id.as_str()));
        }
        if !caller.administers(&id) {
            return Err(ApiError::forbidden(format!("you do not administer school {id}")));
        }
        let school =
            parse_school(call.body(), id.clone(), self.webhooks).map_err(ApiError::invalid_school)?;
        let may_create = caller.is_district_admin();
        let status = match self.schools.put_school(&school, may_create).await? {
            SchoolPut::Created => StatusCode::CREATED,
            SchoolPut::Replaced => StatusCode::OK,
            // A school admin replaces its school; only a district admin creates one.
            SchoolPut::NotFound => return Err(ApiError::school_not_found(id.as_str())),
        };
        tracing::info!(
            school = id.as_str(),
            created = status == StatusCode::CREATED,
            actor = caller.actor(),
            request_id = call.request_id,
            "school saved"
        );
        let action = if status == StatusCode::CREATED {
            AuditAction::SchoolCreated
        } else {
            AuditAction::SchoolReplaced
        };
        let entry = call.audit_entry(action, id.as_str(), Some(id.clone()), None);
        self.audit.record_action(&entry).await?;
        Ok((status, school))
    }
}
