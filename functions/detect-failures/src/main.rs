use aws_lambda_events::event::dynamodb::Event;
use detect_failures::{handle, DetectFailures};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use pisync_shared::adapters::{aws, dynamodb::DynamoStore, sns::SnsPublisher};
use pisync_shared::config::Config;
use std::sync::Arc;

// A sandbox handles one event at a time on a fraction of a vCPU: a single-threaded
// runtime starts faster and uses less memory than one worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    pisync_shared::logging::init_lambda();
    let config = Config::from_env()?;
    let sdk = aws::load(config.trust_roots).await?;
    let deps = DetectFailures {
        states: Arc::new(DynamoStore::from_config(&sdk, &config)?),
        alerts: Arc::new(SnsPublisher::from_config(&sdk, config.alert_topic_arn()?)),
        rule: config.rule,
    };
    run(service_fn(|event: LambdaEvent<Event>| async {
        Ok::<_, Error>(handle(&deps, event.payload).await)
    }))
    .await
}
