//! The notice history's reads. Notices are written with the state change that decided
//! them ([`super::StateWrite::notices`]); these pages read them back, newest decision
//! first, a page at a time — never more than a page's worth of items per partition.

use super::{StoreError, Within};
use crate::domain::event::DeviceId;
use crate::domain::notice::NoticeRecord;
use async_trait::async_trait;

/// A page of decided notices, newest first, each with its history key (the next
/// page's cursor is the last one); `more` when older ones follow.
#[derive(Clone, Debug, PartialEq)]
pub struct NoticePage {
    pub notices: Vec<(String, NoticeRecord)>,
    pub more: bool,
}

impl NoticePage {
    /// A page from up to `limit + 1` stored `(key, JSON record)` rows, newest first:
    /// the first `limit`, `more` when there was one beyond.
    pub fn from_rows(rows: Vec<(String, String)>, limit: usize) -> Result<Self, serde_json::Error> {
        let mut notices = rows
            .into_iter()
            .map(|(key, json)| Ok((key, serde_json::from_str::<NoticeRecord>(&json)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        let more = notices.len() > limit;
        notices.truncate(limit);
        Ok(Self { notices, more })
    }
}

/// What a feed page narrows to.
#[derive(Clone, Debug, PartialEq)]
pub struct NoticeQuery<'a> {
    /// The fleet (every notice, unassigned devices' included) or these schools'.
    pub within: &'a Within,
    /// One notice type (`device.silent`, …), else every type.
    pub kind: Option<&'a str>,
    /// Older than this history key.
    pub before: Option<&'a str>,
    pub limit: usize,
}

#[async_trait]
pub trait NoticeHistory: Send + Sync {
    /// A device's notices (whatever school it was in when each was decided).
    async fn device_notices(
        &self,
        device: &DeviceId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<NoticePage, StoreError>;

    /// The feed: notices decided for devices `within` (by the school each notice
    /// names), of one type or all.
    async fn notice_feed(&self, query: &NoticeQuery<'_>) -> Result<NoticePage, StoreError>;
}

/// Pages from several partitions (a school operator's schools), merged: the newest
/// `limit` of them, `more` when any partition had more or some were left out.
pub fn merge_pages(pages: Vec<NoticePage>, limit: usize) -> NoticePage {
    let mut more = pages.iter().any(|p| p.more);
    let mut notices: Vec<(String, NoticeRecord)> = pages.into_iter().flat_map(|p| p.notices).collect();
    notices.sort_by(|a, b| b.0.cmp(&a.0));
    notices.dedup_by(|a, b| a.0 == b.0);
    if notices.len() > limit {
        more = true;
        notices.truncate(limit);
    }
    NoticePage { notices, more }
}
