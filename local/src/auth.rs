//! Authentication in the local runner: token signing keys in the data directory
//! (owner-only file), the server's authenticator, and the `token` commands.

use crate::cli::TokenRequest;
use crate::stores::Stores;
use crate::Failure;
use pisync_shared::adapters::secret_file::KeyFile;
use pisync_shared::auth::{issue_device_credential, token, Authenticator, KeyRing, Operator, Reach, Scope};
use pisync_shared::config::Config;
use pisync_shared::domain::school::SchoolId;
use pisync_shared::ports::CheckCredentials;
use pisync_shared::DeviceId;
use std::path::Path;
use std::sync::Arc;

/// The signing keys' file in the data directory.
pub const KEYS_FILE: &str = "signing-keys.json";
/// How long a local operator token is valid.
pub const OPERATOR_TOKEN_DAYS: i64 = 30;

/// The data directory's signing keys, created on first use.
pub async fn key_ring(data_dir: &Path) -> Result<Arc<KeyRing>, Failure> {
    pisync_shared::adapters::secret_file::owner_only_dir(data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let file = KeyFile::create_if_missing(&data_dir.join(KEYS_FILE))?;
    Ok(Arc::new(KeyRing::load(Arc::new(file)).await?))
}

/// The server's authenticator: on unless `--no-auth`, which is announced loudly.
pub fn authenticator(
    no_auth: bool,
    keys: Arc<KeyRing>,
    credentials: Arc<dyn CheckCredentials>,
) -> Authenticator {
    if no_auth {
        tracing::warn!("AUTHENTICATION IS OFF (--no-auth): anyone who can reach this address may record and read everything");
        eprintln!("pisync-local: WARNING: authentication is off (--no-auth); do not expose this address");
        Authenticator::off()
    } else {
        Authenticator::local(keys, credentials)
    }
}

/// Runs a `token` command: the new token, to print alone on stdout.
pub async fn issue(request: &TokenRequest, config: &Config) -> Result<String, Failure> {
    let keys = key_ring(&request.store().data_dir).await?;
    match request {
        TokenRequest::Device { id, store } => {
            let device = DeviceId::parse(id).ok_or_else(|| format!("device id {id:?} {}", DeviceId::RULE))?;
            let credentials = Stores::credentials(store, config).await?;
            Ok(issue_device_credential(&keys, credentials.as_ref(), device)
                .await?
                .token)
        }
        TokenRequest::Operator {
            admin, school, name, ..
        } => {
            let scope = if *admin { Scope::Admin } else { Scope::Read };
            let mut schools = Vec::with_capacity(school.len());
            for id in school {
                schools
                    .push(SchoolId::parse(id).ok_or_else(|| format!("school id {id:?} {}", SchoolId::RULE))?);
            }
            if schools.len() > token::MAX_OPERATOR_SCHOOLS {
                return Err(
                    format!("a token reaches at most {} schools", token::MAX_OPERATOR_SCHOOLS).into(),
                );
            }
            if !token::valid_subject(name) {
                return Err(format!("--name {name:?}: 1–64 characters of A-Z a-z 0-9 _ - . @").into());
            }
            Ok(operator_token(
                &keys,
                &Operator::of(scope, Reach::of(schools), name),
            )?)
        }
    }
}

/// A local operator token for `operator`, valid [`OPERATOR_TOKEN_DAYS`].
pub fn operator_token(keys: &KeyRing, operator: &Operator) -> Result<String, Failure> {
    let expires = chrono::Utc::now().timestamp() + OPERATOR_TOKEN_DAYS * 86_400;
    Ok(token::sign_operator(&keys.current(), operator, expires)?)
}
