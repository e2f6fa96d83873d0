//! pisync-local: the production handlers behind a local HTTP server, an embedded
//! durable store (or DynamoDB), the real failure detector fed by a change feed, and
//! alerts printed as JSON lines.

pub mod alerts;
pub mod auth;
pub mod cli;
pub mod feed;
pub mod listener;
pub mod server;
pub mod shaped;
pub mod stores;
pub mod watch;
pub mod webhooks;

use detect_failures::DetectFailures;
use fleet_summary::FleetSummary;
use get_device::GetDevice;
use get_sync_history::GetSyncHistory;
use issue_device_credentials::IssueDeviceCredentials;
use list_devices::ListDevices;
use list_repeated_failures::ListRepeatedFailures;
use pisync_shared::adapters::webhook::HttpsWebhook;
use pisync_shared::config::{Config, MIN_CURSOR_KEY_LEN};
use pisync_shared::domain::delivery::PublishOnce;
use pisync_shared::domain::detection::Rules;
use pisync_shared::domain::silence::SilenceRule;
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::domain::webhook::RetryPolicy;
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::metrics::Registry;
use record_sync_event::RecordSyncEvent;
use record_sync_events::RecordSyncEvents;
use revoke_device_credentials::RevokeDeviceCredentials;
use serve_dashboard::{ServeDashboard, SignIn};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use stores::{Changes, Stores};
use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use watch_devices::WatchDevices;

pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The embedded store's database in the data directory.
pub const DB_FILE: &str = "pisync.db";
/// The webhook delivery queue in the data directory.
pub const WEBHOOK_QUEUE_FILE: &str = "webhooks.db";
/// The webhook signing secret in the data directory, unless `--webhook-secret`.
pub const WEBHOOK_SECRET_FILE: &str = "webhook-secret";

/// A secret kept in `path`, readable by its owner only, created (`make`) if missing.
fn owner_only_secret(
    path: &Path,
    min_len: usize,
    make: impl FnOnce() -> Result<Vec<u8>, Failure>,
) -> Result<Vec<u8>, Failure> {
    if let Ok(secret) = std::fs::read(path) {
        if secret.len() >= min_len {
            return Ok(secret);
        }
    }
    let secret = make()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(&secret)?;
    Ok(secret)
}

fn random_bytes(n: usize) -> Result<Vec<u8>, Failure> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The cursor key: `CURSOR_SIGNING_KEY` if set, else a random key kept in the data
/// directory so cursors stay valid across restarts.
fn cursor_key(config: &Config, data_dir: &Path) -> Result<CursorKey, Failure> {
    if let Some(key) = config.cursor_key_if_set() {
        return Ok(key);
    }
    // Owner-only, like the signing keys: a cursor key is a secret too.
    let secret = owner_only_secret(&data_dir.join("cursor.key"), MIN_CURSOR_KEY_LEN, || {
        random_bytes(32)
    })?;
    Ok(CursorKey::from_secret(&secret))
}

/// The webhook's signing secret: `--webhook-secret`, else a random one (64 hex
/// characters, so receivers can paste it) kept owner-only in the data directory.
fn webhook_secret(options: &cli::Options) -> Result<Vec<u8>, Failure> {
    if let Some(secret) = &options.webhook_secret {
        return Ok(secret.clone().into_bytes());
    }
    let path = options.data_dir.join(WEBHOOK_SECRET_FILE);
    let secret = owner_only_secret(&path, 32, || {
        Ok(pisync_shared::digest::hex(&random_bytes(32)?).into_bytes())
    })?;
    eprintln!(
        "pisync-local: webhook deliveries are signed with the secret in {}",
        path.display()
    );
    Ok(secret)
}

/// Runs PiSync until SIGINT or SIGTERM.
pub async fn run(options: cli::Options) -> Result<(), Failure> {
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", options.data_dir.display()))?;
    // Fail at start, naming the path, rather than on the first write.
    let probe = options.data_dir.join(".write-probe");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| format!("data dir {} is not writable: {e}", options.data_dir.display()))?;
    // One typed configuration: the environment's settings, the flags' overrides.
    let mut config = Config::from_env()?;
    config.rule = StreakRule {
        threshold: options.failure_threshold,
    };
    config.silence = SilenceRule {
        after: options.silent_after,
    };
    let rules: Rules = config.rules();
    let cursor_key = cursor_key(&config, &options.data_dir)?;
    let metrics = Arc::new(Registry::default());
    let (stop_tx, stop) = signal::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    let webhook = match &options.webhook_url {
        None => None,
        Some(url) => {
            let queue = Arc::new(webhooks::WebhookQueue::open(
                &options.data_dir.join(WEBHOOK_QUEUE_FILE),
            )?);
            let transport = Arc::new(HttpsWebhook::new(url.clone())?);
            tasks.spawn(webhooks::run_worker(
                queue.clone(),
                transport,
                webhook_secret(&options)?,
                RetryPolicy::default(),
                stop.clone(),
            ));
            Some(queue)
        }
    };
    let alerts = Arc::new(PublishOnce::new(alerts::LocalAlerts::new(
        options.alerts_file.as_deref(),
        webhook,
    )?));
    let store = Stores::open(&options).await?;
    let detector = DetectFailures {
        states: store.states.clone(),
        days: store.days.clone(),
        outbox: store.outbox.clone(),
        alerts: alerts.clone(),
        rules,
        owed: Default::default(),
    };
    match store.changes {
        Changes::Sqlite(ref sqlite) => {
            tasks.spawn(feed::run_sqlite(
                sqlite.clone(),
                detector,
                metrics.clone(),
                stop.clone(),
            ));
        }
        Changes::Dynamo {
            ref streams,
            ref stream_arn,
        } => {
            let checkpoints = feed::Checkpoints::open(&options.data_dir, &options.table)?;
            tasks.spawn(feed::run_dynamodb_streams(
                streams.clone(),
                stream_arn.clone(),
                checkpoints,
                detector,
                metrics.clone(),
                stop.clone(),
            ));
        }
    }
    let watcher = WatchDevices {
        states: store.states.clone(),
        watch: store.watch.clone(),
        outbox: store.outbox.clone(),
        alerts,
        rules,
    };
    tasks.spawn(watch::run(
        watcher,
        options.silent_check_interval,
        metrics.clone(),
        stop.clone(),
    ));

    let keys = auth::key_ring(&options).await?;
    let auth = auth::authenticator(&options, keys.clone(), &store.credentials);
    let routes = server::Routes {
        record_batch: RecordSyncEvents {
            log: store.events.clone(),
            rules: config.event_rules,
            auth: auth.clone(),
        },
        record: RecordSyncEvent {
            log: store.events.clone(),
            rules: config.event_rules,
            auth: auth.clone(),
        },
        history: GetSyncHistory {
            log: store.history.clone(),
            cursor_key: cursor_key.clone(),
            auth: auth.clone(),
        },
        failures: ListRepeatedFailures {
            failing: store.failing.clone(),
            rule: rules.streak,
            cursor_key: cursor_key.clone(),
            auth: auth.clone(),
        },
        device: GetDevice {
            devices: store.devices.clone(),
            rule: rules.streak,
            auth: auth.clone(),
        },
        devices: ListDevices {
            devices: store.devices.clone(),
            rule: rules.streak,
            cursor_key,
            auth: auth.clone(),
        },
        summary: FleetSummary {
            fleet: store.fleet.clone(),
            auth: auth.clone(),
        },
        dashboard: ServeDashboard {
            sign_in: SignIn::Token,
        },
        issue: IssueDeviceCredentials {
            credentials: store.credentials.manage.clone(),
            keys,
            auth: auth.clone(),
        },
        revoke: RevokeDeviceCredentials {
            credentials: store.credentials.manage.clone(),
            auth: auth.clone(),
        },
        metrics,
        auth,
    };
    let listener = TcpListener::bind(options.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    let addr = listener.local_addr()?;
    // The first stdout line; the black-box tests read the port from it.
    println!("pisync-local listening on http://{addr}");
    if !options.no_auth {
        // A read token for the dashboard, in the URL fragment: browsers never send a
        // fragment to the server, so it stays out of every request line and log.
        let token = auth::issue(&cli::TokenRequest::Operator { admin: false }, &options).await?;
        println!("pisync-local dashboard: {}", sign_in_link(addr, &token));
    }

    listener::serve(listener, routes).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tracing::info!("stopped");
    Ok(())
}

/// The dashboard's sign-in link. A runner listening on every interface (`0.0.0.0`) is
/// opened on this machine as 127.0.0.1.
fn sign_in_link(addr: SocketAddr, token: &str) -> String {
    let host = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    format!("http://{host}/dashboard#token={token}")
}

#[cfg(test)]
mod tests {
    use super::sign_in_link;

    #[test]
    fn the_sign_in_link_names_a_host_a_browser_can_open() {
        let any = "0.0.0.0:3000".parse().unwrap();
        let local = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(sign_in_link(any, "t"), "http://127.0.0.1:3000/dashboard#token=t");
        assert_eq!(
            sign_in_link(local, "t"),
            "http://127.0.0.1:4000/dashboard#token=t"
        );
    }
}
