//! Authentication in the local runner: token signing keys in the data directory
//! (owner-only file), device credentials beside the events (the SQLite database, or
//! the `<table>-credentials` DynamoDB table), and the `token` commands.

use crate::cli::{Options, TokenRequest};
use crate::Failure;
use issue_device_credentials::IssueDeviceCredentials;
use pisync_shared::adapters::dynamodb::DynamoCredentials;
use pisync_shared::adapters::key_file::KeyFile;
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::auth::{token, Authenticator, KeyRing, Scope};
use pisync_shared::ports::{CheckCredentials, ManageCredentials};
use pisync_shared::DeviceId;
use std::sync::Arc;

/// The signing keys' file in the data directory.
pub const KEYS_FILE: &str = "signing-keys.json";
/// How long a local operator token is valid.
pub const OPERATOR_TOKEN_DAYS: i64 = 30;

/// The credentials table beside `table` (DynamoDB).
pub fn credentials_table(table: &str) -> String {
    format!("{table}-credentials")
}

/// The data directory's signing keys, created on first use.
pub async fn key_ring(options: &Options) -> Result<Arc<KeyRing>, Failure> {
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", options.data_dir.display()))?;
    let file = KeyFile::create_if_missing(&options.data_dir.join(KEYS_FILE))?;
    Ok(Arc::new(KeyRing::load(Arc::new(file)).await?))
}

/// Device credentials on the runner's store.
#[derive(Clone)]
pub struct Credentials {
    pub check: Arc<dyn CheckCredentials>,
    pub manage: Arc<dyn ManageCredentials>,
}

impl Credentials {
    pub fn of<S: CheckCredentials + ManageCredentials + Clone + 'static>(store: S) -> Self {
        Self {
            check: Arc::new(store.clone()),
            manage: Arc::new(store),
        }
    }

    /// The credentials of the store `options` name (for the `token` command).
    pub async fn open(options: &Options) -> Result<Self, Failure> {
        match &options.dynamodb_endpoint {
            None => Ok(Self::of(SqliteStore::open(
                &options.data_dir.join(crate::DB_FILE),
            )?)),
            Some(endpoint) => Ok(Self::of(dynamodb(endpoint, &options.table).await?)),
        }
    }
}

/// The credentials table on DynamoDB at `endpoint`, created if missing.
pub async fn dynamodb(endpoint: &str, table: &str) -> Result<DynamoCredentials, Failure> {
    let aws = pisync_shared::adapters::aws::for_endpoint(endpoint).await?;
    let store = DynamoCredentials::new(aws_sdk_dynamodb::Client::new(&aws), credentials_table(table));
    store.create_table_if_missing().await?;
    Ok(store)
}

/// The server's authenticator: on unless `--no-auth`, which is announced loudly.
pub fn authenticator(options: &Options, keys: Arc<KeyRing>, credentials: &Credentials) -> Authenticator {
    if options.no_auth {
        tracing::warn!("AUTHENTICATION IS OFF (--no-auth): anyone who can reach this address may record and read everything");
        eprintln!("pisync-local: WARNING: authentication is off (--no-auth); do not expose this address");
        Authenticator::off()
    } else {
        Authenticator::local(keys, credentials.check.clone())
    }
}

/// Runs a `token` command: the new token, to print alone on stdout.
pub async fn issue(request: &TokenRequest, options: &Options) -> Result<String, Failure> {
    let keys = key_ring(options).await?;
    match request {
        TokenRequest::Device(id) => {
            let device = DeviceId::parse(id).ok_or_else(|| format!("device id {id:?} {}", DeviceId::RULE))?;
            let deps = IssueDeviceCredentials {
                credentials: Credentials::open(options).await?.manage,
                keys,
                auth: Authenticator::off(),
            };
            Ok(issue_device_credentials::issue(&deps, device).await?.token)
        }
        TokenRequest::Operator { admin } => {
            let scope = if *admin { Scope::Admin } else { Scope::Read };
            let expires = chrono::Utc::now().timestamp() + OPERATOR_TOKEN_DAYS * 86_400;
            Ok(token::sign_operator(&keys.current(), scope, expires)?)
        }
    }
}
