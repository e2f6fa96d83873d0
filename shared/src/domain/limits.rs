//! Per-device limits: at most so many requests and events per device per minute, so
//! one device (or a stolen token) cannot starve the rest. Counted in fixed one-minute
//! windows of server time; a refused request is not counted.

use crate::domain::time::EventTime;

pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 120;
pub const DEFAULT_EVENTS_PER_MINUTE: u32 = 6_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    pub requests_per_minute: u32,
    pub events_per_minute: u32,
}

impl Default for DeviceLimits {
    fn default() -> Self {
        Self {
            requests_per_minute: DEFAULT_REQUESTS_PER_MINUTE,
            events_per_minute: DEFAULT_EVENTS_PER_MINUTE,
        }
    }
}

/// What a device used in one minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests: u32,
    pub events: u32,
}

impl Usage {
    pub fn plus(self, events: u32) -> Self {
        Self {
            requests: self.requests.saturating_add(1),
            events: self.events.saturating_add(events),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Over a limit: try again in this many seconds (the start of the next minute).
    Refused {
        retry_after_secs: u32,
    },
}

impl DeviceLimits {
    /// Whether a request of `events` events fits beside `used`.
    pub fn admits(&self, used: Usage, events: u32) -> bool {
        let after = used.plus(events);
        after.requests <= self.requests_per_minute && after.events <= self.events_per_minute
    }

    /// Admits a request of `events` beside `used` at `now`, or says when to retry.
    pub fn decide(&self, used: Usage, events: u32, now: EventTime) -> Admission {
        if self.admits(used, events) {
            Admission::Admitted
        } else {
            Admission::Refused {
                retry_after_secs: retry_after(now),
            }
        }
    }
}

/// The window `now` falls in: minutes since the epoch.
pub fn minute(now: EventTime) -> i64 {
    now.millis().div_euclid(60_000)
}

/// Whole seconds until the next minute starts (at least 1).
pub fn retry_after(now: EventTime) -> u32 {
    let into = now.millis().rem_euclid(60_000);
    let left_ms = 60_000 - into;
    u32::try_from(left_ms.div_euclid(1000) + i64::from(left_ms % 1000 != 0))
        .unwrap_or(60)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> EventTime {
        EventTime::from_millis(ms).unwrap()
    }

    #[test]
    fn both_limits_hold_and_a_batch_counts_its_events() {
        let limits = DeviceLimits {
            requests_per_minute: 3,
            events_per_minute: 150,
        };
        let mut used = Usage::default();
        for _ in 0..3 {
            assert!(limits.admits(used, 1));
            used = used.plus(1);
        }
        assert!(!limits.admits(used, 1), "the fourth request");
        let used = Usage {
            requests: 1,
            events: 100,
        };
        assert!(limits.admits(used, 50));
        assert!(
            !limits.admits(used, 51),
            "a batch that would pass the event limit is refused whole"
        );
    }

    #[test]
    fn retry_after_is_the_rest_of_the_minute() {
        assert_eq!(retry_after(at(120_000)), 60);
        assert_eq!(retry_after(at(120_001)), 60);
        assert_eq!(retry_after(at(179_000)), 1);
        assert_eq!(retry_after(at(179_999)), 1);
        assert_eq!(minute(at(179_999)), 2);
        let refused = DeviceLimits::default().decide(
            Usage {
                requests: 120,
                events: 0,
            },
            1,
            at(150_500),
        );
        assert_eq!(refused, Admission::Refused { retry_after_secs: 30 });
    }
}
