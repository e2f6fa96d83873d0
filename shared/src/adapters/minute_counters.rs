//! Per-device limits counted in this process's memory: exact for the local runner (one
//! process serves every request), and the per-sandbox part of the DynamoDB adapter.

use crate::domain::event::DeviceId;
use crate::domain::limits::{minute, Admission, DeviceLimits, Usage};
use crate::domain::time::EventTime;
use crate::ports::{LimitDevices, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// Devices tracked before the windows of past minutes are dropped: memory stays
/// bounded by the devices active in one minute.
const PRUNE_AT: usize = 10_000;

/// One device's current window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub minute: i64,
    /// What this process admitted (and, for a shared count, has not added to it yet).
    pub used: Usage,
    /// The last known count shared with other processes (DynamoDB), else zero.
    pub shared: Usage,
}

impl Window {
    /// Everything known to be used in this window.
    pub fn total(&self) -> Usage {
        Usage {
            requests: self.used.requests.saturating_add(self.shared.requests),
            events: self.used.events.saturating_add(self.shared.events),
        }
    }
}

pub struct MinuteCounters {
    limits: DeviceLimits,
    windows: Mutex<HashMap<DeviceId, Window>>,
}

impl MinuteCounters {
    pub fn new(limits: DeviceLimits) -> Self {
        Self {
            limits,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> DeviceLimits {
        self.limits
    }

    /// Runs `change` on `device`'s window of the minute of `now` (a fresh one when
    /// the minute turned), under the lock.
    pub fn with_window<T>(
        &self,
        device: &DeviceId,
        now: EventTime,
        change: impl FnOnce(&mut Window) -> T,
    ) -> T {
        let this_minute = minute(now);
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() >= PRUNE_AT && !windows.contains_key(device) {
            windows.retain(|_, w| w.minute >= this_minute);
        }
        let window = windows.entry(device.clone()).or_default();
        if window.minute != this_minute {
            *window = Window {
                minute: this_minute,
                ..Window::default()
            };
        }
        change(window)
    }

    /// Admits and counts, or refuses and counts nothing.
    pub fn admit_now(&self, device: &DeviceId, events: u32, now: EventTime) -> Admission {
        let limits = self.limits;
        self.with_window(device, now, |window| {
            let admission = limits.decide(window.total(), events, now);
            if admission == Admission::Admitted {
                window.used = window.used.plus(events);
            }
            admission
        })
    }
}

#[async_trait]
impl LimitDevices for MinuteCounters {
    async fn admit(&self, device: &DeviceId, events: u32, now: EventTime) -> Result<Admission, StoreError> {
        Ok(self.admit_now(device, events, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> EventTime {
        EventTime::from_millis(ms).unwrap()
    }

    #[test]
    fn one_device_over_its_limit_does_not_limit_another() {
        let counters = MinuteCounters::new(DeviceLimits {
            requests_per_minute: 2,
            events_per_minute: 1000,
        });
        let (a, b) = (DeviceId::parse("a").unwrap(), DeviceId::parse("b").unwrap());
        assert_eq!(counters.admit_now(&a, 1, at(60_000)), Admission::Admitted);
        assert_eq!(counters.admit_now(&a, 1, at(60_001)), Admission::Admitted);
        assert!(matches!(
            counters.admit_now(&a, 1, at(60_002)),
            Admission::Refused { .. }
        ));
        assert_eq!(counters.admit_now(&b, 1, at(60_003)), Admission::Admitted);
        assert_eq!(
            counters.admit_now(&a, 1, at(120_000)),
            Admission::Admitted,
            "a new minute"
        );
    }

    #[test]
    fn past_windows_are_dropped_when_many_devices_were_seen() {
        let counters = MinuteCounters::new(DeviceLimits::default());
        for i in 0..PRUNE_AT {
            counters.admit_now(&DeviceId::parse(&format!("d{i}")).unwrap(), 1, at(0));
        }
        counters.admit_now(&DeviceId::parse("late").unwrap(), 1, at(60_000));
        let held = counters.windows.lock().unwrap().len();
        assert_eq!(held, 1);
    }
}
