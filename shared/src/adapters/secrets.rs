//! Secrets Manager: the token signing keys, the cursor key and the webhook secret, read at start (and
//! the signing keys again after a rotation), so no secret sits in a function's
//! environment variables.

use super::aws::describe_sdk_error;
use super::key_file::KeyFile;
use crate::auth::{KeyRing, SigningKeys};
use crate::config::{Config, SecretSource, CURSOR_SIGNING_KEY};
use crate::http::cursor::CursorKey;
use crate::ports::{LoadKeys, StoreError};
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use std::sync::Arc;

/// The signing keys where the configuration says (a secret in AWS, a file locally).
pub async fn signing_keys(
    sdk: &aws_config::SdkConfig,
    config: &Config,
) -> Result<KeyRing, Box<dyn std::error::Error + Send + Sync>> {
    let source: Arc<dyn LoadKeys> = match config.signing_keys()? {
        SecretSource::SecretsManager(arn) => Arc::new(SecretKeys::new(Client::new(sdk), arn)),
        SecretSource::File(path) => Arc::new(KeyFile::new(path)),
    };
    Ok(KeyRing::load(source).await?)
}

/// The authenticator of a device route in AWS: device tokens checked against the
/// credentials table, each acceptance trusted for `CREDENTIAL_CACHE_SECONDS`.
#[cfg(feature = "dynamodb")]
pub async fn device_authenticator(
    sdk: &aws_config::SdkConfig,
    config: &Config,
) -> Result<crate::auth::Authenticator, Box<dyn std::error::Error + Send + Sync>> {
    Ok(crate::auth::Authenticator::devices(
        Arc::new(signing_keys(sdk, config).await?),
        Arc::new(super::dynamodb::DynamoCredentials::from_config(sdk, config)?),
        config.credential_cache,
    ))
}

/// The cursor key: `CURSOR_SIGNING_KEY_SECRET_ARN`'s value in AWS, else `CURSOR_SIGNING_KEY`.
pub async fn cursor_key(
    sdk: &aws_config::SdkConfig,
    config: &Config,
) -> Result<CursorKey, Box<dyn std::error::Error + Send + Sync>> {
    match config.cursor_key_secret() {
        Some(arn) => {
            let secret = secret_string(&Client::new(sdk), arn).await?;
            if secret.len() < crate::config::MIN_CURSOR_KEY_LEN {
                return Err(format!("{CURSOR_SIGNING_KEY} in {arn} must be at least 32 characters").into());
            }
            Ok(CursorKey::from_secret(secret.as_bytes()))
        }
        None => Ok(config.cursor_key()?),
    }
}

/// The webhook signing secret (`WEBHOOK_SECRET_ARN`), read once at start.
pub async fn webhook_secret(
    sdk: &aws_config::SdkConfig,
    config: &Config,
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let arn = config.webhook_secret_arn()?;
    let secret = secret_string(&Client::new(sdk), arn).await?;
    if secret.len() < 32 {
        return Err(format!("the webhook secret in {arn} must be at least 32 characters").into());
    }
    Ok(secret.into_bytes())
}

/// A secret's string value.
pub async fn secret_string(client: &Client, arn: &str) -> Result<String, StoreError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| StoreError::unavailable(describe_sdk_error("GetSecretValue", &e), e))?;
    out.secret_string
        .ok_or_else(|| StoreError::Corrupt(format!("secret {arn} has no string value")))
}

/// The signing keys kept in one secret as `{"current": "k1", "k1": "…"}`.
pub struct SecretKeys {
    client: Client,
    arn: String,
}

impl SecretKeys {
    pub fn new(client: Client, arn: impl Into<String>) -> Self {
        Self {
            client,
            arn: arn.into(),
        }
    }
}

#[async_trait]
impl LoadKeys for SecretKeys {
    async fn load(&self) -> Result<SigningKeys, StoreError> {
        let text = secret_string(&self.client, &self.arn).await?;
        SigningKeys::from_json(&text).map_err(|e| StoreError::Corrupt(format!("secret {}: {e}", self.arn)))
    }
}
