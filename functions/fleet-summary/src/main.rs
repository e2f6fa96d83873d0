use fleet_summary::{handle, FleetSummary};
use lambda_http::{run, service_fn, Error};
use pisync_shared::adapters::{aws, dynamodb::DynamoStore};
use pisync_shared::auth::Authenticator;
use pisync_shared::config::Config;
use std::sync::Arc;

// A sandbox handles one event at a time on a fraction of a vCPU: a single-threaded
// runtime starts faster and uses less memory than one worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    pisync_shared::logging::init_lambda();
    let config = Config::from_env()?;
    let sdk = aws::load(config.trust_roots).await?;
    let deps = FleetSummary {
        fleet: Arc::new(DynamoStore::from_config(&sdk, &config)?),
        // API Gateway's JWT authorizer verified the operator; their groups are the scope.
        auth: Authenticator::gateway_operators(&config.operator_groups_claim),
    };
    run(service_fn(|req| async {
        Ok::<_, Error>(handle(&deps, req).await)
    }))
    .await
}
