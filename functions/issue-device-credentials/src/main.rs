use issue_device_credentials::{handle, IssueDeviceCredentials};
use lambda_http::{run, service_fn, Error};
use pisync_shared::adapters::{aws, dynamodb::DynamoCredentials, secrets};
use pisync_shared::auth::Authenticator;
use pisync_shared::config::Config;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    pisync_shared::logging::init_lambda();
    let config = Config::from_env()?;
    let sdk = aws::load(config.trust_roots).await?;
    let deps = IssueDeviceCredentials {
        credentials: Arc::new(DynamoCredentials::from_config(&sdk, &config)?),
        keys: Arc::new(secrets::signing_keys(&sdk, &config).await?),
        auth: Authenticator::gateway_operators(&config.operator_groups_claim),
    };
    run(service_fn(|req| async {
        Ok::<_, Error>(handle(&deps, req).await)
    }))
    .await
}
