//! serve-dashboard's handler, called directly: every file with its type and the
//! dashboard's security headers, the sign-in configuration, the pinned uPlot.

use lambda_http::{Body, Request, RequestExt, Response};
use pisync_shared::config::{self, Config};
use pisync_shared::function::{Aws, HttpFunction, HttpHandler};
use pisync_shared::http::routes::{DASHBOARD, DASHBOARD_FILE};
use pisync_shared::test_util::lambda_events::{api_request, files_of};
use serve_dashboard::{ServeDashboard, SignIn, UPLOT_VERSION};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

fn get(path: &str) -> Request {
    let req = lambda_http::http::Request::get(path).body(Body::Empty).unwrap();
    let params: HashMap<String, String> = DASHBOARD_FILE
        .match_path(path)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    req.with_path_parameters(params)
}

/// As the local runner (and a stack without a Cognito pool) configures it.
async fn local() -> ServeDashboard {
    ServeDashboard::from_aws(&Aws::new(Config::default()))
        .await
        .unwrap()
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn text(response: &Response<Body>) -> String {
    String::from_utf8_lossy(response.body().as_ref()).into_owned()
}

#[tokio::test]
async fn every_file_is_served_with_its_type_and_the_security_headers() {
    let deps = local().await;
    for (path, content_type) in [
        (DASHBOARD.path, "text/html; charset=utf-8"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/dom.js", "text/javascript; charset=utf-8"),
        ("/dashboard/schools.js", "text/javascript; charset=utf-8"),
        ("/dashboard/style.css", "text/css; charset=utf-8"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
        ("/dashboard/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
        ("/dashboard/uPlot.min.css", "text/css; charset=utf-8"),
        ("/dashboard/LICENSE-uPlot.txt", "text/plain; charset=utf-8"),
        ("/dashboard/config.json", "application/json"),
    ] {
        let response = deps.handle(get(path)).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, "content-type"), content_type, "{path}");
        assert_eq!(
            header(&response, "content-security-policy"),
            "default-src 'self'; frame-ancestors 'none'",
            "{path}"
        );
        assert_eq!(header(&response, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&response, "x-frame-options"), "DENY", "{path}");
        assert!(!response.body().as_ref().is_empty(), "{path}");
    }
}

#[tokio::test]
async fn the_page_loads_only_its_own_files() {
    let page = text(&local().await.handle(get("/dashboard")).await);
    for attribute in ["src=\"", "href=\""] {
        for reference in page.split(attribute).skip(1) {
            let url = reference.split('"').next().unwrap();
            assert!(
                url.starts_with("/dashboard/") || url.starts_with('#'),
                "{url}: only the dashboard's own files"
            );
        }
    }
    assert!(
        !page.contains("<style") && !page.contains(" style="),
        "no inline styles (CSP)"
    );
    for script in page.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap();
        assert!(
            tag.contains(" src=\"/dashboard/"),
            "no inline scripts (CSP): <script{tag}>"
        );
    }
}

#[tokio::test]
async fn an_unchanged_file_is_a_304_without_a_body() {
    let first = local().await.handle(get("/dashboard/app.js")).await;
    let etag = header(&first, "etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    let mut again = get("/dashboard/app.js");
    again.headers_mut().insert("if-none-match", etag.parse().unwrap());
    let response = local().await.handle(again).await;
    assert_eq!(response.status(), 304);
    assert!(response.body().as_ref().is_empty());
    assert_eq!(header(&response, "etag"), etag);
    let mut stale = get("/dashboard/app.js");
    stale
        .headers_mut()
        .insert("if-none-match", "\"0000\"".parse().unwrap());
    assert_eq!(local().await.handle(stale).await.status(), 200);
}

#[tokio::test]
async fn unknown_files_are_404_in_the_error_shape() {
    let response = local().await.handle(get("/dashboard/secrets.txt")).await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn cognito_sign_in_is_configured_and_allowed_to_connect() {
    let vars = [
        (
            config::SIGN_IN_DOMAIN,
            "https://pisync-1-eu-west-1.auth.eu-west-1.amazoncognito.com",
        ),
        (config::SIGN_IN_CLIENT_ID, "exampleclientid"),
        (
            config::DASHBOARD_URL,
            "https://abc123.execute-api.eu-west-1.amazonaws.com/dashboard",
        ),
    ];
    let config =
        Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap();
    assert!(matches!(SignIn::of(&config), SignIn::Cognito { .. }));
    let deps = ServeDashboard::from_aws(&Aws::new(config)).await.unwrap();
    let response = deps.handle(get("/dashboard/config.json")).await;
    let config: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(config["sign_in"], "cognito");
    assert_eq!(config["client_id"], "exampleclientid");
    assert_eq!(config["groups_claim"], "cognito:groups");
    assert_eq!(
        header(&response, "content-security-policy"),
        "default-src 'self'; connect-src 'self' https://pisync-1-eu-west-1.auth.eu-west-1.amazoncognito.com; frame-ancestors 'none'"
    );
    let local: serde_json::Value = serde_json::from_slice(
        local()
            .await
            .handle(get("/dashboard/config.json"))
            .await
            .body()
            .as_ref(),
    )
    .unwrap();
    assert_eq!(local, serde_json::json!({"sign_in": "token"}));
}

/// uPlot is vendored at a pinned release: these are the npm package's files.
#[tokio::test]
async fn the_vendored_chart_library_is_the_pinned_release() {
    assert_eq!(UPLOT_VERSION, "1.6.32");
    for (file, sha256) in [
        (
            "uPlot.iife.min.js",
            "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
        ),
        (
            "uPlot.min.css",
            "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
        ),
        (
            "LICENSE-uPlot.txt",
            "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
        ),
    ] {
        let response = local().await.handle(get(&format!("/dashboard/{file}"))).await;
        let digest = format!("{:x}", Sha256::digest(response.body().as_ref()));
        assert_eq!(digest, sha256, "{file}");
    }
}

/// Every example in `events/serve-dashboard/`, as API Gateway hands it over.
const CASES: &[(&str, u16, &str)] = &[
    ("serve-dashboard/page.json", 200, "text/html; charset=utf-8"),
    (
        "serve-dashboard/script.json",
        200,
        "text/javascript; charset=utf-8",
    ),
    ("serve-dashboard/sign-in-config.json", 200, "application/json"),
    ("serve-dashboard/unknown-file.json", 404, "application/json"),
];

#[test]
fn every_example_event_has_a_case() {
    let cased: Vec<&str> = CASES.iter().map(|(file, _, _)| *file).collect();
    assert_eq!(files_of("serve-dashboard"), cased);
}

#[tokio::test]
async fn each_example_event_gets_its_file() {
    for &(file, status, content_type) in CASES {
        let response = local().await.handle(api_request(file)).await;
        assert_eq!(response.status(), status, "{file}");
        assert_eq!(header(&response, "content-type"), content_type, "{file}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff", "{file}");
    }
}
