//! Replies: JSON with the standard headers, and errors in the one shape.

use super::error::ApiError;
use crate::domain::validate::FieldError;
use lambda_http::http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;

/// Headers on every API reply, errors included.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("referrer-policy", "no-referrer"),
];

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
            tracing::error!(error = %e, request_id, "response did not serialise");
            internal_error(request_id)
        }
    }
}

pub fn error(err: &ApiError, request_id: &str) -> Response<Body> {
    err.log(request_id);
    let body = ErrorBody {
        error: ErrorFields {
            code: err.code,
            message: &err.message,
            details: &err.details,
        },
        request_id,
    };
    let mut response = json(err.status, &body, request_id);
    if let Some(allow) = err.allow.as_deref().and_then(|a| HeaderValue::from_str(a).ok()) {
        response.headers_mut().insert(ALLOW, allow);
    }
    if err.status == StatusCode::SERVICE_UNAVAILABLE {
        // Storage hiccups are short; clients (pisync-client) wait this long before retrying.
        response.headers_mut().insert(
            lambda_http::http::header::RETRY_AFTER,
            HeaderValue::from_static("1"),
        );
    }
    if let Some(secs) = err.retry_after {
        response
            .headers_mut()
            .insert(lambda_http::http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if err.challenge {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// `204 No Content` with the standard headers.
pub fn no_content(request_id: &str) -> Response<Body> {
    let mut response = with_headers(StatusCode::NO_CONTENT, Vec::new(), request_id);
    *response.body_mut() = Body::Empty;
    response.headers_mut().remove(CONTENT_TYPE);
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

/// The 500 reply: the error shape with the request id, built without serde so it
/// cannot fail itself.
fn internal_error(request_id: &str) -> Response<Body> {
    let err = ApiError::internal();
    // Request ids are ours (or API Gateway's): letters, digits and dashes; anything
    // else is dropped rather than escaped.
    let id: String = request_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let body = format!(
        r#"{{"error":{{"code":"{}","message":"{}","details":[]}},"request_id":"{id}"}}"#,
        err.code, err.message
    );
    with_headers(err.status, body.into_bytes(), request_id)
}
