//! The one route table. The local server routes with it, the seam enforces each
//! route's method and body limit, and the tests check `openapi.yaml` and
//! `template.yaml` against it: adding an endpoint starts here
//! (docs/adding-an-endpoint.md).

use super::error::ApiError;
use crate::auth::Access;
use lambda_http::http::Method;

/// One API route, served by one Lambda function.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// The path as `openapi.yaml` and `template.yaml` write it; `{name}` is a parameter.
    pub path: &'static str,
    /// The function crate and binary serving it (its template resource is the
    /// UpperCamelCase name plus `Function`).
    pub function: &'static str,
    /// Largest accepted request body, in bytes (0: the route takes no body).
    pub body_limit: usize,
    /// Who may call it. In AWS, device routes have no gateway authorizer (the function
    /// checks device tokens itself) and operator routes have the JWT authorizer.
    pub access: Access,
}

/// Largest sync-event body.
pub const EVENT_BODY_LIMIT: usize = 16 * 1024;

pub const RECORD_SYNC_EVENT: Route = Route {
    method: Method::POST,
    path: "/sync-event",
    function: "record-sync-event",
    body_limit: EVENT_BODY_LIMIT,
    access: Access::Device,
};

/// Largest backlog upload body.
pub const BATCH_BODY_LIMIT: usize = 256 * 1024;

pub const RECORD_SYNC_EVENTS: Route = Route {
    method: Method::POST,
    path: "/sync-events",
    function: "record-sync-events",
    body_limit: BATCH_BODY_LIMIT,
    access: Access::Device,
};

pub const GET_SYNC_HISTORY: Route = Route {
    method: Method::GET,
    path: "/device/{id}/sync-history",
    function: "get-sync-history",
    body_limit: 0,
    access: Access::Read,
};

pub const LIST_REPEATED_FAILURES: Route = Route {
    method: Method::GET,
    path: "/devices/repeated-failures",
    function: "list-repeated-failures",
    body_limit: 0,
    access: Access::Read,
};

pub const GET_DEVICE: Route = Route {
    method: Method::GET,
    path: "/device/{id}",
    function: "get-device",
    body_limit: 0,
    access: Access::Read,
};

pub const LIST_DEVICES: Route = Route {
    method: Method::GET,
    path: "/devices",
    function: "list-devices",
    body_limit: 0,
    access: Access::Read,
};

pub const FLEET_SUMMARY: Route = Route {
    method: Method::GET,
    path: "/fleet/summary",
    function: "fleet-summary",
    body_limit: 0,
    access: Access::Read,
};

/// The operators' dashboard: its page and files hold no data and need no token.
pub const DASHBOARD: Route = Route {
    method: Method::GET,
    path: "/dashboard",
    function: "serve-dashboard",
    body_limit: 0,
    access: Access::Public,
};

pub const DASHBOARD_FILE: Route = Route {
    method: Method::GET,
    path: "/dashboard/{file}",
    function: "serve-dashboard",
    body_limit: 0,
    access: Access::Public,
};

/// Largest body of a credentials request (`{"school_id": …}`) or an assignment.
pub const SCHOOL_CHOICE_BODY_LIMIT: usize = 1024;

pub const ISSUE_DEVICE_CREDENTIALS: Route = Route {
    method: Method::POST,
    path: "/device/{id}/credentials",
    function: "issue-device-credentials",
    body_limit: SCHOOL_CHOICE_BODY_LIMIT,
    access: Access::Admin,
};

pub const REVOKE_DEVICE_CREDENTIALS: Route = Route {
    method: Method::DELETE,
    path: "/device/{id}/credentials",
    function: "revoke-device-credentials",
    body_limit: 0,
    access: Access::Admin,
};

pub const ASSIGN_DEVICE_SCHOOL: Route = Route {
    method: Method::PUT,
    path: "/device/{id}/school",
    function: "assign-device-school",
    body_limit: SCHOOL_CHOICE_BODY_LIMIT,
    access: Access::Admin,
};

/// Largest school body: 400 closures with their reasons fit.
pub const SCHOOL_BODY_LIMIT: usize = 128 * 1024;

pub const PUT_SCHOOL: Route = Route {
    method: Method::PUT,
    path: "/schools/{school_id}",
    function: "put-school",
    body_limit: SCHOOL_BODY_LIMIT,
    access: Access::Admin,
};

pub const GET_SCHOOL: Route = Route {
    method: Method::GET,
    path: "/schools/{school_id}",
    function: "get-school",
    body_limit: 0,
    access: Access::Read,
};

pub const DELETE_SCHOOL: Route = Route {
    method: Method::DELETE,
    path: "/schools/{school_id}",
    function: "delete-school",
    body_limit: 0,
    access: Access::Admin,
};

pub const LIST_SCHOOLS: Route = Route {
    method: Method::GET,
    path: "/schools",
    function: "list-schools",
    body_limit: 0,
    access: Access::Read,
};

pub const LIST_AUDIT: Route = Route {
    method: Method::GET,
    path: "/audit",
    function: "list-audit",
    body_limit: 0,
    access: Access::Admin,
};

pub const LIST_DEVICE_NOTICES: Route = Route {
    method: Method::GET,
    path: "/device/{id}/notices",
    function: "list-device-notices",
    body_limit: 0,
    access: Access::Read,
};

pub const LIST_NOTICES: Route = Route {
    method: Method::GET,
    path: "/notices",
    function: "list-notices",
    body_limit: 0,
    access: Access::Read,
};

pub const PREVIEW_SCHOOL_DIGEST: Route = Route {
    method: Method::GET,
    path: "/schools/{school_id}/digest",
    function: "preview-school-digest",
    body_limit: 0,
    access: Access::Read,
};

pub const DAILY_ANALYTICS: Route = Route {
    method: Method::GET,
    path: "/analytics/daily",
    function: "daily-analytics",
    body_limit: 0,
    access: Access::Read,
};

pub const SCHOOL_ANALYTICS: Route = Route {
    method: Method::GET,
    path: "/analytics/schools",
    function: "school-analytics",
    body_limit: 0,
    access: Access::Read,
};

/// Every API route.
pub const ROUTES: [&Route; 22] = [
    &RECORD_SYNC_EVENT,
    &RECORD_SYNC_EVENTS,
    &GET_SYNC_HISTORY,
    &LIST_REPEATED_FAILURES,
    &GET_DEVICE,
    &LIST_DEVICES,
    &FLEET_SUMMARY,
    &DASHBOARD,
    &DASHBOARD_FILE,
    &ISSUE_DEVICE_CREDENTIALS,
    &REVOKE_DEVICE_CREDENTIALS,
    &ASSIGN_DEVICE_SCHOOL,
    &PUT_SCHOOL,
    &GET_SCHOOL,
    &DELETE_SCHOOL,
    &LIST_SCHOOLS,
    &LIST_AUDIT,
    &LIST_DEVICE_NOTICES,
    &LIST_NOTICES,
    &PREVIEW_SCHOOL_DIGEST,
    &DAILY_ANALYTICS,
    &SCHOOL_ANALYTICS,
];

/// A path parameter's name and its (percent-decoded) value.
pub type PathParams = Vec<(&'static str, String)>;

impl Route {
    /// The path parameters if `path` matches this route's template. A parameter is
    /// one non-empty segment, percent-decoded as API Gateway does.
    pub fn match_path(&self, path: &str) -> Option<PathParams> {
        let mut params = Vec::new();
        let mut template = self.path.split('/');
        let mut actual = path.split('/');
        loop {
            match (template.next(), actual.next()) {
                (None, None) => return Some(params),
                (Some(t), Some(a)) => match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    Some(name) if !a.is_empty() => {
                        let value = percent_encoding::percent_decode_str(a).decode_utf8_lossy();
                        params.push((name, value.into_owned()));
                    }
                    Some(_) => return None,
                    None if t == a => {}
                    None => return None,
                },
                _ => return None,
            }
        }
    }

    /// The function's resource name in `template.yaml`.
    pub fn template_resource(&self) -> String {
        let mut name: String = self
            .function
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        name.push_str("Function");
        name
    }
}

/// The route for a request: 404 when no route has the path, 405 (listing the allowed
/// methods) when the path exists with other methods.
pub fn route_for(method: &Method, path: &str) -> Result<(&'static Route, PathParams), ApiError> {
    let mut allowed: Vec<&'static str> = Vec::new();
    for route in ROUTES {
        if let Some(params) = route.match_path(path) {
            if route.method == *method {
                return Ok((route, params));
            }
            allowed.push(route.method.as_str());
        }
    }
    Err(match allowed.is_empty() {
        false => ApiError::method_not_allowed(&allowed.join(", ")),
        true => ApiError::route_not_found(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_templates_only() {
        let params = GET_SYNC_HISTORY
            .match_path("/device/dev%3A1/sync-history")
            .unwrap();
        assert_eq!(params, vec![("id", "dev:1".to_owned())]);
        for miss in [
            "/device//sync-history",
            "/device/a/b/sync-history",
            "/device/a",
            "/devices/a/sync-history",
        ] {
            assert_eq!(GET_SYNC_HISTORY.match_path(miss), None, "{miss}");
        }
        assert_eq!(RECORD_SYNC_EVENT.match_path("/sync-event"), Some(vec![]));
        assert_eq!(RECORD_SYNC_EVENT.match_path("/sync-event/"), None);
        assert_eq!(GET_DEVICE.match_path("/device/d/sync-history"), None);
        assert_eq!(LIST_DEVICES.match_path("/devices/repeated-failures"), None);
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        let (route, _) = route_for(&Method::POST, "/sync-event").unwrap();
        assert_eq!(route, &RECORD_SYNC_EVENT);
        let err = route_for(&Method::GET, "/sync-event").unwrap_err();
        assert_eq!((err.status.as_u16(), err.allow.as_deref()), (405, Some("POST")));
        let err = route_for(&Method::GET, "/device/d/credentials").unwrap_err();
        assert_eq!(err.allow.as_deref(), Some("POST, DELETE"));
        assert_eq!(route_for(&Method::GET, "/nope").unwrap_err().status.as_u16(), 404);
    }

    #[test]
    fn template_resources_are_named_after_the_function() {
        assert_eq!(RECORD_SYNC_EVENT.template_resource(), "RecordSyncEventFunction");
        assert_eq!(
            LIST_REPEATED_FAILURES.template_resource(),
            "ListRepeatedFailuresFunction"
        );
    }
}
