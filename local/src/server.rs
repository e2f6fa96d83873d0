//! The HTTP front: routes a local HTTP request with the shared route table, reads its
//! body within that route's limit, turns it into the API Gateway-shaped
//! `lambda_http::Request` the production handlers take, and sends their reply back.
//! One route exists only here: `GET /metrics`, the runner's counters in Prometheus
//! text (in AWS the same figures go to CloudWatch).

use crate::functions::Handlers;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use metrics_exporter_prometheus::PrometheusHandle;
use pisync_shared::auth::{Access, Authenticator};
use pisync_shared::domain::validate::FieldError;
use pisync_shared::http::routes::{self, Route};
use pisync_shared::http::{self, ApiError, Call};
use std::collections::HashMap;

/// The runner's counters: operators only, like every read route.
pub const METRICS: Route = Route {
    method: lambda_http::http::Method::GET,
    path: "/metrics",
    function: "pisync-local",
    body_limit: 0,
    access: Access::Read,
};

/// Where the dashboard exchanges a one-time sign-in code for a session (the runner
/// only: in AWS operators sign in through Cognito).
pub const SESSION: Route = Route {
    method: lambda_http::http::Method::POST,
    path: "/dashboard/session",
    function: "pisync-local",
    body_limit: 1024,
    access: Access::Public,
};

/// The API: each route of the table to its function's handler, and `GET /metrics`.
pub struct Server {
    handlers: Handlers,
    /// For `GET /metrics` (the functions' handlers hold their own).
    auth: Authenticator,
    metrics: PrometheusHandle,
    /// `--no-auth`: answer only loopback callers ([`crate::loopback`]).
    loopback_only: bool,
    /// Sign-in codes to sessions (none with `--no-auth`).
    sessions: Option<crate::sign_in::Sessions>,
}

impl Server {
    /// Fails, naming them, if a route of the table has no handler.
    pub fn new(
        handlers: Handlers,
        auth: Authenticator,
        metrics: PrometheusHandle,
        loopback_only: bool,
        sessions: Option<crate::sign_in::Sessions>,
    ) -> Result<Self, String> {
        let unserved = crate::functions::unserved(&handlers);
        if !unserved.is_empty() {
            return Err(format!("no handler for {}", unserved.join(", ")));
        }
        Ok(Self {
            handlers,
            auth,
            metrics,
            loopback_only,
            sessions,
        })
    }

    pub async fn serve(&self, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let request_id = http::generate_request_id();
        let (parts, body) = req.into_parts();
        let refused = self
            .loopback_only
            .then(|| crate::loopback::refusal(&parts))
            .flatten();
        let routed = match refused {
            Some(err) => {
                pisync_shared::metrics::request_refused(err.status.as_u16());
                Err(err)
            }
            None => to_lambda(hyper::Request::from_parts(parts, body), &request_id).await,
        };
        let response = match routed {
            Ok((route, req)) if route == &METRICS => self.metrics(req).await,
            Ok((route, req)) if route == &SESSION => self.session(req).await,
            Err(err) => http::error(&err, &request_id),
            Ok((route, req)) => match self.handlers.get(route.function) {
                Some(handler) => handler.handle(req).await,
                // Not reached: `new` refuses a table with an unserved route.
                None => http::error(&ApiError::route_not_found(), &request_id),
            },
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

    /// `GET /metrics`: Prometheus text, with the API's security headers.
    async fn metrics(&self, req: lambda_http::Request) -> lambda_http::Response<Body> {
        match Call::admit(&METRICS, &req, &self.auth).await {
            Ok(call) => {
                self.metrics.run_upkeep();
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

impl Server {
    /// `POST /dashboard/session` `{"code": "…"}`: 200 `{"token", "expires_at"}` for a
    /// code issued, unused and not expired; 401 for any other.
    async fn session(&self, req: lambda_http::Request) -> lambda_http::Response<Body> {
        let call = match Call::admit(&SESSION, &req, &self.auth).await {
            Ok(call) => call,
            Err(refused) => return *refused,
        };
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct CodeBody {
            code: String,
        }
        let outcome = match (&self.sessions, serde_json::from_slice::<CodeBody>(call.body())) {
            (_, Err(_)) => Err(ApiError::invalid_request(vec![FieldError::new(
                "body",
                "must be {\"code\": \"…\"}, the code of a sign-in link",
            )])),
            (None, Ok(_)) => Err(ApiError::unauthorized("authentication is off: no sign-in needed")),
            (Some(sessions), Ok(body)) => match sessions.open(&body.code) {
                Ok(Some(session)) => Ok((lambda_http::http::StatusCode::OK, session)),
                Ok(None) => Err(ApiError::unauthorized(
                    "the sign-in code is unknown, used or expired: run pisync-local sign-in for a new link",
                )),
                Err(e) => {
                    tracing::error!(error = %e, "sign-in codes unreadable");
                    Err(ApiError::internal())
                }
            },
        };
        call.reply(outcome)
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
    let local_only = [&METRICS, &SESSION]
        .into_iter()
        .find_map(|route| Some((route, route.match_path(parts.uri.path())?)))
        .filter(|(route, _)| parts.method == route.method);
    let (route, path_params) = match local_only {
        Some(found) => found,
        None => routes::route_for(&parts.method, parts.uri.path())?,
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
