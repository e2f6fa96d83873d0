//! The runner as a server: accepts connections within bounds a client cannot push,
//! serves each with the routes, and stops gracefully on SIGINT or SIGTERM.
//!
//! Bounds: at most [`MAX_CONNECTIONS`] at once and [`MAX_CONNECTIONS_PER_ADDRESS`] from
//! one client address (so one address holding idle sockets cannot take the rest), and
//! every connection that has no request in flight for [`IDLE_TIMEOUT`] is closed,
//! whatever its protocol: one that never sends a byte, one that sent only part of a
//! preface, an idle keep-alive or HTTP/2 connection alike.

use crate::server::Server;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Most connections served at once; the next `accept` waits for one to close.
const MAX_CONNECTIONS: usize = 1024;
/// Most connections one client address holds; beyond it a new one is closed at once.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// A client must send a request's headers within this long (slowloris).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request in flight for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// After `accept` fails (e.g. out of file descriptors), wait before trying again
/// rather than spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long open requests may take to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves until SIGINT or SIGTERM, then lets open requests finish (up to 10 s).
pub async fn serve(listener: TcpListener, server: Server) {
    let server = Arc::new(server);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_address = PerAddress::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else {
            break;
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed; backing off");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                // Dropping the stream closes it: this address holds its share already.
                let Some(slot) = per_address.take(peer.ip()) else {
                    metrics::counter!(pisync_shared::metrics::CONNECTIONS_REFUSED).increment(1);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let server = server.clone();
                let builder = builder.clone();
                let mut stop = stop_rx.clone();
                tokio::spawn(async move {
                    serve_connection(stream, server, &builder, &mut stop).await;
                    drop(slot);
                    drop(permit);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends: all back means all closed.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connections.acquire_many(MAX_CONNECTIONS as u32)).await;
}

/// Serves one connection until the client closes it, it stays idle for
/// [`IDLE_TIMEOUT`], or the runner stops; the last two end it gracefully (a request in
/// flight finishes first).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    server: Arc<Server>,
    builder: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req| {
            let server = server.clone();
            let busy = activity.begin();
            async move {
                let response = server.serve(req).await;
                drop(busy);
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let stream = crate::shaped::ShapedErrors::new(stream);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = activity.idle_for(IDLE_TIMEOUT) => {}
        _ = stop.wait_for(|stopping| *stopping) => {}
    }
    conn.as_mut().graceful_shutdown();
    // A client that never reads its reply cannot hold the connection past the grace.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
}

/// A connection's requests in flight and when the last one ended.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` when the connection was last busy.
    last_busy_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_busy_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Resolves once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        loop {
            let idle_ms = self
                .now_ms()
                .saturating_sub(self.last_busy_ms.load(Ordering::SeqCst));
            if self.in_flight.load(Ordering::SeqCst) == 0 && idle_ms >= limit_ms {
                return;
            }
            // Busy now: look again a whole limit later; idle: when the limit runs out.
            let wait = if self.in_flight.load(Ordering::SeqCst) > 0 {
                limit_ms
            } else {
                limit_ms - idle_ms
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// A request in flight on a connection; dropping it marks the connection busy until now.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_busy_ms.store(self.0.now_ms(), Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Connections held per client address.
#[derive(Clone, Default)]
struct PerAddress(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl PerAddress {
    /// A slot for one more connection from `ip`, unless it holds its share.
    fn take(&self, ip: IpAddr) -> Option<AddressSlot> {
        let mut held = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = held.entry(ip).or_insert(0);
        if *count >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            held: self.clone(),
            ip,
        })
    }
}

/// One connection's place in its address's share; dropping it frees the place.
struct AddressSlot {
    held: PerAddress,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self
            .held
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let per = PerAddress::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let held: Vec<_> = (0..MAX_CONNECTIONS_PER_ADDRESS)
            .map(|_| per.take(a).unwrap())
            .collect();
        assert!(per.take(a).is_none());
        assert!(per.take(b).is_some(), "another address is not affected");
        drop(held);
        assert!(per.take(a).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_with_nothing_in_flight() {
        let activity = Arc::new(Activity::new());
        let busy = activity.begin();
        let idle = activity.idle_for(Duration::from_secs(10));
        tokio::pin!(idle);
        // Busy for 30 s: not idle, however long.
        assert!(tokio::time::timeout(Duration::from_secs(30), idle.as_mut())
            .await
            .is_err());
        drop(busy);
        assert!(tokio::time::timeout(Duration::from_secs(9), idle.as_mut())
            .await
            .is_err());
        assert!(tokio::time::timeout(Duration::from_secs(2), idle.as_mut())
            .await
            .is_ok());
    }
}
