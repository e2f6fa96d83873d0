//! Device credentials: at most one current token per device, kept only as its digest.

use super::StoreError;
use crate::domain::time::EventTime;
use async_trait::async_trait;

/// A device's current credential: the SHA-256 of its token, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCredential {
    pub device_id: String,
    pub token_digest: [u8; 32],
    pub issued_at: EventTime,
}

/// How fresh a credential read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// May miss a change made in the last second (DynamoDB: an eventually consistent
    /// read, half the price; SQLite: the runner's in-memory view, which misses only
    /// other processes' changes).
    MayLag,
    /// Sees every change acknowledged before it (DynamoDB: strongly consistent).
    Latest,
}

/// Reads the current credential (every device-authenticated request).
#[async_trait]
pub trait CheckCredentials: Send + Sync {
    async fn current(
        &self,
        device_id: &str,
        freshness: Freshness,
    ) -> Result<Option<DeviceCredential>, StoreError>;
}

/// Issues and revokes credentials (operators with the `admin` scope).
#[async_trait]
pub trait ManageCredentials: Send + Sync {
    /// Makes `credential` the device's only credential: earlier tokens stop working.
    async fn replace(&self, credential: &DeviceCredential) -> Result<(), StoreError>;
    /// Removes the device's credential; `false` if it had none.
    async fn revoke(&self, device_id: &str) -> Result<bool, StoreError>;
}
