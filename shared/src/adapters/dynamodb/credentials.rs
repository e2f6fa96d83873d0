//! Device credentials on DynamoDB, in their own table (`device_id` key): device
//! routes read it only after a token's signature checks out, so a forged token never
//! reaches a table, and the events table's permissions stay as they were.

use super::{s, unavailable};
use crate::domain::time::EventTime;
use crate::ports::{CheckCredentials, DeviceCredential, Freshness, ManageCredentials, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

/// The credentials table's key.
pub const CREDENTIALS_KEY: &str = "device_id";
const DIGEST: &str = "token_sha256";
const ISSUED_AT: &str = "issued_at";

#[derive(Clone)]
pub struct DynamoCredentials {
    pub(super) client: Client,
    pub(super) table: String,
}

impl DynamoCredentials {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Per-device limits counted in this table's credential items.
    pub fn device_limits(&self, limits: crate::domain::limits::DeviceLimits) -> super::SharedMinuteCounters {
        super::SharedMinuteCounters::new(self.client.clone(), self.table.clone(), limits)
    }
}

#[async_trait]
impl CheckCredentials for DynamoCredentials {
    async fn current(
        &self,
        device_id: &str,
        freshness: Freshness,
    ) -> Result<Option<DeviceCredential>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(CREDENTIALS_KEY, s(device_id))
            .consistent_read(freshness == Freshness::Latest)
            .send()
            .await
            .map_err(unavailable("GetItem credential"))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let corrupt = || StoreError::Corrupt(format!("credential item of {device_id}"));
        let digest = match item.get(DIGEST) {
            Some(AttributeValue::B(blob)) => blob.as_ref().try_into().map_err(|_| corrupt())?,
            _ => return Err(corrupt()),
        };
        let issued_at = match item.get(ISSUED_AT) {
            Some(AttributeValue::N(n)) => n
                .parse()
                .ok()
                .and_then(EventTime::from_millis)
                .ok_or_else(corrupt)?,
            _ => return Err(corrupt()),
        };
        Ok(Some(DeviceCredential {
            device_id: device_id.to_owned(),
            token_digest: digest,
            issued_at,
        }))
    }
}

#[async_trait]
impl ManageCredentials for DynamoCredentials {
    async fn replace(&self, credential: &DeviceCredential) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(CREDENTIALS_KEY, s(&credential.device_id))
            .item(
                DIGEST,
                AttributeValue::B(Blob::new(credential.token_digest.to_vec())),
            )
            .item(
                ISSUED_AT,
                AttributeValue::N(credential.issued_at.millis().to_string()),
            )
            .send()
            .await
            .map_err(unavailable("PutItem credential"))?;
        Ok(())
    }

    async fn revoke(&self, device_id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(CREDENTIALS_KEY, s(device_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable("DeleteItem credential"))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}
