//! Devices on SQLite: states (saved with their notices — outbox and history — in one
//! transaction),
//! the device lists, the repeated-failures list, the silence check's candidates, the
//! per-day totals and the fleet counts.
//!
//! Counts come from `GROUP BY status` (on one machine cheap, so the fleet-count deltas
//! a save carries, which DynamoDB needs, are not stored here) and the silence check's
//! candidates from an index on each device's next check time (`watch_at`).

use super::{corrupt, unavailable, SqliteStore, WriteOp};
use crate::domain::device::{DeviceState, Status};
use crate::domain::event::DeviceId;
use crate::domain::fleet::{CountScope, Day, DayAddition, DayTotals, FleetCounts};
use crate::domain::notice::decided::history_key;
use crate::domain::notice::Decided;
use crate::domain::school::{School, SchoolId};
use crate::domain::sketch::{DeviceSketch, SpeedSketch};
use crate::domain::streak::{RunCount, RunWindow};
use crate::domain::time::EventTime;
use crate::ports::{
    DeviceKey, DevicePage, DeviceStates, DueChecks, FailingDevice, FailingKey, FailingPage, ListFailing,
    Outbox, OutboxEntry, ReadDevices, ReadFleet, ReadSchools, RecordDays, Saved, SilenceWatch, StateWrite,
    StoreError, Versioned, Within,
};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;

/// A [`StateWrite`] handed to the writer thread.
pub(super) struct OwnedStateWrite {
    state: DeviceState,
    expected: u64,
    status: Option<Status>,
    failing: bool,
    notices: Vec<Decided>,
    requires_school: Option<SchoolId>,
    now: EventTime,
    watch_at: Option<EventTime>,
    days: Option<DayAddition>,
}

impl OwnedStateWrite {
    /// The day totals this save carries, taken out: the writer adds those of every
    /// save that went through once per commit, in the same transaction.
    pub(super) fn take_days(&mut self) -> Option<DayAddition> {
        self.days.take()
    }

    /// Whether the save writes more than the device's row: its notices' rows too. A
    /// save without notices is one statement (a school check only reads).
    pub(super) fn writes_notices(&self) -> bool {
        !self.notices.is_empty()
    }
}

/// The `status` column of a device that has not reported yet (assigned to a school
/// first): in no list and no count.
pub(super) const UNSEEN: &str = "unseen";

const INSERT_STATE: &str = "INSERT INTO devices (device_id, version, status, failing, streak_count,
         streak_started_at, last_failure_at, last_sync_at, last_seen_at, state, school_id, watch_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
     ON CONFLICT (device_id) DO NOTHING";

/// A save without a check time keeps the one set before.
const UPDATE_STATE: &str = "UPDATE devices SET version = ?2, status = ?3, failing = ?4,
         streak_count = ?5, streak_started_at = ?6, last_failure_at = ?7, last_sync_at = ?8,
         last_seen_at = ?9, state = ?10, school_id = ?11, watch_at = COALESCE(?12, watch_at)
     WHERE device_id = ?1 AND version = ?13";

/// [`UPDATE_STATE`] for a row whose status and school are already the save's, and with
/// no new check time: it matches no row otherwise.
const UPDATE_STATE_IN_PLACE: &str = "UPDATE devices SET version = ?2, failing = ?4,
         streak_count = ?5, streak_started_at = ?6, last_failure_at = ?7, last_sync_at = ?8,
         last_seen_at = ?9, state = ?10
     WHERE device_id = ?1 AND version = ?13 AND status = ?3 AND school_id IS ?11
         AND ?12 IS NULL";

/// Inserts the first version, or updates the row still at the expected version; with
/// it, the notices enter the outbox. A required school is checked in the same
/// transaction (the writer's), so a delete of it cannot slip between.
pub(super) fn save_state(conn: &Connection, write: &OwnedStateWrite) -> Result<Saved, StoreError> {
    if let Some(school) = &write.requires_school {
        let exists = conn
            .prepare_cached("SELECT 1 FROM schools WHERE school_id = ?1")
            .and_then(|mut stmt| stmt.exists([school.as_str()]))
            .map_err(unavailable)?;
        if !exists {
            return Ok(Saved::NoSuchSchool);
        }
    }
    let state = &write.state;
    let json = serde_json::to_string(state).map_err(corrupt)?;
    let streak = state.streak.as_ref();
    let expected = i64::try_from(write.expected).map_err(corrupt)?;
    let status = write.status.map_or(UNSEEN, Status::as_str);
    let school = state.school_id.as_ref().map(SchoolId::as_str);
    let watch_at = write.watch_at.map(EventTime::millis);
    // ?13: the version the row must still have (an INSERT ignores it).
    let row: [&dyn rusqlite::ToSql; 13] = [
        &state.device_id.as_str(),
        &(expected + 1),
        &status,
        &write.failing,
        &state.consecutive_failures(),
        &streak.map(|s| s.started_at.millis()),
        &streak.map(|s| s.last_failure_at.millis()),
        &state.last_sync_at.map(EventTime::millis),
        &state.last_seen_at.map(EventTime::millis),
        &json,
        &school,
        &watch_at,
        &expected,
    ];
    let execute = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
        conn.prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(params))
            .map_err(unavailable)
    };
    let written = if write.expected == 0 {
        execute(INSERT_STATE, &row[..12])?
    } else {
        // Most saves keep the device's status, school and check time: first the UPDATE
        // that sets none of them, so their indexes are left alone (SQLite rewrites an
        // index entry for every column an UPDATE sets, changed or not).
        let kept_place = match write.watch_at {
            None => execute(UPDATE_STATE_IN_PLACE, &row)?,
            Some(_) => 0,
        };
        match kept_place {
            0 => execute(UPDATE_STATE, &row)?,
            n => n,
        }
    };
    if written != 1 {
        return Ok(Saved::Stale);
    }
    for (i, decided) in write.notices.iter().enumerate() {
        let key = history_key(write.now, state.device_id.as_str(), write.expected + 1, i);
        super::notices::keep_notice(conn, &key, decided, write.now).map_err(unavailable)?;
    }
    // Its day totals are not added here: the writer takes them out of every save and
    // adds those of the saves that went through once per commit (`commit_batch`).
    Ok(Saved::Written)
}

fn load_state(conn: &Connection, device: &DeviceId) -> Result<Option<Versioned>, StoreError> {
    let row: Option<(i64, String)> = conn
        .prepare_cached("SELECT version, state FROM devices WHERE device_id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([device.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(unavailable)?;
    row.map(|(version, json)| {
        Ok(Versioned {
            state: parse_state(device.as_str(), &json)?,
            version: u64::try_from(version).map_err(corrupt)?,
        })
    })
    .transpose()
}

fn parse_state(device: &str, json: &str) -> Result<DeviceState, StoreError> {
    serde_json::from_str(json).map_err(|e| corrupt(format!("state of {device}: {e}")))
}

/// States from rows of `(device_id, state)`, in row order.
fn states(rows: Vec<(String, String)>) -> Result<Vec<DeviceState>, StoreError> {
    rows.iter()
        .map(|(device, json)| parse_state(device, json))
        .collect()
}

/// Rows one count reads: a few milliseconds on the reader pool.
pub(super) const COUNT_PAGE_ROWS: i64 = 100_000;

fn count_run(
    conn: &Connection,
    device: &DeviceId,
    window: RunWindow,
    page_rows: i64,
) -> Result<RunCount, StoreError> {
    let (failures, first, last): (i64, Option<i64>, Option<i64>) = conn
        .prepare_cached(
            "SELECT COUNT(*), MIN(ts), MAX(ts) FROM (
                 SELECT ts FROM events INDEXED BY events_failures
                 WHERE device_id = ?1 AND ts > ?2 AND ts <= ?3 AND total_errors > 0
                 ORDER BY ts LIMIT ?4)",
        )
        .and_then(|mut stmt| {
            stmt.query_row(
                params![
                    device.as_str(),
                    window.after.map_or(i64::MIN, EventTime::millis),
                    window.through.millis(),
                    page_rows
                ],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
        })
        .map_err(unavailable)?;
    // A full page: the window may go on past its last row.
    let read_through = if failures == page_rows {
        last.and_then(EventTime::from_millis)
    } else {
        None
    };
    Ok(RunCount {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        first_failure: first.and_then(EventTime::from_millis),
        read_through,
    })
}

/// Loads on the calling thread and counts on the reader pool (WAL lets both run beside
/// the writer), so a count never holds the single writer; saves go through it.
#[async_trait]
impl DeviceStates for SqliteStore {
    /// A primary-key read: inline, like the credential check, because handing each of
    /// a batch's devices to the blocking pool and back cost more than the read.
    async fn load(&self, device: &DeviceId) -> Result<Option<Versioned>, StoreError> {
        self.point_read(|conn| Ok(load_state(conn, device)))?
    }

    /// Day totals are added in the save's own transaction: no second commit per batch.
    fn adds_days_with_state(&self) -> bool {
        true
    }

    async fn save(&self, write: &StateWrite<'_>) -> Result<Saved, StoreError> {
        let owned = OwnedStateWrite {
            state: write.state.clone(),
            expected: write.expected,
            status: write.status,
            failing: write.failing,
            notices: write.notices.to_vec(),
            requires_school: write.requires_school.cloned(),
            now: write.now,
            watch_at: write.watch_at,
            days: write.days.cloned(),
        };
        self.write(|reply| WriteOp::SaveState(Box::new(owned), reply))
            .await
    }

    async fn school(&self, school: &SchoolId) -> Result<Option<School>, StoreError> {
        ReadSchools::school(self, school).await
    }

    async fn count_run(&self, device: &DeviceId, window: RunWindow) -> Result<RunCount, StoreError> {
        let (device, page_rows) = (device.clone(), self.count_page_rows);
        self.read(move |conn| Ok(count_run(conn, &device, window, page_rows)))
            .await?
    }
}

#[async_trait]
impl ReadDevices for SqliteStore {
    async fn device(&self, device: &DeviceId) -> Result<Option<DeviceState>, StoreError> {
        Ok(DeviceStates::load(self, device).await?.map(|v| v.state))
    }

    async fn devices(
        &self,
        status: Option<Status>,
        limit: usize,
        after: Option<&DeviceKey>,
        within: &Within,
    ) -> Result<DevicePage, StoreError> {
        // Each list walks its own index from the cursor (within a school, that school's
        // index) and stops at the page size.
        let (filter, order) = match status {
            None => ("status <> 'unseen' AND device_id > ?2", "device_id"),
            Some(Status::Healthy) => ("status = 'healthy' AND device_id > ?2", "device_id"),
            Some(Status::Failing) => (
                "status = 'failing' AND (streak_count < ?1 OR (streak_count = ?1 AND device_id > ?2))",
                "streak_count DESC, device_id",
            ),
            Some(Status::Silent) => (
                "status = 'silent' AND (last_seen_at > ?1 OR (last_seen_at = ?1 AND device_id > ?2))",
                "last_seen_at, device_id",
            ),
        };
        let (number, device) = match after {
            None if status == Some(Status::Failing) => (i64::MAX, String::new()),
            None => (i64::MIN, String::new()),
            Some(DeviceKey::Id(d)) => (i64::MIN, d.to_string()),
            Some(DeviceKey::Streak {
                consecutive_failures,
                device_id,
            }) => (i64::from(*consecutive_failures), device_id.to_string()),
            Some(DeviceKey::Silence {
                last_seen_at,
                device_id,
            }) => (last_seen_at.millis(), device_id.to_string()),
        };
        let sql = format!(
            "SELECT device_id, state FROM devices WHERE {filter}{} ORDER BY {order} LIMIT ?3",
            in_schools(within)
        );
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![number, device, limit as i64 + 1], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(DevicePage::from_overfetch(states(rows)?, limit))
    }
}

#[async_trait]
impl ListFailing for SqliteStore {
    async fn repeated_failures(
        &self,
        limit: usize,
        after: Option<&FailingKey>,
        within: &Within,
    ) -> Result<FailingPage, StoreError> {
        let sql = format!(
            "SELECT device_id, streak_count, streak_started_at, last_failure_at, last_sync_at
             FROM devices
             WHERE failing = 1 AND streak_count <= ?1
               AND NOT (streak_count = ?1 AND device_id <= ?2){}
             ORDER BY streak_count DESC, device_id LIMIT ?3",
            in_schools(within)
        );
        let (after_count, after_device) = match after {
            Some(k) => (i64::from(k.consecutive_failures), k.device_id.as_str().to_owned()),
            None => (i64::MAX, String::new()),
        };
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![after_count, after_device, limit as i64 + 1], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, u32>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                        row.get::<_, Option<i64>>(4)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let devices = rows
            .into_iter()
            .map(|(device, count, started, last_failure, last_sync)| {
                let time = |t: Option<i64>| t.and_then(EventTime::from_millis);
                let parsed = (|| {
                    Some(FailingDevice {
                        device_id: DeviceId::parse(&device)?,
                        consecutive_failures: count,
                        streak_started_at: time(started)?,
                        last_failure_at: time(last_failure)?,
                        last_sync_at: time(last_sync)?,
                    })
                })();
                parsed.ok_or_else(|| corrupt(format!("state row of {device}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FailingPage::from_overfetch(devices, limit))
    }
}

/// The periodic check's candidates come straight from two partial indexes: devices
/// with a run count in progress, and devices not silent whose check time has come.
#[async_trait]
impl SilenceWatch for SqliteStore {
    async fn due(&self, now: EventTime, limit: usize) -> Result<DueChecks, StoreError> {
        let rows = self
            .read(move |conn| {
                let mut rows: Vec<String> = conn
                    .prepare_cached(
                        "SELECT device_id FROM devices INDEXED BY devices_counting
                         WHERE json_extract(state, '$.counting') IS NOT NULL LIMIT ?1",
                    )?
                    .query_map([limit as i64], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut stmt = conn.prepare_cached(
                    "SELECT device_id FROM devices INDEXED BY devices_watch_at
                     WHERE status <> 'silent' AND watch_at IS NOT NULL AND watch_at <= ?1
                     ORDER BY watch_at LIMIT ?2",
                )?;
                let quiet =
                    stmt.query_map(params![now.millis(), limit as i64], |row| row.get::<_, String>(0))?;
                let counting: std::collections::HashSet<String> = rows.iter().cloned().collect();
                for device in quiet {
                    let device = device?;
                    if rows.len() >= limit {
                        break;
                    }
                    if !counting.contains(&device) {
                        rows.push(device);
                    }
                }
                Ok(rows)
            })
            .await?;
        let devices = rows
            .iter()
            .map(|d| DeviceId::parse(d).ok_or_else(|| corrupt(format!("device id {d}"))))
            .collect::<Result<_, _>>()?;
        Ok(DueChecks { devices, mark: None })
    }

    /// A rare write (once per silent period of a device), outside the group commit.
    async fn recheck(&self, device: &DeviceId, at: EventTime) -> Result<(), StoreError> {
        let device = device.to_string();
        self.read(move |conn| {
            conn.prepare_cached("UPDATE devices SET watch_at = ?2 WHERE device_id = ?1")?
                .execute(params![device, at.millis()])
                .map(|_| ())
        })
        .await
    }

    async fn checked(&self, _: i64) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached("SELECT id, notice FROM outbox ORDER BY id LIMIT ?1")?;
                let rows = stmt.query_map([limit as i64], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter()
            .map(|(id, json)| {
                Ok(OutboxEntry {
                    key: id.to_string(),
                    notice: serde_json::from_str(&json)
                        .map_err(|e| corrupt(format!("outbox entry {id}: {e}")))?,
                })
            })
            .collect()
    }

    async fn delivered(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let id: i64 = entry
            .key
            .parse()
            .map_err(|_| corrupt(format!("outbox key {}", entry.key)))?;
        self.write(|reply| WriteOp::Delivered(id, reply)).await
    }
}

#[async_trait]
impl RecordDays for SqliteStore {
    async fn add_days(&self, addition: &DayAddition, _now: EventTime) -> Result<(), StoreError> {
        if addition.days.is_empty() {
            return Ok(());
        }
        let addition = addition.clone();
        self.write(|reply| WriteOp::AddDays(addition, reply)).await
    }
}

/// ` AND school_id IN ('a', 'b')` for a read within schools (ids are of the school id
/// rule's characters, so they are quoted safely), else nothing.
pub(super) fn in_schools(within: &Within) -> String {
    match within {
        Within::Fleet => String::new(),
        Within::Schools(ids) => {
            let quoted: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
            format!(" AND school_id IN ({})", quoted.join(", "))
        }
    }
}

#[async_trait]
impl ReadFleet for SqliteStore {
    async fn counts(&self, within: &Within) -> Result<FleetCounts, StoreError> {
        let sql = format!(
            "SELECT status, COUNT(*) FROM devices WHERE status <> 'unseen'{} GROUP BY status",
            in_schools(within)
        );
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let of = |status: Status| {
            rows.iter()
                .find(|(s, _)| s == status.as_str())
                .map_or(0, |(_, n)| *n)
        };
        let total = rows.iter().map(|(_, n)| n).sum();
        Ok(FleetCounts::from_totals(
            total,
            of(Status::Failing),
            of(Status::Silent),
        ))
    }

    async fn days(
        &self,
        first: Day,
        last: Day,
        within: &Within,
    ) -> Result<BTreeMap<Day, DayTotals>, StoreError> {
        let scopes: Vec<String> = match within {
            Within::Fleet => vec![CountScope::Fleet.key()],
            Within::Schools(ids) => ids
                .iter()
                .map(|id| CountScope::School(id.clone()).key())
                .collect(),
        };
        let quoted: Vec<String> = scopes.iter().map(|s| format!("'{s}'")).collect();
        let sql = format!(
            "SELECT t.day, t.syncs, t.failures, t.files_synced, t.speed_sum, t.speeds, d.devices
             FROM scope_days t LEFT JOIN scope_day_devices d ON d.scope = t.scope AND d.day = t.day
             WHERE t.scope IN ({}) AND t.day BETWEEN ?1 AND ?2",
            quoted.join(", ")
        );
        type Row = (i64, i64, i64, i64, f64, Option<Vec<u8>>, Option<Vec<u8>>);
        let rows: Vec<Row> = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map([first.number(), last.number()], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                    ))
                })?;
                rows.collect()
            })
            .await?;
        // Several schools' rows of one day add up (their sketches merge).
        let mut days: BTreeMap<Day, DayTotals> = BTreeMap::new();
        for (day, syncs, failures, files_synced, speed_sum, speeds, devices) in rows {
            let sketch = |e| corrupt(format!("day {day}: {e}"));
            days.entry(Day::from_number(day)).or_default().add(&DayTotals {
                syncs: syncs.max(0) as u64,
                failures: failures.max(0) as u64,
                files_synced: files_synced.max(0) as u64,
                speed_sum,
                speeds: SpeedSketch::from_bytes(&speeds.unwrap_or_default()).map_err(sketch)?,
                devices: DeviceSketch::from_bytes(&devices.unwrap_or_default()).map_err(sketch)?,
            });
        }
        Ok(days)
    }
}
