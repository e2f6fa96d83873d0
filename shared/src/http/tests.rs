//! Tests of the HTTP layer as a whole: replies, media types, error codes.

use super::*;
use crate::domain::validate::FieldError;

#[test]
fn json_media_types() {
    for ok in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/vnd.pisync+json",
    ] {
        assert!(request::is_json_media_type(ok.as_bytes()), "{ok}");
    }
    for bad in [
        "text/plain",
        "application/xml",
        "application/+json",
        "",
        "json",
        "text/json",
    ] {
        assert!(!request::is_json_media_type(bad.as_bytes()), "{bad}");
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
    let spec = include_str!("../../../openapi.yaml");
    let codes = [
        ApiError::invalid_event(vec![]),
        ApiError::invalid_request(vec![]),
        ApiError::invalid_batch(vec![]),
        ApiError::conflict(""),
        ApiError::unauthorized("no token"),
        ApiError::forbidden(""),
        ApiError::device_not_found("d"),
        ApiError::route_not_found(),
        ApiError::method_not_allowed("GET"),
        ApiError::payload_too_large(1),
        ApiError::internal(),
        ApiError::unsupported_media_type(),
        ApiError::request_timeout(),
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

#[test]
fn a_503_says_when_to_retry() {
    let response = error(&ApiError::unavailable(), "req-1");
    assert_eq!(response.headers()["retry-after"], "1");
}

#[test]
fn a_401_challenges_for_a_bearer_token() {
    let response = error(&ApiError::unauthorized("no Authorization header"), "req-1");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let forbidden = error(&ApiError::forbidden("not yours"), "req-1");
    assert!(forbidden.headers().get("www-authenticate").is_none());
}

#[test]
fn a_flood_of_problems_gives_a_bounded_error() {
    let body: String = (0..2000).map(|i| format!(",\"f{i}\":1")).collect();
    let body = format!("{{\"device_id\":\"d\"{body}}}");
    assert!(body.len() < 32 * 1024);
    let problems = crate::domain::validate::parse_sync_event(
        body.as_bytes(),
        crate::EventTime::now(),
        Default::default(),
    )
    .unwrap_err();
    assert!(problems.len() > 2000);
    let reply = error(&ApiError::invalid_event(problems), "req-1");
    assert!(reply.body().len() < 4096, "{} bytes", reply.body().len());
    let json: serde_json::Value = serde_json::from_slice(reply.body().as_ref()).unwrap();
    let details = json["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), error::MAX_DETAILS);
    assert_eq!(details[19]["message"], "and 1985 more problems not listed");
}

/// Only the dashboard's files are served without a credential: they hold no data.
#[test]
fn only_the_dashboard_is_public() {
    use crate::auth::Access;
    use routes::ROUTES;
    let public: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.access == Access::Public)
        .map(|r| r.path)
        .collect();
    assert_eq!(public, ["/dashboard", "/dashboard/{file}"]);
}
