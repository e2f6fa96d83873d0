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

/// The signing keys' file in the data directory (device tokens).
pub const KEYS_FILE: &str = "signing-keys.json";
/// The operator tokens' own keys: replacing them revokes every operator token and
/// no device token.
pub const OPERATOR_KEYS_FILE: &str = "operator-keys.json";
/// How soon the runner notices new operator keys (a revocation).
pub const OPERATOR_KEYS_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a local operator token is valid.
pub const OPERATOR_TOKEN_DAYS: i64 = 30;

/// The data directory's signing keys, created on first use.
pub async fn key_ring(data_dir: &Path) -> Result<Arc<KeyRing>, Failure> {
    pisync_shared::adapters::secret_file::owner_only_dir(data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let file = KeyFile::create_if_missing(&data_dir.join(KEYS_FILE))?;
    Ok(Arc::new(KeyRing::load(Arc::new(file)).await?))
}

/// The data directory's operator token keys, created on first use, re-read at most
/// every [`OPERATOR_KEYS_REFRESH`] so that a revocation reaches a running server.
pub async fn operator_key_ring(data_dir: &Path) -> Result<Arc<KeyRing>, Failure> {
    let file = KeyFile::create_if_missing(&data_dir.join(OPERATOR_KEYS_FILE))?;
    let ring = KeyRing::load(Arc::new(file)).await?;
    Ok(Arc::new(ring.refreshed_every(OPERATOR_KEYS_REFRESH)))
}

/// `pisync-local token revoke-operators`: new operator keys, so every operator token
/// issued so far is refused (within a second by a running server); device tokens are
/// untouched. Sign in again with a new link or token.
pub fn revoke_operator_tokens(data_dir: &Path) -> Result<(), Failure> {
    let kid = format!("k{}", chrono::Utc::now().timestamp_millis());
    let keys = pisync_shared::auth::SigningKeys::generate_json(&kid)?;
    let path = data_dir.join(OPERATOR_KEYS_FILE);
    let temp = data_dir.join(format!("{OPERATOR_KEYS_FILE}.{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    pisync_shared::adapters::secret_file::write_new(&temp, keys.as_bytes())?;
    std::fs::rename(&temp, &path)?;
    Ok(())
}

/// The server's authenticator: on unless `--no-auth`, which is announced loudly.
pub fn authenticator(
    no_auth: bool,
    keys: Arc<KeyRing>,
    operator_keys: Arc<KeyRing>,
    credentials: Arc<dyn CheckCredentials>,
) -> Authenticator {
    if no_auth {
        tracing::warn!("AUTHENTICATION IS OFF (--no-auth): anyone who can reach this address may record and read everything");
        eprintln!("pisync-local: WARNING: authentication is off (--no-auth); do not expose this address");
        Authenticator::off()
    } else {
        Authenticator::local_apart(keys, operator_keys, credentials)
    }
}

/// Runs a `token` command: the new token, to print alone on stdout (none for a
/// revocation).
pub async fn issue(request: &TokenRequest, config: &Config) -> Result<Option<String>, Failure> {
    let data_dir = &request.store().data_dir;
    let keys = key_ring(data_dir).await?;
    match request {
        TokenRequest::RevokeOperators { .. } => {
            revoke_operator_tokens(data_dir)?;
            eprintln!(
                "pisync-local: every operator token issued so far is revoked; device tokens still work"
            );
            Ok(None)
        }
        TokenRequest::Device { id, store } => {
            let device = DeviceId::parse(id).ok_or_else(|| format!("device id {id:?} {}", DeviceId::RULE))?;
            let credentials = Stores::credentials(store, config).await?;
            let issued = issue_device_credential(&keys, credentials.as_ref(), device).await?;
            if store.dynamodb_endpoint.is_none() {
                // A server running on this database may hold the earlier token in its
                // view of credentials: once this returns, that token is refused.
                tokio::time::sleep(pisync_shared::adapters::sqlite::CREDENTIAL_VIEW_SETTLE).await;
            }
            Ok(Some(issued.token))
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
            Ok(Some(operator_token(
                &*operator_key_ring(data_dir).await?,
                &Operator::of(scope, Reach::of(schools), name),
            )?))
        }
    }
}

/// A local operator token for `operator`, valid [`OPERATOR_TOKEN_DAYS`].
pub fn operator_token(keys: &KeyRing, operator: &Operator) -> Result<String, Failure> {
    operator_token_for(keys, operator, OPERATOR_TOKEN_DAYS * 86_400)
}

/// A local operator token for `operator`, valid `seconds` from now.
pub fn operator_token_for(keys: &KeyRing, operator: &Operator, seconds: i64) -> Result<String, Failure> {
    let expires = chrono::Utc::now().timestamp() + seconds;
    Ok(token::sign_operator(&keys.current(), operator, expires)?)
}
