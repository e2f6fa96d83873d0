use aws_lambda_events::event::dynamodb::Event;
use detect_failures::{detect, DetectFailures};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use pisync_shared::adapters::{aws, dynamodb::DynamoStore, sns::SnsPublisher};
use pisync_shared::config::Config;
use pisync_shared::domain::delivery::PublishOnce;
use pisync_shared::EventTime;
use std::sync::Arc;

// A sandbox handles one event at a time on a fraction of a vCPU: a single-threaded
// runtime starts faster and uses less memory than one worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    pisync_shared::logging::init_lambda();
    let config = Config::from_env()?;
    let sdk = aws::load(config.trust_roots).await?;
    let store = Arc::new(DynamoStore::from_config(&sdk, &config)?);
    let deps = DetectFailures {
        states: store.clone(),
        days: store.clone(),
        outbox: store,
        alerts: Arc::new(PublishOnce::new(SnsPublisher::from_config(&sdk, &config)?)),
        rules: config.rules(),
        owed: Default::default(),
    };
    run(service_fn(|event: LambdaEvent<Event>| async {
        let detected = detect(&deps, event.payload).await;
        pisync_shared::logging::metrics("detect-failures", &detected.figures, EventTime::now());
        Ok::<_, Error>(detected.response)
    }))
    .await
}
