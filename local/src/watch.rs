//! The runner's schedule: the same watch-devices handler AWS runs every minute, every
//! `--silent-check-interval` here (silence check, then the outbox's delivery round),
//! and on DynamoDB the day totals' roll-up every second, so the summary follows
//! within seconds rather than at the next check.

use pisync_shared::EventTime;
use std::time::Duration;
use tokio::sync::watch;
use watch_devices::WatchDevices;

pub async fn run(deps: WatchDevices, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        tokio::select! {
            _ = ticks.tick() => {
                watch_devices::watch(&deps, EventTime::now()).await.record();
            }
            _ = stop.changed() => {}
        }
    }
}

/// Rolls the DynamoDB store's day totals up every `every`.
pub async fn roll_up(
    days: std::sync::Arc<dyn pisync_shared::ports::RecordDays>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        tokio::select! {
            _ = ticks.tick() => {
                if let Err(err) = days.roll_up_days(EventTime::now()).await {
                    tracing::warn!(error = %err, "day totals roll-up failed; retried in a moment");
                }
            }
            _ = stop.changed() => {}
        }
    }
}
