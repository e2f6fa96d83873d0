use aws_lambda_events::event::dynamodb::Event;
use detect_failures::{handle, DetectFailures};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use pisync_shared::adapters::dynamodb::DynamoStore;
use pisync_shared::adapters::sns::SnsPublisher;
use pisync_shared::config;
use std::sync::Arc;

// A sandbox handles one event at a time on a fraction of a vCPU: a single-threaded
// runtime starts faster and uses less memory than one worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let aws = pisync_shared::adapters::aws::load().await?;
    let deps = DetectFailures {
        states: Arc::new(DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?),
        alerts: Arc::new(SnsPublisher::new(
            aws_sdk_sns::Config::new(&aws),
            config::required(config::ALERT_TOPIC_ARN)?,
        )),
    };
    run(service_fn(|event: LambdaEvent<Event>| async {
        Ok::<_, Error>(handle(&deps, event.payload).await)
    }))
    .await
}
