//! The notice outbox: notices are written with the state change that decided them,
//! then published, then removed. A channel that is down delays them; it never loses
//! them, and it never holds up detection.

use super::StoreError;
use crate::domain::notice::Notice;
use async_trait::async_trait;

/// A notice waiting to be published.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEntry {
    /// The adapter's key for it (opaque to the domain).
    pub key: String,
    pub notice: Notice,
}

#[async_trait]
pub trait Outbox: Send + Sync {
    /// Notices waiting, oldest first (a device's in the order they were decided).
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Removes a published notice.
    async fn delivered(&self, entry: &OutboxEntry) -> Result<(), StoreError>;
}
