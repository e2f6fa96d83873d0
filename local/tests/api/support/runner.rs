//! `TestApp`: the real `pisync-local` binary started on a random port, with one method
//! per route of the API (and a raw `send` for requests no client should make).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestApp {
    pub child: Child,
    pub client: http::HttpClient,
    pub base: String,
    pub addr: String,
    pub alerts_file: PathBuf,
}

/// Which store the runner uses.
#[derive(Clone, Debug)]
pub enum Backend {
    Embedded,
    /// DynamoDB Local at this endpoint, this table.
    Dynamo {
        endpoint: String,
        table: String,
    },
}

impl TestApp {
    pub fn start(backend: &Backend, data_dir: &Path, extra: &[&str]) -> TestApp {
        Self::start_at(backend, data_dir, "127.0.0.1:0", extra)
    }

    pub fn start_at(backend: &Backend, data_dir: &Path, addr: &str, extra: &[&str]) -> TestApp {
        let alerts_file = data_dir.join("alerts.jsonl");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pisync-local"));
        cmd.arg("--addr")
            .arg(addr)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--alerts-file")
            .arg(&alerts_file)
            .args(extra)
            .env_remove("PISYNC_ADDR")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Backend::Dynamo { endpoint, table } = backend {
            cmd.arg("--dynamodb-endpoint")
                .arg(endpoint)
                .arg("--table")
                .arg(table);
        }
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
        TestApp {
            child,
            client: http::client(),
            base,
            addr,
            alerts_file,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `POST /sync-event` with a JSON body.
    pub async fn post_sync_event(&self, event: &serde_json::Value) -> http::Reply {
        http::post_json(&self.client, &self.url("/sync-event"), event).await
    }

    /// `GET /device/{device}/sync-history?{query}` (`query` may be empty).
    pub async fn get_sync_history(&self, device: &str, query: &str) -> http::Reply {
        http::get(
            &self.client,
            &self.url(&format!("/device/{device}/sync-history?{query}")),
        )
        .await
    }

    /// `GET /devices/repeated-failures?{query}` (`query` may be empty).
    pub async fn get_repeated_failures(&self, query: &str) -> http::Reply {
        http::get(
            &self.client,
            &self.url(&format!("/devices/repeated-failures?{query}")),
        )
        .await
    }

    /// Any request, as sent: for the cases no well-behaved client makes.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> http::Reply {
        http::send(&self.client, method, &self.url(path), content_type, body).await
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
        let deadline = Instant::now() + Duration::from_secs(20);
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

    pub fn client() -> HttpClient {
        Client::builder(TokioExecutor::new()).build_http()
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
    ) -> Reply {
        let mut req = hyper::Request::builder().method(method).uri(url);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let response = client
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("non-JSON reply {status}: {bytes:?}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn post_json(client: &HttpClient, url: &str, body: &serde_json::Value) -> Reply {
        send(
            client,
            "POST",
            url,
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    pub async fn get(client: &HttpClient, url: &str) -> Reply {
        send(client, "GET", url, None, Vec::new()).await
    }
}
