//! Handler benchmarks on the embedded store: POST /sync-event end to end (validation,
//! group-committed SQLite write, JSON reply) and detect-failures per stream record.
//! The runner's allocator, wrapped to count allocations: the bench prints how many a
//! request makes (the count costs one relaxed atomic add per allocation).

use criterion::{criterion_group, criterion_main, Criterion};
use detect_failures::DetectFailures;
use lambda_http::Body;
use pisync_shared::adapters::sqlite::SqliteStore;
use pisync_shared::auth::token::{digest, sign_device};
use pisync_shared::auth::{Authenticator, KeyRing, SigningKeys};
use pisync_shared::domain::notice::Notice;
use pisync_shared::function::{EventFunction, HttpFunction, HttpHandler, Local};
use pisync_shared::ports::alerts::{AlertPublisher, PublishError};
use pisync_shared::ports::{DeviceCredential, ManageCredentials, RecordEvents};
use pisync_shared::{DeviceId, EventTime, Outcome, StoredEvent};
use record_sync_event::RecordSyncEvent;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The runner's allocator, counting calls.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to mimalloc unchanged; the counter only observes.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations (and reallocations) per call of `work`, over `calls` calls.
fn allocations_per_call<F: std::future::Future<Output = ()>>(
    rt: &tokio::runtime::Runtime,
    calls: u64,
    mut work: impl FnMut(u64) -> F,
) -> f64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..calls {
        rt.block_on(work(i));
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / calls as f64
}

struct Discard;

#[async_trait::async_trait]
impl AlertPublisher for Discard {
    async fn publish(&self, _: &Notice) -> Result<(), PublishError> {
        Ok(())
    }
}

fn handlers(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("bench.db")).unwrap();
    let mut local = pisync_shared::test_util::local(store.clone());
    local.auth = Authenticator::off();
    local.alerts = Arc::new(Discard);
    let record = RecordSyncEvent::from_local(&local);
    let n = AtomicU64::new(0);
    c.bench_function("POST /sync-event handler, new event, embedded store (sequential)", |b| {
        b.to_async(&rt).iter(|| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            let body = format!(
                r#"{{"device_id":"bench-{}","timestamp":"2025-05-07T10:30:00.{:03}Z","total_files_synced":42,"total_errors":{},"internet_speed":5.3}}"#,
                i / 1000,
                i % 1000,
                u64::from(i % 10 == 0)
            );
            let req = lambda_http::http::Request::post("/sync-event")
                .header("content-type", "application/json")
                .body(Body::Text(body))
                .unwrap();
            let record = &record;
            async move {
                let response = record.handle(req).await;
                assert_eq!(response.status(), 201);
            }
        })
    });

    // The same with authentication on: a device token checked (signature, then the
    // device's credential read from the store) before the event is validated and stored.
    let keys = SigningKeys::new("k1", [("k1", &[7u8; 32][..])]).unwrap();
    let token = sign_device(&keys, "bench-auth").unwrap();
    rt.block_on(store.replace(&DeviceCredential {
        device_id: "bench-auth".into(),
        token_digest: digest(&token),
        issued_at: EventTime::now(),
    }))
    .unwrap();
    let authed = RecordSyncEvent::from_local(&Local {
        auth: Authenticator::local(Arc::new(KeyRing::fixed(keys)), Arc::new(store.clone())),
        // The bench measures the handler, not the limit one device would hit.
        limits: Arc::new(pisync_shared::adapters::minute_counters::MinuteCounters::new(
            pisync_shared::domain::limits::DeviceLimits {
                requests_per_minute: u32::MAX,
                events_per_minute: u32::MAX,
            },
        )),
        ..local.clone()
    });
    let bearer = format!("Bearer {token}");
    let k = AtomicU64::new(0);
    let authed_request = |i: u64| {
        let ts = EventTime::from_millis(1_746_600_000_000 + i as i64).unwrap();
        let body = format!(
            r#"{{"device_id":"bench-auth","timestamp":"{ts}","total_files_synced":42,"total_errors":0,"internet_speed":5.3}}"#
        );
        lambda_http::http::Request::post("/sync-event")
            .header("content-type", "application/json")
            .header("authorization", bearer.as_str())
            .body(Body::Text(body))
            .unwrap()
    };
    c.bench_function(
        "POST /sync-event handler, device token checked, embedded store (sequential)",
        |b| {
            b.to_async(&rt).iter(|| {
                let req = authed_request(k.fetch_add(1, Ordering::Relaxed));
                let authed = &authed;
                async move {
                    let response = authed.handle(req).await;
                    assert_eq!(response.status(), 201);
                }
            })
        },
    );

    // Not timed: what one request allocates, request and reply included.
    let offset = k.fetch_add(1_000, Ordering::Relaxed);
    let per_request = allocations_per_call(&rt, 1_000, |i| {
        let req = authed_request(offset + i);
        let authed = &authed;
        async move {
            assert_eq!(authed.handle(req).await.status(), 201);
        }
    });
    eprintln!("allocations per POST /sync-event (device token checked): {per_request:.1}");

    let detect = DetectFailures::from_local(&local);
    let m = AtomicU64::new(0);
    c.bench_function("detect-failures per record, embedded store", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            // Store the events first (not timed), then time detection alone.
            let first = m.fetch_add(iters, Ordering::Relaxed);
            let (store, detect) = (store.clone(), &detect);
            async move {
                let mut records = Vec::new();
                for i in first..first + iters {
                    let failed = u32::from(i % 10 != 0);
                    let event = StoredEvent {
                        device_id: DeviceId::parse(&format!("detect-{}", i / 100)).unwrap(),
                        timestamp: EventTime::from_millis(1_746_600_000_000 + i as i64).unwrap(),
                        total_files_synced: 1,
                        total_errors: failed,
                        internet_speed: 1.0,
                        outcome: Outcome::of(failed),
                        received_at: EventTime::now(),
                    };
                    store.record(event.clone()).await.unwrap();
                    records.push(pisync_local::feed::sqlite::insert_record(i as i64, &event).unwrap());
                }
                let start = std::time::Instant::now();
                for record in records {
                    let mut batch = aws_lambda_events::event::dynamodb::Event::default();
                    batch.records = vec![record];
                    let response = detect.handle(batch).await;
                    assert!(response.batch_item_failures.is_empty());
                }
                start.elapsed()
            }
        })
    });
}

criterion_group!(benches, handlers);
criterion_main!(benches);
