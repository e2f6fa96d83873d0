//! watch-devices: runs on a schedule (every minute in AWS; `--silent-check-interval`
//! in the local runner). It finds devices that went silent — one `device.silent` per
//! silence — and publishes every notice still waiting in the outbox, so a notice whose
//! first publish failed goes out as soon as the channel is back, whether or not its
//! device reports again. It also saves each school's daily digest when it is due
//! (before the delivery round, so it goes out in the same run), and rolls up the day
//! totals detection wrote per batch.

use pisync_shared::domain::delivery::deliver_pending;
use pisync_shared::domain::detection::Rules;
use pisync_shared::domain::school_digest::{send_due_digests, DigestReads, SentDigests};
use pisync_shared::domain::sweep::check_silent_devices;
use pisync_shared::function::{Aws, BoxError, EventFunction, Local};
use pisync_shared::metrics::Figures;
use pisync_shared::ports::{
    AlertPublisher, DeviceStates, DigestLedger, Outbox, RecordDays, SilenceWatch, Store,
};
use pisync_shared::EventTime;
use std::sync::Arc;

#[derive(Clone)]
pub struct WatchDevices {
    states: Arc<dyn DeviceStates>,
    watch: Arc<dyn SilenceWatch>,
    outbox: Arc<dyn Outbox>,
    days: Arc<dyn RecordDays>,
    alerts: Arc<dyn AlertPublisher>,
    rules: Rules,
    digests: Digests,
}

/// What the daily digests are composed from and marked in.
#[derive(Clone)]
struct Digests {
    reads: DigestReads,
    ledger: Arc<dyn DigestLedger>,
    sent: Arc<SentDigests>,
}

impl Digests {
    fn of(store: Arc<dyn Store>) -> Self {
        Self {
            reads: DigestReads::of(store.clone()),
            ledger: store,
            sent: Arc::default(),
        }
    }
}

impl EventFunction for WatchDevices {
    const NAME: &'static str = env!("CARGO_PKG_NAME");
    /// The schedule's event carries nothing the run needs.
    type Event = serde_json::Value;
    type Response = ();

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        let store = aws.store().await?;
        Ok(Self {
            digests: Digests::of(store.clone()),
            states: store.clone(),
            watch: store.clone(),
            outbox: store.clone(),
            days: store,
            alerts: aws.alerts().await?,
            rules: aws.config.rules(),
        })
    }

    async fn handle(&self, _: serde_json::Value) {
        watch(self, EventTime::now()).await.record();
    }
}

impl WatchDevices {
    /// The local runner's schedule: the runner's store, notices and rules.
    pub fn from_local(local: &Local) -> Self {
        Self {
            digests: Digests::of(local.store.clone()),
            states: local.store.clone(),
            watch: local.store.clone(),
            outbox: local.store.clone(),
            days: local.store.clone(),
            alerts: local.alerts.clone(),
            rules: local.config.rules(),
        }
    }
}

/// One run: the silence check, the digests due, a delivery round, then the day totals'
/// roll-up. A failed step is logged and retried by the next run (each keeps its
/// place); the others run regardless.
pub async fn watch(deps: &WatchDevices, now: EventTime) -> Figures {
    let mut figures = Figures::default();
    match check_silent_devices(deps.states.as_ref(), deps.watch.as_ref(), deps.rules, now).await {
        Ok(report) => {
            if !report.notices.is_empty() {
                tracing::info!(
                    checked = report.checked,
                    silent = report.notices.len(),
                    "silence check"
                );
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "silence check failed; the next run resumes it");
            figures.records_failed += 1;
        }
    }
    let digests = &deps.digests;
    match send_due_digests(
        digests.reads.sources(),
        digests.ledger.as_ref(),
        &digests.sent,
        now,
    )
    .await
    {
        Ok(round) => {
            for digest in &round.sent {
                tracing::info!(school_id = %digest.school_id, date = %digest.date, "daily digest saved");
            }
            for (school, err) in &round.failed {
                tracing::error!(error = %err, school_id = %school, "daily digest failed; the next run tries again");
                figures.records_failed += 1;
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "daily digests: schools unreadable; the next run tries again");
            figures.records_failed += 1;
        }
    }
    figures.delivered(deliver_pending(deps.outbox.as_ref(), deps.alerts.as_ref()).await);
    if let Err(err) = deps.days.roll_up_days(now).await {
        tracing::error!(error = %err, "day totals roll-up failed; the next run resumes it");
        figures.records_failed += 1;
    }
    figures.checks += 1;
    figures
}
