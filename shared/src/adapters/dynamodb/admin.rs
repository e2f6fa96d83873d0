//! What only the local runner, the tests and the benchmarks need of DynamoDB: creating
//! the table as `template.yaml` declares it, finding its stream, and metering consumed
//! capacity. Behind the `dynamodb-admin` feature, so it never ships in a Lambda.

use super::item::{Projected, INDEXES, STREAM_VIEW, TABLE_KEYS, TTL_ATTRIBUTE};
use super::{unavailable, DynamoCredentials, DynamoStore, Item, Units, CREDENTIALS_KEY};
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, ConsumedCapacity, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, PutRequest, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification, WriteRequest,
};
use std::sync::{Arc, Mutex};

/// Sums the capacity units DynamoDB reports consuming (for docs and benchmarks).
#[derive(Default, Debug)]
pub struct CapacityMeter {
    totals: Mutex<(f64, f64)>,
}

impl CapacityMeter {
    /// (read units, write units) since the last call, resetting the totals.
    pub fn take(&self) -> (f64, f64) {
        self.totals
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }

    pub(super) fn add(&self, kind: Units, consumed: &ConsumedCapacity) {
        if let Ok(mut totals) = self.totals.lock() {
            let units = consumed.capacity_units().unwrap_or(0.0);
            match kind {
                Units::Read => totals.0 += units,
                Units::Write => totals.1 += units,
            }
        }
    }
}

/// A request builder that failed to build: a bug in the code, never the service's.
fn built(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::unavailable("building a table-admin request", e)
}

impl DynamoStore {
    pub fn with_capacity_meter(mut self, meter: Arc<CapacityMeter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Creates the table exactly as template.yaml declares it (streams on, sparse
    /// index, TTL), unless it exists. For local runs and tests.
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        let exists = self.client.describe_table().table_name(&self.table).send().await;
        if exists.is_ok() {
            return Ok(());
        }
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(built)
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(built)
        };
        let mut indexes = Vec::new();
        let mut attributes = vec![attr(TABLE_KEYS[0])?, attr(TABLE_KEYS[1])?];
        for index in INDEXES {
            let projection = match index.projection {
                Projected::KeysOnly => Projection::builder().projection_type(ProjectionType::KeysOnly),
                Projected::Include(names) => Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .set_non_key_attributes(Some(names.iter().map(|n| n.to_string()).collect())),
            };
            indexes.push(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .key_schema(key(index.keys[0], KeyType::Hash)?)
                    .key_schema(key(index.keys[1], KeyType::Range)?)
                    .projection(projection.build())
                    .build()
                    .map_err(built)?,
            );
            attributes.push(attr(index.keys[0])?);
            attributes.push(attr(index.keys[1])?);
        }
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(attributes))
            .key_schema(key(TABLE_KEYS[0], KeyType::Hash)?)
            .key_schema(key(TABLE_KEYS[1], KeyType::Range)?)
            .set_global_secondary_indexes(Some(indexes))
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(STREAM_VIEW))
                    .build()
                    .map_err(built)?,
            )
            .send()
            .await;
        if let Err(e) = created {
            // Another process may have created it meanwhile.
            if self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .is_err()
            {
                return Err(unavailable("CreateTable")(e));
            }
        }
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL_ATTRIBUTE)
            .build()
            .map_err(built)?;
        // TTL is an optimisation for retention; a store without it still works.
        if let Err(e) = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
        {
            tracing::warn!(error = ?e, "could not enable TTL");
        }
        Ok(())
    }

    /// Writes `items` with `BatchWriteItem`, 25 a request from 16 concurrent writers,
    /// resending what DynamoDB leaves unprocessed: loading benchmark data fast. Not
    /// metered, and no condition: the items are taken as they are.
    pub async fn put_items(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let chunks: Vec<Vec<Item>> = items.chunks(25).map(<[_]>::to_vec).collect();
        let chunks = Arc::new(Mutex::new(chunks));
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (client, table, chunks) = (self.client.clone(), self.table.clone(), chunks.clone());
            writers.spawn(async move {
                loop {
                    let Some(chunk) = chunks.lock().ok().and_then(|mut c| c.pop()) else {
                        return Ok::<(), StoreError>(());
                    };
                    let mut pending = Some(
                        chunk
                            .into_iter()
                            .map(|item| {
                                let put = PutRequest::builder()
                                    .set_item(Some(item))
                                    .build()
                                    .map_err(|e| StoreError::unavailable("PutRequest", e))?;
                                Ok(WriteRequest::builder().put_request(put).build())
                            })
                            .collect::<Result<Vec<_>, StoreError>>()?,
                    );
                    while let Some(requests) = pending.take().filter(|r| !r.is_empty()) {
                        let out = client
                            .batch_write_item()
                            .request_items(&table, requests)
                            .send()
                            .await
                            .map_err(unavailable("BatchWriteItem"))?;
                        pending = out.unprocessed_items.and_then(|mut u| u.remove(&table));
                    }
                }
            });
        }
        while let Some(done) = writers.join_next().await {
            done.map_err(|e| StoreError::unavailable("BatchWriteItem writer", e))??;
        }
        Ok(())
    }

    /// The table's stream ARN (for the local runner's stream reader).
    pub async fn stream_arn(&self) -> Result<Option<String>, StoreError> {
        let table = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(unavailable("DescribeTable"))?;
        Ok(table
            .table()
            .and_then(|t| t.latest_stream_arn())
            .map(String::from))
    }
}

impl DynamoCredentials {
    /// Creates the credentials table as template.yaml declares it, unless it exists.
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        if self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(CREDENTIALS_KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(built)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(CREDENTIALS_KEY)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(built)?,
            )
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another process may have created it meanwhile.
            Err(_)
                if self
                    .client
                    .describe_table()
                    .table_name(&self.table)
                    .send()
                    .await
                    .is_ok() =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable("CreateTable credentials")(e)),
        }
    }
}
