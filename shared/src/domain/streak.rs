//! The consecutive-failure rule: a device's current streak is the run of failed syncs
//! after its newest successful sync, in device-timestamp order.
//!
//! A failure newer than everything applied extends the run, and a failure that lands
//! late inside the run joins it — both from the state alone, in O(1). Only a late
//! *success* inside the run needs the store: the run is then the failures after it,
//! which the store counts ([`RunCount`]). See [`crate::domain::device`] for how each
//! event reaches these rules exactly once.

use crate::domain::time::EventTime;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Failures in a row that make a device "repeatedly failing", and when its alert is
/// news rather than history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreakRule {
    pub threshold: u32,
    /// A failure received within this long of its device timestamp is fresh; a
    /// streak's alert is published only once one of its failures is.
    pub freshness: Duration,
    /// Alerts within [`StreakRule::flap_window`] (received time) that make a device
    /// flapping.
    pub flap_count: u32,
    pub flap_window: Duration,
}

/// The freshness window unless configured (`--alert-freshness`).
pub const DEFAULT_FRESHNESS: Duration = Duration::from_secs(24 * 3600);
/// The flap count and window unless configured (`--flap-count`, `--flap-window`).
pub const DEFAULT_FLAP_COUNT: u32 = 3;
pub const DEFAULT_FLAP_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl Default for StreakRule {
    fn default() -> Self {
        Self {
            threshold: 3,
            freshness: DEFAULT_FRESHNESS,
            flap_count: DEFAULT_FLAP_COUNT,
            flap_window: DEFAULT_FLAP_WINDOW,
        }
    }
}

impl StreakRule {
    /// Whether a failure with device time `at`, received at `received_at`, is news.
    /// A device clock ahead of the server's makes it fresh, not stale.
    pub fn is_fresh(&self, at: EventTime, received_at: EventTime) -> bool {
        received_at.millis().saturating_sub(at.millis()) <= millis(self.freshness)
    }

    /// The flap window in milliseconds.
    pub fn flap_window_millis(&self) -> i64 {
        millis(self.flap_window)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The current run of failures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streak {
    pub count: u32,
    pub started_at: EventTime,
    pub last_failure_at: EventTime,
    /// `total_errors` of the newest failure in the run.
    pub last_total_errors: u32,
    /// One of the run's failures was received within the freshness window of its
    /// device time ([`StreakRule::is_fresh`]): the run is news.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh: bool,
}

impl Streak {
    /// A run of one failure.
    pub fn first(at: EventTime, total_errors: u32, fresh: bool) -> Self {
        Self {
            count: 1,
            started_at: at,
            last_failure_at: at,
            last_total_errors: total_errors,
            fresh,
        }
    }

    /// A failure newer than every failure in the run.
    pub fn extend(&mut self, at: EventTime, total_errors: u32, fresh: bool) {
        self.count = self.count.saturating_add(1);
        self.last_failure_at = at;
        self.last_total_errors = total_errors;
        self.fresh |= fresh;
    }

    /// A failure that arrived late, older than the run's newest failure.
    pub fn back_fill(&mut self, at: EventTime, fresh: bool) {
        self.count = self.count.saturating_add(1);
        self.started_at = self.started_at.min(at);
        self.fresh |= fresh;
    }
}

/// What the store counted of a run: the failures in a window of the timeline, or in
/// its first part — one page of the store's reads, so no count is unbounded work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RunCount {
    pub failures: u32,
    /// The oldest failure counted.
    pub first_failure: Option<EventTime>,
    /// The newest timestamp this page read, when the window goes on past it: the count
    /// continues after it. `None`: the window is counted to its end.
    pub read_through: Option<EventTime>,
}

/// A window of a device's timeline whose failures the store must count: after
/// `after` (exclusive; `None`: from the beginning) up to `through` (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunWindow {
    pub after: Option<EventTime>,
    pub through: EventTime,
}

/// A count of a run window in progress, page by page. It is kept in the device's state
/// between batches, so a late success inside a run of a million failures costs each
/// stream batch a bounded number of pages, never the whole run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCount {
    /// The window being counted. `through` follows the device's newest sync: a newer
    /// failure is stored before it is applied, so the count reaches it.
    pub window: RunWindow,
    /// Counted so far: the failures in `(window.after, read_through]`.
    pub read_through: Option<EventTime>,
    pub failures: u32,
    pub first_failure: Option<EventTime>,
}

impl PendingCount {
    pub fn new(window: RunWindow) -> Self {
        Self {
            window,
            read_through: None,
            failures: 0,
            first_failure: None,
        }
    }

    /// What is left to count.
    pub fn rest(&self) -> RunWindow {
        RunWindow {
            after: self.read_through.or(self.window.after),
            through: self.window.through,
        }
    }

    /// Adds one page; returns the whole window's count once the page reached its end.
    pub fn add(&mut self, page: RunCount) -> Option<RunCount> {
        self.failures = self.failures.saturating_add(page.failures);
        self.first_failure = self.first_failure.or(page.first_failure);
        match page.read_through {
            Some(t) if t < self.window.through => {
                self.read_through = Some(t);
                None
            }
            _ => Some(RunCount {
                failures: self.failures,
                first_failure: self.first_failure,
                read_through: None,
            }),
        }
    }

    /// Whether the count has already read past `t` (an event stored there may or may
    /// not be in it).
    pub fn has_read(&self, t: EventTime) -> bool {
        self.read_through.is_some_and(|r| t <= r)
    }
}
