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

use crate::config::{ConfigError, TrustRoots};
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, ConfigLoader, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_http_client::Builder;

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

/// A loader with PiSync's HTTPS client and, when the environment holds them (always in
/// Lambda), the region and credentials from there. Callers may add overrides.
pub fn loader(roots: TrustRoots) -> Result<ConfigLoader, ConfigError> {
    let mut loader = with_https_client(aws_config::defaults(BehaviorVersion::latest()), roots)?;
    let known = KnownFromEnv::read(|name| std::env::var(name).ok());
    if let Some(region) = known.region {
        loader = loader.region(Region::new(region));
    }
    if known.credentials {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    Ok(loader)
}

/// The configuration a Lambda function builds its clients from.
pub async fn load(roots: TrustRoots) -> Result<aws_config::SdkConfig, ConfigError> {
    Ok(loader(roots)?.load().await)
}

/// AWS settings for an endpoint such as DynamoDB Local, built like the functions' own
/// (same HTTPS client): the region defaults to us-east-1 and, when no credentials are
/// configured, placeholder ones are used (DynamoDB Local accepts any).
#[cfg(feature = "dynamodb")]
pub async fn for_endpoint(endpoint: &str) -> Result<aws_config::SdkConfig, ConfigError> {
    let mut loader = loader(TrustRoots::default())?.endpoint_url(endpoint);
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        loader = loader.region(Region::new("us-east-1"));
    }
    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "pisync-local",
        ));
    }
    Ok(loader.load().await)
}

/// What the environment already answers, so aws-config need not search for it.
#[derive(Debug, PartialEq, Eq)]
struct KnownFromEnv {
    region: Option<String>,
    /// Both keys are set: the environment provider alone will answer.
    credentials: bool,
}

impl KnownFromEnv {
    fn read(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name| var(name).filter(|v| !v.is_empty());
        KnownFromEnv {
            region: set("AWS_REGION"),
            credentials: set("AWS_ACCESS_KEY_ID").is_some() && set("AWS_SECRET_ACCESS_KEY").is_some(),
        }
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
