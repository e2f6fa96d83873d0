//! Connection hygiene: idle sockets from one client address cannot stop the runner
//! from serving another, and a connection that sends nothing useful is closed
//! whatever its protocol.

use crate::support::runner::{Backend, TestApp};
use crate::support::wait_until;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The runner's per-address share (`listener::MAX_CONNECTIONS_PER_ADDRESS`).
const SHARE: usize = 256;
const HELD: usize = 1100;

async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let opened = "a socket (this test holds 1,100: `ulimit -n` must allow more; scripts/test.sh raises it)";
    let socket = TcpSocket::new_v4().expect(opened);
    socket.bind(SocketAddr::from((source, 0))).expect(opened);
    socket.connect(to).await.expect("connected")
}

/// Resolves when the server closes `stream` (EOF or reset).
async fn closed(mut stream: TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_do_not_stop_another() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&Backend::Embedded, dir.path(), &[]);
    let addr: SocketAddr = app.addr.parse().unwrap();
    let ended = Arc::new(AtomicUsize::new(0));
    for _ in 0..HELD {
        let stream = connect_from([127, 0, 0, 1], addr).await;
        let ended = ended.clone();
        tokio::spawn(async move {
            closed(stream).await;
            ended.fetch_add(1, Ordering::SeqCst);
        });
    }
    // Beyond its share, the address's connections are closed on accept.
    wait_until("the connections beyond the share closed", || async {
        ended.load(Ordering::SeqCst) >= HELD - SHARE
    })
    .await;

    let mut other = connect_from([127, 0, 0, 2], addr).await;
    other
        .write_all(b"GET /devices HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), other.read_to_end(&mut reply))
        .await
        .expect("served from another address within a second")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    assert!(
        ended.load(Ordering::SeqCst) < HELD,
        "the address keeps its share until the idle timeout"
    );

    // The share, having sent nothing, is closed by the idle timeout (10 s).
    wait_until("every idle connection closed", || async {
        ended.load(Ordering::SeqCst) == HELD
    })
    .await;
}

/// Half a preface, a whole HTTP/2 preface, or nothing at all: closed all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_send_a_request_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&Backend::Embedded, dir.path(), &[]);
    let addr: SocketAddr = app.addr.parse().unwrap();
    let openings: [&[u8]; 3] = [b"", b"PRI * HTTP/2.0\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"];
    let mut waits = Vec::new();
    for opening in openings {
        let mut stream = connect_from([127, 0, 0, 1], addr).await;
        stream.write_all(opening).await.unwrap();
        waits.push(tokio::time::timeout(Duration::from_secs(30), closed(stream)));
    }
    for (wait, opening) in futures_util::future::join_all(waits)
        .await
        .into_iter()
        .zip(openings)
    {
        assert!(
            wait.is_ok(),
            "a connection that sent {:?} is closed",
            String::from_utf8_lossy(opening)
        );
    }
}
