use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use pisync_shared::adapters::{aws, dynamodb::DynamoStore, sns::SnsPublisher};
use pisync_shared::config::Config;
use pisync_shared::domain::delivery::PublishOnce;
use pisync_shared::EventTime;
use std::sync::Arc;
use watch_devices::{watch, WatchDevices};

// A sandbox handles one event at a time on a fraction of a vCPU: a single-threaded
// runtime starts faster and uses less memory than one worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    pisync_shared::logging::init_lambda();
    let config = Config::from_env()?;
    let sdk = aws::load(config.trust_roots).await?;
    let store = Arc::new(DynamoStore::from_config(&sdk, &config)?);
    let deps = WatchDevices {
        states: store.clone(),
        watch: store.clone(),
        outbox: store,
        alerts: Arc::new(PublishOnce::new(SnsPublisher::from_config(&sdk, &config)?)),
        rules: config.rules(),
    };
    // The schedule's event carries nothing the run needs.
    run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        let now = EventTime::now();
        let figures = watch(&deps, now).await;
        pisync_shared::logging::metrics("watch-devices", &figures, now);
        Ok::<_, Error>(())
    }))
    .await
}
