//! `TestApp`: the real `pisync-local` binary started on a random port, with one method
//! per route of the API (and a raw `send` for requests no client should make). Each
//! route method carries the credential its route is for: device routes the event's
//! own device token (issued through the API on first use), read routes a `read`
//! operator token, admin routes an `admin` one (both from `pisync-local token`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct TestApp {
    pub child: Child,
    pub client: http::HttpClient,
    pub base: String,
    pub addr: String,
    pub alerts_file: PathBuf,
    pub backend: Backend,
    pub data_dir: PathBuf,
    /// `Authorization` values; `None` when the runner was started with `--no-auth`.
    pub read: Option<String>,
    pub admin: Option<String>,
    device_tokens: Mutex<HashMap<String, String>>,
}

/// The device whose token [`TestApp::send`] uses on device routes.
pub const SENDER: &str = "test-sender";

/// Which store the runner uses.
#[derive(Clone, Debug, PartialEq)]
pub enum Backend {
    Embedded,
    /// DynamoDB Local at this endpoint, this table.
    Dynamo {
        endpoint: String,
        table: String,
    },
}

impl Backend {
    /// The runner's (and the token command's) flags for this store.
    pub fn flags(&self) -> Vec<String> {
        match self {
            Backend::Embedded => Vec::new(),
            Backend::Dynamo { endpoint, table } => vec![
                "--dynamodb-endpoint".into(),
                endpoint.clone(),
                "--table".into(),
                table.clone(),
            ],
        }
    }
}

/// A freshness window reaching back past the fixtures' dates (about 50 years).
const FIXTURES_ARE_NEWS: &str = "18250d";

impl TestApp {
    pub fn start(backend: &Backend, data_dir: &Path, extra: &[&str]) -> TestApp {
        Self::start_at(backend, data_dir, "127.0.0.1:0", extra)
    }

    pub fn start_at(backend: &Backend, data_dir: &Path, addr: &str, extra: &[&str]) -> TestApp {
        let alerts_file = data_dir.join("alerts.jsonl");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pisync-local"));
        cmd.env_remove("PISYNC_NO_AUTH")
            .arg("--addr")
            .arg(addr)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--alerts-file")
            .arg(&alerts_file)
            .args(extra)
            .env_remove("PISYNC_ADDR")
            // The fixtures' reports are dated 2025 and sent now: a window that makes them
            // news, so each test sees the notices it is about. The freshness tests pass
            // `--alert-freshness`, which wins over the environment.
            .env("ALERT_FRESHNESS", FIXTURES_ARE_NEWS)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd.args(backend.flags());
        let mut child = cmd.spawn().expect("pisync-local starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("a first line").expect("readable stdout");
        let base = first
            .strip_prefix("pisync-local listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_owned();
        // Keep draining stdout (alert lines) so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let addr = base.trim_start_matches("http://").to_owned();
        let auth = !extra.contains(&"--no-auth");
        let mut app = TestApp {
            child,
            client: http::client(),
            base,
            addr,
            alerts_file,
            backend: backend.clone(),
            data_dir: data_dir.to_owned(),
            read: None,
            admin: None,
            device_tokens: Mutex::new(HashMap::new()),
        };
        if auth {
            app.read = Some(format!("Bearer {}", app.cli_token(&["operator"])));
            app.admin = Some(format!("Bearer {}", app.cli_token(&["operator", "--admin"])));
        }
        app
    }

    /// `pisync-local token ARGS…` on this runner's store and keys: the printed token.
    pub fn cli_token(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_pisync-local"))
            .arg("token")
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(self.backend.flags())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit())
            .output()
            .expect("pisync-local token runs");
        assert!(out.status.success(), "pisync-local token {args:?} failed");
        let stdout = String::from_utf8(out.stdout).expect("UTF-8 token");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "the token alone on stdout: {stdout:?}");
        lines[0].to_owned()
    }

    /// `pisync-local export --out OUT ARGS…` on this runner's store: the files it
    /// printed.
    pub fn export(&self, out: &Path, args: &[&str]) -> Vec<PathBuf> {
        let result = Command::new(env!("CARGO_BIN_EXE_pisync-local"))
            .arg("export")
            .arg("--out")
            .arg(out)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(self.backend.flags())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit())
            .output()
            .expect("pisync-local export runs");
        assert!(result.status.success(), "pisync-local export {args:?} failed");
        String::from_utf8(result.stdout)
            .expect("UTF-8 paths")
            .lines()
            .map(PathBuf::from)
            .collect()
    }

    /// `pisync-local sign-in` for this runner: the one-time code of the link it prints.
    pub fn sign_in_code(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_pisync-local"))
            .args(["sign-in", "--url", &self.base, "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .expect("pisync-local sign-in runs");
        assert!(out.status.success(), "pisync-local sign-in failed");
        let stdout = String::from_utf8(out.stdout).expect("UTF-8");
        let link = stdout
            .trim()
            .strip_prefix("pisync-local dashboard: ")
            .expect("a link");
        let code = link.strip_prefix(&format!("{}/dashboard#code=", self.base));
        code.expect("a code in the fragment").to_owned()
    }

    /// `Authorization` for `device`: its current token, issued through the API on first use.
    pub async fn device_auth(&self, device: &str) -> Option<String> {
        self.admin.as_ref()?;
        if let Some(token) = self.device_tokens.lock().unwrap().get(device) {
            return Some(format!("Bearer {token}"));
        }
        let issued = self.issue_device_credentials(device, self.admin.as_deref()).await;
        assert_eq!(issued.status, 201, "credentials for {device}: {}", issued.body);
        let token = issued.body["token"].as_str().expect("a token").to_owned();
        self.device_tokens
            .lock()
            .unwrap()
            .insert(device.to_owned(), token.clone());
        Some(format!("Bearer {token}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `POST /sync-event` with a JSON body, as the event's own device.
    pub async fn post_sync_event(&self, event: &serde_json::Value) -> http::Reply {
        let device = event["device_id"].as_str().unwrap_or(SENDER);
        let auth = self.device_auth(device).await;
        http::post_json(&self.client, &self.url("/sync-event"), event, auth.as_deref()).await
    }

    /// `POST /sync-events` with `{"events": events}`, as `device`.
    pub async fn post_sync_events(&self, device: &str, events: &[serde_json::Value]) -> http::Reply {
        let auth = self.device_auth(device).await;
        let body = serde_json::json!({ "events": events });
        http::post_json(&self.client, &self.url("/sync-events"), &body, auth.as_deref()).await
    }

    /// The operator routes as `authorization` (`None`: no credential).
    pub fn as_operator(&self, authorization: Option<&str>) -> Operator<'_> {
        Operator {
            app: self,
            auth: authorization.map(str::to_owned),
        }
    }

    /// The operator routes as the district reader.
    pub fn reader(&self) -> Operator<'_> {
        self.as_operator(self.read.as_deref())
    }

    /// The operator routes as the district admin.
    pub fn administrator(&self) -> Operator<'_> {
        self.as_operator(self.admin.as_deref())
    }

    /// `Authorization` for a school operator of `schools` (`admin`: with the admin scope).
    pub fn school_operator(&self, schools: &[&str], admin: bool) -> String {
        self.named_school_operator(pisync_shared::auth::token::DEFAULT_SUBJECT, schools, admin)
    }

    /// [`Self::school_operator`] named `name` (the audit trail's actor).
    pub fn named_school_operator(&self, name: &str, schools: &[&str], admin: bool) -> String {
        let mut args = vec!["operator", "--name", name];
        if admin {
            args.push("--admin");
        }
        for school in schools {
            args.extend(["--school", school]);
        }
        format!("Bearer {}", self.cli_token(&args))
    }

    /// `GET /device/{device}/sync-history?{query}` (`query` may be empty), as a reader.
    pub async fn get_sync_history(&self, device: &str, query: &str) -> http::Reply {
        self.reader().get_sync_history(device, query).await
    }

    /// `GET /devices/repeated-failures?{query}` (`query` may be empty), as a reader.
    pub async fn get_repeated_failures(&self, query: &str) -> http::Reply {
        self.reader().get_repeated_failures(query).await
    }

    /// `GET /device/{device}`, as a reader.
    pub async fn get_device(&self, device: &str) -> http::Reply {
        self.reader().get_device(device).await
    }

    /// `GET /device/{device}/notices?{query}` (`query` may be empty), as a reader.
    pub async fn get_device_notices(&self, device: &str, query: &str) -> http::Reply {
        self.reader().get_device_notices(device, query).await
    }

    /// `GET /notices?{query}` (`query` may be empty), as a reader.
    pub async fn get_notices(&self, query: &str) -> http::Reply {
        self.reader().get_notices(query).await
    }

    /// `GET /devices?{query}` (`query` may be empty), as a reader.
    pub async fn list_devices(&self, query: &str) -> http::Reply {
        self.reader().list_devices(query).await
    }

    /// `GET /fleet/summary?{query}` (`query` may be empty), as a reader.
    pub async fn fleet_summary(&self, query: &str) -> http::Reply {
        self.reader().fleet_summary(query).await
    }

    /// `GET /analytics/daily?{query}`, as a reader.
    pub async fn daily_analytics(&self, query: &str) -> http::Reply {
        self.reader().daily_analytics(query).await
    }

    /// `GET /analytics/schools?{query}`, as a reader.
    pub async fn school_analytics(&self, query: &str) -> http::Reply {
        self.reader().school_analytics(query).await
    }

    /// `GET /metrics` (Prometheus text), as a reader: the status and the text.
    pub async fn metrics(&self) -> (u16, String) {
        http::get_text(&self.client, &self.url("/metrics"), self.read.as_deref()).await
    }

    /// `POST /device/{device}/credentials` with `authorization`.
    pub async fn issue_device_credentials(&self, device: &str, authorization: Option<&str>) -> http::Reply {
        self.as_operator(authorization)
            .issue_device_credentials(device, None)
            .await
    }

    /// `DELETE /device/{device}/credentials` with `authorization`.
    pub async fn revoke_device_credentials(&self, device: &str, authorization: Option<&str>) -> http::Reply {
        self.as_operator(authorization)
            .revoke_device_credentials(device)
            .await
    }

    /// Any request, as sent, with the credential its route is for: for the cases no
    /// well-behaved client makes.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> http::Reply {
        let auth = if path.starts_with("/sync-event") {
            self.device_auth(SENDER).await
        } else {
            self.admin.clone()
        };
        self.send_as(method, path, content_type, body, auth.as_deref())
            .await
    }

    /// Any request with exactly this `Authorization` (or none).
    pub async fn send_as(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        authorization: Option<&str>,
    ) -> http::Reply {
        http::send(
            &self.client,
            method,
            &self.url(path),
            content_type,
            body,
            authorization,
        )
        .await
    }

    /// The runner's metrics as `(series, value)`, a series written as Prometheus
    /// prints it (`name{label="value"}`).
    pub async fn metrics_samples(&self) -> Vec<(String, f64)> {
        let (status, text) = self.metrics().await;
        assert_eq!(status, 200, "{text}");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// The sum of every series of metric `name` (0 when it has none yet).
    pub async fn metric(&self, name: &str) -> f64 {
        self.metrics_samples()
            .await
            .iter()
            .filter(|(series, _)| series.split('{').next() == Some(name))
            .map(|(_, v)| v)
            .sum()
    }

    /// Waits until the runner is idle: every event the API created applied by
    /// detection (whose batch delivers what it decided), then `checks` more runs of
    /// the periodic check (each a delivery round of whatever still waits). A notice
    /// that was going to go out twice, or late, has by then. Needs a short
    /// `--silent-check-interval`.
    pub async fn settle(&self, checks: u32) {
        super::wait_until("every created event applied", || async {
            let created = self
                .metric_series("pisync_events_recorded_total{result=\"created\"}")
                .await;
            self.metric("pisync_syncs_detected_total").await >= created
        })
        .await;
        let start = self.metric("pisync_periodic_checks_total").await;
        super::wait_until("more periodic checks", || async {
            self.metric("pisync_periodic_checks_total").await >= start + f64::from(checks)
        })
        .await;
    }

    /// One series' value (0 when it is not there yet).
    pub async fn metric_series(&self, series: &str) -> f64 {
        self.metrics_samples()
            .await
            .iter()
            .find(|(s, _)| s == series)
            .map_or(0.0, |(_, v)| *v)
    }

    /// Graceful stop (SIGTERM), waiting for the exit.
    pub fn stop(mut self) {
        unsafe_kill(self.child.id(), "TERM");
        let _ = self.child.wait();
    }

    /// kill -9.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The alert lines written so far, parsed.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.alerts_file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each alert line is JSON"))
            .collect()
    }

    /// Waits until `check` holds on the alert lines, or fails after 20 s.
    pub fn wait_for_alerts(&self, check: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let alerts = self.alerts();
            if check(&alerts) {
                return alerts;
            }
            assert!(
                Instant::now() < deadline,
                "alerts never matched; have {alerts:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One operator's view of the API: a method per operator route, each sent with the
/// operator's credential.
pub struct Operator<'a> {
    app: &'a TestApp,
    auth: Option<String>,
}

impl Operator<'_> {
    async fn get(&self, path: &str) -> http::Reply {
        http::get(&self.app.client, &self.app.url(path), self.auth.as_deref()).await
    }

    async fn send(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> http::Reply {
        let (content_type, bytes) = match body {
            Some(body) => (Some("application/json"), body.to_string().into_bytes()),
            None => (None, Vec::new()),
        };
        self.app
            .send_as(method, path, content_type, bytes, self.auth.as_deref())
            .await
    }

    /// `GET /device/{device}/sync-history?{query}`.
    pub async fn get_sync_history(&self, device: &str, query: &str) -> http::Reply {
        self.get(&format!("/device/{device}/sync-history?{query}")).await
    }

    /// `GET /devices/repeated-failures?{query}`.
    pub async fn get_repeated_failures(&self, query: &str) -> http::Reply {
        self.get(&format!("/devices/repeated-failures?{query}")).await
    }

    /// `GET /device/{device}/notices?{query}`.
    pub async fn get_device_notices(&self, device: &str, query: &str) -> http::Reply {
        self.get(&format!("/device/{device}/notices?{query}")).await
    }

    /// `GET /notices?{query}`.
    pub async fn get_notices(&self, query: &str) -> http::Reply {
        self.get(&format!("/notices?{query}")).await
    }

    /// `GET /device/{device}`.
    pub async fn get_device(&self, device: &str) -> http::Reply {
        self.get(&format!("/device/{device}")).await
    }

    /// `GET /devices?{query}`.
    pub async fn list_devices(&self, query: &str) -> http::Reply {
        self.get(&format!("/devices?{query}")).await
    }

    /// `GET /fleet/summary?{query}`.
    pub async fn fleet_summary(&self, query: &str) -> http::Reply {
        self.get(&format!("/fleet/summary?{query}")).await
    }

    /// `GET /analytics/daily?{query}`.
    pub async fn daily_analytics(&self, query: &str) -> http::Reply {
        self.get(&format!("/analytics/daily?{query}")).await
    }

    /// `GET /analytics/schools?{query}`.
    pub async fn school_analytics(&self, query: &str) -> http::Reply {
        self.get(&format!("/analytics/schools?{query}")).await
    }

    /// `GET /schools?{query}`.
    pub async fn list_schools(&self, query: &str) -> http::Reply {
        self.get(&format!("/schools?{query}")).await
    }

    /// `GET /audit?{query}`.
    pub async fn list_audit(&self, query: &str) -> http::Reply {
        self.get(&format!("/audit?{query}")).await
    }

    /// `GET /schools/{school}`.
    pub async fn get_school(&self, school: &str) -> http::Reply {
        self.get(&format!("/schools/{school}")).await
    }

    /// `GET /schools/{school}/digest`.
    pub async fn preview_school_digest(&self, school: &str) -> http::Reply {
        self.get(&format!("/schools/{school}/digest")).await
    }

    /// `PUT /schools/{school}` with `body`.
    pub async fn put_school(&self, school: &str, body: serde_json::Value) -> http::Reply {
        self.send("PUT", &format!("/schools/{school}"), Some(body)).await
    }

    /// `DELETE /schools/{school}`.
    pub async fn delete_school(&self, school: &str) -> http::Reply {
        self.send("DELETE", &format!("/schools/{school}"), None).await
    }

    /// `PUT /device/{device}/school` with `{"school_id": school}`.
    pub async fn assign_school(&self, device: &str, school: Option<&str>) -> http::Reply {
        let body = serde_json::json!({ "school_id": school });
        self.send("PUT", &format!("/device/{device}/school"), Some(body))
            .await
    }

    /// `POST /device/{device}/credentials`, with `{"school_id": school}` when given.
    pub async fn issue_device_credentials(&self, device: &str, school: Option<&str>) -> http::Reply {
        let body = school.map(|school| serde_json::json!({ "school_id": school }));
        self.send("POST", &format!("/device/{device}/credentials"), body)
            .await
    }

    /// `DELETE /device/{device}/credentials`.
    pub async fn revoke_device_credentials(&self, device: &str) -> http::Reply {
        self.send("DELETE", &format!("/device/{device}/credentials"), None)
            .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// A minimal HTTP/1.1 client over hyper.
pub mod http {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

    /// Never reuses a connection the runner may be closing: the runner closes one idle
    /// for `IDLE_TIMEOUT`, and a request sent on it at that moment fails half-sent
    /// (seen after a test that kept the client idle for about that long).
    pub fn client() -> HttpClient {
        Client::builder(TokioExecutor::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(pisync_local::listener::IDLE_TIMEOUT / 2)
            .build_http()
    }

    pub struct Reply {
        pub status: u16,
        pub headers: hyper::HeaderMap,
        pub body: serde_json::Value,
    }

    pub async fn send(
        client: &HttpClient,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        authorization: Option<&str>,
    ) -> Reply {
        let mut headers = Vec::new();
        headers.extend(content_type.map(|ct| ("content-type", ct)));
        headers.extend(authorization.map(|auth| ("authorization", auth)));
        send_with_headers(client, method, url, &headers, body).await
    }

    /// A request with exactly these headers (and `Host` from the URL unless given).
    pub async fn send_with_headers(
        client: &HttpClient,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = hyper::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = client
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        // A 204 has no body; every other reply is JSON.
        let body = if status == 204 && bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("non-JSON reply {status}: {bytes:?}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn post_json(
        client: &HttpClient,
        url: &str,
        body: &serde_json::Value,
        authorization: Option<&str>,
    ) -> Reply {
        let body = serde_json::to_vec(body).unwrap();
        send(client, "POST", url, Some("application/json"), body, authorization).await
    }

    /// A JSON POST whose reply body is returned, or `None` if the connection failed
    /// (the server died mid-request: nothing was acknowledged).
    pub async fn try_post_json(
        client: &HttpClient,
        url: &str,
        body: &serde_json::Value,
        authorization: Option<&str>,
    ) -> Option<serde_json::Value> {
        let mut req = hyper::Request::post(url).header("content-type", "application/json");
        if let Some(auth) = authorization {
            req = req.header("authorization", auth);
        }
        let req = req
            .body(Full::new(Bytes::from(serde_json::to_vec(body).ok()?)))
            .ok()?;
        let response = client.request(req).await.ok()?;
        if response.status() != 200 {
            return None;
        }
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice(&bytes).ok()
    }

    pub async fn get(client: &HttpClient, url: &str, authorization: Option<&str>) -> Reply {
        send(client, "GET", url, None, Vec::new(), authorization).await
    }

    /// A GET whose reply is text (status, body).
    pub async fn get_text(client: &HttpClient, url: &str, authorization: Option<&str>) -> (u16, String) {
        let (status, _, text) = get_raw(client, url, authorization).await;
        (status, text)
    }

    /// A GET whose reply need not be JSON: status, headers, body as text.
    pub async fn get_raw(
        client: &HttpClient,
        url: &str,
        authorization: Option<&str>,
    ) -> (u16, hyper::HeaderMap, String) {
        let mut req = hyper::Request::get(url);
        if let Some(auth) = authorization {
            req = req.header("authorization", auth);
        }
        let response = client
            .request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (status, headers, String::from_utf8_lossy(&bytes).into_owned())
    }
}
