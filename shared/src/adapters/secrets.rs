//! Secrets Manager: the token signing keys, the cursor key and the webhook secret, read at start (and
//! the signing keys again after a rotation), so no secret sits in a function's
//! environment variables. A secret is named by its ARN or its name (both are what
//! `GetSecretValue` takes; a template's `Ref` gives one or the other).

use super::aws::describe_sdk_error;
use crate::auth::SigningKeys;
use crate::ports::{LoadKeys, StoreError};
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

/// A secret's string value.
pub async fn secret_string(client: &Client, id: &str) -> Result<String, StoreError> {
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| StoreError::unavailable(describe_sdk_error("GetSecretValue", &e), e))?;
    out.secret_string
        .ok_or_else(|| StoreError::Corrupt(format!("secret {id} has no string value")))
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
