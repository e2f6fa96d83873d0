//! DynamoDB Local stopped in the middle of a load, then started again: every event the
//! runner acknowledged is stored, clients were told 503 with Retry-After (never a 2xx
//! for an event that was not stored), and detection resumes where it stopped with no
//! notice sent twice. The test runs its own DynamoDB Local (persistent, so a restart
//! keeps the data), from the jar `scripts/dynamodb-local.sh fetch` downloads.

use crate::support::runner::http;
use crate::support::runner::{Backend, TestApp};
use crate::support::wait_for;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A DynamoDB Local of this test's own, keeping its data in `dir`.
struct DynamoLocal {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl DynamoLocal {
    fn jar() -> PathBuf {
        let jar = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.cache/dynamodb-local/package/emulator/DynamoDBLocal.jar");
        assert!(
            jar.exists(),
            "{} is missing: run scripts/dynamodb-local.sh fetch (scripts/test.sh does)",
            jar.display()
        );
        jar
    }

    fn start(dir: &Path, port: u16) -> Self {
        let jar = Self::jar();
        let lib = jar.parent().unwrap().join("DynamoDBLocal_lib");
        let child = Command::new("java")
            .arg("-Xmx512m")
            .arg(format!("-Djava.library.path={}", lib.display()))
            .arg("-jar")
            .arg(&jar)
            .args(["-sharedDb", "-dbPath"])
            .arg(dir)
            .args(["-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java runs DynamoDB Local");
        let local = Self {
            child,
            port,
            dir: dir.to_owned(),
        };
        local.wait_ready();
        local
    }

    fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "DynamoDB Local did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// kill -9, then a new process on the same port and data.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        *self = Self::start(&self.dir.clone(), self.port);
    }
}

impl Drop for DynamoLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    /// (device, timestamp) of every event answered 201 or 200.
    acknowledged: BTreeSet<(String, String)>,
    unavailable: usize,
    /// Anything else: must stay empty.
    wrong: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_down_mid_load_loses_nothing_acknowledged_and_alerts_once() {
    let data = tempfile::tempdir().unwrap();
    let mut dynamo = DynamoLocal::start(data.path(), free_port());
    let runner_dir = tempfile::tempdir().unwrap();
    let backend = Backend::Dynamo {
        endpoint: dynamo.endpoint(),
        table: "faults".into(),
    };
    let app = Arc::new(TestApp::start(&backend, runner_dir.path(), &[]));
    let devices: Vec<String> = (0..8).map(|d| format!("fault-{d}")).collect();
    let mut auths = BTreeMap::new();
    for device in &devices {
        auths.insert(device.clone(), app.device_auth(device).await.unwrap());
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for device in devices.clone() {
        let (app, seen, stop, auth) = (app.clone(), seen.clone(), stop.clone(), auths[&device].clone());
        load.spawn(async move {
            let client = http::client();
            let mut minute = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Only failures: each device alerts once, at its third stored one.
                let ts = format!("2025-05-07T{:02}:{:02}:00.000Z", 6 + minute / 60, minute % 60);
                let event = json!({"device_id": device, "timestamp": ts, "total_files_synced": 1,
                                   "total_errors": 1, "internet_speed": 1.0});
                let reply = http::post_json(&client, &app.url("/sync-event"), &event, Some(&auth)).await;
                {
                    let mut seen = seen.lock().unwrap();
                    match reply.status {
                        200 | 201 => {
                            seen.acknowledged.insert((device.clone(), ts));
                            minute += 1;
                        }
                        503 if reply.headers.contains_key("retry-after")
                            && reply.body["error"]["code"] == "unavailable" =>
                        {
                            seen.unavailable += 1;
                        }
                        other => seen.wrong.push(format!("{other}: {}", reply.body)),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    let acknowledged = || seen.lock().unwrap().acknowledged.len();
    wait_for("a first stretch of load", || async {
        (acknowledged() >= 40).then_some(())
    })
    .await;
    dynamo.kill();
    let at_kill = acknowledged();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = acknowledged() - at_kill;
    dynamo.restart();
    wait_for("load again after the restart", || async {
        (acknowledged() >= at_kill + 40).then_some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while load.join_next().await.is_some() {}

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.wrong.is_empty(), "only 201, 200 or 503: {:?}", seen.wrong);
    assert!(seen.unavailable > 0, "the outage was seen as 503s");
    assert!(
        during <= devices.len(),
        "at most the requests in flight at the kill were acknowledged meanwhile ({during})"
    );
    // Every acknowledged event is stored, and detection applied each exactly once.
    for device in &devices {
        let stored: BTreeSet<String> = {
            let page = app.get_sync_history(device, "limit=100&order=asc").await;
            assert_eq!(page.status, 200, "{}", page.body);
            page.body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["timestamp"].as_str().unwrap().to_owned())
                .collect()
        };
        for (d, ts) in seen.acknowledged.iter().filter(|(d, _)| d == device) {
            assert!(stored.contains(ts), "{d} {ts} was acknowledged but is not stored");
        }
        let expected = stored.len() as u64;
        wait_for(&format!("{device}'s {expected} events applied"), || async {
            let status = app.get_device(device).await;
            (status.body["totals"]["syncs"] == json!(expected)).then_some(())
        })
        .await;
    }
    let alerts = app.wait_for_alerts(|a| a.len() >= devices.len());
    let per_device: BTreeMap<String, usize> = alerts.iter().fold(BTreeMap::new(), |mut n, a: &Value| {
        *n.entry(a["device_id"].as_str().unwrap().to_owned()).or_default() += 1;
        n
    });
    assert!(
        per_device.values().all(|n| *n == 1),
        "one alert per device: {per_device:?}"
    );
    assert_eq!(per_device.len(), devices.len());
}
