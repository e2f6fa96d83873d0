//! Operator notices on Amazon SNS.
//!
//! One publish with `MessageStructure=json` carries a message per protocol: the notice
//! JSON of docs/contract.md as the default (what SQS, Lambda and HTTPS subscribers
//! receive), a plain-text e-mail that links to the device's dashboard page, and an SMS
//! of at most 140 characters; the subject is the e-mail's. Message attributes
//! `event_type`, `device_id` (absent for a school's digest) and `school_id` (absent for
//! a device in no school) let subscribers filter — a school's staff subscribe with a
//! filter policy on their school's id; `alert_id` names the message: the body's
//! `alert_id` (the same for every message about one episode) and its kind
//! (`<alert_id>#alert`, `#recovered`, `#silent`, `#back_online`, `#flapping`,
//! `#stable`, `#digest`), so a subscriber can drop the rare duplicate without dropping
//! the episode's other messages. On a FIFO topic it also becomes the deduplication id,
//! and the notice's device (or a digest's school) its message group.
//!
//! The SDK client is built on the first publish, not at init: most detect-failures
//! sandboxes never publish, and building an SNS client (its endpoint rules and TLS
//! setup) is a third of that function's init work (docs/performance.md).
//!
//! A publish gives up after [`PUBLISH_ATTEMPT_TIMEOUT`] per attempt and
//! [`PUBLISH_TIMEOUT`] in all (the SDK sets none by default): SNS answers in tens of
//! milliseconds, and an endpoint that hangs must not hold the stream batch that is
//! delivering until Lambda's own timeout fails it.

use super::aws::describe_sdk_error;
use crate::domain::notice::Notice;
use crate::ports::alerts::{AlertPublisher, PublishError};
use async_trait::async_trait;
use aws_sdk_sns::config::timeout::TimeoutConfig;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::{Client, Config};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Longest wait for one attempt at publishing.
pub const PUBLISH_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a publish, retries included.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(Clone)]
pub struct SnsPublisher {
    config: Config,
    client: Arc<OnceLock<Client>>,
    topic_arn: String,
    /// The dashboard's URL, for the e-mail's link to the device.
    dashboard_url: Option<String>,
}

impl SnsPublisher {
    /// A publisher over `config`, with the publish timeouts above.
    pub fn new(config: Config, topic_arn: impl Into<String>) -> Self {
        let timeouts = TimeoutConfig::builder()
            .operation_attempt_timeout(PUBLISH_ATTEMPT_TIMEOUT)
            .operation_timeout(PUBLISH_TIMEOUT)
            .build();
        Self {
            config: config.to_builder().timeout_config(timeouts).build(),
            client: Arc::default(),
            topic_arn: topic_arn.into(),
            dashboard_url: None,
        }
    }

    pub fn with_dashboard_url(mut self, url: Option<String>) -> Self {
        self.dashboard_url = url;
        self
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

/// The `MessageStructure=json` message: one text per protocol, the contract's JSON by
/// default.
pub fn per_protocol(notice: &Notice, dashboard_url: Option<&str>) -> String {
    let body = notice.to_json();
    serde_json::json!({
        "default": body,
        "email": notice.email_text(dashboard_url),
        "email-json": body,
        "sms": notice.sms(),
    })
    .to_string()
}

#[async_trait]
impl AlertPublisher for SnsPublisher {
    async fn publish(&self, notice: &Notice) -> Result<(), PublishError> {
        let mut request = self
            .client()
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(notice.subject())
            .message_structure("json")
            .message(per_protocol(notice, self.dashboard_url.as_deref()))
            .message_attributes("event_type", string_attribute(notice.event_type())?)
            .message_attributes("alert_id", string_attribute(&notice.notice_id())?);
        if let Some(device) = notice.device_id() {
            request = request.message_attributes("device_id", string_attribute(device.as_str())?);
        }
        if let Some(school) = notice.school_id() {
            request = request.message_attributes("school_id", string_attribute(school.as_str())?);
        }
        if self.topic_arn.ends_with(".fifo") {
            // Dedup ids are at most 128 characters: hash the notice id.
            let dedup = crate::digest::hex(&Sha256::digest(notice.notice_id().as_bytes()));
            request = request
                .message_group_id(notice.subject_id())
                .message_deduplication_id(dedup);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| PublishError::with_source(describe_sdk_error("Publish", &e), e))
    }
}
