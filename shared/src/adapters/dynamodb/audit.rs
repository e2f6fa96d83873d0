//! The audit trail on DynamoDB: each entry in the `AUDIT` partition (the district's
//! trail) and again in `AUDIT#SCHOOL#<id>` for each school it concerns, sorted by the
//! entry's key (time order), expiring after 410 days (the contract keeps 400). A page
//! is one Query per partition read: the district's, or each of a school admin's
//! schools merged. Admin actions are rare, so one partition holds the district's
//! trail without running hot.

use super::{n, s, unavailable, DynamoStore, Item, Units};
use crate::domain::audit::{AuditEntry, AUDIT_RETENTION_DAYS};
use crate::domain::school::SchoolId;
use crate::ports::{AuditPage, AuditTrail, StoreError, Within};
use async_trait::async_trait;
use std::collections::BTreeMap;

const AUDIT_PK: &str = "AUDIT";
/// Entries outlive the contract's 400 days by this margin before TTL removes them.
const EXPIRY_MARGIN_DAYS: i64 = 10;

fn school_audit_pk(school: &SchoolId) -> String {
    format!("AUDIT#SCHOOL#{school}")
}

#[async_trait]
impl AuditTrail for DynamoStore {
    async fn record_action(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let key = entry.key();
        let json = serde_json::to_string(entry).map_err(super::corrupt)?;
        let expires_at = entry.at.millis() / 1000 + (AUDIT_RETENTION_DAYS + EXPIRY_MARGIN_DAYS) * 86_400;
        let partitions = std::iter::once(AUDIT_PK.to_owned()).chain(entry.schools().map(school_audit_pk));
        for pk in partitions {
            let item: Item = [
                ("pk".to_owned(), s(pk)),
                ("sk".to_owned(), s(key.clone())),
                ("entry".to_owned(), s(json.clone())),
                (super::item::TTL_ATTRIBUTE.to_owned(), n(expires_at)),
            ]
            .into();
            // The same key again (a retried request) writes the same item: harmless.
            let out = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .return_consumed_capacity(self.capacity())
                .send()
                .await
                .map_err(unavailable("PutItem audit"))?;
            self.metered(Units::Write, out.consumed_capacity());
        }
        Ok(())
    }

    async fn audit_entries(
        &self,
        within: &Within,
        before: Option<&str>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let partitions: Vec<String> = match within {
            Within::Fleet => vec![AUDIT_PK.to_owned()],
            Within::Schools(ids) => ids.iter().map(school_audit_pk).collect(),
        };
        let reads = partitions
            .into_iter()
            .map(|pk| self.newest_first(pk, "entry", before, limit + 1));
        // Newest first across the partitions; an entry about two of them once.
        let mut merged: BTreeMap<String, String> = BTreeMap::new();
        for read in futures_util::future::join_all(reads).await {
            merged.extend(read?);
        }
        let mut entries = merged
            .into_values()
            .rev()
            .take(limit + 1)
            .map(|json| serde_json::from_str::<AuditEntry>(&json).map_err(super::corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok(AuditPage { entries, more })
    }
}
