//! The embedded store's schema, and the upgrade of a data directory an earlier
//! version wrote.

use crate::domain::device::DeviceState;
use crate::domain::event::StoredEvent;
use crate::domain::fleet::{day_totals, CountScope, Day, DayAddition, DayTotals};
use crate::domain::sketch::{DeviceSketch, SketchBytesError, SpeedSketch};
use crate::domain::streak::StreakRule;
use crate::domain::time::EventTime;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;

pub(super) const SCHEMA: &str = "
-- The audit trail: each admin action by its key (time order, newest last), and the
-- schools it concerns (a school admin reads only those rows).
CREATE TABLE IF NOT EXISTS audit (
    key   TEXT PRIMARY KEY,
    entry TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_schools (
    school_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    PRIMARY KEY (school_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT, -- commit order: the change feed
    device_id          TEXT    NOT NULL,
    ts                 INTEGER NOT NULL,                  -- device time, ms since epoch, UTC
    total_files_synced INTEGER NOT NULL,
    total_errors       INTEGER NOT NULL,
    internet_speed     REAL    NOT NULL,
    received_at        INTEGER NOT NULL,
    UNIQUE (device_id, ts)
);
-- Counting a run's failures reads only this index (a late success inside a run).
CREATE INDEX IF NOT EXISTS events_failures ON events (device_id, ts) WHERE total_errors > 0;
-- How far the change feed got (like an event source mapping's checkpoint).
CREATE TABLE IF NOT EXISTS feed_position (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
) WITHOUT ROWID;
-- One row per device that ever reported: its state (JSON) and the columns the lists
-- sort and filter on, so listing never parses states it does not return.
CREATE TABLE IF NOT EXISTS devices (
    device_id         TEXT PRIMARY KEY,
    version           INTEGER NOT NULL,                    -- optimistic concurrency, +1 per save
    status            TEXT    NOT NULL,                    -- healthy | failing | silent
    failing           INTEGER NOT NULL,                    -- 1: in the repeated-failures list
    streak_count      INTEGER NOT NULL,
    streak_started_at INTEGER,                             -- ms since epoch
    last_failure_at   INTEGER,
    last_sync_at      INTEGER,
    last_seen_at      INTEGER,
    state             TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS devices_failing ON devices (streak_count DESC, device_id) WHERE failing = 1;
CREATE INDEX IF NOT EXISTS devices_by_status ON devices (status, device_id);
CREATE INDEX IF NOT EXISTS devices_status_failing ON devices (streak_count DESC, device_id) WHERE status = 'failing';
CREATE INDEX IF NOT EXISTS devices_silent ON devices (last_seen_at, device_id) WHERE status = 'silent';
-- Devices with a run count in progress, which the periodic check goes on with.
CREATE INDEX IF NOT EXISTS devices_counting ON devices (device_id)
    WHERE json_extract(state, '$.counting') IS NOT NULL;
-- Notices waiting to be published, in the order they were decided.
CREATE TABLE IF NOT EXISTS outbox (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    notice TEXT NOT NULL                                   -- the notice's JSON body
);
-- Every notice decided, published or not, by its history key (decision time first);
-- kept as long as the data directory. Each read is one index range, newest first.
CREATE TABLE IF NOT EXISTS notices (
    key       TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,                               -- '' for a school's digest
    school_id TEXT,                                        -- the notice's school_id
    type      TEXT NOT NULL,
    record    TEXT NOT NULL                                -- the history entry's JSON
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notices_device ON notices (device_id, key);
CREATE INDEX IF NOT EXISTS notices_type ON notices (type, key);
CREATE INDEX IF NOT EXISTS notices_school ON notices (school_id, key) WHERE school_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS notices_school_type ON notices (school_id, type, key)
    WHERE school_id IS NOT NULL;
-- Each school's last daily digest (its local date, YYYY-MM-DD), written with the
-- digest's history and outbox rows.
CREATE TABLE IF NOT EXISTS digests (
    school_id TEXT PRIMARY KEY,
    date      TEXT NOT NULL
) WITHOUT ROWID;
-- Per UTC day of the device timestamps: the fleet summary's figures.
CREATE TABLE IF NOT EXISTS days (
    day          INTEGER PRIMARY KEY,                      -- days since 1970-01-01
    syncs        INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    files_synced INTEGER NOT NULL,
    speed_sum    REAL    NOT NULL
);
-- Day additions already made (their keys), so a retried addition counts once.
CREATE TABLE IF NOT EXISTS day_additions (
    key      TEXT PRIMARY KEY,
    added_at INTEGER NOT NULL                               -- ms since epoch
) WITHOUT ROWID;
-- Every addition drops the keys older than a day: a range, not a scan of the table.
CREATE INDEX IF NOT EXISTS day_additions_added_at ON day_additions (added_at);
-- Each device's current credential, as the SHA-256 of its token (never the token).
CREATE TABLE IF NOT EXISTS device_credentials (
    device_id    TEXT PRIMARY KEY,
    token_sha256 BLOB    NOT NULL,
    issued_at    INTEGER NOT NULL                           -- ms since epoch
) WITHOUT ROWID;
-- Bumped by every change to device_credentials, from any process: the runner's
-- in-memory view of them starts over when it moves.
CREATE TABLE IF NOT EXISTS credentials_version (
    only    INTEGER PRIMARY KEY CHECK (only = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO credentials_version (only, version) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS credentials_inserted AFTER INSERT ON device_credentials
BEGIN UPDATE credentials_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS credentials_updated AFTER UPDATE ON device_credentials
BEGIN UPDATE credentials_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS credentials_deleted AFTER DELETE ON device_credentials
BEGIN UPDATE credentials_version SET version = version + 1; END;
";

/// Schools, and what keys by them: created after [`migrate`] has given `devices` its
/// `school_id` column.
pub(super) const SCHOOLS_SCHEMA: &str = "
-- Each school's settings (JSON), by id.
CREATE TABLE IF NOT EXISTS schools (
    school_id TEXT PRIMARY KEY,
    school    TEXT NOT NULL
) WITHOUT ROWID;
-- A school's devices: all (reported or not) by status, then id; each list walks its
-- school's stretch of an index, never the fleet.
CREATE INDEX IF NOT EXISTS devices_school ON devices (school_id, status, device_id)
    WHERE school_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS devices_school_failing ON devices (school_id, streak_count DESC, device_id)
    WHERE failing = 1 AND school_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS devices_school_silent ON devices (school_id, last_seen_at, device_id)
    WHERE status = 'silent' AND school_id IS NOT NULL;
-- Per scope (the fleet, or a school) and UTC day of the device timestamps.
CREATE TABLE IF NOT EXISTS scope_days (
    scope        TEXT    NOT NULL,                         -- FLEET, or SCHOOL#<id>
    day          INTEGER NOT NULL,                         -- days since 1970-01-01
    syncs        INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    files_synced INTEGER NOT NULL,
    speed_sum    REAL    NOT NULL,
    PRIMARY KEY (scope, day)
) WITHOUT ROWID;
";

/// Day summaries: each scope's day keeps a sketch of its speeds (rewritten with every
/// addition: a few hundred bytes), and in a table of its own a sketch of the devices
/// that reported (up to 16 KB, rewritten only when a device adds to it). A data
/// directory from before them has no sketches for its earlier days: their percentiles
/// and device counts read as empty.
pub(super) fn migrate_analytics(conn: &mut Connection) -> rusqlite::Result<()> {
    let has_speeds = conn
        .prepare("SELECT 1 FROM pragma_table_info('scope_days') WHERE name = 'speeds'")?
        .exists([])?;
    if !has_speeds {
        conn.execute_batch("ALTER TABLE scope_days ADD COLUMN speeds BLOB;")?;
    }
    // The export's `school_id`: the device's school when the event was stored.
    let has_school = conn
        .prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'school_id'")?
        .exists([])?;
    if !has_school {
        conn.execute_batch("ALTER TABLE events ADD COLUMN school_id TEXT;")?;
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS scope_day_devices (
             scope   TEXT    NOT NULL,
             day     INTEGER NOT NULL,
             devices BLOB    NOT NULL,
             UNIQUE (scope, day)
         );",
    )
}

/// Each device's next silence check: when it could next become silent, on its own
/// clock (its school's open time, else wall-clock), set by detection when it first
/// reports or comes back and by each check that finds it still quiet. The check reads
/// the devices due, never the fleet. A data directory from before it had the check read
/// devices by last report: each such device is checked at its next run (once), which
/// sets its time.
pub(super) fn migrate_watch(conn: &mut Connection) -> rusqlite::Result<()> {
    let has_watch = conn
        .prepare("SELECT 1 FROM pragma_table_info('devices') WHERE name = 'watch_at'")?
        .exists([])?;
    let tx = conn.transaction()?;
    if !has_watch {
        tx.execute_batch(
            "ALTER TABLE devices ADD COLUMN watch_at INTEGER; -- ms since epoch
             UPDATE devices SET watch_at = last_seen_at
                 WHERE status <> 'silent' AND last_seen_at IS NOT NULL;
             DROP INDEX IF EXISTS devices_watch;",
        )?;
    }
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS devices_watch_at ON devices (watch_at)
             WHERE status <> 'silent' AND watch_at IS NOT NULL;",
    )?;
    tx.commit()
}

/// Brings a data directory from before schools up to date: `devices` gains its
/// `school_id` column, and the fleet's day totals move to `scope_days`.
pub(super) fn migrate_schools(conn: &mut Connection) -> rusqlite::Result<()> {
    let has_school = conn
        .prepare("SELECT 1 FROM pragma_table_info('devices') WHERE name = 'school_id'")?
        .exists([])?;
    if !has_school {
        conn.execute_batch("ALTER TABLE devices ADD COLUMN school_id TEXT;")?;
    }
    conn.execute_batch(SCHOOLS_SCHEMA)?;
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT OR IGNORE INTO scope_days (scope, day, syncs, failures, files_synced, speed_sum)
         SELECT 'FLEET', day, syncs, failures, files_synced, speed_sum FROM days",
        [],
    )?;
    tx.execute("DELETE FROM days", [])?;
    tx.commit()
}

/// A data directory from before device status existed keeps its states in
/// `device_state`. They are rebuilt from the stored events (in device-timestamp order,
/// so with no notices, since those were already sent) with the default threshold —
/// each device's next save applies the configured one — and the change feed resumes
/// after the last stored event, which the rebuild has applied.
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let old = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'device_state'")?
        .exists([])?;
    if !old {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let rule = StreakRule::default();
    let mut states: BTreeMap<String, DeviceState> = BTreeMap::new();
    let mut events: Vec<StoredEvent> = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT device_id, ts, total_files_synced, total_errors, internet_speed, received_at
             FROM events ORDER BY device_id, ts",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            // A row that no longer parses is left out of the rebuild, not fatal.
            let Ok(e) = super::row_event(row, 0)? else {
                continue;
            };
            let state = states
                .entry(e.device_id.to_string())
                .or_insert_with(|| DeviceState::new(e.device_id.clone()));
            let mut decided = Vec::new();
            // In timestamp order every event is the device's newest: no count needed.
            let _ = state.apply(&e, rule, EventTime::now(), &mut decided);
            events.push(e);
        }
    }
    for state in states.values() {
        let streak = state.streak.as_ref();
        let json =
            serde_json::to_string(state).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        tx.execute(
            "INSERT INTO devices (device_id, version, status, failing, streak_count, streak_started_at,
                 last_failure_at, last_sync_at, last_seen_at, state)
             VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (device_id) DO NOTHING",
            params![
                state.device_id.as_str(),
                state.status(rule).as_str(),
                state.is_failing(rule),
                state.consecutive_failures(),
                streak.map(|s| s.started_at.millis()),
                streak.map(|s| s.last_failure_at.millis()),
                state.last_sync_at.map(EventTime::millis),
                state.last_seen_at.map(EventTime::millis),
                json,
            ],
        )?;
    }
    let days: BTreeMap<Day, DayTotals> = day_totals(&events);
    for (day, totals) in &days {
        add_day(&tx, &CountScope::Fleet, *day, totals)?;
    }
    tx.execute(
        "INSERT INTO feed_position (name, seq) VALUES ('detect', (SELECT COALESCE(MAX(seq), 0) FROM events))
         ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
        [],
    )?;
    tx.execute_batch("DROP TABLE device_state;")?;
    tx.commit()
}

/// Adds an addition's days unless its key was added before (kept a day; a retry comes
/// within seconds).
pub(super) fn add_days(conn: &Connection, addition: &DayAddition) -> rusqlite::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    conn.prepare_cached("DELETE FROM day_additions WHERE added_at < ?1")?
        .execute([now - 86_400_000])?;
    let fresh = conn
        .prepare_cached("INSERT OR IGNORE INTO day_additions (key, added_at) VALUES (?1, ?2)")?
        .execute(params![addition.key, now])?;
    if fresh == 0 {
        return Ok(());
    }
    add_day_totals(conn, addition)
}

/// Adds an addition's days (inside a state save's transaction, which makes it once).
pub(super) fn add_day_totals(conn: &Connection, addition: &DayAddition) -> rusqlite::Result<()> {
    addition
        .days
        .iter()
        .try_for_each(|((scope, day), totals)| add_day(conn, scope, *day, totals))
}

/// Adds `totals` to the row of `scope`'s `day`, merging its sketches into the stored
/// ones (the writer thread does this, so nothing can change them in between).
fn add_day(conn: &Connection, scope: &CountScope, day: Day, totals: &DayTotals) -> rusqlite::Result<()> {
    let key = scope.key();
    let stored: Option<Option<Vec<u8>>> = conn
        .prepare_cached("SELECT speeds FROM scope_days WHERE scope = ?1 AND day = ?2")?
        .query_row(params![key, day.number()], |row| row.get(0))
        .optional()?;
    let mut speeds = SpeedSketch::from_bytes(&stored.flatten().unwrap_or_default()).map_err(sketch_error)?;
    speeds.merge(&totals.speeds);
    conn.prepare_cached(
        "INSERT INTO scope_days (scope, day, syncs, failures, files_synced, speed_sum, speeds)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (scope, day) DO UPDATE SET syncs = syncs + excluded.syncs,
             failures = failures + excluded.failures,
             files_synced = files_synced + excluded.files_synced,
             speed_sum = speed_sum + excluded.speed_sum,
             speeds = excluded.speeds",
    )?
    .execute(params![
        key,
        day.number(),
        totals.syncs as i64,
        totals.failures as i64,
        totals.files_synced as i64,
        totals.speed_sum,
        speeds.to_bytes(),
    ])?;
    let stored: Option<Vec<u8>> = conn
        .prepare_cached("SELECT devices FROM scope_day_devices WHERE scope = ?1 AND day = ?2")?
        .query_row(params![key, day.number()], |row| row.get(0))
        .optional()?;
    let before = DeviceSketch::from_bytes(stored.as_deref().unwrap_or_default()).map_err(sketch_error)?;
    let mut devices = before.clone();
    devices.merge(&totals.devices);
    if devices != before {
        conn.prepare_cached(
            "INSERT INTO scope_day_devices (scope, day, devices) VALUES (?1, ?2, ?3)
             ON CONFLICT (scope, day) DO UPDATE SET devices = excluded.devices",
        )?
        .execute(params![key, day.number(), devices.to_bytes()])?;
    }
    Ok(())
}

fn sketch_error(e: SketchBytesError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
}
