//! The one HTTP seam: a request becomes a [`Call`] (request id, caller, route, body
//! within the route's limit) here, before any handler logic runs. The Lambda
//! functions, the local runner and the tests all go through it, because every
//! handler starts with [`Call::admit`].

use super::error::ApiError;
use super::reply;
use super::routes::Route;
pub use crate::auth::Caller;
use crate::auth::{AuthError, Authenticator, Presented};
use crate::domain::validate::FieldError;
use lambda_http::http::header::{AUTHORIZATION, CONTENT_TYPE};
use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// A request admitted to its route.
pub struct Call<'r> {
    pub request_id: String,
    pub caller: Caller,
    pub route: &'static Route,
    req: &'r Request,
}

impl<'r> Call<'r> {
    /// Admits `req` to `route`, in this order: the method must be the route's (405);
    /// the caller must prove who they are (401, or 503 if credentials cannot be read)
    /// and be one the route is for (403); a route that takes a body gets only JSON
    /// (415) within its limit (413). A refusal is already the reply to send (boxed: a
    /// reply is large and refusals are rare).
    pub async fn admit(
        route: &'static Route,
        req: &'r Request,
        auth: &Authenticator,
    ) -> Result<Self, Box<Response<Body>>> {
        let request_id = request_id(req);
        let refuse = |err: ApiError| {
            crate::metrics::request_refused(err.status.as_u16());
            Box::new(reply::error(&err, &request_id))
        };
        if req.method() != route.method {
            return Err(refuse(ApiError::method_not_allowed(route.method.as_str())));
        }
        // A public route never asks for a credential, nor refuses a bad one.
        let caller = if route.access == crate::auth::Access::Public {
            Caller::Anyone
        } else {
            match auth.authenticate(presented(req)).await {
                Ok(caller) => caller,
                Err(AuthError::Unauthorized(reason)) => return Err(refuse(ApiError::unauthorized(reason))),
                Err(AuthError::Unavailable(err)) => return Err(refuse(err.into())),
            }
        };
        if !route.access.allows(&caller) {
            return Err(refuse(ApiError::forbidden(forbidden_message(route))));
        }
        match check_body(route, req) {
            Ok(()) => Ok(Self {
                request_id,
                caller,
                route,
                req,
            }),
            Err(err) => Err(refuse(err)),
        }
    }

    /// The body, within the route's limit (empty for routes that take none).
    /// Counts this request of `events` events against its device's per-minute limits
    /// (a device token's device; with authentication off there is no device to count
    /// for). Over a limit: 429 `rate_limited`, and the caller stores nothing.
    pub async fn within_limits(
        &self,
        limits: &dyn crate::ports::LimitDevices,
        events: u32,
        now: crate::EventTime,
    ) -> Result<(), ApiError> {
        let crate::auth::Caller::Device(device) = &self.caller else {
            return Ok(());
        };
        let Some(device) = crate::DeviceId::parse(device) else {
            return Ok(());
        };
        match limits.admit(&device, events, now).await? {
            crate::domain::limits::Admission::Admitted => Ok(()),
            crate::domain::limits::Admission::Refused { retry_after_secs } => {
                crate::metrics::request_refused(429);
                Err(ApiError::rate_limited(retry_after_secs))
            }
        }
    }

    /// The audit trail's entry for an admin action of this call, now.
    pub fn audit_entry(
        &self,
        action: crate::domain::audit::AuditAction,
        target: &str,
        school_id: Option<crate::domain::school::SchoolId>,
        previous_school_id: Option<crate::domain::school::SchoolId>,
    ) -> crate::domain::audit::AuditEntry {
        crate::domain::audit::AuditEntry {
            at: crate::EventTime::now(),
            actor: self.caller.actor().to_owned(),
            action,
            target: target.to_owned(),
            school_id,
            previous_school_id,
            request_id: self.request_id.clone(),
        }
    }

    pub fn body(&self) -> &'r [u8] {
        if self.route.body_limit == 0 {
            return &[];
        }
        self.req.body().as_ref()
    }

    /// A path parameter of the route, as API Gateway (or the local runner) matched it.
    pub fn path_param(&self, name: &str) -> &'r str {
        self.req
            .path_parameters_ref()
            .and_then(|p| p.first(name))
            .unwrap_or("")
    }

    /// The `{id}` path parameter as a device id (the sync event's rule).
    pub fn device_id(&self) -> Result<crate::DeviceId, FieldError> {
        crate::DeviceId::parse(self.path_param("id"))
            .ok_or_else(|| FieldError::new("id", crate::DeviceId::RULE))
    }

    /// The query string, checked against the parameters the route knows.
    pub fn query(&self, known: &[&str], problems: &mut Vec<FieldError>) -> QueryParams<'r> {
        QueryParams::parse(self.req, known, problems)
    }

    /// The handler's outcome as the reply: the value as JSON with `status`, or the
    /// error in the one shape.
    pub fn reply<T: Serialize>(&self, outcome: Result<(StatusCode, T), ApiError>) -> Response<Body> {
        match outcome {
            Ok((status, body)) => reply::json(status, &body, &self.request_id),
            Err(err) => reply::error(&err, &self.request_id),
        }
    }
}

/// What the request presents as credentials: its `Authorization` header, and the
/// claims API Gateway's JWT authorizer verified (present only when the gateway ran
/// one; the local runner never sets them).
fn presented(req: &Request) -> Presented<'_> {
    let gateway_claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims),
        _ => None,
    };
    Presented {
        authorization: req.headers().get(AUTHORIZATION).map(|v| v.as_bytes()),
        gateway_claims,
    }
}

fn forbidden_message(route: &Route) -> &'static str {
    match route.access {
        crate::auth::Access::Public => "",
        crate::auth::Access::Device => "only a device token may record events",
        crate::auth::Access::Read => "only an operator token may read",
        crate::auth::Access::Admin => "only an operator with the admin scope may do this",
    }
}

fn check_body(route: &'static Route, req: &Request) -> Result<(), ApiError> {
    if route.body_limit == 0 {
        return Ok(());
    }
    if let Some(content_type) = req.headers().get(CONTENT_TYPE) {
        if !is_json_media_type(content_type.as_bytes()) {
            return Err(ApiError::unsupported_media_type());
        }
    }
    if req.body().len() > route.body_limit {
        return Err(ApiError::payload_too_large(route.body_limit));
    }
    Ok(())
}

/// The API Gateway request id, else the Lambda one, else a process-unique one.
pub fn request_id(req: &Request) -> String {
    let from_gateway = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    from_gateway
        .or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(generate_request_id)
}

/// A request id unique within this process: start time plus a counter, fixed-width
/// so that ids sort in the order they were made (the audit trail breaks ties by id).
pub fn generate_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static EPOCH: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let epoch = EPOCH.get_or_init(|| chrono::Utc::now().timestamp_micros());
    format!("{epoch:x}-{:012x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `application/json` or any `application/*+json`, parameters (charset) allowed.
pub fn is_json_media_type(value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json") && sub.len() > 5)
}

/// The query string, checked against the parameters a route knows: unknown or
/// repeated parameters are reported, never ignored.
pub struct QueryParams<'a> {
    values: Vec<(&'a str, &'a str)>,
}

impl<'a> QueryParams<'a> {
    fn parse(req: &'a Request, known: &[&str], problems: &mut Vec<FieldError>) -> Self {
        let mut values: Vec<(&'a str, &'a str)> = Vec::new();
        if let Some(map) = req.query_string_parameters_ref() {
            for (name, value) in map.iter() {
                if !known.contains(&name) {
                    problems.push(FieldError::new(truncate(name), "unknown query parameter"));
                } else if values.iter().any(|(n, _)| *n == name) {
                    problems.push(FieldError::new(name, "given more than once"));
                } else {
                    values.push((name, value));
                }
            }
        }
        problems.dedup();
        Self { values }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// Page size bounds shared by every listing route.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;

/// `limit`: an integer 1–100, 50 when absent.
pub fn parse_limit(params: &QueryParams, problems: &mut Vec<FieldError>) -> usize {
    match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                problems.push(FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                ));
                DEFAULT_LIMIT
            }
        },
    }
}

/// Days a summary or analytics route covers at most.
pub const MAX_DAYS: u32 = 90;

/// `days`: an integer 1–90, `default` when absent.
pub fn parse_days(params: &QueryParams, default: u32, problems: &mut Vec<FieldError>) -> u32 {
    match params.get("days") {
        None => default,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=MAX_DAYS).contains(&n) => n,
            _ => {
                problems.push(FieldError::new(
                    "days",
                    format!("must be an integer from 1 to {MAX_DAYS}"),
                ));
                default
            }
        },
    }
}

fn truncate(name: &str) -> String {
    name.chars().take(64).collect()
}
