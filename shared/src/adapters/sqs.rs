//! The webhook delivery queue on Amazon SQS: a retry is the message made visible
//! again after a delay (`ChangeMessageVisibility`); a rejected delivery is sent to the
//! dead-letter queue, which raises an alarm.

use super::aws::describe_sdk_error;
use crate::ports::{DeliveryQueue, StoreError};
use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;
use std::time::Duration;

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
