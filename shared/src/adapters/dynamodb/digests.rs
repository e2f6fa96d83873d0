//! The daily digest's mark on DynamoDB: item `SCHOOL#<id>` / `DIGEST` with the local
//! date of the school's last digest. A digest is one transaction: the mark (on
//! condition that it is older than the digest's date), the outbox item and the
//! history items — so two periodic checks racing send it once.

use super::item::{school_pk, OUTBOX_PK};
use super::{built, s, unavailable, DynamoStore, Units};
use crate::domain::notice::decided::digest_history_key;
use crate::domain::notice::{Decided, Notice, SchoolDigest};
use crate::domain::school::SchoolId;
use crate::ports::{DigestLedger, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
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
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        match sent {
            Ok(out) => {
                for consumed in out.consumed_capacity() {
                    self.metered(Units::Write, Some(consumed));
                }
                Ok(true)
            }
            Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                // Only the mark has a condition: another run saved this date's digest.
                let marked = match e.err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => c
                        .cancellation_reasons()
                        .first()
                        .and_then(|r| r.code())
                        .is_some_and(|code| code == "ConditionalCheckFailed"),
                    _ => false,
                };
                if marked {
                    Ok(false)
                } else {
                    Err(StoreError::unavailable_because(
                        "TransactWriteItems digest cancelled (a conflicting write); the next run tries again",
                    ))
                }
            }
            Err(e) => Err(unavailable("TransactWriteItems digest")(e)),
        }
    }
}
