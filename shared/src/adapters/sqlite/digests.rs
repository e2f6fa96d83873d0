//! The daily digest's mark on SQLite: one row per school with the date of its last
//! digest, written in the digest's own transaction (history and outbox).

use super::SqliteStore;
use crate::domain::notice::decided::digest_history_key;
use crate::domain::notice::{Decided, Notice, SchoolDigest};
use crate::domain::school::SchoolId;
use crate::ports::{DigestLedger, StoreError};
use async_trait::async_trait;
use chrono::NaiveDate;
use rusqlite::OptionalExtension;

#[async_trait]
impl DigestLedger for SqliteStore {
    async fn last_digest(&self, school: &SchoolId) -> Result<Option<NaiveDate>, StoreError> {
        let school = school.to_string();
        let date: Option<String> = self
            .read(move |conn| {
                conn.prepare_cached("SELECT date FROM digests WHERE school_id = ?1")?
                    .query_row([&school], |row| row.get(0))
                    .optional()
            })
            .await?;
        Ok(date.and_then(|d| d.parse().ok()))
    }

    async fn save_digest(&self, digest: &SchoolDigest, date: NaiveDate) -> Result<bool, StoreError> {
        let key = digest_history_key(digest);
        let now = digest.detected_at;
        let school = digest.school_id.to_string();
        let decided = Decided::published(Notice::Digest(Box::new(digest.clone())));
        self.immediate(move |tx| {
            // Dates as `YYYY-MM-DD` compare as text in date order.
            let marked = tx
                .prepare_cached(
                    "INSERT INTO digests (school_id, date) VALUES (?1, ?2)
                     ON CONFLICT (school_id) DO UPDATE SET date = excluded.date
                     WHERE digests.date < excluded.date",
                )?
                .execute([&school, &date.to_string()])?;
            if marked == 0 {
                return Ok(false);
            }
            super::notices::keep_notice(tx, &key, &decided, now)?;
            Ok(true)
        })
        .await
    }
}
