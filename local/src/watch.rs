//! The runner's schedule: the same watch-devices handler AWS runs every minute, every
//! `--silent-check-interval` here (silence check, then the outbox's delivery round).

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
