//! `GET /audit` (admins): the audit trail, newest first, page by page. A district
//! admin reads every entry; a school admin the entries about the schools it
//! administers (a device moved out of one of them included), never another's.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::{Authenticator, Caller, Reach};
use pisync_shared::domain::audit::AuditEntry;
use pisync_shared::domain::validate::FieldError;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::http::routes::LIST_AUDIT;
use pisync_shared::http::{self, scope, ApiError, Call};
use pisync_shared::ports::{AuditTrail, Within};
use serde::Serialize;
use std::sync::Arc;

pub struct ListAudit {
    audit: Arc<dyn AuditTrail>,
    cursor_key: CursorKey,
    auth: Authenticator,
}

#[derive(Serialize)]
struct AuditBody {
    entries: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

const PARAMS: [&str; 2] = ["limit", "cursor"];

impl HttpFunction for ListAudit {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            audit: aws.store().await?,
            cursor_key: aws.cursor_key().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            audit: local.store.clone(),
            cursor_key: local.cursor_key.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for ListAudit {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&LIST_AUDIT, &req, &self.auth).await {
            Ok(call) => call.reply(self.list(&call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

/// The entries a caller may read: where it administers.
fn administered(caller: &Caller) -> Within {
    match caller {
        Caller::Operator(op) => match &op.administers {
            Some(Reach::Schools(own)) => Within::Schools(own.clone()),
            Some(Reach::District) => Within::Fleet,
            // Not reached: the route admits admins only.
            None => Within::Schools(Vec::new()),
        },
        _ => Within::Fleet,
    }
}

impl ListAudit {
    async fn list(&self, call: &Call<'_>) -> Result<AuditBody, ApiError> {
        let mut problems = Vec::new();
        let params = call.query(&PARAMS, &mut problems);
        let limit = http::parse_limit(&params, &mut problems);
        let within = administered(&call.caller);
        // A cursor is good only for the reach it was issued to.
        let context = format!("audit\n{}", scope::cursor_scope(&within));
        let before = params.get("cursor").and_then(|cursor| {
            let before = self.cursor_key.open(&context, cursor);
            if before.is_none() {
                problems.push(FieldError::new("cursor", "is not a cursor this endpoint issued"));
            }
            before
        });
        if !problems.is_empty() {
            return Err(ApiError::invalid_request(problems));
        }
        let page = self
            .audit
            .audit_entries(&within, before.as_deref(), limit)
            .await?;
        let next_cursor = match (page.more, page.entries.last()) {
            (true, Some(last)) => Some(self.cursor_key.seal(&context, &last.key())),
            _ => None,
        };
        Ok(AuditBody {
            entries: page.entries,
            next_cursor,
        })
    }
}
