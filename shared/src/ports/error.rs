//! The one error type every storage port returns.

/// Boxed source of an adapter failure (an SDK or SQLite error).
pub type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing store is unreachable, throttled or failed; the caller may retry.
    #[error("store unavailable: {context}")]
    Unavailable {
        context: String,
        #[source]
        source: Option<Source>,
    },
    /// Stored data could not be read back: a bug or manual tampering.
    #[error("stored data unreadable: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// An unavailable store, with what was being done and the adapter's error.
    pub fn unavailable(context: impl Into<String>, source: impl Into<Source>) -> Self {
        StoreError::Unavailable {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// An unavailable store without an underlying error (e.g. a writer that stopped).
    pub fn unavailable_because(context: impl Into<String>) -> Self {
        StoreError::Unavailable {
            context: context.into(),
            source: None,
        }
    }
}
