//! Where webhook deliveries go: an HTTPS POST to the operator's receiver.

use crate::domain::webhook::{Answer, WebhookTarget};
use async_trait::async_trait;

#[async_trait]
pub trait WebhookTransport: Send + Sync {
    /// POSTs `body` (JSON) to `url` with `headers`; a timeout or a failed connection is
    /// [`Answer::TryAgain`].
    async fn post(&self, url: &str, body: &str, headers: &[(&str, String)]) -> Answer;
}

/// The queue webhook deliveries wait in (SQS in AWS): a failed delivery is made
/// visible again later; one the receiver rejects goes to the dead-letter queue.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Makes the message with `receipt` visible again after `delay`.
    async fn retry_later(
        &self,
        receipt: &str,
        delay: std::time::Duration,
    ) -> Result<(), crate::ports::StoreError>;

    /// Sends `body` to the dead-letter queue, saying why.
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), crate::ports::StoreError>;

    /// Queues `body` again once per target, each a delivery of its own (a notice from
    /// the topic that goes to more than one webhook).
    async fn fan_out(&self, body: &str, targets: &[WebhookTarget]) -> Result<(), crate::ports::StoreError>;
}
