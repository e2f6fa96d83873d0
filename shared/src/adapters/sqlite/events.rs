//! The event log on SQLite: recording events exactly once, reading a device's history,
//! reading every event for the export.

use super::{corrupt, row_event, unavailable, writer_stopped, Queued, SqliteStore, WriteOp};
use crate::domain::event::{DeviceId, StoredEvent};
use crate::domain::school::SchoolId;
use crate::domain::time::EventTime;
use crate::ports::{
    ExportEvents, ExportPage, ExportedEvent, HistoryPage, HistoryQuery, Order, ReadHistory, RecordEvents,
    Recorded, StoreError,
};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

pub(super) fn record(conn: &Connection, event: StoredEvent) -> Result<Recorded, StoreError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events (device_id, ts, total_files_synced, total_errors, internet_speed, received_at,
                 school_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT school_id FROM devices WHERE device_id = ?1))
             ON CONFLICT (device_id, ts) DO NOTHING",
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
        .ok_or_else(|| corrupt("conflicting event vanished"))?;
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

#[async_trait]
impl RecordEvents for SqliteStore {
    async fn record(&self, event: StoredEvent) -> Result<Recorded, StoreError> {
        self.write(|reply| WriteOp::Record(event, reply)).await
    }

    /// Every event is queued to the writer before any reply is awaited, so a batch
    /// lands in one group commit (each event in its own savepoint).
    async fn record_many(&self, events: Vec<StoredEvent>) -> Vec<Result<Recorded, StoreError>> {
        let (queued, replies): (Vec<_>, Vec<_>) = events
            .into_iter()
            .map(|event| {
                let (tx, rx) = oneshot::channel();
                ((event, tx), rx)
            })
            .unzip();
        // Unsent (the writer stopped), the replies' senders are dropped: each answers
        // "writer stopped".
        let _ = self.inner.writes.send(Queued::Events(queued)).await;
        let mut outcomes = Vec::with_capacity(replies.len());
        for rx in replies {
            outcomes.push(rx.await.unwrap_or_else(|_| Err(writer_stopped())));
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

#[async_trait]
impl ExportEvents for SqliteStore {
    /// In commit order (`seq`): the cursor is the last row's `seq`.
    async fn export_page(
        &self,
        from: EventTime,
        until: EventTime,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ExportPage, StoreError> {
        let after: i64 = match after {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| corrupt(format!("export cursor {text}")))?,
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT e.device_id, e.ts, e.total_files_synced, e.total_errors, e.internet_speed,
                         e.received_at, e.seq,
                         COALESCE(e.school_id, (SELECT d.school_id FROM devices d WHERE d.device_id = e.device_id))
                     FROM events e WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![after, limit], |row| {
                    Ok((row_event(row, 0)?, row.get::<_, i64>(6)?, row.get::<_, Option<String>>(7)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let next = (rows.len() as i64 == limit)
            .then(|| rows.last().map(|(_, seq, _)| seq.to_string()))
            .flatten();
        let mut events = Vec::with_capacity(rows.len());
        for (event, _, school) in rows {
            let event = event?;
            if event.received_at < from || event.received_at >= until {
                continue;
            }
            events.push(ExportedEvent {
                event,
                school_id: school.as_deref().and_then(SchoolId::parse),
            });
        }
        Ok(ExportPage { events, next })
    }
}
