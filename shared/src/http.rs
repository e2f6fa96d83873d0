//! HTTP plumbing every endpoint shares: JSON replies, the one error shape, security
//! headers, request ids, body and query checks.

use crate::validate::FieldError;
use lambda_http::http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use lambda_http::http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("referrer-policy", "no-referrer"),
];

/// An error reply: status, machine-readable code, human message, per-field details.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldError>,
    /// Methods to list in `Allow` on a 405.
    pub allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            allow: None,
        }
    }

    pub fn invalid_event(details: Vec<FieldError>) -> Self {
        Self {
            details,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_event",
                "the sync event is invalid",
            )
        }
    }

    pub fn invalid_request(details: Vec<FieldError>) -> Self {
        Self {
            details,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request is invalid",
            )
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn device_not_found(device: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "device_not_found",
            format!("device {device} has never reported a sync"),
        )
    }

    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this route accepts {allow}"),
            )
        }
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body must be at most {MAX_BODY_BYTES} bytes"),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        )
    }

    /// The store failed: not the client's fault, and worth retrying.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "storage is temporarily unavailable; retry later",
        )
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    code: &'a str,
    message: &'a str,
    details: &'a [FieldError],
}

/// A JSON reply with the standard headers.
pub fn json<T: Serialize>(status: StatusCode, body: &T, request_id: &str) -> Response<Body> {
    match serde_json::to_vec(body) {
        Ok(bytes) => with_headers(status, bytes, request_id),
        Err(e) => {
            tracing::error!(error = %e, "response did not serialise");
            with_headers(
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"error":{"code":"internal","message":"internal error","details":[]}}"#.to_vec(),
                request_id,
            )
        }
    }
}

pub fn error(err: &ApiError, request_id: &str) -> Response<Body> {
    let body = ErrorBody {
        error: ErrorFields {
            code: err.code,
            message: &err.message,
            details: &err.details,
        },
        request_id,
    };
    let mut response = json(err.status, &body, request_id);
    if let Some(allow) = err.allow {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    response
}

fn with_headers(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response<Body> {
    let mut response = Response::new(Body::Binary(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    response
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

/// A request id unique within this process: start time plus a counter.
pub fn generate_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static EPOCH: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let epoch = EPOCH.get_or_init(|| chrono::Utc::now().timestamp_micros());
    format!("{epoch:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn require_method(req: &Request, method: Method, allow: &'static str) -> Result<(), ApiError> {
    if req.method() == method {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(allow))
    }
}

/// The body of a JSON request, after the size and media-type checks.
pub fn json_body(req: &Request) -> Result<&[u8], ApiError> {
    if let Some(content_type) = req.headers().get(CONTENT_TYPE) {
        if !is_json_media_type(content_type.as_bytes()) {
            return Err(ApiError::unsupported_media_type());
        }
    }
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large());
    }
    Ok(body)
}

/// `application/json` or any `application/*+json`, parameters (charset) allowed.
fn is_json_media_type(value: &[u8]) -> bool {
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
    pub fn parse(req: &'a Request, known: &[&str], problems: &mut Vec<FieldError>) -> Self {
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

/// Logs a store failure with the request id and maps it to a retryable 503.
pub fn store_failure(err: &crate::store::StoreError, request_id: &str) -> ApiError {
    tracing::error!(error = %err, request_id, "store operation failed");
    ApiError::unavailable()
}

fn truncate(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.pisync+json",
        ] {
            assert!(is_json_media_type(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/xml",
            "application/+json",
            "",
            "json",
            "text/json",
        ] {
            assert!(!is_json_media_type(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn error_shape_and_headers() {
        let err = ApiError::invalid_event(vec![FieldError::new("total_errors", "must be ≥ 0")]);
        let response = error(&err, "req-1");
        assert_eq!(response.status(), 400);
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(response.headers()[name], value);
        }
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_event");
        assert_eq!(body["error"]["details"][0]["field"], "total_errors");
        assert_eq!(body["request_id"], "req-1");
    }

    #[test]
    fn method_not_allowed_lists_allowed() {
        let response = error(&ApiError::method_not_allowed("POST"), "r");
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "POST");
    }

    #[test]
    fn openapi_lists_every_error_code() {
        let spec = include_str!("../../openapi.yaml");
        let codes = [
            ApiError::invalid_event(vec![]),
            ApiError::invalid_request(vec![]),
            ApiError::conflict(""),
            ApiError::device_not_found("d"),
            ApiError::route_not_found(),
            ApiError::method_not_allowed("GET"),
            ApiError::payload_too_large(),
            ApiError::unsupported_media_type(),
            ApiError::unavailable(),
        ];
        let enum_line = spec
            .lines()
            .find(|l| l.trim_start().starts_with("enum: [invalid_event"))
            .unwrap();
        for err in codes {
            assert!(
                enum_line.contains(err.code),
                "{} missing from openapi.yaml",
                err.code
            );
        }
    }

    #[test]
    fn generated_ids_are_unique() {
        assert_ne!(generate_request_id(), generate_request_id());
    }
}
