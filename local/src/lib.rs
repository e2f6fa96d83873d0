//! pisync-local: the production handlers behind a local HTTP server, an embedded
//! durable store (or DynamoDB), the real failure detector fed by a change feed, and
//! alerts printed as JSON lines.

pub mod alerts;
pub mod auth;
pub mod cli;
pub mod feed;
pub mod server;

use detect_failures::DetectFailures;
use get_sync_history::GetSyncHistory;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use issue_device_credentials::IssueDeviceCredentials;
use list_repeated_failures::ListRepeatedFailures;
use pisync_shared::adapters::dynamodb::DynamoStore;
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::config::{Config, MIN_CURSOR_KEY_LEN};
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::ports::{ListFailing, ReadHistory, RecordEvents};
use record_sync_event::RecordSyncEvent;
use record_sync_events::RecordSyncEvents;
use revoke_device_credentials::RevokeDeviceCredentials;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The embedded store's database in the data directory.
pub const DB_FILE: &str = "pisync.db";

/// The cursor key: `CURSOR_SIGNING_KEY` if set, else a random key kept in the data
/// directory so cursors stay valid across restarts.
fn cursor_key(config: &Config, data_dir: &Path) -> Result<CursorKey, Failure> {
    if let Some(key) = config.cursor_key_if_set() {
        return Ok(key);
    }
    let path = data_dir.join("cursor.key");
    if let Ok(secret) = std::fs::read(&path) {
        if secret.len() >= MIN_CURSOR_KEY_LEN {
            return Ok(CursorKey::from_secret(&secret));
        }
    }
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    // Owner-only, like the signing keys: a cursor key is a secret too.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&path)?.write_all(&secret)?;
    Ok(CursorKey::from_secret(&secret))
}

/// One store behind the ports the HTTP handlers use.
struct Store {
    events: Arc<dyn RecordEvents>,
    history: Arc<dyn ReadHistory>,
    failing: Arc<dyn ListFailing>,
    credentials: auth::Credentials,
}

impl Store {
    fn of<S: RecordEvents + ReadHistory + ListFailing + Clone + 'static>(
        store: S,
        credentials: auth::Credentials,
    ) -> Self {
        Self {
            events: Arc::new(store.clone()),
            history: Arc::new(store.clone()),
            failing: Arc::new(store),
            credentials,
        }
    }
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
    let rule = config.rule;
    let cursor_key = cursor_key(&config, &options.data_dir)?;
    let alerts = Arc::new(alerts::LocalAlerts::new(options.alerts_file.as_deref())?);
    let (stop_tx, stop) = watch::channel(false);

    let (store, feed) = match &options.dynamodb_endpoint {
        None => {
            let path = options.data_dir.join(DB_FILE);
            let store = SqliteStore::open(&path)?;
            tracing::info!(path = %path.display(), "embedded store");
            let detector = DetectFailures {
                states: Arc::new(store.clone()),
                alerts: alerts.clone(),
                rule,
            };
            let feed = tokio::spawn(feed::run_sqlite(store.clone(), detector, stop.clone()));
            (Store::of(store.clone(), auth::Credentials::of(store)), feed)
        }
        Some(endpoint) => {
            let aws = pisync_shared::adapters::aws::for_endpoint(endpoint).await?;
            let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &options.table);
            store.create_table_if_missing().await?;
            let stream_arn = store
                .stream_arn()
                .await?
                .ok_or("the table has no stream; enable NEW_IMAGE streams on it")?;
            tracing::info!(endpoint, table = %options.table, "DynamoDB store");
            let detector = DetectFailures {
                states: Arc::new(store.clone()),
                alerts: alerts.clone(),
                rule,
            };
            let streams = aws_sdk_dynamodbstreams::Client::new(&aws);
            let feed = tokio::spawn(feed::run_dynamodb_streams(
                streams,
                stream_arn,
                detector,
                stop.clone(),
            ));
            let credentials = auth::Credentials::of(auth::dynamodb(endpoint, &options.table).await?);
            (Store::of(store, credentials), feed)
        }
    };
    let keys = auth::key_ring(&options).await?;
    let auth = auth::authenticator(&options, keys.clone(), &store.credentials);

    let routes = server::Routes {
        record_batch: RecordSyncEvents {
            log: store.events.clone(),
            rules: config.event_rules,
            auth: auth.clone(),
        },
        record: RecordSyncEvent {
            log: store.events,
            rules: config.event_rules,
            auth: auth.clone(),
        },
        history: GetSyncHistory {
            log: store.history,
            cursor_key: cursor_key.clone(),
            auth: auth.clone(),
        },
        failures: ListRepeatedFailures {
            failing: store.failing,
            rule,
            cursor_key,
            auth: auth.clone(),
        },
        issue: IssueDeviceCredentials {
            credentials: store.credentials.manage.clone(),
            keys,
            auth: auth.clone(),
        },
        revoke: RevokeDeviceCredentials {
            credentials: store.credentials.manage,
            auth,
        },
    };
    let listener = TcpListener::bind(options.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    let addr = listener.local_addr()?;
    // The first stdout line; the black-box tests read the port from it.
    println!("pisync-local listening on http://{addr}");

    serve(listener, routes).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), feed).await;
    tracing::info!("stopped");
    Ok(())
}

/// Most connections served at once; the next `accept` waits for one to close.
const MAX_CONNECTIONS: usize = 1024;
/// A client must send a request's headers within this long (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// After `accept` fails (e.g. out of file descriptors), wait before trying again
/// rather than spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves until SIGINT or SIGTERM, then lets open requests finish (up to 10 s).
async fn serve(listener: TcpListener, routes: server::Routes) {
    let graceful = GracefulShutdown::new();
    let routes = Arc::new(routes);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else {
            break;
        };
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed; backing off");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let routes = routes.clone();
                let service = hyper::service::service_fn(move |req| {
                    let routes = routes.clone();
                    async move { Ok::<_, std::convert::Infallible>(routes.serve(req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
