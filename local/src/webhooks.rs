//! Webhook deliveries in the local runner: every notice is queued durably
//! (`<data-dir>/webhooks.db`), once per webhook it goes to (the fleet's `--webhook-url`,
//! its school's `webhook_url`), when it is published, and a worker of its own POSTs it
//! with the retry policy AWS uses (first retry within 10 s, backing off to hourly, for
//! 24 hours). A receiver that is slow or down delays only this worker: detection and
//! the other channels never wait for it. Pending deliveries survive a restart.

use pisync_shared::domain::notice::Notice;
use pisync_shared::domain::webhook::{self, Answer, RetryPolicy, WebhookTarget};
use pisync_shared::ports::{PublishError, ReadSchools, WebhookTransport};
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Deliveries sent at once by the worker.
const BATCH: i64 = 16;
/// Longest the worker sleeps before looking again.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// A delivery waiting in the queue.
#[derive(Clone, Debug)]
struct Delivery {
    id: i64,
    body: String,
    target: String,
    first_at: i64,
    attempts: u32,
}

pub struct WebhookQueue {
    conn: Mutex<Connection>,
    queued: Notify,
}

fn ms_now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl WebhookQueue {
    pub fn open(path: &Path) -> Result<Self, crate::Failure> {
        pisync_shared::adapters::secret_file::owner_only_database(path)
            .map_err(|e| format!("making {} owner-only: {e}", path.display()))?;
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS deliveries (
                 id       INTEGER PRIMARY KEY AUTOINCREMENT,
                 body     TEXT    NOT NULL,   -- the signed JSON, as sent
                 first_at INTEGER NOT NULL,   -- ms since epoch
                 attempts INTEGER NOT NULL,
                 next_at  INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at);
             -- Deliveries the receiver rejected, or that failed for 24 hours.
             CREATE TABLE IF NOT EXISTS dead_letters (
                 id       INTEGER PRIMARY KEY,
                 body     TEXT    NOT NULL,
                 attempts INTEGER NOT NULL,
                 reason   TEXT    NOT NULL,
                 at       INTEGER NOT NULL
             );",
        )?;
        // Queues from before schools hold fleet deliveries only.
        let has_target: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('deliveries') WHERE name = 'target'")?
            .exists([])?;
        if !has_target {
            conn.execute_batch("ALTER TABLE deliveries ADD COLUMN target TEXT NOT NULL DEFAULT 'fleet'")?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            queued: Notify::new(),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let conn = self.conn.lock().map_err(|_| rusqlite::Error::InvalidQuery)?;
        f(&conn)
    }

    /// Queues `notice` for `target`; on disk when this returns.
    pub fn enqueue(&self, notice: &Notice, target: &WebhookTarget) -> Result<(), PublishError> {
        let now = ms_now();
        self.with(|conn| {
            conn.execute(
                "INSERT INTO deliveries (body, target, first_at, attempts, next_at) VALUES (?1, ?2, ?3, 0, ?3)",
                params![webhook::payload(notice), target.key(), now],
            )
        })
        .map_err(|e| PublishError::with_source("webhook queue", e))?;
        self.queued.notify_one();
        Ok(())
    }

    fn due(&self) -> rusqlite::Result<Vec<Delivery>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, body, target, first_at, attempts FROM deliveries WHERE next_at <= ?1 ORDER BY next_at, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![ms_now(), BATCH], |row| {
                Ok(Delivery {
                    id: row.get(0)?,
                    body: row.get(1)?,
                    target: row.get(2)?,
                    first_at: row.get(3)?,
                    attempts: row.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// When the next waiting delivery is due (ms since epoch).
    fn next_due(&self) -> rusqlite::Result<Option<i64>> {
        self.with(|conn| conn.query_row("SELECT MIN(next_at) FROM deliveries", [], |row| row.get(0)))
    }

    /// Deliveries waiting, and those given up on (for tests and the operator).
    pub fn counts(&self) -> rusqlite::Result<(i64, i64)> {
        self.with(|conn| {
            conn.query_row(
                "SELECT (SELECT COUNT(*) FROM deliveries), (SELECT COUNT(*) FROM dead_letters)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
        })
    }

    /// Records what came of `delivery` (`None`: its target has no webhook any more, so
    /// it is dropped); returns it as a metric's `result`.
    fn settle(
        &self,
        delivery: &Delivery,
        answer: Option<Answer>,
        policy: &RetryPolicy,
    ) -> rusqlite::Result<&'static str> {
        let Some(answer) = answer else {
            return self.with(|conn| {
                conn.execute("DELETE FROM deliveries WHERE id = ?1", [delivery.id])
                    .map(|_| "dropped")
            });
        };
        let attempts = delivery.attempts + 1;
        let now = ms_now();
        let elapsed = Duration::from_millis(u64::try_from(now - delivery.first_at).unwrap_or(0));
        let give_up = |conn: &Connection, reason: &str| {
            tracing::error!(
                attempts,
                reason,
                "webhook delivery given up; kept in webhooks.db dead_letters"
            );
            conn.execute(
                "INSERT INTO dead_letters (id, body, attempts, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![delivery.id, delivery.body, attempts, reason, now],
            )?;
            conn.execute("DELETE FROM deliveries WHERE id = ?1", [delivery.id])
        };
        self.with(|conn| match answer {
            Answer::Delivered => conn
                .execute("DELETE FROM deliveries WHERE id = ?1", [delivery.id])
                .map(|_| "delivered"),
            Answer::Rejected => give_up(conn, "rejected by the receiver").map(|_| "rejected"),
            Answer::TryAgain if !policy.may_retry(elapsed) => {
                give_up(conn, "failing for 24 hours").map(|_| "rejected")
            }
            Answer::TryAgain => {
                let wait = i64::try_from(policy.delay(attempts).as_millis()).unwrap_or(i64::MAX);
                conn.execute(
                    "UPDATE deliveries SET attempts = ?2, next_at = ?3 WHERE id = ?1",
                    params![delivery.id, attempts, now.saturating_add(wait)],
                )
                .map(|_| "retry")
            }
        })
    }
}

/// Where the worker delivers: the transport, the fleet's URL and the schools (whose
/// URLs are read at each attempt), and the signing secret.
pub struct Receivers {
    pub transport: Arc<dyn WebhookTransport>,
    pub fleet_url: Option<String>,
    pub schools: Arc<dyn ReadSchools>,
    pub secret: Vec<u8>,
}

impl Receivers {
    /// Signs and sends `delivery` to its target's URL now (`None`: it has none).
    async fn send(&self, delivery: &Delivery) -> Option<Answer> {
        let target = WebhookTarget::parse(&delivery.target)?;
        let url = match webhook::target_url(&target, self.fleet_url.as_deref(), self.schools.as_ref()).await {
            Ok(url) => url?,
            // The store is unavailable: try again later, as for a receiver that is down.
            Err(e) => {
                tracing::warn!(error = %e, "could not read the school's webhook; retried");
                return Some(Answer::TryAgain);
            }
        };
        let now = chrono::Utc::now().timestamp();
        Some(webhook::send(self.transport.as_ref(), &url, &self.secret, &delivery.body, now).await)
    }
}

/// Sends what is due, then sleeps until the next delivery is due, something is queued,
/// or a second passed.
pub async fn run_worker(
    queue: Arc<WebhookQueue>,
    receivers: Receivers,
    policy: RetryPolicy,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let queued = queue.queued.notified();
        let due = queue.due().unwrap_or_else(|e| {
            tracing::error!(error = %e, "webhook queue unreadable");
            Vec::new()
        });
        let sends = due.iter().map(|delivery| receivers.send(delivery));
        let answers = futures_util::future::join_all(sends).await;
        for (delivery, answer) in due.iter().zip(answers) {
            match queue.settle(delivery, answer, &policy) {
                Ok(result) => pisync_shared::metrics::webhook_delivery(result),
                Err(e) => {
                    tracing::error!(error = %e, "webhook queue not updated; the delivery may be sent again")
                }
            }
        }
        if let Ok((waiting, _)) = queue.counts() {
            metrics::gauge!(pisync_shared::metrics::WEBHOOKS_WAITING).set(waiting as f64);
        }
        if due.len() as i64 == BATCH {
            continue;
        }
        let wait = match queue.next_due() {
            Ok(Some(at)) => Duration::from_millis(u64::try_from(at - ms_now()).unwrap_or(0)).min(IDLE_POLL),
            _ => IDLE_POLL,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = queued => {}
            _ = stop.changed() => {}
        }
    }
}
