//! Where the token signing keys come from (Secrets Manager in AWS, a file locally).

use super::StoreError;
use crate::auth::SigningKeys;
use async_trait::async_trait;

/// Loads the current signing keys; called at start and again when a token names a
/// key id this process does not know yet (a rotation elsewhere).
#[async_trait]
pub trait LoadKeys: Send + Sync {
    async fn load(&self) -> Result<SigningKeys, StoreError>;
}
