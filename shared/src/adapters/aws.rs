//! The AWS SDK configuration each function builds once, at init.
//!
//! Two choices keep Lambda init short (measured in docs/performance.md):
//! - TLS trusts the five Amazon Trust Services roots compiled into the binary
//!   (`aws_roots.pem`, taken from Mozilla's store) instead of parsing the system bundle
//!   of ~140 certificates at every cold start. Every endpoint PiSync calls (DynamoDB,
//!   SNS, STS) chains to one of them. `TLS_TRUST_ROOTS=system` restores the system store
//!   for an endpoint that does not, such as a TLS-terminating proxy.
//! - Lambda puts the region and the role's credentials in the environment, so they are
//!   taken from there directly rather than by walking aws-config's provider chains
//!   (which also look for profile files, SSO, web identity, ECS and IMDS). Without them,
//!   as on a developer machine, the usual chains apply.

use crate::config::{Config, ConfigError, TrustRoots};
use crate::function::BoxError;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, ConfigLoader, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_http_client::Builder;
#[allow(unused_imports)] // used by the feature-gated builders
use std::sync::Arc;

/// Amazon Root CA 1–4 and Starfield Services Root CA G2, PEM.
pub const AWS_ROOTS_PEM: &[u8] = include_bytes!("aws_roots.pem");

fn trust_store(roots: TrustRoots) -> TrustStore {
    match roots {
        TrustRoots::Aws => TrustStore::empty().with_pem_certificate(AWS_ROOTS_PEM),
        TrustRoots::System => TrustStore::default(),
    }
}

/// The SDK's HTTPS client (rustls with aws-lc, as the SDK's default) trusting `roots`.
fn with_https_client(loader: ConfigLoader, roots: TrustRoots) -> Result<ConfigLoader, ConfigError> {
    let tls = TlsContext::builder()
        .with_trust_store(trust_store(roots))
        .build()
        .map_err(|e| ConfigError::Tls(e.into()))?;
    let client = Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https();
    Ok(loader.http_client(client))
}

/// How long a call to an AWS service may take in a Lambda function: a hanging service
/// (DynamoDB, Secrets Manager, SQS) becomes a 503 with `Retry-After` before the
/// function's 10 s timeout, never a Lambda timeout. SNS sets shorter ones of its own.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);
/// The same for the local runner against DynamoDB Local, which a loaded machine can
/// slow to seconds per call; a hanging one still ends in a 503.
const LOCAL_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
const LOCAL_OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn timeouts(
    attempt: std::time::Duration,
    operation: std::time::Duration,
) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// A loader with PiSync's HTTPS client, the Lambda timeouts and, when the environment
/// holds them (always in Lambda), the region and credentials from there. Callers may
/// add overrides.
pub fn loader(config: &Config) -> Result<ConfigLoader, ConfigError> {
    let mut loader = with_https_client(
        aws_config::defaults(BehaviorVersion::latest()),
        config.trust_roots,
    )?
    .timeout_config(timeouts(ATTEMPT_TIMEOUT, OPERATION_TIMEOUT));
    if let Some(region) = &config.aws.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if config.aws.has_credentials {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    Ok(loader)
}

/// AWS settings for an endpoint such as DynamoDB Local, built like the functions' own
/// (same HTTPS client): the region defaults to us-east-1 and, when no credentials are
/// configured, placeholder ones are used (DynamoDB Local accepts any).
#[cfg(feature = "dynamodb")]
pub async fn for_endpoint(config: &Config, endpoint: &str) -> Result<aws_config::SdkConfig, ConfigError> {
    let loader = loader(config)?.timeout_config(timeouts(LOCAL_ATTEMPT_TIMEOUT, LOCAL_OPERATION_TIMEOUT));
    Ok(at_endpoint(loader, config, endpoint).load().await)
}

/// `loader` pointed at `endpoint`, with placeholder credentials when none are set.
#[cfg(feature = "dynamodb")]
fn at_endpoint(loader: ConfigLoader, config: &Config, endpoint: &str) -> ConfigLoader {
    let mut loader = loader
        .endpoint_url(endpoint)
        .region(Region::new(config.region_or_default()));
    if !config.aws.has_credentials {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "pisync-local",
        ));
    }
    loader
}

/// What a Lambda function builds from its environment, each once, when its `from_aws`
/// asks for it.
impl crate::function::Aws {
    /// The SDK settings, loaded on the first call.
    pub async fn sdk(&self) -> Result<&aws_config::SdkConfig, ConfigError> {
        self.sdk
            .get_or_try_init(|| async { Ok(loader(&self.config)?.load().await) })
            .await
    }

    /// The events table (`TABLE_NAME`), with the retention setting.
    #[cfg(feature = "dynamodb")]
    pub async fn store(&self) -> Result<Arc<super::dynamodb::DynamoStore>, BoxError> {
        let client = aws_sdk_dynamodb::Client::new(self.sdk().await?);
        Ok(Arc::new(
            super::dynamodb::DynamoStore::new(client, self.config.table()?)
                .with_retention_days(self.config.retention_days)
                .with_school_cache(super::dynamodb::SCHOOL_CACHE),
        ))
    }

    /// The device credentials table (`CREDENTIALS_TABLE_NAME`).
    #[cfg(feature = "dynamodb")]
    pub async fn credentials(&self) -> Result<Arc<super::dynamodb::DynamoCredentials>, BoxError> {
        let client = aws_sdk_dynamodb::Client::new(self.sdk().await?);
        Ok(Arc::new(super::dynamodb::DynamoCredentials::new(
            client,
            self.config.credentials_table()?,
        )))
    }

    /// Per-device limits, counted per sandbox and shared through the credentials table.
    #[cfg(feature = "dynamodb")]
    pub async fn device_limits(&self) -> Result<Arc<dyn crate::ports::LimitDevices>, BoxError> {
        Ok(Arc::new(
            self.credentials().await?.device_limits(self.config.device_limits),
        ))
    }

    /// The token signing keys, where the configuration says (a secret, or a file).
    #[cfg(feature = "secrets")]
    pub async fn signing_keys(&self) -> Result<Arc<crate::auth::KeyRing>, BoxError> {
        use crate::config::SecretSource;
        let source: Arc<dyn crate::ports::LoadKeys> = match self.config.signing_keys()? {
            SecretSource::SecretsManager(id) => Arc::new(super::secrets::SecretKeys::new(
                aws_sdk_secretsmanager::Client::new(self.sdk().await?),
                id,
            )),
            SecretSource::File(path) => Arc::new(super::secret_file::KeyFile::new(path)),
        };
        Ok(Arc::new(crate::auth::KeyRing::load(source).await?))
    }

    /// A device route's authenticator: device tokens checked against the credentials
    /// table, each acceptance trusted for `CREDENTIAL_CACHE_SECONDS`.
    #[cfg(all(feature = "dynamodb", feature = "secrets"))]
    pub async fn device_auth(&self) -> Result<crate::auth::Authenticator, BoxError> {
        Ok(crate::auth::Authenticator::devices(
            self.signing_keys().await?,
            self.credentials().await?,
            self.config.credential_cache,
        ))
    }

    /// The cursor key: `CURSOR_SIGNING_KEY_SECRET_ARN`'s value, else `CURSOR_SIGNING_KEY`.
    #[cfg(feature = "secrets")]
    pub async fn cursor_key(&self) -> Result<crate::http::cursor::CursorKey, BoxError> {
        match &self.config.cursor_key_secret {
            Some(id) => {
                let client = aws_sdk_secretsmanager::Client::new(self.sdk().await?);
                let secret = super::secrets::secret_string(&client, id).await?;
                if secret.len() < crate::config::MIN_CURSOR_KEY_LEN {
                    return Err(format!("the cursor key in {id} must be at least 32 characters").into());
                }
                Ok(crate::http::cursor::CursorKey::from_secret(secret.as_bytes()))
            }
            None => Ok(self.config.cursor_key()?),
        }
    }

    /// The webhook signing secret (`WEBHOOK_SECRET_ARN`).
    #[cfg(feature = "secrets")]
    pub async fn webhook_secret(&self) -> Result<Vec<u8>, BoxError> {
        let id = self.config.webhook_secret_arn()?;
        let client = aws_sdk_secretsmanager::Client::new(self.sdk().await?);
        let secret = super::secrets::secret_string(&client, id).await?;
        if secret.len() < 32 {
            return Err(format!("the webhook secret in {id} must be at least 32 characters").into());
        }
        Ok(secret.into_bytes())
    }

    /// The webhook delivery queue and its dead-letter queue.
    #[cfg(feature = "sqs")]
    pub async fn delivery_queue(&self) -> Result<Arc<super::sqs::SqsDeliveryQueue>, BoxError> {
        Ok(Arc::new(super::sqs::SqsDeliveryQueue::new(
            aws_sdk_sqs::Client::new(self.sdk().await?),
            self.config.webhook_queue()?,
            self.config.webhook_dead_letter_queue()?,
        )))
    }

    /// The data team's export stream (`EXPORT_STREAM_NAME`), if one is configured.
    #[cfg(feature = "firehose")]
    pub async fn export(&self) -> Result<Option<Arc<dyn crate::ports::SendExport>>, BoxError> {
        let Some(stream) = &self.config.export_stream_name else {
            return Ok(None);
        };
        let client = aws_sdk_firehose::Client::new(self.sdk().await?);
        Ok(Some(Arc::new(super::firehose::FirehoseExport::new(
            client, stream,
        ))))
    }

    /// Notices to the alert topic (`ALERT_TOPIC_ARN`), each at most once per process.
    #[cfg(feature = "sns")]
    pub async fn alerts(
        &self,
    ) -> Result<Arc<crate::domain::delivery::PublishOnce<super::sns::SnsPublisher>>, BoxError> {
        let sns = aws_sdk_sns::Config::new(self.sdk().await?);
        let publisher = super::sns::SnsPublisher::new(sns, self.config.alert_topic_arn()?)
            .with_dashboard_url(self.config.dashboard_url.clone());
        Ok(Arc::new(crate::domain::delivery::PublishOnce::new(publisher)))
    }
}

#[cfg(test)]
mod tests;

/// The one way an AWS SDK error is rendered: the operation, then the error with its
/// whole chain of causes (the SDK's own `Display` says only "service error").
pub fn describe_sdk_error(operation: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{operation}: {error}");
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}
