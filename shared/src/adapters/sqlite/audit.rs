//! The audit trail on SQLite: one row per entry by its key (time order), and one row
//! per school it concerns, so a school admin's page reads that school's rows only.
//! Entries are kept as long as the data directory is (at least the 400 days the
//! contract asks).

use super::{corrupt, SqliteStore};
use crate::domain::audit::AuditEntry;
use crate::ports::{AuditPage, AuditTrail, StoreError, Within};
use async_trait::async_trait;
use rusqlite::params_from_iter;

/// Larger than any key: the first page starts below it.
const NEWEST: &str = "~";

#[async_trait]
impl AuditTrail for SqliteStore {
    async fn record_action(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let key = entry.key();
        let json = serde_json::to_string(entry).map_err(corrupt)?;
        let schools: Vec<String> = entry.schools().map(ToString::to_string).collect();
        self.immediate(move |tx| {
            tx.prepare_cached("INSERT OR IGNORE INTO audit (key, entry) VALUES (?1, ?2)")?
                .execute([&key, &json])?;
            let mut by_school =
                tx.prepare_cached("INSERT OR IGNORE INTO audit_schools (school_id, key) VALUES (?1, ?2)")?;
            for school in &schools {
                by_school.execute([school, &key])?;
            }
            Ok(())
        })
        .await
    }

    async fn audit_entries(
        &self,
        within: &Within,
        before: Option<&str>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let before = before.unwrap_or(NEWEST).to_owned();
        let schools: Option<Vec<String>> = match within {
            Within::Fleet => None,
            Within::Schools(ids) => Some(ids.iter().map(ToString::to_string).collect()),
        };
        let rows: Vec<String> = self
            .read(move |conn| match schools {
                None => {
                    let mut stmt = conn.prepare_cached(
                        "SELECT entry FROM audit WHERE key < ?1 ORDER BY key DESC LIMIT ?2",
                    )?;
                    let rows =
                        stmt.query_map(rusqlite::params![before, limit as i64 + 1], |row| row.get(0))?;
                    rows.collect()
                }
                Some(schools) if schools.is_empty() => Ok(Vec::new()),
                Some(schools) => {
                    let marks = vec!["?"; schools.len()].join(", ");
                    let sql = format!(
                        "SELECT a.entry FROM audit a WHERE a.key IN (
                             SELECT DISTINCT key FROM audit_schools
                             WHERE school_id IN ({marks}) AND key < ?
                             ORDER BY key DESC LIMIT ?)
                         ORDER BY a.key DESC"
                    );
                    let mut values = schools;
                    values.push(before);
                    values.push((limit + 1).to_string());
                    let mut stmt = conn.prepare(&sql)?;
                    let rows = stmt.query_map(params_from_iter(values), |row| row.get(0))?;
                    rows.collect()
                }
            })
            .await?;
        let mut entries = rows
            .iter()
            .map(|json| serde_json::from_str::<AuditEntry>(json).map_err(corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok(AuditPage { entries, more })
    }
}
