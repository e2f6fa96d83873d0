//! Embedded, durable storage on SQLite (WAL, `synchronous=FULL`).
//!
//! One writer thread owns the write connection and commits whatever requests are
//! waiting as one transaction (group commit): every acknowledged write is on disk, and
//! the fsync cost is shared by concurrent writers. Reads use a small pool of
//! connections, which WAL lets run beside the writer.
//!
//! - [`events`]: recording events and reading history.
//! - [`devices`]: device states, lists, the outbox, days and counts, the silence watch.
//! - [`credentials`]: device credentials, and [`credential_view`]: the view device
//!   requests are checked against.
//! - [`schools`]: schools and their counts;
//! - [`digests`]: the daily digest's once-a-day mark.

mod audit;
mod credential_view;
mod credentials;
mod devices;
mod digests;
mod events;
mod notices;
mod schema;
mod schools;

pub use credential_view::SETTLE as CREDENTIAL_VIEW_SETTLE;

use crate::domain::event::{DeviceId, Outcome, StoredEvent};
use crate::domain::fleet::DayAddition;
use crate::domain::time::EventTime;
use crate::ports::{Recorded, Saved, StoreError};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, Notify};

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 512;
/// Read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 64;

/// What callers queue for the writer thread.
enum Queued {
    One(WriteOp),
    /// A request's events: committed in one transaction, so the change feed sees all of
    /// them or none and detection applies a backlog as one batch (as the stream's
    /// batching window does in AWS).
    Events(Vec<(StoredEvent, oneshot::Sender<Result<Recorded, StoreError>>)>),
}

/// A write the writer thread performs inside the group commit.
enum WriteOp {
    Record(StoredEvent, oneshot::Sender<Result<Recorded, StoreError>>),
    SaveState(
        Box<devices::OwnedStateWrite>,
        oneshot::Sender<Result<Saved, StoreError>>,
    ),
    FeedPosition(i64, oneshot::Sender<Result<(), StoreError>>),
    AddDays(DayAddition, oneshot::Sender<Result<(), StoreError>>),
    Delivered(i64, oneshot::Sender<Result<(), StoreError>>),
}

/// The embedded store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    /// Rows one run-count page reads at most.
    count_page_rows: i64,
}

struct Inner {
    path: PathBuf,
    writes: mpsc::Sender<Queued>,
    readers: Mutex<Vec<Connection>>,
    /// Signalled after a commit that stored new events.
    changed: Arc<Notify>,
    credential_view: credential_view::CredentialView,
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::unavailable("SQLite", e)
}

fn writer_stopped() -> StoreError {
    StoreError::unavailable_because("the SQLite writer stopped")
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
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
        crate::adapters::secret_file::owner_only_database(path)
            .map_err(|e| StoreError::unavailable(format!("making {} owner-only", path.display()), e))?;
        let mut conn = open_connection(path).map_err(unavailable)?;
        conn.execute_batch(schema::SCHEMA).map_err(unavailable)?;
        schema::migrate_schools(&mut conn).map_err(unavailable)?;
        schema::migrate_analytics(&mut conn).map_err(unavailable)?;
        schema::migrate(&mut conn).map_err(unavailable)?;
        // Last: it gives every state the steps above wrote its first check.
        schema::migrate_watch(&mut conn).map_err(unavailable)?;
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
                credential_view: Default::default(),
            }),
            count_page_rows: devices::COUNT_PAGE_ROWS,
        })
    }

    /// Smaller run-count pages (tests: a long count without a million events).
    pub fn with_count_page_rows(mut self, rows: i64) -> Self {
        self.count_page_rows = rows.max(1);
        self
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
            .send(Queued::One(op(tx)))
            .await
            .map_err(|_| writer_stopped())?;
        rx.await.map_err(|_| writer_stopped())?
    }

    /// A pooled read connection, or a new one.
    fn reader(inner: &Inner) -> Result<Connection, StoreError> {
        let pooled = inner.readers.lock().ok().and_then(|mut pool| pool.pop());
        match pooled {
            Some(conn) => Ok(conn),
            None => open_connection(&inner.path).map_err(unavailable),
        }
    }

    fn give_back(inner: &Inner, conn: Connection) {
        if let Ok(mut pool) = inner.readers.lock() {
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
    }

    /// A point read by primary key, run on the calling thread: it takes microseconds
    /// (WAL readers never wait for the writer), less than handing it to the blocking
    /// pool and back, and it runs on every device request (the credential check).
    fn point_read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = Self::reader(&self.inner)?;
        let result = f(&conn).map_err(unavailable);
        Self::give_back(&self.inner, conn);
        result
    }

    /// A read (or a rare write that needs no group commit, such as a credential: WAL
    /// and the busy timeout serialise it with the writer) on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = Self::reader(&inner)?;
            let result = f(&conn).map_err(unavailable);
            Self::give_back(&inner, conn);
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
    Ok(event.ok_or_else(|| corrupt(format!("event row {device}/{ts}"))))
}

// ---- the writer thread ----

fn run_writer(mut conn: Connection, mut rx: mpsc::Receiver<Queued>, changed: Arc<Notify>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        unpack(&mut batch, first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(queued) => unpack(&mut batch, queued),
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

/// Adds what was queued to the transaction being gathered, each event as its own op.
fn unpack(batch: &mut Vec<WriteOp>, queued: Queued) {
    match queued {
        Queued::One(op) => batch.push(op),
        Queued::Events(events) => {
            batch.extend(
                events
                    .into_iter()
                    .map(|(event, reply)| WriteOp::Record(event, reply)),
            );
        }
    }
}

impl WriteOp {
    /// Whether the op runs more than one writing statement (a failure halfway must be
    /// undone). Recording an event writes with one INSERT (a replay only reads after it);
    /// most state saves are one UPDATE, and a savepoint around them would copy every
    /// page they touch into its journal.
    fn is_compound(&self) -> bool {
        match self {
            WriteOp::SaveState(write, _) => write.writes_notices(),
            WriteOp::AddDays(..) => true,
            _ => false,
        }
    }
}

/// A performed op waiting for the commit before its caller hears back.
enum Reply {
    Record(
        oneshot::Sender<Result<Recorded, StoreError>>,
        Result<Recorded, StoreError>,
    ),
    SaveState(
        oneshot::Sender<Result<Saved, StoreError>>,
        Result<Saved, StoreError>,
    ),
    Done(oneshot::Sender<Result<(), StoreError>>, Result<(), StoreError>),
}

impl Reply {
    fn failed(&self) -> bool {
        matches!(
            self,
            Reply::Record(_, Err(_)) | Reply::SaveState(_, Err(_)) | Reply::Done(_, Err(_))
        )
    }
}

fn perform(conn: &Connection, op: WriteOp) -> Reply {
    let done = |result: rusqlite::Result<()>| result.map_err(unavailable);
    match op {
        WriteOp::Record(event, reply) => Reply::Record(reply, events::record(conn, event)),
        WriteOp::SaveState(write, reply) => Reply::SaveState(reply, devices::save_state(conn, &write)),
        WriteOp::FeedPosition(seq, reply) => Reply::Done(reply, done(save_position(conn, seq))),
        WriteOp::AddDays(addition, reply) => Reply::Done(reply, done(schema::add_days(conn, &addition))),
        WriteOp::Delivered(id, reply) => Reply::Done(
            reply,
            done(
                conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")
                    .and_then(|mut stmt| stmt.execute([id]))
                    .map(drop),
            ),
        ),
    }
}

/// Runs every op in one transaction, each op of several statements inside its own
/// savepoint, so one failing op leaves the others intact; replies only after the
/// commit. Returns whether any event was created.
fn commit_batch(conn: &mut Connection, batch: &mut Vec<WriteOp>) -> bool {
    let mut replies = Vec::with_capacity(batch.len());
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // The day totals of the saves that went through, added once at the end: one
        // read and write of each day's row (and its sketches) per commit, not per save.
        let mut days: Option<DayAddition> = None;
        for mut op in batch.drain(..) {
            let carried = match &mut op {
                WriteOp::SaveState(write, _) => write.take_days(),
                _ => None,
            };
            // One statement is atomic on its own; a savepoint (two more statements)
            // only guards an op of several.
            let reply = if op.is_compound() {
                let mut sp = tx.savepoint_with_name("op")?;
                let reply = perform(&sp, op);
                if reply.failed() {
                    sp.rollback()?;
                }
                sp.commit()?;
                reply
            } else {
                perform(&tx, op)
            };
            if let (Reply::SaveState(_, Ok(Saved::Written)), Some(carried)) = (&reply, carried) {
                match &mut days {
                    Some(all) => all.merge(&carried),
                    None => days = Some(carried),
                }
            }
            replies.push(reply);
        }
        if let Some(days) = &days {
            schema::add_day_totals(&tx, days)?;
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
            Reply::Done(tx, result) => {
                let _ = tx.send(settle(result, &commit_error));
            }
        }
    }
    // Ops never reached because the transaction failed to start are dropped here:
    // their callers see "writer stopped" and may retry.
    batch.clear();
    created
}

fn save_position(conn: &Connection, seq: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO feed_position (name, seq) VALUES ('detect', ?1)
         ON CONFLICT (name) DO UPDATE SET seq = MAX(seq, excluded.seq)",
    )?
    .execute([seq])?;
    Ok(())
}
