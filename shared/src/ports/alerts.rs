//! The alert port: where operator notices go.

use super::error::Source;
use crate::domain::notice::Notice;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
#[error("could not publish notice: {context}")]
pub struct PublishError {
    context: String,
    #[source]
    source: Option<Source>,
}

impl PublishError {
    pub fn new(context: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            source: None,
        }
    }

    pub fn with_source(context: impl Into<String>, source: impl Into<Source>) -> Self {
        Self {
            context: context.into(),
            source: Some(source.into()),
        }
    }
}

#[async_trait]
pub trait AlertPublisher: Send + Sync {
    async fn publish(&self, notice: &Notice) -> Result<(), PublishError>;
}
