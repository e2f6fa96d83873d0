//! `GET /schools/{school_id}/digest`: what the school's daily digest would say now,
//! for its local date — composed exactly as the periodic check composes the one it
//! sends, but neither published nor recorded. A school the caller may not see answers
//! as one that does not exist.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::notice::Notice;
use pisync_shared::domain::school_digest::{compose_digest, DigestReads};
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::PREVIEW_SCHOOL_DIGEST;
use pisync_shared::http::{scope, ApiError, Call};
use pisync_shared::EventTime;

pub struct PreviewSchoolDigest {
    reads: DigestReads,
    auth: Authenticator,
}

impl HttpFunction for PreviewSchoolDigest {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            reads: DigestReads::of(aws.store().await?),
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            reads: DigestReads::of(local.store.clone()),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for PreviewSchoolDigest {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&PREVIEW_SCHOOL_DIGEST, &req, &self.auth).await {
            Ok(call) => call.reply(self.preview(&call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

impl PreviewSchoolDigest {
    async fn preview(&self, call: &Call<'_>) -> Result<Notice, ApiError> {
        let id = scope::school_path(call.path_param("school_id"))?;
        let mut problems = Vec::new();
        call.query(&[], &mut problems);
        if !problems.is_empty() {
            return Err(ApiError::invalid_request(problems));
        }
        let sources = self.reads.sources();
        let school = scope::visible_school(&call.caller, &id, sources.schools).await?;
        let now = EventTime::now();
        let digest = compose_digest(sources, &school, school.local_date(now), now).await?;
        Ok(Notice::Digest(Box::new(digest)))
    }
}
