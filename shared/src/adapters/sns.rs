//! Operator notices on Amazon SNS.
//!
//! The body is the notice JSON of docs/contract.md. Message attributes `event_type` and
//! `device_id` let subscribers filter; `alert_id` (also in the body) is the same for
//! every message about one streak, so a subscriber can drop the rare duplicate. On a
//! FIFO topic it also becomes the deduplication id, and SNS drops duplicates itself.
//!
//! The SDK client is built on the first publish, not at init: most detect-failures
//! sandboxes never publish, and building an SNS client (its endpoint rules and TLS
//! setup) is a third of that function's init work (docs/performance.md).

use super::aws::describe_sdk_error;
use crate::domain::notice::Notice;
use crate::ports::alerts::{AlertPublisher, PublishError};
use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::{Client, Config};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};

#[derive(Clone)]
pub struct SnsPublisher {
    config: Config,
    client: Arc<OnceLock<Client>>,
    topic_arn: String,
}

impl SnsPublisher {
    pub fn new(config: Config, topic_arn: impl Into<String>) -> Self {
        Self {
            config,
            client: Arc::default(),
            topic_arn: topic_arn.into(),
        }
    }

    /// The publisher detect-failures uses, from the SDK configuration it loaded once.
    pub fn from_config(sdk: &aws_config::SdkConfig, topic_arn: impl Into<String>) -> Self {
        Self::new(Config::new(sdk), topic_arn)
    }

    /// One client per publisher (and so per sandbox), built when first needed.
    fn client(&self) -> &Client {
        self.client.get_or_init(|| Client::from_conf(self.config.clone()))
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, PublishError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PublishError::with_source("message attribute", e))
}

#[async_trait]
impl AlertPublisher for SnsPublisher {
    async fn publish(&self, notice: &Notice) -> Result<(), PublishError> {
        let mut request = self
            .client()
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
            .map_err(|e| PublishError::with_source(describe_sdk_error("Publish", &e), e))
    }
}
