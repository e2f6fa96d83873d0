//! The HTTP front: routes a local HTTP request with the shared route table, reads its
//! body within that route's limit, turns it into the API Gateway-shaped
//! `lambda_http::Request` the production handlers take, and sends their reply back.
//! One route exists only here: `GET /metrics`, the runner's counters in Prometheus
//! text (in AWS the same figures go to CloudWatch).

use fleet_summary::FleetSummary;
use get_device::GetDevice;
use get_sync_history::GetSyncHistory;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use issue_device_credentials::IssueDeviceCredentials;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use list_devices::ListDevices;
use list_repeated_failures::ListRepeatedFailures;
use pisync_shared::auth::{Access, Authenticator};
use pisync_shared::domain::validate::FieldError;
use pisync_shared::http::routes::{self, Route};
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::metrics::Registry;
use record_sync_event::RecordSyncEvent;
use record_sync_events::RecordSyncEvents;
use revoke_device_credentials::RevokeDeviceCredentials;
use serve_dashboard::ServeDashboard;
use std::collections::HashMap;
use std::sync::Arc;

/// The runner's counters: operators only, like every read route.
pub const METRICS: Route = Route {
    method: lambda_http::http::Method::GET,
    path: "/metrics",
    function: "pisync-local",
    body_limit: 0,
    access: Access::Read,
};

/// The API routes' handlers.
#[derive(Clone)]
pub struct Routes {
    pub record: RecordSyncEvent,
    pub record_batch: RecordSyncEvents,
    pub history: GetSyncHistory,
    pub failures: ListRepeatedFailures,
    pub device: GetDevice,
    pub devices: ListDevices,
    pub summary: FleetSummary,
    pub dashboard: ServeDashboard,
    pub issue: IssueDeviceCredentials,
    pub revoke: RevokeDeviceCredentials,
    pub metrics: Arc<Registry>,
    /// For `GET /metrics` (the API routes' handlers hold their own).
    pub auth: Authenticator,
}

impl Routes {
    pub async fn serve(&self, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let request_id = http::generate_request_id();
        let response = match to_lambda(req, &request_id).await {
            Ok((route, req)) if route == &METRICS => self.metrics(req).await,
            Err(err) => http::error(&err, &request_id),
            Ok((route, req)) => self.dispatch(route, req).await,
        };
        let (parts, body) = response.into_parts();
        let bytes = match body {
            Body::Empty => Bytes::new(),
            Body::Text(t) => Bytes::from(t),
            Body::Binary(b) => Bytes::from(b),
            _ => Bytes::new(),
        };
        hyper::Response::from_parts(parts, Full::new(bytes))
    }

    /// The handler API Gateway would invoke for `route`.
    async fn dispatch(
        &self,
        route: &'static Route,
        req: lambda_http::Request,
    ) -> lambda_http::Response<Body> {
        if route == &routes::RECORD_SYNC_EVENT {
            record_sync_event::handle(&self.record, req).await
        } else if route == &routes::RECORD_SYNC_EVENTS {
            record_sync_events::handle(&self.record_batch, req).await
        } else if route == &routes::GET_SYNC_HISTORY {
            get_sync_history::handle(&self.history, req).await
        } else if route == &routes::LIST_REPEATED_FAILURES {
            list_repeated_failures::handle(&self.failures, req).await
        } else if route == &routes::GET_DEVICE {
            get_device::handle(&self.device, req).await
        } else if route == &routes::LIST_DEVICES {
            list_devices::handle(&self.devices, req).await
        } else if route == &routes::FLEET_SUMMARY {
            fleet_summary::handle(&self.summary, req).await
        } else if route == &routes::DASHBOARD || route == &routes::DASHBOARD_FILE {
            serve_dashboard::handle(&self.dashboard, req).await
        } else if route == &routes::ISSUE_DEVICE_CREDENTIALS {
            issue_device_credentials::handle(&self.issue, req).await
        } else if route == &routes::REVOKE_DEVICE_CREDENTIALS {
            revoke_device_credentials::handle(&self.revoke, req).await
        } else {
            // Every route in the table has a handler above (a test walks the table).
            http::error(&ApiError::route_not_found(), &http::request_id(&req))
        }
    }
}

impl Routes {
    /// `GET /metrics`: Prometheus text, with the API's security headers.
    async fn metrics(&self, req: lambda_http::Request) -> lambda_http::Response<Body> {
        match Call::admit(&METRICS, &req, &self.auth).await {
            Ok(call) => {
                let mut response = http::json(lambda_http::http::StatusCode::OK, &(), &call.request_id);
                *response.body_mut() = Body::Text(self.metrics.render());
                response.headers_mut().insert(
                    lambda_http::http::header::CONTENT_TYPE,
                    lambda_http::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            Err(refused) => *refused,
        }
    }
}

/// Longest a request body may take to arrive.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Routes the request and reads its body, at most the route's limit: a larger body
/// is refused without buffering it.
async fn to_lambda(
    req: hyper::Request<Incoming>,
    request_id: &str,
) -> Result<(&'static Route, lambda_http::Request), ApiError> {
    let (parts, body) = req.into_parts();
    let (route, path_params) = match METRICS.match_path(parts.uri.path()) {
        Some(params) if parts.method == METRICS.method => (&METRICS, params),
        _ => routes::route_for(&parts.method, parts.uri.path())?,
    };
    // A route that takes no body still gets its body read (and ignored by the
    // handler) up to the event limit, as API Gateway would pass it on.
    let read_limit = match route.body_limit {
        0 => routes::EVENT_BODY_LIMIT,
        limit => limit,
    };
    // A body trickled in slower than this is cut off (a 408, not a held connection).
    let body = tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, read_limit).collect())
        .await
        .map_err(|_| ApiError::request_timeout())?
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                ApiError::payload_too_large(read_limit)
            } else {
                ApiError::invalid_request(vec![FieldError::new("body", "could not be read")])
            }
        })?
        .to_bytes();
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        query.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.request_id = Some(request_id.to_owned());
    context.http.method = parts.method.clone();
    context.http.path = Some(parts.uri.path().to_owned());
    let path_params: HashMap<String, String> = path_params
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    let body = if body.is_empty() {
        Body::Empty
    } else {
        Body::Binary(body.to_vec())
    };
    let req = lambda_http::Request::from_parts(parts, body)
        .with_query_string_parameters(QueryMap::from(query))
        .with_path_parameters(QueryMap::from(path_params))
        .with_request_context(RequestContext::ApiGatewayV2(context));
    Ok((route, req))
}
