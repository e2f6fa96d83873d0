//! Cold start, memory and latency of a Lambda binary, measured against a minimal Lambda
//! Runtime API emulator on loopback (no AWS, no Docker).
//!
//!   cargo run --release -p pisync-local --example coldstart -- \
//!       BINARY EVENT_FILE INVOCATIONS [KEY=VALUE ...]
//!
//! Prints one JSON line: `init_ms` (spawn until the runtime's first `next` call),
//! `first_invoke_ms` (event handed over until its response arrives), `warm_p50_ms`,
//! and `peak_rss_kib` (VmHWM after all invocations).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// What the emulator saw, timestamped.
enum Seen {
    Next(Instant),
    Done(Instant),
}

struct Emulator {
    event: Bytes,
    remaining: Mutex<u32>,
    seen: mpsc::UnboundedSender<Seen>,
}

async fn runtime_api(emu: Arc<Emulator>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    let path = req.uri().path().to_owned();
    let _ = req.into_body().collect().await?;
    if path.ends_with("/invocation/next") {
        let _ = emu.seen.send(Seen::Next(Instant::now()));
        let left = {
            let mut r = emu.remaining.lock().map_err(|_| "poisoned")?;
            *r = r.saturating_sub(1);
            *r
        };
        if left == u32::MAX {
            return Err("unreachable".into());
        }
        let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
        return Ok(Response::builder()
            .header("lambda-runtime-aws-request-id", format!("req-{left}"))
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:bench",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
            )
            .body(Full::new(emu.event.clone()))?);
    }
    if path.ends_with("/response") || path.ends_with("/error") {
        let _ = emu.seen.send(Seen::Done(Instant::now()));
    }
    Ok(Response::builder().status(202).body(Full::new(Bytes::new()))?)
}

async fn wait(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Option<Seen> {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .ok()
        .flatten()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [binary, event_file, invocations, env @ ..] = args.as_slice() else {
        return Err("usage: coldstart BINARY EVENT_FILE INVOCATIONS [KEY=VALUE ...]".into());
    };
    let invocations: u32 = invocations.parse()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let emu = Arc::new(Emulator {
        event: Bytes::from(std::fs::read(event_file)?),
        remaining: Mutex::new(invocations + 1),
        seen: tx,
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let emu = emu.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| runtime_api(emu.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let mut cmd = std::process::Command::new(binary);
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for pair in env {
        let (k, v) = pair.split_once('=').ok_or("env must be KEY=VALUE")?;
        cmd.env(k, v);
    }
    let spawned = Instant::now();
    let mut child = cmd.spawn()?;
    let Some(Seen::Next(first_next)) = wait(&mut rx).await else {
        let _ = child.kill();
        return Err("the function never called next".into());
    };
    let mut latencies = Vec::new();
    let mut handed = first_next;
    for _ in 0..invocations {
        match wait(&mut rx).await {
            Some(Seen::Done(done)) => latencies.push(done - handed),
            _ => {
                let _ = child.kill();
                return Err("no response from the function".into());
            }
        }
        match wait(&mut rx).await {
            Some(Seen::Next(next)) => handed = next,
            _ => break,
        }
    }
    let rss = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let first = latencies.first().copied().map(ms);
    let mut warm: Vec<f64> = latencies.iter().skip(1).copied().map(ms).collect();
    warm.sort_by(f64::total_cmp);
    let p50 = warm.get(warm.len() / 2).copied();
    println!(
        "{}",
        serde_json::json!({
            "binary": binary,
            "init_ms": ms(first_next - spawned),
            "first_invoke_ms": first,
            "warm_p50_ms": p50,
            "invocations": latencies.len(),
            "peak_rss_kib": rss,
        })
    );
    Ok(())
}
