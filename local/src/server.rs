//! The HTTP front: turns a local HTTP request into the API Gateway-shaped
//! `lambda_http::Request` the production handlers take, routes it as API Gateway
//! would, and sends their response back.

use get_sync_history::GetSyncHistory;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use list_repeated_failures::ListRepeatedFailures;
use pisync_shared::http::{self, ApiError, MAX_BODY_BYTES};
use record_sync_event::RecordSyncEvent;
use std::collections::HashMap;

/// The three API routes' handlers.
#[derive(Clone)]
pub struct Routes {
    pub record: RecordSyncEvent,
    pub history: GetSyncHistory,
    pub failures: ListRepeatedFailures,
}

enum Route {
    Record,
    History(String),
    Failures,
}

fn route(path: &str) -> Option<Route> {
    match path {
        "/sync-event" => Some(Route::Record),
        "/devices/repeated-failures" => Some(Route::Failures),
        _ => {
            let id = path.strip_prefix("/device/")?.strip_suffix("/sync-history")?;
            (!id.is_empty() && !id.contains('/'))
                .then(|| {
                    percent_encoding::percent_decode_str(id)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .map(Route::History)
        }
    }
}

impl Routes {
    pub async fn serve(&self, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let request_id = http::generate_request_id();
        let response = match self.to_lambda(req, &request_id).await {
            Err(err) => http::error(&err, &request_id),
            Ok((Route::Record, req)) => record_sync_event::handle(&self.record, req).await,
            Ok((Route::History(_), req)) => get_sync_history::handle(&self.history, req).await,
            Ok((Route::Failures, req)) => list_repeated_failures::handle(&self.failures, req).await,
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

    async fn to_lambda(
        &self,
        req: hyper::Request<Incoming>,
        request_id: &str,
    ) -> Result<(Route, lambda_http::Request), ApiError> {
        let (parts, body) = req.into_parts();
        let route = route(parts.uri.path()).ok_or_else(ApiError::route_not_found)?;
        // Read at most the limit: a larger body is refused without buffering it.
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    ApiError::payload_too_large()
                } else {
                    ApiError::invalid_request(vec![pisync_shared::validate::FieldError::new(
                        "body",
                        "could not be read",
                    )])
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
        let path_params: HashMap<String, String> = match &route {
            Route::History(id) => HashMap::from([("id".to_owned(), id.clone())]),
            _ => HashMap::new(),
        };
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
}
