//! The one error a handler returns, rendered by [`super::reply::error`].

use crate::domain::validate::FieldError;
use crate::ports::StoreError;
use lambda_http::http::StatusCode;
use std::sync::Arc;

/// An error reply: status, machine-readable code, human message, per-field details,
/// and for PiSync's own failures the error that caused it (logged with the request id
/// when the reply is made, never sent).
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldError>,
    /// Methods to list in `Allow` on a 405.
    pub allow: Option<String>,
    /// A 401 carries `WWW-Authenticate: Bearer`.
    pub challenge: bool,
    /// A 429 says when to try again (`Retry-After`, seconds).
    pub retry_after: Option<u32>,
    pub source: Option<Arc<StoreError>>,
}

/// Two errors are the same reply; what caused them is not part of it.
impl PartialEq for ApiError {
    fn eq(&self, other: &Self) -> bool {
        (
            self.status,
            self.code,
            &self.message,
            &self.details,
            &self.allow,
            self.challenge,
        ) == (
            other.status,
            other.code,
            &other.message,
            &other.details,
            &other.allow,
            other.challenge,
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// The store failed: not the client's fault, and worth retrying (503 with
/// `Retry-After`); the store's error is kept as the source.
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self {
            source: Some(Arc::new(err)),
            ..Self::unavailable()
        }
    }
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            allow: None,
            challenge: false,
            retry_after: None,
            source: None,
        }
    }

    /// Logs PiSync's own failure (a 5xx) with the request id and its chain of causes;
    /// client errors are not logged.
    pub fn log(&self, request_id: &str) {
        if !self.status.is_server_error() {
            return;
        }
        let mut chain = String::new();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            chain.push_str(": ");
            chain.push_str(&e.to_string());
            cause = e.source();
        }
        tracing::error!(
            status = self.status.as_u16(),
            code = self.code,
            request_id,
            "request failed{chain}"
        );
    }

    pub fn invalid_event(details: Vec<FieldError>) -> Self {
        Self {
            details: bounded(details),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_event",
                "the sync event is invalid",
            )
        }
    }

    pub fn invalid_request(details: Vec<FieldError>) -> Self {
        Self {
            details: bounded(details),
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

    /// 409: `sent` has the identity of `stored` and different figures; `details` names
    /// each differing field with its stored value.
    pub fn conflicting_event(stored: &crate::StoredEvent, sent: &crate::StoredEvent) -> Self {
        Self {
            details: stored.differences(sent),
            ..Self::conflict(format!(
                "device {} already reported a sync at {} with different figures",
                stored.device_id, stored.timestamp
            ))
        }
    }

    /// 400: the envelope of a backlog upload is wrong (not its events).
    pub fn invalid_batch(details: Vec<FieldError>) -> Self {
        Self {
            details: bounded(details),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_batch",
                "the batch is invalid: expected {\"events\": [1 to 100 sync events]}",
            )
        }
    }

    pub fn device_not_found(device: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "device_not_found",
            format!("device {device} has never reported a sync"),
        )
    }

    /// 404 for a school that does not exist or that the caller may not see (the two
    /// answer alike).
    pub fn school_not_found(school: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "school_not_found",
            format!("there is no school {school}"),
        )
    }

    /// 400: the body of `PUT /schools/{school_id}` is wrong (one detail per field).
    pub fn invalid_school(details: Vec<FieldError>) -> Self {
        Self {
            details: bounded(details),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_school", "the school is invalid")
        }
    }

    /// 409: a school still has devices assigned to it.
    pub fn school_not_empty(school: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "school_not_empty",
            format!("school {school} still has devices assigned: move them first"),
        )
    }

    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    pub fn method_not_allowed(allow: &str) -> Self {
        Self {
            allow: Some(allow.to_owned()),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this route accepts {allow}"),
            )
        }
    }

    /// No valid credential. `reason` is one of PiSync's own fixed phrases, never
    /// anything the client sent.
    pub fn unauthorized(reason: &str) -> Self {
        Self {
            challenge: true,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("a valid Bearer token is required ({reason})"),
            )
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body must be at most {limit} bytes"),
        )
    }

    /// 408: the body did not arrive in time (the local runner; API Gateway buffers bodies).
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        )
    }

    /// A request that is not HTTP PiSync can read (the local runner's HTTP server
    /// refused it before any route): `status` is 400, 414 or 431.
    pub fn malformed_request(status: u16) -> Self {
        match status {
            414 => Self::new(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                "the request URI is too long",
            ),
            431 => Self::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "the request headers are too large",
            ),
            _ => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request could not be read as HTTP/1.1",
            ),
        }
    }

    /// 429: the device is over its per-minute limits; nothing of the request was stored.
    pub fn rate_limited(retry_after_secs: u32) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("this device is over its per-minute limits; nothing was stored; retry in {retry_after_secs} s"),
            )
        }
    }

    /// A bug on PiSync's side; the reply still has the error shape and request id.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
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

/// Most problems listed in one error: a 16 KiB body of unknown fields would otherwise
/// produce an error many times its size.
pub const MAX_DETAILS: usize = 20;

/// `details` with at most [`MAX_DETAILS`] problems; the last line says how many more
/// there were.
fn bounded(mut details: Vec<FieldError>) -> Vec<FieldError> {
    if details.len() > MAX_DETAILS {
        let left_out = details.len() - (MAX_DETAILS - 1);
        details.truncate(MAX_DETAILS - 1);
        details.push(FieldError::new(
            "…",
            format!("and {left_out} more problems not listed"),
        ));
    }
    details
}
