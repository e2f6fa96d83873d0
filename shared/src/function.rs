//! What every function crate exposes: one handler type, built once per process — from
//! AWS clients in its Lambda ([`Aws`]), or from the local runner's stores ([`Local`]) —
//! and then called for each request or event. The Lambda `main`s ([`crate::lambda`]),
//! the local runner and the tests all build handlers through these two constructors.

use crate::auth::{Authenticator, KeyRing};
use crate::config::Config;
use crate::domain::delivery::Owed;
use crate::http::cursor::CursorKey;
use crate::ports::{AlertPublisher, Credentials, Store};
pub use async_trait::async_trait;
use lambda_http::{Body, Request, Response};
use std::future::Future;
use std::sync::Arc;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An HTTP function's handler: answers one API Gateway request (the local runner makes
/// one from each HTTP request, with the same shape).
#[async_trait]
pub trait HttpHandler: Send + Sync {
    async fn handle(&self, req: Request) -> Response<Body>;
}

/// A function crate serving API routes.
pub trait HttpFunction: HttpHandler + Sized + 'static {
    /// The crate and its binary: what the route table's `function` names.
    const NAME: &'static str;
    /// In its Lambda: the clients its environment names, built once at init.
    fn from_aws(aws: &Aws) -> impl Future<Output = Result<Self, BoxError>> + Send;
    /// In the local runner and the tests: the ports of one store.
    fn from_local(local: &Local) -> Self;
}

/// A function crate triggered by an AWS event source (a table stream, a schedule, a
/// queue), answering with what the event source expects.
pub trait EventFunction: Sized + Send + Sync + 'static {
    const NAME: &'static str;
    type Event: serde::de::DeserializeOwned + Send + 'static;
    type Response: serde::Serialize + Send + 'static;
    fn from_aws(aws: &Aws) -> impl Future<Output = Result<Self, BoxError>> + Send;
    fn handle(&self, event: Self::Event) -> impl Future<Output = Self::Response> + Send;
}

/// What the local runner (or a test) built once: the store behind every port, device
/// credentials, signing keys, the authenticator, the cursor key, where notices go, and
/// the configuration. Every function takes the parts it needs.
#[derive(Clone)]
pub struct Local {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub credentials: Arc<dyn Credentials>,
    pub keys: Arc<KeyRing>,
    pub auth: Authenticator,
    pub cursor_key: CursorKey,
    pub alerts: Arc<dyn AlertPublisher>,
    /// Per-device limits, counted in the runner's memory (one process serves all).
    pub limits: Arc<dyn crate::ports::LimitDevices>,
    /// Shared by every detection instance of the process: a delivery round that left
    /// notices behind makes the next batch deliver too.
    pub owed: Arc<Owed>,
}

/// A Lambda function's view of AWS: its configuration, and the SDK settings, loaded
/// on first use (a function that calls no AWS service never loads them).
pub struct Aws {
    pub config: Config,
    #[cfg(feature = "aws")]
    pub(crate) sdk: tokio::sync::OnceCell<aws_config::SdkConfig>,
}

impl Aws {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            #[cfg(feature = "aws")]
            sdk: tokio::sync::OnceCell::new(),
        }
    }

    /// An operator route's authenticator: API Gateway's JWT authorizer verified the
    /// token; the operator's groups (in the configured claim) are the scope.
    pub fn operator_auth(&self) -> Authenticator {
        Authenticator::gateway_operators(&self.config.operator_groups_claim)
    }
}
