use lambda_http::{run, service_fn, Error};
use list_repeated_failures::{handle, ListRepeatedFailures};
use pisync_shared::adapters::dynamodb::DynamoStore;
use pisync_shared::config;
use std::sync::Arc;

// A sandbox handles one event at a time on a fraction of a vCPU: a single-threaded
// runtime starts faster and uses less memory than one worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let aws = pisync_shared::adapters::aws::load().await?;
    let deps = ListRepeatedFailures {
        states: Arc::new(DynamoStore::from_env(aws_sdk_dynamodb::Client::new(&aws))?),
        cursor_key: config::cursor_key()?,
    };
    run(service_fn(|req| async {
        Ok::<_, Error>(handle(&deps, req).await)
    }))
    .await
}
