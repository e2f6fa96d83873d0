//! Schools on SQLite: their settings as JSON by id; their counts from the `devices`
//! rows of the school (an index by school, never the fleet). Writes are rare: they
//! run in their own IMMEDIATE transaction beside the writer thread, which SQLite
//! serialises with its group commits, so a delete and an assignment never interleave.

use super::devices::UNSEEN;
use super::{corrupt, unavailable, SqliteStore};
use crate::domain::device::Status;
use crate::domain::fleet::{FleetCounts, SchoolCounts};
use crate::domain::school::{School, SchoolId};
use crate::ports::{ManageSchools, ReadSchools, SchoolDeleted, SchoolPage, SchoolPut, StoreError};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

fn parse_school(id: &str, json: &str) -> Result<School, StoreError> {
    serde_json::from_str(json).map_err(|e| corrupt(format!("school {id}: {e}")))
}

#[async_trait]
impl ReadSchools for SqliteStore {
    async fn school(&self, id: &SchoolId) -> Result<Option<School>, StoreError> {
        let row: Option<String> = self.point_read(|conn| {
            conn.prepare_cached("SELECT school FROM schools WHERE school_id = ?1")?
                .query_row([id.as_str()], |row| row.get(0))
                .optional()
        })?;
        row.map(|json| parse_school(id.as_str(), &json)).transpose()
    }

    async fn schools(&self, after: Option<&SchoolId>, limit: usize) -> Result<SchoolPage, StoreError> {
        let after = after.map_or(String::new(), |id| id.to_string());
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT school_id, school FROM schools WHERE school_id > ?1 ORDER BY school_id LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![after, limit as i64 + 1], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let mut schools = rows
            .iter()
            .map(|(id, json)| parse_school(id, json))
            .collect::<Result<Vec<_>, _>>()?;
        let more = schools.len() > limit;
        schools.truncate(limit);
        Ok(SchoolPage { schools, more })
    }

    async fn school_counts(&self, ids: &[SchoolId]) -> Result<Vec<SchoolCounts>, StoreError> {
        let ids: Vec<String> = ids.iter().map(SchoolId::to_string).collect();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT status, COUNT(*) FROM devices INDEXED BY devices_school
                 WHERE school_id = ?1 GROUP BY status",
            )?;
            let mut counts = Vec::with_capacity(ids.len());
            for id in &ids {
                let rows = stmt
                    .query_map([id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let of = |status: &str| rows.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
                let assigned: i64 = rows.iter().map(|(_, n)| n).sum();
                counts.push(SchoolCounts {
                    assigned: u64::try_from(assigned).unwrap_or(0),
                    devices: FleetCounts::from_totals(
                        assigned - of(UNSEEN),
                        of(Status::Failing.as_str()),
                        of(Status::Silent.as_str()),
                    ),
                });
            }
            Ok(counts)
        })
        .await
    }
}

#[async_trait]
impl ManageSchools for SqliteStore {
    async fn put_school(&self, school: &School, may_create: bool) -> Result<SchoolPut, StoreError> {
        let json = serde_json::to_string(school).map_err(corrupt)?;
        let id = school.school_id.to_string();
        self.immediate(move |tx| {
            let existed = tx
                .prepare_cached("SELECT 1 FROM schools WHERE school_id = ?1")?
                .exists([&id])?;
            if !existed && !may_create {
                return Ok(SchoolPut::NotFound);
            }
            tx.prepare_cached(
                "INSERT INTO schools (school_id, school) VALUES (?1, ?2)
                 ON CONFLICT (school_id) DO UPDATE SET school = excluded.school",
            )?
            .execute(params![id, json])?;
            Ok(if existed {
                SchoolPut::Replaced
            } else {
                SchoolPut::Created
            })
        })
        .await
    }

    async fn delete_school(&self, id: &SchoolId) -> Result<SchoolDeleted, StoreError> {
        let id = id.to_string();
        self.immediate(move |tx| {
            let exists = tx
                .prepare_cached("SELECT 1 FROM schools WHERE school_id = ?1")?
                .exists([&id])?;
            if !exists {
                return Ok(SchoolDeleted::NotFound);
            }
            let assigned = tx
                .prepare_cached("SELECT 1 FROM devices WHERE school_id = ?1 LIMIT 1")?
                .exists([&id])?;
            if assigned {
                return Ok(SchoolDeleted::NotEmpty);
            }
            // Its day totals stay: a school made again under the same id finds its
            // history (the DynamoDB store keeps them too).
            tx.execute("DELETE FROM schools WHERE school_id = ?1", [&id])?;
            Ok(SchoolDeleted::Deleted)
        })
        .await
    }
}

impl SqliteStore {
    /// Runs `f` in its own IMMEDIATE transaction (committed if `f` succeeds), beside
    /// the writer thread: school writes are rare, and SQLite serialises them with the
    /// writer's commits.
    pub(super) async fn immediate<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> Result<T, StoreError> {
            let mut conn = SqliteStore::reader(&inner)?;
            let outcome = (|| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            })()
            .map_err(unavailable);
            SqliteStore::give_back(&inner, conn);
            outcome
        })
        .await
        .map_err(|e| StoreError::unavailable("SQLite school write", e))?
    }
}
