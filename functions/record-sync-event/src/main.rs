use lambda_http::{run, service_fn, Error};
use pisync_shared::adapters::dynamodb::DynamoStore;
use pisync_shared::adapters::{aws, secrets};
use pisync_shared::config::Config;
use record_sync_event::{handle, RecordSyncEvent};
use std::sync::Arc;

// A sandbox handles one event at a time on a fraction of a vCPU: a single-threaded
// runtime starts faster and uses less memory than one worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    pisync_shared::logging::init_lambda();
    let config = Config::from_env()?;
    let sdk = aws::load(config.trust_roots).await?;
    let deps = RecordSyncEvent {
        log: Arc::new(DynamoStore::from_config(&sdk, &config)?),
        rules: config.event_rules,
        // No gateway authorizer on this route: device tokens are checked here.
        auth: secrets::device_authenticator(&sdk, &config).await?,
    };
    run(service_fn(|req| async {
        Ok::<_, Error>(handle(&deps, req).await)
    }))
    .await
}
