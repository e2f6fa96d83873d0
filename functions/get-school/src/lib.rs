//! `GET /schools/{school_id}`: one school's settings and its devices by status. A
//! school the caller may not see answers as one that does not exist.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::school::SchoolStatus;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::GET_SCHOOL;
use pisync_shared::http::{scope, ApiError, Call};
use pisync_shared::ports::ReadSchools;
use std::sync::Arc;

pub struct GetSchool {
    schools: Arc<dyn ReadSchools>,
    auth: Authenticator,
}

impl HttpFunction for GetSchool {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            schools: aws.store().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            schools: local.store.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for GetSchool {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&GET_SCHOOL, &req, &self.auth).await {
            Ok(call) => call.reply(self.school(&call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

impl GetSchool {
    async fn school(&self, call: &Call<'_>) -> Result<SchoolStatus, ApiError> {
        let id = scope::school_path(call.path_param("school_id"))?;
        let mut problems = Vec::new();
        call.query(&[], &mut problems);
        if !problems.is_empty() {
            return Err(ApiError::invalid_request(problems));
        }
        let school = scope::visible_school(&call.caller, &id, self.schools.as_ref()).await?;
        let counts = self.schools.school_counts(std::slice::from_ref(&id)).await?;
        Ok(SchoolStatus {
            school,
            devices: counts.first().map(|c| c.devices).unwrap_or_default(),
        })
    }
}
