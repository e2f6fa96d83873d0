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

use crate::config::{ConfigError, TLS_TRUST_ROOTS};
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, ConfigLoader, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_http_client::Builder;

/// Amazon Root CA 1–4 and Starfield Services Root CA G2, PEM.
pub const AWS_ROOTS_PEM: &[u8] = include_bytes!("aws_roots.pem");

/// Which certificate authorities the SDK's TLS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// The Amazon Trust Services roots compiled in (default).
    Aws,
    /// The operating system's store, loaded at start.
    System,
}

impl TrustRoots {
    /// `TLS_TRUST_ROOTS`: `aws` (default) or `system`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::parse(std::env::var(TLS_TRUST_ROOTS).ok().as_deref())
    }

    fn parse(value: Option<&str>) -> Result<Self, ConfigError> {
        match value {
            None | Some("") | Some("aws") => Ok(Self::Aws),
            Some("system") => Ok(Self::System),
            Some(other) => Err(ConfigError(format!(
                "{TLS_TRUST_ROOTS} must be \"aws\" or \"system\", got {other:?}"
            ))),
        }
    }

    fn trust_store(self) -> TrustStore {
        match self {
            Self::Aws => TrustStore::empty().with_pem_certificate(AWS_ROOTS_PEM),
            Self::System => TrustStore::default(),
        }
    }
}

/// The SDK's HTTPS client (rustls with aws-lc, as the SDK's default) trusting `roots`.
fn with_https_client(loader: ConfigLoader, roots: TrustRoots) -> Result<ConfigLoader, ConfigError> {
    let tls = TlsContext::builder()
        .with_trust_store(roots.trust_store())
        .build()
        .map_err(|e| ConfigError(format!("TLS settings: {e}")))?;
    let client = Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https();
    Ok(loader.http_client(client))
}

/// A loader with PiSync's HTTPS client and, when the environment holds them (always in
/// Lambda), the region and credentials from there. Callers may add overrides.
pub fn loader() -> Result<ConfigLoader, ConfigError> {
    let mut loader = with_https_client(
        aws_config::defaults(BehaviorVersion::latest()),
        TrustRoots::from_env()?,
    )?;
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
pub async fn load() -> Result<aws_config::SdkConfig, ConfigError> {
    Ok(loader()?.load().await)
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
