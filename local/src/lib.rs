//! pisync-local: the production handlers behind a local HTTP server, an embedded
//! durable store (or DynamoDB), the real failure detector fed by a change feed, and
//! notices printed as JSON lines.

pub mod alerts;
pub mod auth;
pub mod cli;
pub mod export;
pub mod feed;
pub mod functions;
pub mod listener;
pub mod loopback;
pub mod server;
pub mod shaped;
pub mod sign_in;
pub mod stores;
pub mod watch;
pub mod webhooks;

use detect_failures::DetectFailures;
use pisync_shared::adapters::secret_file;
use pisync_shared::adapters::webhook::HttpsWebhook;
use pisync_shared::config::{Config, MIN_CURSOR_KEY_LEN};
use pisync_shared::domain::delivery::PublishOnce;
use pisync_shared::domain::webhook::RetryPolicy;
use pisync_shared::function::Local;
use pisync_shared::http::cursor::CursorKey;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use stores::{Changes, Stores};
use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use watch_devices::WatchDevices;

pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The webhook delivery queue in the data directory.
pub const WEBHOOK_QUEUE_FILE: &str = "webhooks.db";
/// The webhook signing secret in the data directory, unless `--webhook-secret-file`.
pub const WEBHOOK_SECRET_FILE: &str = "webhook-secret";
/// The cursor key in the data directory, unless `CURSOR_SIGNING_KEY`.
pub const CURSOR_KEY_FILE: &str = "cursor.key";

/// The cursor key: `CURSOR_SIGNING_KEY` if set, else a random key kept in the data
/// directory so cursors stay valid across restarts.
fn cursor_key(config: &Config, data_dir: &Path) -> Result<CursorKey, Failure> {
    if let Some(key) = &config.cursor_key {
        return Ok(key.clone());
    }
    let secret = secret_file::read_or_create(&data_dir.join(CURSOR_KEY_FILE), MIN_CURSOR_KEY_LEN, || {
        secret_file::random_bytes(32)
    })?;
    Ok(CursorKey::from_secret(&secret))
}

/// The webhook's signing secret: the file `--webhook-secret-file` names, else a random
/// one (64 hex characters, so receivers can paste it) kept owner-only in the data
/// directory.
fn webhook_secret(args: &cli::RunArgs) -> Result<Vec<u8>, Failure> {
    if let Some(path) = &args.webhook_secret_file {
        let secret = std::fs::read(path).map_err(|e| format!("webhook secret {}: {e}", path.display()))?;
        let secret = secret.trim_ascii().to_vec();
        if secret.len() < 32 {
            return Err(format!(
                "the webhook secret in {} must be at least 32 bytes",
                path.display()
            )
            .into());
        }
        return Ok(secret);
    }
    let path = args.store.data_dir.join(WEBHOOK_SECRET_FILE);
    let secret = secret_file::read_or_create(&path, 32, || {
        Ok(pisync_shared::digest::hex(&secret_file::random_bytes(32)?).into_bytes())
    })?;
    eprintln!(
        "pisync-local: webhook deliveries are signed with the secret in {}",
        path.display()
    );
    Ok(secret)
}

/// Runs PiSync until SIGINT or SIGTERM.
pub async fn run(args: cli::RunArgs) -> Result<(), Failure> {
    let data_dir = &args.store.data_dir;
    secret_file::owner_only_dir(data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    // Fail at start, naming the path, rather than on the first write.
    let probe = data_dir.join(".write-probe");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| format!("data dir {} is not writable: {e}", data_dir.display()))?;
    let config = args.config()?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    pisync_shared::metrics::describe();
    let (stop_tx, stop) = signal::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    let stores = Stores::open(&args.store, &config).await?;
    let keys = auth::key_ring(data_dir).await?;
    let operator_keys = auth::operator_key_ring(data_dir).await?;
    // Webhook deliveries: the fleet's (`--webhook-url`) and each school's.
    let webhooks = Arc::new(webhooks::WebhookQueue::open(&data_dir.join(WEBHOOK_QUEUE_FILE))?);
    tasks.spawn(webhooks::run_worker(
        webhooks.clone(),
        webhooks::Receivers {
            transport: Arc::new(HttpsWebhook::trusting(config.webhook_extra_roots.as_deref())?),
            fleet_url: args.webhook_url.clone(),
            schools: stores.store.clone(),
            secret: webhook_secret(&args)?,
        },
        RetryPolicy::default(),
        stop.clone(),
    ));
    let local = Local {
        auth: auth::authenticator(
            args.no_auth,
            keys.clone(),
            operator_keys.clone(),
            stores.credentials.clone(),
        ),
        cursor_key: cursor_key(&config, data_dir)?,
        alerts: Arc::new(PublishOnce::new(alerts::LocalAlerts::new(
            args.alerts_file.as_deref(),
            webhooks,
            args.webhook_url.is_some(),
            stores.store.clone(),
        )?)),
        limits: Arc::new(pisync_shared::adapters::minute_counters::MinuteCounters::new(
            config.device_limits,
        )),
        store: stores.store,
        credentials: stores.credentials,
        keys,
        config,
        owed: Arc::default(),
    };
    let detector = DetectFailures::from_local(&local);
    match stores.changes {
        Changes::Sqlite(sqlite) => {
            tasks.spawn(feed::sqlite::run(sqlite, detector, stop.clone()));
        }
        Changes::Dynamo { streams, stream_arn } => {
            tasks.spawn(watch::roll_up(
                local.store.clone(),
                stores::ROLLUP_SLOT,
                stop.clone(),
            ));
            let checkpoints = feed::dynamodb_streams::Checkpoints::open(data_dir, &args.store.table)?;
            tasks.spawn(feed::dynamodb_streams::run(
                streams,
                stream_arn,
                checkpoints,
                detector,
                stop.clone(),
            ));
        }
    }
    tasks.spawn(watch::run(
        WatchDevices::from_local(&local),
        args.silent_check_interval,
        stop.clone(),
    ));
    let server = server::Server::new(
        functions::http_handlers(&local),
        local.auth.clone(),
        metrics,
        args.no_auth,
        (!args.no_auth).then(|| sign_in::Sessions {
            data_dir: data_dir.to_owned(),
            keys: operator_keys,
        }),
    )?;
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr()?;
    // The first stdout line; the black-box tests read the port from it.
    println!("pisync-local listening on http://{addr}");
    if !args.no_auth {
        // A one-time code in the URL fragment (browsers never send a fragment, so it is
        // in no request line): used once, within 10 minutes, it opens a read session.
        let code = sign_in::new_code(data_dir, chrono::Utc::now().timestamp())?;
        sign_in::print_link(&dashboard_base(addr), &code)?;
    }

    listener::serve(listener, server).await;
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
/// The runner's address as a browser on this machine reaches it.
fn dashboard_base(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    format!("http://{host}")
}

#[cfg(test)]
mod tests {
    use super::dashboard_base;

    #[test]
    fn the_sign_in_link_names_a_host_a_browser_can_open() {
        let any = "0.0.0.0:3000".parse().unwrap();
        let local = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(dashboard_base(any), "http://127.0.0.1:3000");
        assert_eq!(dashboard_base(local), "http://127.0.0.1:4000");
    }
}
