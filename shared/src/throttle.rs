//! "At most once per interval", for work a hot path starts now and then (reloading
//! keys, re-reading a version): one caller is told to do it, the others go on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Throttle {
    /// When a caller was last told yes.
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    /// A throttle that last said yes at `at` (work just done at start).
    pub fn since(at: Instant) -> Self {
        Self {
            last: Mutex::new(Some(at)),
        }
    }

    /// Whether `now` is at least `interval` after the last yes (the first call of a
    /// default throttle says yes); a yes is remembered.
    pub fn due(&self, now: Instant, interval: Duration) -> bool {
        self.last
            .lock()
            .is_ok_and(|mut last| due(&mut last, now, interval))
    }
}

/// [`Throttle::due`] over a field the caller already holds under its own lock.
pub fn due(last: &mut Option<Instant>, now: Instant, interval: Duration) -> bool {
    let due = last.is_none_or(|at| now.saturating_duration_since(at) >= interval);
    if due {
        *last = Some(now);
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_millis(250);

    #[test]
    fn says_yes_once_per_interval() {
        let throttle = Throttle::default();
        let start = Instant::now();
        assert!(throttle.due(start, EVERY));
        assert!(!throttle.due(start + EVERY / 2, EVERY));
        assert!(throttle.due(start + EVERY, EVERY));
        assert!(!throttle.due(start + EVERY, EVERY), "that yes was remembered");
    }

    #[test]
    fn a_throttle_since_a_time_waits_out_the_interval_from_it() {
        let start = Instant::now();
        let throttle = Throttle::since(start);
        assert!(!throttle.due(start, EVERY));
        assert!(throttle.due(start + EVERY, EVERY));
    }
}
