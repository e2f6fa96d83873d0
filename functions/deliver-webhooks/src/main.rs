use aws_lambda_events::event::sqs::SqsEvent;
use deliver_webhooks::{handle, DeliverWebhooks};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use pisync_shared::adapters::{aws, secrets, sqs::SqsDeliveryQueue, webhook::HttpsWebhook};
use pisync_shared::config::Config;
use pisync_shared::domain::webhook::RetryPolicy;
use pisync_shared::EventTime;
use std::sync::Arc;

// A sandbox handles one event at a time on a fraction of a vCPU: a single-threaded
// runtime starts faster and uses less memory than one worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    pisync_shared::logging::init_lambda();
    let config = Config::from_env()?;
    let sdk = aws::load(config.trust_roots).await?;
    let secret = secrets::webhook_secret(&sdk, &config).await?;
    let deps = DeliverWebhooks {
        transport: Arc::new(HttpsWebhook::new(config.webhook_url()?)?),
        queue: Arc::new(SqsDeliveryQueue::from_config(&sdk, &config)?),
        secret: Arc::new(secret),
        policy: RetryPolicy::default(),
    };
    run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        let now = EventTime::now();
        let delivered = handle(&deps, event.payload, now.millis()).await;
        pisync_shared::logging::metrics("deliver-webhooks", &delivered.figures, now);
        Ok::<_, Error>(delivered.response)
    }))
    .await
}
