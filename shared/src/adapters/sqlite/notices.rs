//! The notice history on SQLite: rows written in the state save's transaction
//! ([`super::devices`]; a digest's with its school's mark, [`super::digests`]); each page is one index range read newest first (per school for
//! a school operator's feed, merged), so a page costs its size, never the table's.

use super::{corrupt, SqliteStore};
use crate::domain::event::DeviceId;
use crate::domain::notice::Decided;
use crate::domain::school::SchoolId;
use crate::domain::time::EventTime;
use crate::ports::notices::merge_pages;
use crate::ports::{NoticeHistory, NoticePage, NoticeQuery, StoreError, Within};
use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection};

/// Larger than any key: the first page starts below it.
const NEWEST: &str = "~";

/// Keeps a decided notice in the history under `key` and, when published, in the
/// outbox: within the caller's transaction. A school's digest has no device: its
/// `device_id` column is empty (no device id is).
pub(super) fn keep_notice(
    conn: &Connection,
    key: &str,
    decided: &Decided,
    now: EventTime,
) -> rusqlite::Result<()> {
    let notice = &decided.notice;
    if decided.is_published() {
        conn.prepare_cached("INSERT INTO outbox (notice) VALUES (?1)")?
            .execute([notice.to_json()])?;
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO notices (key, device_id, school_id, type, record)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        key,
        notice.device_id().map_or("", DeviceId::as_str),
        notice.school_id().map(SchoolId::as_str),
        notice.event_type(),
        decided.record(now).to_json()
    ])?;
    Ok(())
}

impl SqliteStore {
    /// Up to `limit` rows matching `filter` (its `?` bound to `values`), newest first,
    /// below `before`.
    async fn notice_rows(
        &self,
        filter: &'static str,
        mut values: Vec<Value>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<NoticePage, StoreError> {
        values.push(Value::Text(before.unwrap_or(NEWEST).to_owned()));
        values.push(Value::Integer(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
        let rows: Vec<(String, String)> = self
            .read(move |conn| {
                let sql = format!(
                    "SELECT key, record FROM notices WHERE {filter} AND key < ? ORDER BY key DESC LIMIT ?"
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(params_from_iter(values), |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect()
            })
            .await?;
        NoticePage::from_rows(rows, limit).map_err(corrupt)
    }
}

#[async_trait]
impl NoticeHistory for SqliteStore {
    async fn device_notices(
        &self,
        device: &DeviceId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<NoticePage, StoreError> {
        let values = vec![Value::Text(device.to_string())];
        self.notice_rows("device_id = ?", values, before, limit).await
    }

    async fn notice_feed(&self, query: &NoticeQuery<'_>) -> Result<NoticePage, StoreError> {
        let kind = query.kind.map(|k| Value::Text(k.to_owned()));
        let (before, limit) = (query.before, query.limit);
        match query.within {
            Within::Fleet => match kind {
                Some(kind) => self.notice_rows("type = ?", vec![kind], before, limit).await,
                None => self.notice_rows("1 = 1", Vec::new(), before, limit).await,
            },
            Within::Schools(schools) => {
                let filter = match kind {
                    Some(_) => "school_id = ? AND type = ?",
                    None => "school_id = ?",
                };
                let mut pages = Vec::with_capacity(schools.len());
                for school in schools {
                    let values = std::iter::once(Value::Text(school.to_string()))
                        .chain(kind.clone())
                        .collect();
                    pages.push(self.notice_rows(filter, values, before, limit).await?);
                }
                Ok(merge_pages(pages, limit))
            }
        }
    }
}
