//! `GET /devices`: the fleet, page by page — all devices or those of one status, each
//! with its status, times, streak and totals. All and healthy devices come by device
//! id, failing ones longest streak first, silent ones longest silence first. A page
//! reads its own devices through an index, never the event log. `school=ID` narrows
//! to one school; a school operator sees its schools' devices only.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::device::{DeviceStatus, Status};
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::domain::validate::FieldError;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::http::routes::LIST_DEVICES;
use pisync_shared::http::scope;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::{DeviceKey, ReadDevices, ReadSchools};
use pisync_shared::{DeviceId, EventTime};
use serde::Serialize;
use std::sync::Arc;

pub struct ListDevices {
    devices: Arc<dyn ReadDevices>,
    schools: Arc<dyn ReadSchools>,
    /// The rule detection saves states with; it decides `failing`.
    rule: StreakRule,
    cursor_key: CursorKey,
    auth: Authenticator,
}

#[derive(Serialize)]
struct DevicesBody {
    devices: Vec<DeviceStatus>,
    next_cursor: Option<String>,
}

const PARAMS: [&str; 4] = ["status", "school", "limit", "cursor"];

impl HttpFunction for ListDevices {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        let store = aws.store().await?;
        Ok(Self {
            devices: store.clone(),
            schools: store,
            rule: aws.config.rule,
            cursor_key: aws.cursor_key().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            devices: local.store.clone(),
            schools: local.store.clone(),
            rule: local.config.rule,
            cursor_key: local.cursor_key.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for ListDevices {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&LIST_DEVICES, &req, &self.auth).await {
            Ok(call) => call.reply(list(self, &call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

async fn list(deps: &ListDevices, call: &Call<'_>) -> Result<DevicesBody, ApiError> {
    let mut problems = Vec::new();
    let params = call.query(&PARAMS, &mut problems);
    let limit = http::parse_limit(&params, &mut problems);
    let school = scope::school_param(&params, &mut problems);
    let status = params.get("status").and_then(|v| {
        let status = Status::parse(v);
        if status.is_none() {
            problems.push(FieldError::new("status", "must be healthy, failing or silent"));
        }
        status
    });
    if !problems.is_empty() {
        return Err(ApiError::invalid_request(problems));
    }
    let within = scope::within(&call.caller, school, deps.schools.as_ref())
        .await?
        .within;
    // A cursor belongs to one list (its order depends on the status, its devices on
    // the schools) and carries the status: the next page needs only the cursor and the
    // same `school`; a status given with it must be its own.
    let context = format!(
        "devices\n{}\n{}",
        deps.rule.threshold,
        scope::cursor_scope(&within)
    );
    let opened = params.get("cursor").and_then(|cursor| {
        let opened = deps
            .cursor_key
            .open(&context, cursor)
            .and_then(|p| parse_position(&p));
        match &opened {
            None => problems.push(FieldError::new("cursor", "is not a cursor this endpoint issued")),
            Some((listed, _)) if params.get("status").is_some() && *listed != status => {
                problems.push(FieldError::new("cursor", "was issued for another status"));
            }
            Some(_) => {}
        }
        opened
    });
    if !problems.is_empty() {
        return Err(ApiError::invalid_request(problems));
    }
    let (status, after) = match opened {
        Some((listed, key)) => (listed, Some(key)),
        None => (status, None),
    };
    let page = deps
        .devices
        .devices(status, limit, after.as_ref(), &within)
        .await?;
    let next_cursor = match (page.more, page.devices.last()) {
        (true, Some(last)) => Some(
            deps.cursor_key
                .seal(&context, &position(status, &DeviceKey::of(status, last))),
        ),
        _ => None,
    };
    Ok(DevicesBody {
        devices: page.devices.iter().map(|s| s.view(deps.rule)).collect(),
        next_cursor,
    })
}

/// The list (`all` or a status) and where in it the next page starts.
fn position(status: Option<Status>, key: &DeviceKey) -> String {
    let list = status.map_or("all", Status::as_str);
    match key {
        DeviceKey::Id(device) => format!("{list}\nid\n{device}"),
        DeviceKey::Streak {
            consecutive_failures,
            device_id,
        } => format!("{list}\nstreak\n{consecutive_failures}\n{device_id}"),
        DeviceKey::Silence {
            last_seen_at,
            device_id,
        } => format!("{list}\nsilence\n{last_seen_at}\n{device_id}"),
    }
}

fn parse_position(text: &str) -> Option<(Option<Status>, DeviceKey)> {
    let (list, text) = text.split_once('\n')?;
    let status = match list {
        "all" => None,
        other => Some(Status::parse(other)?),
    };
    let mut parts = text.split('\n');
    let key = match (parts.next()?, parts.next()?, parts.next()) {
        ("id", device, None) => DeviceKey::Id(DeviceId::parse(device)?),
        ("streak", count, Some(device)) => DeviceKey::Streak {
            consecutive_failures: count.parse().ok()?,
            device_id: DeviceId::parse(device)?,
        },
        ("silence", at, Some(device)) => DeviceKey::Silence {
            last_seen_at: EventTime::parse_rfc3339(at)?,
            device_id: DeviceId::parse(device)?,
        },
        _ => return None,
    };
    // The key must be of the list's kind.
    let fits = matches!(
        (status, &key),
        (None | Some(Status::Healthy), DeviceKey::Id(_))
            | (Some(Status::Failing), DeviceKey::Streak { .. })
            | (Some(Status::Silent), DeviceKey::Silence { .. })
    );
    (fits && parts.next().is_none()).then_some((status, key))
}
