//! `GET /notices`: the notice feed — every notice decided for the devices the caller
//! reaches (or one `school`'s), of one `type` or all, published or not and why,
//! newest decision first, page by page. A notice belongs to the school its device was
//! in when it was decided; unassigned devices' notices are in the district's feed only.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::notice::Notice;
use pisync_shared::domain::validate::FieldError;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::http::notice_pages::{self, NoticesBody};
use pisync_shared::http::routes::LIST_NOTICES;
use pisync_shared::http::{self, scope, ApiError, Call};
use pisync_shared::ports::{NoticeHistory, NoticeQuery, ReadSchools};
use std::sync::Arc;

pub struct ListNotices {
    schools: Arc<dyn ReadSchools>,
    history: Arc<dyn NoticeHistory>,
    cursor_key: CursorKey,
    auth: Authenticator,
}

const PARAMS: [&str; 4] = ["school", "type", "limit", "cursor"];

impl HttpFunction for ListNotices {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        let store = aws.store().await?;
        Ok(Self {
            schools: store.clone(),
            history: store,
            cursor_key: aws.cursor_key().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            schools: local.store.clone(),
            history: local.store.clone(),
            cursor_key: local.cursor_key.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for ListNotices {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&LIST_NOTICES, &req, &self.auth).await {
            Ok(call) => call.reply(self.list(&call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

impl ListNotices {
    async fn list(&self, call: &Call<'_>) -> Result<NoticesBody, ApiError> {
        let mut problems = Vec::new();
        let params = call.query(&PARAMS, &mut problems);
        let school = scope::school_param(&params, &mut problems);
        let kind = params.get("type").and_then(|text| {
            let kind = Notice::TYPES.into_iter().find(|t| *t == text);
            if kind.is_none() {
                let expected = format!("must be one of {}", Notice::TYPES.join(", "));
                problems.push(FieldError::new("type", expected));
            }
            kind
        });
        let limit = http::parse_limit(&params, &mut problems);
        if !problems.is_empty() {
            return Err(ApiError::invalid_request(problems));
        }
        let reading = scope::within(&call.caller, school, self.schools.as_ref()).await?;
        // A cursor is good only for the list it was issued for: reach, school, type.
        let context = format!(
            "notices\n{}\n{}",
            scope::cursor_scope(&reading.within),
            kind.unwrap_or("*")
        );
        let before = notice_pages::cursor_param(&params, &self.cursor_key, &context, &mut problems);
        if !problems.is_empty() {
            return Err(ApiError::invalid_request(problems));
        }
        let query = NoticeQuery {
            within: &reading.within,
            kind,
            before: before.as_deref(),
            limit,
        };
        let page = self.history.notice_feed(&query).await?;
        Ok(notice_pages::body(page, &self.cursor_key, &context, None))
    }
}
