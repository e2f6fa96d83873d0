//! The notice history on DynamoDB. Each decided notice is written, in the state save's
//! transaction (a digest's: with its school's mark), to the partitions its reads need
//! — the device's (not for a school's digest), the district's feed,
//! the feed of its type, and (for a school's device) the school's and the school's of
//! its type — sorted by its history key and expiring after 410 days (the contract
//! keeps 400). Every page is one Query per partition read (a school operator's
//! schools are merged), `limit + 1` items each: a page costs its size, never a scan.
//! Notices are rare (a few per device per week), so the district's partition does not
//! run hot; five small items per notice are the price of reading any feed in pages.

use super::item::TTL_ATTRIBUTE;
use super::{built, n, s, DynamoStore};
use crate::domain::event::DeviceId;
use crate::domain::notice::decided::{history_key, NOTICE_RETENTION_DAYS};
use crate::domain::notice::Decided;
use crate::domain::school::SchoolId;
use crate::domain::time::EventTime;
use crate::ports::notices::merge_pages;
use crate::ports::{NoticeHistory, NoticePage, NoticeQuery, StateWrite, StoreError, Within};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

/// Entries outlive the contract's 400 days by this margin before TTL removes them.
const EXPIRY_MARGIN_DAYS: i64 = 10;

fn device_notices_pk(device: &DeviceId) -> String {
    format!("NOTICES#DEVICE#{device}")
}

fn feed_pk(school: Option<&SchoolId>, kind: Option<&str>) -> String {
    match (school, kind) {
        (None, None) => "NOTICES".to_owned(),
        (None, Some(kind)) => format!("NOTICES#TYPE#{kind}"),
        (Some(school), None) => format!("NOTICES#SCHOOL#{school}"),
        (Some(school), Some(kind)) => format!("NOTICES#SCHOOL#{school}#TYPE#{kind}"),
    }
}

impl DynamoStore {
    /// The history items of a save's notices, for its transaction.
    pub(super) fn history_puts(&self, write: &StateWrite<'_>) -> Result<Vec<TransactWriteItem>, StoreError> {
        let device = &write.state.device_id;
        let mut items = Vec::new();
        for (i, decided) in write.notices.iter().enumerate() {
            let key = history_key(write.now, device.as_str(), write.expected + 1, i);
            items.extend(self.history_items(&key, decided, write.now)?);
        }
        Ok(items)
    }

    /// One decided notice's history items, for a transaction: the device's partition
    /// (none for a school's digest) and the feeds'.
    pub(super) fn history_items(
        &self,
        key: &str,
        decided: &Decided,
        now: EventTime,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let expires_at = now.millis() / 1000 + (NOTICE_RETENTION_DAYS + EXPIRY_MARGIN_DAYS) * 86_400;
        let record = decided.record(now).to_json();
        let kind = decided.notice.event_type();
        let school = decided.notice.school_id();
        let mut partitions = vec![feed_pk(None, None), feed_pk(None, Some(kind))];
        if let Some(device) = decided.notice.device_id() {
            partitions.push(device_notices_pk(device));
        }
        if let Some(school) = school {
            partitions.push(feed_pk(Some(school), None));
            partitions.push(feed_pk(Some(school), Some(kind)));
        }
        partitions
            .into_iter()
            .map(|pk| {
                let put = Put::builder()
                    .table_name(&self.table)
                    .item("pk", s(pk))
                    .item("sk", s(key))
                    .item("record", s(record.clone()))
                    .item(TTL_ATTRIBUTE, n(expires_at))
                    .build()
                    .map_err(built)?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect()
    }

    /// Up to `limit` entries of one partition, newest first, older than `before`.
    async fn notice_partition(
        &self,
        pk: String,
        before: Option<&str>,
        limit: usize,
    ) -> Result<NoticePage, StoreError> {
        let rows = self.newest_first(pk, "record", before, limit + 1).await?;
        NoticePage::from_rows(rows, limit).map_err(super::corrupt)
    }
}

#[async_trait]
impl NoticeHistory for DynamoStore {
    async fn device_notices(
        &self,
        device: &DeviceId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<NoticePage, StoreError> {
        self.notice_partition(device_notices_pk(device), before, limit)
            .await
    }

    async fn notice_feed(&self, query: &NoticeQuery<'_>) -> Result<NoticePage, StoreError> {
        let (before, limit) = (query.before, query.limit);
        match query.within {
            Within::Fleet => {
                self.notice_partition(feed_pk(None, query.kind), before, limit)
                    .await
            }
            Within::Schools(schools) => {
                let reads = schools
                    .iter()
                    .map(|school| self.notice_partition(feed_pk(Some(school), query.kind), before, limit));
                let pages = futures_util::future::join_all(reads)
                    .await
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(merge_pages(pages, limit))
            }
        }
    }
}
