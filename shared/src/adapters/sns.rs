//! Operator notices on Amazon SNS.
//!
//! The body is the notice JSON of PRODUCT.md. Message attributes `event_type` and
//! `device_id` let subscribers filter; `alert_id` (also in the body) is the same for
//! every message about one streak, so a subscriber can drop the rare duplicate. On a
//! FIFO topic it also becomes the deduplication id, and SNS drops duplicates itself.

use crate::alerts::{AlertPublisher, PublishError};
use crate::notice::Notice;
use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct SnsPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsPublisher {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, PublishError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PublishError(e.to_string()))
}

#[async_trait]
impl AlertPublisher for SnsPublisher {
    async fn publish(&self, notice: &Notice) -> Result<(), PublishError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(notice.subject())
            .message(notice.to_json())
            .message_attributes("event_type", string_attribute(notice.event_type())?)
            .message_attributes("device_id", string_attribute(notice.device_id().as_str())?)
            .message_attributes("alert_id", string_attribute(&notice.notice_id())?);
        if self.topic_arn.ends_with(".fifo") {
            // Dedup ids are at most 128 characters: hash the notice id.
            let dedup = format!("{:x}", Sha256::digest(notice.notice_id().as_bytes()));
            request = request
                .message_group_id(notice.device_id().as_str())
                .message_deduplication_id(dedup);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| PublishError(format!("{:?}", aws_sdk_sns::error::DisplayErrorContext(e))))
    }
}
