//! `GET /schools`: the schools the caller may see, by `school_id`, page by page, each
//! with its devices by status. A district operator pages through every school; a
//! school operator gets its own (at most a page of them). A page reads its schools and
//! one counts item each, never the devices.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::{Authenticator, Reach};
use pisync_shared::domain::school::{School, SchoolId, SchoolStatus};
use pisync_shared::domain::validate::FieldError;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::http::routes::LIST_SCHOOLS;
use pisync_shared::http::{self, scope, ApiError, Call};
use pisync_shared::ports::{ReadSchools, SchoolPage, Within};
use serde::Serialize;
use std::sync::Arc;

pub struct ListSchools {
    schools: Arc<dyn ReadSchools>,
    cursor_key: CursorKey,
    auth: Authenticator,
}

#[derive(Serialize)]
struct SchoolsBody {
    schools: Vec<SchoolStatus>,
    next_cursor: Option<String>,
}

const PARAMS: [&str; 2] = ["limit", "cursor"];

impl HttpFunction for ListSchools {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            schools: aws.store().await?,
            cursor_key: aws.cursor_key().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            schools: local.store.clone(),
            cursor_key: local.cursor_key.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for ListSchools {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&LIST_SCHOOLS, &req, &self.auth).await {
            Ok(call) => call.reply(self.list(&call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

impl ListSchools {
    async fn list(&self, call: &Call<'_>) -> Result<SchoolsBody, ApiError> {
        let mut problems = Vec::new();
        let params = call.query(&PARAMS, &mut problems);
        let limit = http::parse_limit(&params, &mut problems);
        let within = match call.caller.reach() {
            Some(Reach::Schools(own)) => Within::Schools(own.clone()),
            _ => Within::Fleet,
        };
        let context = format!("schools\n{}", scope::cursor_scope(&within));
        let after = params.get("cursor").and_then(|cursor| {
            let after = self
                .cursor_key
                .open(&context, cursor)
                .and_then(|p| SchoolId::parse(&p));
            if after.is_none() {
                problems.push(FieldError::new("cursor", "is not a cursor this endpoint issued"));
            }
            after
        });
        if !problems.is_empty() {
            return Err(ApiError::invalid_request(problems));
        }
        let page = match &within {
            Within::Fleet => self.schools.schools(after.as_ref(), limit).await?,
            Within::Schools(own) => self.own_schools(own, after.as_ref(), limit).await?,
        };
        let ids: Vec<SchoolId> = page.schools.iter().map(|s| s.school_id.clone()).collect();
        let counts = self.schools.school_counts(&ids).await?;
        let next_cursor = match (page.more, page.schools.last()) {
            (true, Some(last)) => Some(self.cursor_key.seal(&context, last.school_id.as_str())),
            _ => None,
        };
        Ok(SchoolsBody {
            schools: page
                .schools
                .into_iter()
                .zip(counts)
                .map(|(school, counts)| SchoolStatus {
                    school,
                    devices: counts.devices,
                })
                .collect(),
            next_cursor,
        })
    }

    /// A school operator's schools (sorted; those that exist), after `after`.
    async fn own_schools(
        &self,
        own: &[SchoolId],
        after: Option<&SchoolId>,
        limit: usize,
    ) -> Result<SchoolPage, ApiError> {
        let wanted = own.iter().filter(|id| after.is_none_or(|a| *id > a));
        let reads = wanted.map(|id| self.schools.school(id));
        let mut schools: Vec<School> = Vec::new();
        for read in futures_util::future::join_all(reads).await {
            if let Some(school) = read? {
                schools.push(school);
            }
        }
        let more = schools.len() > limit;
        schools.truncate(limit);
        Ok(SchoolPage { schools, more })
    }
}
