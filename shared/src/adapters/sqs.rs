//! The webhook delivery queue on Amazon SQS: a retry is the message made visible
//! again after a delay (`ChangeMessageVisibility`); a rejected delivery is sent to the
//! dead-letter queue, which raises an alarm. A notice for more than one webhook is
//! queued again once per target, with the message attribute `target`.

use super::aws::describe_sdk_error;
use crate::domain::webhook::WebhookTarget;
use crate::ports::{DeliveryQueue, StoreError};
use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;
use std::time::Duration;

/// The message attribute naming a fanned-out message's one target.
pub const TARGET_ATTRIBUTE: &str = "target";

/// SQS's longest visibility timeout: 12 hours.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

#[derive(Clone)]
pub struct SqsDeliveryQueue {
    client: Client,
    queue_url: String,
    dead_letter_url: String,
}

impl SqsDeliveryQueue {
    pub fn new(client: Client, queue_url: impl Into<String>, dead_letter_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dead_letter_url: dead_letter_url.into(),
        }
    }
}

#[async_trait]
impl DeliveryQueue for SqsDeliveryQueue {
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        let seconds = delay.min(MAX_VISIBILITY).as_secs();
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await
            .map(drop)
            .map_err(|e| StoreError::unavailable(describe_sdk_error("ChangeMessageVisibility", &e), e))
    }

    async fn fan_out(&self, body: &str, targets: &[WebhookTarget]) -> Result<(), StoreError> {
        let mut entries = Vec::with_capacity(targets.len());
        for (i, target) in targets.iter().enumerate() {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(target.key())
                .build()
                .map_err(|e| StoreError::unavailable("message attribute", e))?;
            entries.push(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .message_attributes(TARGET_ATTRIBUTE, attribute)
                    .build()
                    .map_err(|e| StoreError::unavailable("batch entry", e))?,
            );
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| StoreError::unavailable(describe_sdk_error("SendMessageBatch", &e), e))?;
        match out.failed().first() {
            // The original stays queued and fans out again: a target already queued may
            // be delivered twice (receivers drop a repeated alert_id).
            Some(failed) => Err(StoreError::unavailable_because(format!(
                "SendMessageBatch: {} of {} not queued ({})",
                out.failed().len(),
                targets.len(),
                failed.code()
            ))),
            None => Ok(()),
        }
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason)
            .build()
            .map_err(|e| StoreError::unavailable("message attribute", e))?;
        self.client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(body)
            .message_attributes("reason", reason)
            .send()
            .await
            .map(drop)
            .map_err(|e| StoreError::unavailable(describe_sdk_error("SendMessage", &e), e))
    }
}
