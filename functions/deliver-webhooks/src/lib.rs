//! deliver-webhooks: POSTs each notice to the operators' webhooks, signed: the fleet's
//! (`AlertWebhookUrl`) and the `webhook_url` of the notice's school. The alert topic
//! feeds an SQS queue (raw message delivery: a message is the notice JSON, with the
//! topic's message attributes), and this function reads it in batches. A notice for
//! two webhooks is queued again once per target (attribute `target`), so each is
//! delivered and retried on its own; a school's URL is read at each attempt.
//!
//! - 2xx: delivered; the message is deleted and never sent again.
//! - 5xx, 429, 408, a timeout, no connection: tried again after a back-off (10 s,
//!   doubling to an hour, for 24 hours) by making the message visible again later;
//!   after that it goes to the dead-letter queue (alarmed).
//! - Any other status: the receiver refuses it (a wrong URL, a bad signature) and
//!   trying again cannot help: it goes to the dead-letter queue at once.
//!
//! SQS rather than SNS's own HTTPS delivery: SNS cannot add PiSync's signature
//! headers, and its HTTPS retry policy ends within an hour (docs/design.md).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use pisync_shared::adapters::sqs::TARGET_ATTRIBUTE;
use pisync_shared::adapters::webhook::HttpsWebhook;
use pisync_shared::domain::notice::Notice;
use pisync_shared::domain::webhook::{self, Answer, RetryPolicy, WebhookTarget};
use pisync_shared::function::{Aws, BoxError, EventFunction};
use pisync_shared::metrics::Figures;
use pisync_shared::ports::{DeliveryQueue, ReadSchools, WebhookTransport};
use pisync_shared::EventTime;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct DeliverWebhooks {
    transport: Arc<dyn WebhookTransport>,
    queue: Arc<dyn DeliveryQueue>,
    schools: Arc<dyn ReadSchools>,
    /// The fleet's webhook, if the stack has one.
    fleet_url: Option<String>,
    secret: Arc<Vec<u8>>,
    policy: RetryPolicy,
}

impl EventFunction for DeliverWebhooks {
    const NAME: &'static str = env!("CARGO_PKG_NAME");
    type Event = SqsEvent;
    type Response = SqsBatchResponse;

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        Ok(Self::new(
            Arc::new(HttpsWebhook::trusting(aws.config.webhook_extra_roots.as_deref())?),
            aws.delivery_queue().await?,
            aws.store().await?,
            aws.config.webhook_url.clone(),
            aws.webhook_secret().await?,
            RetryPolicy::default(),
        ))
    }

    async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let delivered = deliver_batch(self, event, EventTime::now().millis()).await;
        delivered.figures.record();
        delivered.response
    }
}

impl DeliverWebhooks {
    /// Deliveries through `transport` to `fleet_url` and the schools' URLs, retried
    /// through `queue`, signed with `secret`. (The local runner delivers from its own
    /// queue, `pisync-local`'s webhooks worker, with the same domain code.)
    pub fn new(
        transport: Arc<dyn WebhookTransport>,
        queue: Arc<dyn DeliveryQueue>,
        schools: Arc<dyn ReadSchools>,
        fleet_url: Option<String>,
        secret: Vec<u8>,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            transport,
            queue,
            schools,
            fleet_url,
            secret: Arc::new(secret),
            policy,
        }
    }
}

/// What one batch did: the messages to keep, and the figures.
pub struct Delivered {
    pub response: SqsBatchResponse,
    pub figures: Figures,
}

/// What to do with one message.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Done,
    Retry,
}

/// Delivers one queue batch at `now_millis` (the tests give the time).
pub async fn deliver_batch(deps: &DeliverWebhooks, event: SqsEvent, now_millis: i64) -> Delivered {
    let deliveries = event
        .records
        .iter()
        .map(|message| deliver(deps, message, now_millis));
    let outcomes = futures_util::future::join_all(deliveries).await;
    let mut response = SqsBatchResponse::default();
    let mut figures = Figures::default();
    for (message, (outcome, notice)) in event.records.iter().zip(outcomes) {
        match outcome {
            Outcome::Done => figures.published(notice.as_slice()),
            Outcome::Retry => {
                figures.publish_failures += 1;
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
    }
    Delivered { response, figures }
}

async fn deliver(deps: &DeliverWebhooks, message: &SqsMessage, now_millis: i64) -> (Outcome, Option<Notice>) {
    let body = message.body.as_deref().unwrap_or("");
    let Ok(notice) = serde_json::from_str::<Notice>(body) else {
        tracing::error!(message_id = ?message.message_id, "not a PiSync notice; dead-lettered");
        return (dead_letter(deps, body, "not a PiSync notice").await, None);
    };
    let target = match message.message_attributes.get(TARGET_ATTRIBUTE) {
        Some(attribute) => match attribute.string_value.as_deref().and_then(WebhookTarget::parse) {
            Some(target) => target,
            None => return (dead_letter(deps, body, "unknown target").await, None),
        },
        // From the topic: one delivery per target.
        None => match WebhookTarget::of(&notice, deps.fleet_url.is_some()).as_slice() {
            [] => return (Outcome::Done, None),
            [one] => one.clone(),
            several => {
                return match deps.queue.fan_out(body, several).await {
                    Ok(()) => (Outcome::Done, None),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not queue the notice per webhook; retried");
                        (Outcome::Retry, None)
                    }
                }
            }
        },
    };
    let url = match webhook::target_url(&target, deps.fleet_url.as_deref(), deps.schools.as_ref()).await {
        Ok(Some(url)) => url,
        Ok(None) => {
            tracing::info!(
                target = target.key(),
                "no webhook for the target any more; dropped"
            );
            return (Outcome::Done, None);
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the school's webhook; retried");
            return (Outcome::Retry, None);
        }
    };
    let payload = webhook::payload(&notice);
    let answer = webhook::send(
        deps.transport.as_ref(),
        &url,
        &deps.secret,
        &payload,
        now_millis / 1000,
    )
    .await;
    let attempts: u32 = message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let first_sent: i64 = message
        .attributes
        .get("SentTimestamp")
        .and_then(|n| n.parse().ok())
        .unwrap_or(now_millis);
    let elapsed = Duration::from_millis(u64::try_from(now_millis - first_sent).unwrap_or(0));
    let outcome = match answer {
        Answer::Delivered => Outcome::Done,
        Answer::Rejected => dead_letter(deps, body, "rejected by the receiver").await,
        Answer::TryAgain if !deps.policy.may_retry(elapsed) => {
            dead_letter(deps, body, "failing for 24 hours").await
        }
        Answer::TryAgain => {
            let receipt = message.receipt_handle.as_deref().unwrap_or("");
            if let Err(e) = deps.queue.retry_later(receipt, deps.policy.delay(attempts)).await {
                // The queue's own visibility timeout still brings it back.
                tracing::warn!(error = %e, "could not delay the retry");
            }
            Outcome::Retry
        }
    };
    // Counted as published only when the receiver took it.
    let published = (answer == Answer::Delivered).then_some(notice);
    (outcome, published)
}

/// Moves a message to the dead-letter queue; if that fails it stays in the queue
/// (SQS's redrive moves it there after the last receive).
async fn dead_letter(deps: &DeliverWebhooks, body: &str, reason: &str) -> Outcome {
    match deps.queue.dead_letter(body, reason).await {
        Ok(()) => {
            tracing::error!(reason, "webhook delivery dead-lettered");
            Outcome::Done
        }
        Err(e) => {
            tracing::error!(error = %e, reason, "could not dead-letter the delivery; it stays queued");
            Outcome::Retry
        }
    }
}
