//! Embedded, durable storage on SQLite (WAL, `synchronous=FULL`).
//!
//! One writer thread owns the write connection and commits whatever requests are
//! waiting as one transaction (group commit): every acknowledged write is on disk, and
//! the fsync cost is shared by concurrent writers. Reads use a small pool of
//! connections, which WAL lets run beside the writer.

use crate::domain::event::{DeviceId, Outcome, StoredEvent};
use crate::domain::streak::{FailureState, Recount, StreakRule};
use crate::domain::time::EventTime;
use crate::ports::{
    CheckCredentials, DeviceCredential, DeviceStates, FailingDevice, FailingKey, FailingPage, Freshness,
    HistoryPage, HistoryQuery, ListFailing, ManageCredentials, Order, ReadHistory, RecordEvents, Recorded,
    Saved, StoreError, Versioned,
};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, Notify};

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 512;
/// Read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 64;

const SCHEMA: &str = "
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
-- How far the change feed got (like an event source mapping's checkpoint).
CREATE TABLE IF NOT EXISTS feed_position (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device_state (
    device_id         TEXT PRIMARY KEY,
    version           INTEGER NOT NULL,                    -- optimistic concurrency, +1 per save
    failing           INTEGER NOT NULL,                    -- 1: in the repeated-failures list
    streak_count      INTEGER NOT NULL,
    -- The list's columns, so listing never parses the state (ms since epoch).
    streak_started_at INTEGER,
    last_failure_at   INTEGER,
    last_sync_at      INTEGER,
    state             TEXT    NOT NULL                     -- FailureState as JSON
) WITHOUT ROWID;
-- Each device's current credential, as the SHA-256 of its token (never the token).
CREATE TABLE IF NOT EXISTS device_credentials (
    device_id    TEXT PRIMARY KEY,
    token_sha256 BLOB    NOT NULL,
    issued_at    INTEGER NOT NULL                           -- ms since epoch
) WITHOUT ROWID;
";

/// Databases written before states were versioned gain the two columns; their
/// `failing` flag is set with the default threshold, and each device's next save
/// sets it with the configured one.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let versioned = conn
        .prepare("SELECT 1 FROM pragma_table_info('device_state') WHERE name = 'version'")?
        .exists([])?;
    if !versioned {
        conn.execute_batch(&format!(
            "ALTER TABLE device_state ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
             ALTER TABLE device_state ADD COLUMN failing INTEGER NOT NULL DEFAULT 0;
             UPDATE device_state SET failing = (streak_count >= {});
             DROP INDEX IF EXISTS device_state_by_streak;",
            StreakRule::default().threshold
        ))?;
    }
    // Listing walks this index from the longest streak down and stops at the page
    // size: it reads only failing devices, never the event log.
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS device_state_failing
         ON device_state (streak_count DESC, device_id) WHERE failing = 1;",
    )
}

enum WriteOp {
    Record(StoredEvent, oneshot::Sender<Result<Recorded, StoreError>>),
    SaveState(StateWrite, oneshot::Sender<Result<Saved, StoreError>>),
    FeedPosition(i64, oneshot::Sender<Result<(), StoreError>>),
}

/// A conditional state save (see [`DeviceStates::save`]).
struct StateWrite {
    state: FailureState,
    expected: u64,
    failing: bool,
}

/// The embedded store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writes: mpsc::Sender<WriteOp>,
    readers: Mutex<Vec<Connection>>,
    /// Signalled after a commit that stored new events.
    changed: Arc<Notify>,
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::unavailable("SQLite", e)
}

fn writer_stopped() -> StoreError {
    StoreError::unavailable_because("the SQLite writer stopped")
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_connection(path).map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        migrate(&conn).map_err(unavailable)?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let changed = Arc::new(Notify::new());
        let writer_changed = changed.clone();
        std::thread::Builder::new()
            .name("pisync-sqlite-writer".into())
            .spawn(move || run_writer(conn, rx, writer_changed))
            .map_err(|e| StoreError::unavailable("starting the SQLite writer", e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writes: tx,
                readers: Mutex::new(Vec::new()),
                changed,
            }),
        })
    }

    /// Signalled whenever new events were committed (the local change feed).
    pub fn changed(&self) -> Arc<Notify> {
        self.inner.changed.clone()
    }

    /// Stored events after `seq`, in commit order, with their sequence numbers.
    pub async fn changes_after(&self, seq: i64, limit: usize) -> Result<Vec<(i64, StoredEvent)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, device_id, ts, total_files_synced, total_errors, internet_speed, received_at
                 FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![seq, limit as i64], |row| {
                let seq: i64 = row.get(0)?;
                Ok(row_event(row, 1)?.map(|e| (seq, e)))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .collect()
    }

    /// Where the change feed stopped: the last sequence number it fully processed.
    pub async fn feed_position(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT COALESCE((SELECT seq FROM feed_position WHERE name = 'detect'), 0)",
                [],
                |row| row.get(0),
            )
        })
        .await
    }

    /// Records that the change feed processed everything up to `seq`.
    pub async fn save_feed_position(&self, seq: i64) -> Result<(), StoreError> {
        self.write(|reply| WriteOp::FeedPosition(seq, reply)).await
    }

    async fn write<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> WriteOp,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writes
            .send(op(tx))
            .await
            .map_err(|_| writer_stopped())?;
        rx.await.map_err(|_| writer_stopped())?
    }

    /// A write outside the writer thread, on a pooled connection: for rare writes
    /// (credentials) that need no group commit; WAL and the busy timeout serialise
    /// them with the writer, and other processes (the `token` command) do the same.
    async fn rare_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.read(f).await
    }

    /// A point read by primary key, run on the calling thread: it takes microseconds
    /// (WAL readers never wait for the writer), less than handing it to the blocking
    /// pool and back, and it runs on every device request (the credential check).
    fn point_read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let pooled = self.inner.readers.lock().ok().and_then(|mut pool| pool.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.inner.path).map_err(unavailable)?,
        };
        let result = f(&conn).map_err(unavailable);
        if let Ok(mut pool) = self.inner.readers.lock() {
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
        result
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut pool| pool.pop());
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&inner.path).map_err(unavailable)?,
            };
            let result = f(&conn).map_err(unavailable);
            if let Ok(mut pool) = inner.readers.lock() {
                if pool.len() < MAX_IDLE_READERS {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::unavailable("SQLite reader task", e))?
    }
}

fn row_event(row: &rusqlite::Row, first: usize) -> rusqlite::Result<Result<StoredEvent, StoreError>> {
    let device: String = row.get(first)?;
    let ts: i64 = row.get(first + 1)?;
    let files: i64 = row.get(first + 2)?;
    let errors: i64 = row.get(first + 3)?;
    let speed: f64 = row.get(first + 4)?;
    let received: i64 = row.get(first + 5)?;
    let corrupt = || StoreError::Corrupt(format!("event row {device}/{ts}"));
    let event = (|| {
        let total_errors = u32::try_from(errors).ok()?;
        Some(StoredEvent {
            device_id: DeviceId::parse(&device)?,
            timestamp: EventTime::from_millis(ts)?,
            total_files_synced: u32::try_from(files).ok()?,
            total_errors,
            internet_speed: speed,
            outcome: Outcome::of(total_errors),
            received_at: EventTime::from_millis(received)?,
        })
    })();
    Ok(event.ok_or_else(corrupt))
}

// ---- the writer thread ----

fn run_writer(mut conn: Connection, mut rx: mpsc::Receiver<WriteOp>, changed: Arc<Notify>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let created = commit_batch(&mut conn, &mut batch);
        if created {
            changed.notify_waiters();
            changed.notify_one();
        }
    }
}

/// Runs every op in one transaction, each inside its own savepoint so one failing op
/// leaves the others intact; replies only after the commit. Returns whether any
/// event was created.
fn commit_batch(conn: &mut Connection, batch: &mut Vec<WriteOp>) -> bool {
    enum Reply {
        Record(
            oneshot::Sender<Result<Recorded, StoreError>>,
            Result<Recorded, StoreError>,
        ),
        SaveState(
            oneshot::Sender<Result<Saved, StoreError>>,
            Result<Saved, StoreError>,
        ),
        Position(oneshot::Sender<Result<(), StoreError>>, Result<(), StoreError>),
    }
    let mut replies = Vec::with_capacity(batch.len());
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for op in batch.drain(..) {
            let mut sp = tx.savepoint_with_name("op")?;
            let reply = match op {
                WriteOp::Record(event, reply) => Reply::Record(reply, record(&sp, event)),
                WriteOp::SaveState(write, reply) => Reply::SaveState(reply, save_state(&sp, &write)),
                WriteOp::FeedPosition(seq, reply) => Reply::Position(reply, save_position(&sp, seq)),
            };
            let failed = matches!(
                &reply,
                Reply::Record(_, Err(_)) | Reply::SaveState(_, Err(_)) | Reply::Position(_, Err(_))
            );
            if failed {
                sp.rollback()?;
            }
            sp.commit()?;
            replies.push(reply);
        }
        tx.commit()
    })();
    let mut created = false;
    let commit_error = outcome.err().map(|e| e.to_string());
    // Nothing is acknowledged unless the whole transaction committed.
    fn settle<T>(result: Result<T, StoreError>, commit_error: &Option<String>) -> Result<T, StoreError> {
        match commit_error {
            Some(e) => Err(StoreError::unavailable_because(format!("commit failed: {e}"))),
            None => result,
        }
    }
    for reply in replies {
        match reply {
            Reply::Record(tx, result) => {
                let result = settle(result, &commit_error);
                created |= matches!(result, Ok(Recorded::Created(_)));
                let _ = tx.send(result);
            }
            Reply::SaveState(tx, result) => {
                let _ = tx.send(settle(result, &commit_error));
            }
            Reply::Position(tx, result) => {
                let _ = tx.send(settle(result, &commit_error));
            }
        }
    }
    // Ops never reached because the transaction failed to start are dropped here:
    // their callers see "writer stopped" and may retry.
    batch.clear();
    created
}

fn record(conn: &Connection, event: StoredEvent) -> Result<Recorded, StoreError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events (device_id, ts, total_files_synced, total_errors, internet_speed, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (device_id, ts) DO NOTHING",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                event.device_id.as_str(),
                event.timestamp.millis(),
                event.total_files_synced,
                event.total_errors,
                event.internet_speed,
                event.received_at.millis(),
            ])
        })
        .map_err(unavailable)?;
    if inserted == 1 {
        return Ok(Recorded::Created(event));
    }
    let stored = stored_event(conn, &event.device_id, event.timestamp)?
        .ok_or_else(|| StoreError::Corrupt("conflicting event vanished".into()))?;
    Ok(if stored.same_report(&event) {
        Recorded::Replayed(stored)
    } else {
        Recorded::Conflict(stored)
    })
}

fn stored_event(
    conn: &Connection,
    device: &DeviceId,
    ts: EventTime,
) -> Result<Option<StoredEvent>, StoreError> {
    conn.prepare_cached(
        "SELECT device_id, ts, total_files_synced, total_errors, internet_speed, received_at
         FROM events WHERE device_id = ?1 AND ts = ?2",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![device.as_str(), ts.millis()], |row| row_event(row, 0))
            .optional()
    })
    .map_err(unavailable)?
    .transpose()
}

fn load_state(conn: &Connection, device: &DeviceId) -> Result<Option<Versioned>, StoreError> {
    let row: Option<(i64, String)> = conn
        .prepare_cached("SELECT version, state FROM device_state WHERE device_id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([device.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(unavailable)?;
    row.map(|(version, json)| {
        let corrupt = |e: String| StoreError::Corrupt(format!("state of {device}: {e}"));
        Ok(Versioned {
            state: serde_json::from_str(&json).map_err(|e| corrupt(e.to_string()))?,
            version: u64::try_from(version).map_err(|e| corrupt(e.to_string()))?,
        })
    })
    .transpose()
}

/// Inserts the first version, or updates the row still at the expected version.
fn save_state(conn: &Connection, write: &StateWrite) -> Result<Saved, StoreError> {
    let state = &write.state;
    let json = serde_json::to_string(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let streak = state.streak.as_ref();
    let sql = if write.expected == 0 {
        "INSERT INTO device_state (device_id, version, failing, streak_count, streak_started_at,
             last_failure_at, last_sync_at, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (device_id) DO NOTHING"
    } else {
        "UPDATE device_state SET version = ?2, failing = ?3, streak_count = ?4,
             streak_started_at = ?5, last_failure_at = ?6, last_sync_at = ?7, state = ?8
         WHERE device_id = ?1 AND version = ?9"
    };
    let expected = i64::try_from(write.expected).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let row: [&dyn rusqlite::ToSql; 8] = [
        &state.device_id.as_str(),
        &(expected + 1),
        &write.failing,
        &state.consecutive_failures(),
        &streak.map(|s| s.started_at.millis()),
        &streak.map(|s| s.last_failure_at.millis()),
        &state.last_sync_at.map(EventTime::millis),
        &json,
    ];
    let written = if write.expected == 0 {
        stmt.execute(&row[..])
    } else {
        // The UPDATE's ?9: the version the row must still have.
        let mut conditional = row.to_vec();
        conditional.push(&expected);
        stmt.execute(conditional.as_slice())
    }
    .map_err(unavailable)?;
    Ok(if written == 1 {
        Saved::Written
    } else {
        Saved::Stale
    })
}

/// The device's current run, read newest first from the stored events after `after`.
fn recount(conn: &Connection, device: &DeviceId, after: Option<EventTime>) -> Result<Recount, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT ts, total_errors FROM events WHERE device_id = ?1 AND ts > ?2 ORDER BY ts DESC",
        )
        .map_err(unavailable)?;
    let mut rows = stmt
        .query(params![
            device.as_str(),
            after.map_or(i64::MIN, EventTime::millis)
        ])
        .map_err(unavailable)?;
    let mut recount = Recount::default();
    while let Some(row) = rows.next().map_err(unavailable)? {
        let ts: i64 = row.get(0).map_err(unavailable)?;
        let errors: u32 = row.get(1).map_err(unavailable)?;
        let ts = EventTime::from_millis(ts)
            .ok_or_else(|| StoreError::Corrupt(format!("timestamp of {device}")))?;
        if !recount.push(ts, Outcome::of(errors), errors) {
            break;
        }
    }
    Ok(recount)
}

fn save_position(conn: &Connection, seq: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO feed_position (name, seq) VALUES ('detect', ?1)
         ON CONFLICT (name) DO UPDATE SET seq = MAX(seq, excluded.seq)",
    )
    .and_then(|mut stmt| stmt.execute([seq]))
    .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl RecordEvents for SqliteStore {
    async fn record(&self, event: StoredEvent) -> Result<Recorded, StoreError> {
        self.write(|reply| WriteOp::Record(event, reply)).await
    }

    /// Every event is queued to the writer before any reply is awaited, so a batch
    /// lands in one group commit (each event in its own savepoint).
    async fn record_many(&self, events: Vec<StoredEvent>) -> Vec<Result<Recorded, StoreError>> {
        let mut replies = Vec::with_capacity(events.len());
        for event in events {
            let (tx, rx) = oneshot::channel();
            let queued = self.inner.writes.send(WriteOp::Record(event, tx)).await.is_ok();
            replies.push(queued.then_some(rx));
        }
        let mut outcomes = Vec::with_capacity(replies.len());
        for reply in replies {
            outcomes.push(match reply {
                Some(rx) => rx.await.unwrap_or_else(|_| Err(writer_stopped())),
                None => Err(writer_stopped()),
            });
        }
        outcomes
    }
}

#[async_trait]
impl ReadHistory for SqliteStore {
    async fn history(&self, device: &DeviceId, query: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        let device = device.clone();
        let query = query.clone();
        self.read(move |conn| {
            let (after_op, order) = match query.order {
                Order::Desc => ("<", "DESC"),
                Order::Asc => (">", "ASC"),
            };
            let after_default = match query.order {
                Order::Desc => i64::MAX,
                Order::Asc => i64::MIN,
            };
            let sql = format!(
                "SELECT device_id, ts, total_files_synced, total_errors, internet_speed, received_at
                 FROM events WHERE device_id = ?1 AND ts >= ?2 AND ts <= ?3 AND ts {after_op} ?4
                 ORDER BY ts {order} LIMIT ?5"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    device.as_str(),
                    query.from.map_or(i64::MIN, EventTime::millis),
                    query.to.map_or(i64::MAX, EventTime::millis),
                    query.after.map_or(after_default, EventTime::millis),
                    query.limit as i64 + 1,
                ],
                |row| row_event(row, 0),
            )?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map(|events| HistoryPage::from_overfetch(events, query.limit))
    }

    async fn device_exists(&self, device: &DeviceId) -> Result<bool, StoreError> {
        let device = device.clone();
        self.read(move |conn| {
            conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM events WHERE device_id = ?1)")?
                .query_row([device.as_str()], |row| row.get(0))
        })
        .await
    }
}

/// Loads and re-reads on the reader pool (WAL lets them run beside the writer), so
/// a late event's recount never holds the single writer; saves go through it.
#[async_trait]
impl DeviceStates for SqliteStore {
    async fn load(&self, device: &DeviceId) -> Result<Option<Versioned>, StoreError> {
        let device = device.clone();
        self.read(move |conn| Ok(load_state(conn, &device))).await?
    }

    async fn save(&self, state: &FailureState, expected: u64, failing: bool) -> Result<Saved, StoreError> {
        let write = StateWrite {
            state: state.clone(),
            expected,
            failing,
        };
        self.write(|reply| WriteOp::SaveState(write, reply)).await
    }

    async fn recount(&self, device: &DeviceId, after: Option<EventTime>) -> Result<Recount, StoreError> {
        let device = device.clone();
        self.read(move |conn| Ok(recount(conn, &device, after))).await?
    }
}

#[async_trait]
impl ListFailing for SqliteStore {
    async fn repeated_failures(
        &self,
        limit: usize,
        after: Option<&FailingKey>,
    ) -> Result<FailingPage, StoreError> {
        let (after_count, after_device) = match after {
            Some(k) => (i64::from(k.consecutive_failures), k.device_id.as_str().to_owned()),
            None => (i64::MAX, String::new()),
        };
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT device_id, streak_count, streak_started_at, last_failure_at, last_sync_at
                     FROM device_state
                     WHERE failing = 1 AND streak_count <= ?1
                       AND NOT (streak_count = ?1 AND device_id <= ?2)
                     ORDER BY streak_count DESC, device_id LIMIT ?3",
                )?;
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
                parsed.ok_or_else(|| StoreError::Corrupt(format!("state row of {device}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FailingPage::from_overfetch(devices, limit))
    }
}

#[async_trait]
impl CheckCredentials for SqliteStore {
    /// Always the latest: SQLite readers see every committed write.
    async fn current(&self, device_id: &str, _: Freshness) -> Result<Option<DeviceCredential>, StoreError> {
        let row = self.point_read(|conn| {
            conn.prepare_cached(
                "SELECT token_sha256, issued_at FROM device_credentials WHERE device_id = ?1",
            )?
            .query_row(params![device_id], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?))
            })
            .optional()
        })?;
        row.map(|(digest, issued)| {
            let token_digest: Option<[u8; 32]> = digest.try_into().ok();
            token_digest
                .zip(EventTime::from_millis(issued))
                .map(|(token_digest, issued_at)| DeviceCredential {
                    device_id: device_id.to_owned(),
                    token_digest,
                    issued_at,
                })
                .ok_or_else(|| StoreError::Corrupt(format!("credential row of {device_id}")))
        })
        .transpose()
    }
}

#[async_trait]
impl ManageCredentials for SqliteStore {
    async fn replace(&self, credential: &DeviceCredential) -> Result<(), StoreError> {
        let c = credential.clone();
        self.rare_write(move |conn| {
            conn.execute(
                "INSERT INTO device_credentials (device_id, token_sha256, issued_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (device_id) DO UPDATE SET token_sha256 = excluded.token_sha256,
                                                       issued_at = excluded.issued_at",
                params![c.device_id, &c.token_digest[..], c.issued_at.millis()],
            )
        })
        .await
        .map(drop)
    }

    async fn revoke(&self, device_id: &str) -> Result<bool, StoreError> {
        let device = device_id.to_owned();
        self.rare_write(move |conn| {
            conn.execute(
                "DELETE FROM device_credentials WHERE device_id = ?1",
                params![device],
            )
        })
        .await
        .map(|n| n > 0)
    }
}
