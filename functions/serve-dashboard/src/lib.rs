//! `GET /dashboard` and `GET /dashboard/{file}`: the operators' dashboard — an HTML
//! page, its script and styles, uPlot (vendored, pinned) and its sign-in configuration.
//! These files hold no data and need no token; the data they show comes from the API
//! with the operator's token. Served from the same origin as the API, so the page
//! loads nothing from elsewhere: `Content-Security-Policy: default-src 'self'`.

use lambda_http::http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::config::Config;
use pisync_shared::digest::short_sha256;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::{DASHBOARD, DASHBOARD_FILE};
use pisync_shared::http::{self, ApiError, Call, SECURITY_HEADERS};

/// The pinned uPlot release the files come from (`static/vendor/`, with its licence).
pub const UPLOT_VERSION: &str = "1.6.32";

/// The dashboard's files, compiled into the function.
const FILES: [(&str, &str, &[u8]); 11] = [
    (
        "analytics.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/analytics.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/app.js"),
    ),
    (
        "audit.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/audit.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/dom.js"),
    ),
    (
        "notices.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/notices.js"),
    ),
    (
        "schools.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/schools.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../static/favicon.svg"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/vendor/uplot-1.6.32/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/vendor/uplot-1.6.32/uPlot.min.css"),
    ),
    (
        "LICENSE-uPlot.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../static/vendor/uplot-1.6.32/LICENSE"),
    ),
];
const INDEX: &[u8] = include_bytes!("../static/index.html");

/// How operators sign in.
#[derive(Clone, Debug, PartialEq)]
pub enum SignIn {
    /// An operator token pasted, or handed over in the local runner's sign-in link.
    Token,
    /// The Cognito hosted UI: authorization code with PKCE.
    Cognito {
        /// `https://<domain>.auth.<region>.amazoncognito.com`
        domain: String,
        client_id: String,
        /// Where the hosted UI sends the operator back: this page's URL.
        redirect_uri: String,
        /// The claim listing the operator's groups (the page reads its defaults from
        /// them: which school to show first).
        groups_claim: String,
    },
}

impl SignIn {
    /// The Cognito hosted UI when the configuration names one, else a token.
    pub fn of(config: &Config) -> Self {
        match config.dashboard_sign_in() {
            Some((domain, client_id, redirect_uri)) => SignIn::Cognito {
                domain: domain.to_owned(),
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                groups_claim: config.operator_groups_claim.clone(),
            },
            None => SignIn::Token,
        }
    }
}

pub struct ServeDashboard {
    sign_in: SignIn,
}

impl HttpFunction for ServeDashboard {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    /// No AWS client: the files are compiled in.
    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self {
            sign_in: SignIn::of(&aws.config),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            sign_in: SignIn::of(&local.config),
        }
    }
}

impl ServeDashboard {
    /// `connect-src` may also name the Cognito domain the page exchanges its code at.
    fn content_security_policy(&self) -> String {
        match &self.sign_in {
            SignIn::Token => "default-src 'self'; frame-ancestors 'none'".into(),
            SignIn::Cognito { domain, .. } => {
                format!("default-src 'self'; connect-src 'self' {domain}; frame-ancestors 'none'")
            }
        }
    }

    fn config_json(&self) -> Vec<u8> {
        let config = match &self.sign_in {
            SignIn::Token => serde_json::json!({ "sign_in": "token" }),
            SignIn::Cognito {
                domain,
                client_id,
                redirect_uri,
                groups_claim,
            } => serde_json::json!({
                "sign_in": "cognito", "domain": domain, "client_id": client_id, "redirect_uri": redirect_uri,
                "groups_claim": groups_claim,
            }),
        };
        config.to_string().into_bytes()
    }
}

#[async_trait]
impl HttpHandler for ServeDashboard {
    async fn handle(&self, req: Request) -> Response<Body> {
        serve(self, req).await
    }
}

async fn serve(deps: &ServeDashboard, req: Request) -> Response<Body> {
    let route = if req.uri().path() == DASHBOARD.path {
        &DASHBOARD
    } else {
        &DASHBOARD_FILE
    };
    let call = match Call::admit(route, &req, &PUBLIC).await {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    let (content_type, bytes): (&str, Vec<u8>) = if route == &DASHBOARD {
        ("text/html; charset=utf-8", INDEX.to_vec())
    } else {
        match call.path_param("file") {
            "config.json" => ("application/json", deps.config_json()),
            name => match FILES.iter().find(|(file, _, _)| *file == name) {
                Some((_, content_type, bytes)) => (content_type, bytes.to_vec()),
                None => return http::error(&ApiError::route_not_found(), &call.request_id),
            },
        }
    };
    // Revalidated on every load (a deploy is seen at once); an unchanged file costs a 304.
    let etag = entity_tag(&bytes);
    let unchanged = req
        .headers()
        .get(IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if unchanged {
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        Response::new(Body::Binary(bytes))
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(csp) = HeaderValue::from_str(&deps.content_security_policy()) {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, etag);
    }
    if let Ok(id) = HeaderValue::from_str(&call.request_id) {
        headers.insert("x-request-id", id);
    }
    response
}

/// A strong validator: the first 128 bits of the file's SHA-256.
fn entity_tag(bytes: &[u8]) -> String {
    format!("\"{}\"", short_sha256(bytes))
}

/// The dashboard's routes are public: [`Call::admit`] never consults an authenticator
/// for them, so this one only satisfies its signature.
static PUBLIC: std::sync::LazyLock<pisync_shared::auth::Authenticator> =
    std::sync::LazyLock::new(pisync_shared::auth::Authenticator::off);
