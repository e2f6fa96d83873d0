//! watch-devices: runs on a schedule (every minute in AWS; `--silent-check-interval`
//! in the local runner). It finds devices that went silent — one `device.silent` per
//! silence — and publishes every notice still waiting in the outbox, so a notice whose
//! first publish failed goes out as soon as the channel is back, whether or not its
//! device reports again.

use pisync_shared::domain::delivery::deliver_pending;
use pisync_shared::domain::detection::Rules;
use pisync_shared::domain::sweep::check_silent_devices;
use pisync_shared::metrics::Figures;
use pisync_shared::ports::{AlertPublisher, DeviceStates, Outbox, SilenceWatch};
use pisync_shared::EventTime;
use std::sync::Arc;

#[derive(Clone)]
pub struct WatchDevices {
    pub states: Arc<dyn DeviceStates>,
    pub watch: Arc<dyn SilenceWatch>,
    pub outbox: Arc<dyn Outbox>,
    pub alerts: Arc<dyn AlertPublisher>,
    pub rules: Rules,
}

/// One run: the silence check, then a delivery round. A failed check is logged and
/// retried by the next run (the watch keeps its place); delivery runs regardless.
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
    figures.delivered(deliver_pending(deps.outbox.as_ref(), deps.alerts.as_ref()).await);
    figures
}
