//! The runner's store behind every port the handlers, detection and the watch use:
//! the embedded SQLite database, or DynamoDB (for example DynamoDB Local).

use crate::auth::Credentials;
use crate::cli::Options;
use crate::Failure;
use pisync_shared::adapters::dynamodb::DynamoStore;
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::ports::{
    DeviceStates, ListFailing, Outbox, ReadDevices, ReadFleet, ReadHistory, RecordDays, RecordEvents,
    SilenceWatch,
};
use std::sync::Arc;

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

/// One store behind every port.
pub struct Stores {
    pub events: Arc<dyn RecordEvents>,
    pub history: Arc<dyn ReadHistory>,
    pub failing: Arc<dyn ListFailing>,
    pub devices: Arc<dyn ReadDevices>,
    pub fleet: Arc<dyn ReadFleet>,
    pub states: Arc<dyn DeviceStates>,
    pub days: Arc<dyn RecordDays>,
    pub outbox: Arc<dyn Outbox>,
    pub watch: Arc<dyn SilenceWatch>,
    pub credentials: Credentials,
    pub changes: Changes,
}

trait AllPorts:
    RecordEvents
    + ReadHistory
    + ListFailing
    + ReadDevices
    + ReadFleet
    + DeviceStates
    + RecordDays
    + Outbox
    + SilenceWatch
    + Clone
    + 'static
{
}

impl<S> AllPorts for S where
    S: RecordEvents
        + ReadHistory
        + ListFailing
        + ReadDevices
        + ReadFleet
        + DeviceStates
        + RecordDays
        + Outbox
        + SilenceWatch
        + Clone
        + 'static
{
}

impl Stores {
    fn of<S: AllPorts>(store: S, credentials: Credentials, changes: Changes) -> Self {
        Self {
            events: Arc::new(store.clone()),
            history: Arc::new(store.clone()),
            failing: Arc::new(store.clone()),
            devices: Arc::new(store.clone()),
            fleet: Arc::new(store.clone()),
            states: Arc::new(store.clone()),
            days: Arc::new(store.clone()),
            outbox: Arc::new(store.clone()),
            watch: Arc::new(store),
            credentials,
            changes,
        }
    }

    /// The store `options` name: DynamoDB at `--dynamodb-endpoint` (the table created
    /// if missing), else the embedded one in the data directory.
    pub async fn open(options: &Options) -> Result<Self, Failure> {
        match &options.dynamodb_endpoint {
            None => {
                let path = options.data_dir.join(crate::DB_FILE);
                let store = SqliteStore::open(&path)?;
                tracing::info!(path = %path.display(), "embedded store");
                let credentials = Credentials::of(store.clone());
                Ok(Self::of(store.clone(), credentials, Changes::Sqlite(store)))
            }
            Some(endpoint) => {
                let aws = pisync_shared::adapters::aws::for_endpoint(endpoint).await?;
                let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &options.table);
                store.create_table_if_missing().await?;
                let stream_arn = store
                    .stream_arn()
                    .await?
                    .ok_or("the table has no stream; enable NEW_IMAGE streams on it")?;
                tracing::info!(endpoint, table = %options.table, "DynamoDB store");
                let credentials = Credentials::of(crate::auth::dynamodb(endpoint, &options.table).await?);
                let changes = Changes::Dynamo {
                    streams: aws_sdk_dynamodbstreams::Client::new(&aws),
                    stream_arn,
                };
                Ok(Self::of(store, credentials, changes))
            }
        }
    }
}
