//! Makes the device token in `events/record-sync-event/new-event.json` (signed with
//! `events/dev-signing-keys.json`) its device's current credential in a DynamoDB
//! credentials table, so `cargo lambda invoke` and the cold-start measurement of
//! record-sync-event take the authorized path.
//!
//!   cargo run -p pisync-local --example provision_example_token -- ENDPOINT CREDENTIALS_TABLE

use pisync_shared::test_util::lambda_events::provision_token_of;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, table] = args.as_slice() else {
        return Err("usage: provision_example_token ENDPOINT CREDENTIALS_TABLE".into());
    };
    let store = pisync_local::cli::StoreArgs {
        data_dir: std::env::temp_dir(),
        dynamodb_endpoint: Some(endpoint.clone()),
        table: table.trim_end_matches("-credentials").to_owned(),
    };
    let credentials = pisync_local::stores::Stores::credentials(&store, &Default::default()).await?;
    provision_token_of("record-sync-event/new-event.json", credentials.as_ref()).await;
    println!("device_12345's example token is current in {table}");
    Ok(())
}
