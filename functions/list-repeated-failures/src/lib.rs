//! `GET /devices/repeated-failures`: devices whose current failure streak is at least
//! their threshold (their school's, else the fleet's), longest first. Reads per-device
//! state, never the event log. `school=ID` narrows to one school; a school operator
//! sees its schools' devices only.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::domain::validate::FieldError;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::http::routes::LIST_REPEATED_FAILURES;
use pisync_shared::http::scope;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::{FailingDevice, FailingKey, ListFailing, ReadSchools};
use pisync_shared::DeviceId;
use serde::Serialize;
use std::sync::Arc;

pub struct ListRepeatedFailures {
    failing: Arc<dyn ListFailing>,
    schools: Arc<dyn ReadSchools>,
    /// The rule detection saves devices as failing with; its threshold is reported.
    rule: StreakRule,
    cursor_key: CursorKey,
    auth: Authenticator,
}

#[derive(Serialize)]
struct FailuresBody {
    /// The school's threshold with `school=` (if it sets one), else the fleet's.
    threshold: u32,
    devices: Vec<FailingDevice>,
    next_cursor: Option<String>,
}

const PARAMS: [&str; 3] = ["school", "limit", "cursor"];

impl HttpFunction for ListRepeatedFailures {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        let store = aws.store().await?;
        Ok(Self {
            failing: store.clone(),
            schools: store,
            rule: aws.config.rule,
            cursor_key: aws.cursor_key().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            failing: local.store.clone(),
            schools: local.store.clone(),
            rule: local.config.rule,
            cursor_key: local.cursor_key.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for ListRepeatedFailures {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&LIST_REPEATED_FAILURES, &req, &self.auth).await {
            Ok(call) => call.reply(list(self, &call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

async fn list(deps: &ListRepeatedFailures, call: &Call<'_>) -> Result<FailuresBody, ApiError> {
    let mut problems = Vec::new();
    let params = call.query(&PARAMS, &mut problems);
    let limit = http::parse_limit(&params, &mut problems);
    let school = scope::school_param(&params, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::invalid_request(problems));
    }
    let reading = scope::within(&call.caller, school, deps.schools.as_ref()).await?;
    let threshold = reading
        .school
        .and_then(|s| s.failure_threshold)
        .unwrap_or(deps.rule.threshold);
    let context = format!(
        "repeated-failures\n{}\n{}",
        deps.rule.threshold,
        scope::cursor_scope(&reading.within)
    );
    let after = params.get("cursor").and_then(|cursor| {
        let key = deps
            .cursor_key
            .open(&context, cursor)
            .and_then(|p| parse_position(&p));
        if key.is_none() {
            problems.push(FieldError::new("cursor", "is not a cursor this endpoint issued"));
        }
        key
    });
    if !problems.is_empty() {
        return Err(ApiError::invalid_request(problems));
    }
    let page = deps
        .failing
        .repeated_failures(limit, after.as_ref(), &reading.within)
        .await?;
    let next_cursor = match (page.more, page.devices.last()) {
        (true, Some(last)) => Some(deps.cursor_key.seal(&context, &position(&last.key()))),
        _ => None,
    };
    Ok(FailuresBody {
        threshold,
        devices: page.devices,
        next_cursor,
    })
}

fn position(key: &FailingKey) -> String {
    format!("{}\n{}", key.consecutive_failures, key.device_id)
}

fn parse_position(text: &str) -> Option<FailingKey> {
    let (count, device) = text.split_once('\n')?;
    Some(FailingKey {
        consecutive_failures: count.parse().ok()?,
        device_id: DeviceId::parse(device)?,
    })
}
