//! `DELETE /schools/{school_id}` (district admin): 204; 409 `school_not_empty` while
//! devices are assigned to it (checked in the same write as the delete).

use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::audit::AuditAction;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::DELETE_SCHOOL;
use pisync_shared::http::{self, scope, ApiError, Call};
use pisync_shared::ports::{AuditTrail, ManageSchools, SchoolDeleted};
use std::sync::Arc;

pub struct DeleteSchool {
    schools: Arc<dyn ManageSchools>,
    audit: Arc<dyn AuditTrail>,
    auth: Authenticator,
}

impl HttpFunction for DeleteSchool {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            audit: aws.store().await?,
            schools: aws.store().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            audit: local.store.clone(),
            schools: local.store.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for DeleteSchool {
    async fn handle(&self, req: Request) -> Response<Body> {
        let call = match Call::admit(&DELETE_SCHOOL, &req, &self.auth).await {
            Ok(call) => call,
            Err(refused) => return *refused,
        };
        match self.delete(&call).await {
            Ok(()) => http::no_content(&call.request_id),
            Err(e) => http::error(&e, &call.request_id),
        }
    }
}

impl DeleteSchool {
    async fn delete(&self, call: &Call<'_>) -> Result<(), ApiError> {
        let id = scope::school_path(call.path_param("school_id"))?;
        let caller = &call.caller;
        if !caller.sees(Some(&id)) {
            return Err(ApiError::school_not_found(id.as_str()));
        }
        if !caller.is_district_admin() {
            return Err(ApiError::forbidden("only a district admin may delete a school"));
        }
        match self.schools.delete_school(&id).await? {
            SchoolDeleted::Deleted => {
                tracing::info!(
                    school = id.as_str(),
                    actor = caller.actor(),
                    request_id = call.request_id,
                    "school deleted"
                );
                let entry = call.audit_entry(AuditAction::SchoolDeleted, id.as_str(), Some(id.clone()), None);
                self.audit.record_action(&entry).await?;
                Ok(())
            }
            SchoolDeleted::NotFound => Err(ApiError::school_not_found(id.as_str())),
            SchoolDeleted::NotEmpty => Err(ApiError::school_not_empty(id.as_str())),
        }
    }
}
