//! The runner's store behind every port the functions use: the embedded SQLite
//! database, or DynamoDB (for example DynamoDB Local), and where detection's records
//! come from.

use crate::cli::StoreArgs;
use crate::Failure;
use pisync_shared::adapters::dynamodb::{DynamoCredentials, DynamoStore};
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::config::Config;
use pisync_shared::ports::{Credentials, ExportEvents, Store};
use std::sync::Arc;

/// The local DynamoDB store's day-totals slot; [`crate::watch::roll_up`] runs every slot.
pub const ROLLUP_SLOT: std::time::Duration = std::time::Duration::from_secs(1);

/// The embedded store's database in the data directory.
pub const DB_FILE: &str = "pisync.db";

/// Where detection's records come from.
pub enum Changes {
    /// The embedded store's own change feed.
    Sqlite(SqliteStore),
    /// The table's DynamoDB stream.
    Dynamo {
        streams: aws_sdk_dynamodbstreams::Client,
        stream_arn: String,
    },
}

/// One store behind every port, and the device credentials beside it.
pub struct Stores {
    pub store: Arc<dyn Store>,
    pub credentials: Arc<dyn Credentials>,
    pub changes: Changes,
}

/// The credentials table beside `table` (DynamoDB).
pub fn credentials_table(table: &str) -> String {
    format!("{table}-credentials")
}

impl Stores {
    /// The store `args` name: DynamoDB at `--dynamodb-endpoint` (the tables created
    /// if missing), else the embedded one in the data directory.
    pub async fn open(args: &StoreArgs, config: &Config) -> Result<Self, Failure> {
        match &args.dynamodb_endpoint {
            None => {
                let path = args.data_dir.join(DB_FILE);
                let store = SqliteStore::open(&path)?;
                tracing::info!(path = %path.display(), "embedded store");
                Ok(Self {
                    store: Arc::new(store.clone()),
                    credentials: Arc::new(store.clone()),
                    changes: Changes::Sqlite(store),
                })
            }
            Some(endpoint) => {
                let aws = pisync_shared::adapters::aws::for_endpoint(config, endpoint).await?;
                // Day totals roll up within seconds here (AWS: five-minute slots, rolled
                // up by the minute's periodic check); school settings are read each time.
                let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &args.table)
                    .with_rollup(ROLLUP_SLOT, ROLLUP_SLOT * 2);
                store.create_table_if_missing().await?;
                let stream_arn = store
                    .stream_arn()
                    .await?
                    .ok_or("the table has no stream; enable NEW_IMAGE streams on it")?;
                tracing::info!(endpoint, table = %args.table, "DynamoDB store");
                Ok(Self {
                    store: Arc::new(store),
                    credentials: Arc::new(dynamodb_credentials(&aws, &args.table).await?),
                    changes: Changes::Dynamo {
                        streams: aws_sdk_dynamodbstreams::Client::new(&aws),
                        stream_arn,
                    },
                })
            }
        }
    }

    /// Only the event reads of the store `args` name (the export): no stream needed.
    pub async fn for_export(args: &StoreArgs, config: &Config) -> Result<Arc<dyn ExportEvents>, Failure> {
        match &args.dynamodb_endpoint {
            None => Ok(Arc::new(SqliteStore::open(&args.data_dir.join(DB_FILE))?)),
            Some(endpoint) => {
                let aws = pisync_shared::adapters::aws::for_endpoint(config, endpoint).await?;
                Ok(Arc::new(DynamoStore::new(
                    aws_sdk_dynamodb::Client::new(&aws),
                    &args.table,
                )))
            }
        }
    }

    /// Only the device credentials of the store `args` name (the token commands).
    pub async fn credentials(args: &StoreArgs, config: &Config) -> Result<Arc<dyn Credentials>, Failure> {
        match &args.dynamodb_endpoint {
            None => Ok(Arc::new(SqliteStore::open(&args.data_dir.join(DB_FILE))?)),
            Some(endpoint) => {
                let aws = pisync_shared::adapters::aws::for_endpoint(config, endpoint).await?;
                Ok(Arc::new(dynamodb_credentials(&aws, &args.table).await?))
            }
        }
    }
}

async fn dynamodb_credentials(
    aws: &aws_config::SdkConfig,
    table: &str,
) -> Result<DynamoCredentials, Failure> {
    let store = DynamoCredentials::new(aws_sdk_dynamodb::Client::new(aws), credentials_table(table));
    store.create_table_if_missing().await?;
    Ok(store)
}
