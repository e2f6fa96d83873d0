//! The daily digest's mark on DynamoDB: item `SCHOOL#<id>` / `DIGEST` with the local
//! date of the school's last digest. A digest is one transaction: the mark (on
//! condition that it is older than the digest's date), the outbox item and the
//! history items — so two periodic checks racing send it once.

use super::item::{school_pk, OUTBOX_PK};
use super::{built, s, DynamoStore, Transacted};
use crate::domain::notice::decided::digest_history_key;
use crate::domain::notice::{Decided, Notice, SchoolDigest};
use crate::domain::school::SchoolId;
use crate::ports::{DigestLedger, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::NaiveDate;
use serde::Deserialize;

const DIGEST_SK: &str = "DIGEST";

#[derive(Deserialize)]
struct DigestMark {
    date: String,
}

#[async_trait]
impl DigestLedger for DynamoStore {
    async fn last_digest(&self, school: &SchoolId) -> Result<Option<NaiveDate>, StoreError> {
        let mark: Option<DigestMark> = self.get(school_pk(school), DIGEST_SK.to_owned(), false).await?;
        Ok(mark.and_then(|m| m.date.parse().ok()))
    }

    async fn save_digest(&self, digest: &SchoolDigest, date: NaiveDate) -> Result<bool, StoreError> {
        let key = digest_history_key(digest);
        let decided = Decided::published(Notice::Digest(Box::new(digest.clone())));
        // Dates as `YYYY-MM-DD` compare as strings in date order.
        let mark = Put::builder()
            .table_name(&self.table)
            .item("pk", s(school_pk(&digest.school_id)))
            .item("sk", s(DIGEST_SK))
            .item("date", s(date.to_string()))
            .condition_expression("attribute_not_exists(#date) OR #date < :date")
            .expression_attribute_names("#date", "date")
            .expression_attribute_values(":date", s(date.to_string()))
            .build()
            .map_err(built)?;
        let outbox = Put::builder()
            .table_name(&self.table)
            .item("pk", s(OUTBOX_PK))
            .item("sk", s(key.clone()))
            .item("notice", s(decided.notice.to_json()))
            .build()
            .map_err(built)?;
        let mut items = vec![
            TransactWriteItem::builder().put(mark).build(),
            TransactWriteItem::builder().put(outbox).build(),
        ];
        items.extend(self.history_items(&key, &decided, digest.detected_at)?);
        match self.transact(items, "TransactWriteItems digest").await? {
            Transacted::Written => Ok(true),
            // Only the mark has a condition: another run saved this date's digest.
            Transacted::Cancelled(reasons)
                if reasons.first().is_some_and(|r| r == "ConditionalCheckFailed") =>
            {
                Ok(false)
            }
            Transacted::Cancelled(reasons) => Err(StoreError::unavailable_because(format!(
                "TransactWriteItems digest cancelled: {}; the next run tries again",
                reasons.join(", ")
            ))),
        }
    }
}
