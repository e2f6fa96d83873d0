//! The alert port: where operator notices go.

use crate::notice::Notice;
use async_trait::async_trait;
use std::fmt;

#[derive(Debug)]
pub struct PublishError(pub String);

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not publish notice: {}", self.0)
    }
}

impl std::error::Error for PublishError {}

#[async_trait]
pub trait AlertPublisher: Send + Sync {
    async fn publish(&self, notice: &Notice) -> Result<(), PublishError>;
}
