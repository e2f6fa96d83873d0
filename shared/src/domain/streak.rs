//! The consecutive-failure rule, kept incrementally per device.
//!
//! A device's current streak is the run of failed syncs after its newest successful
//! sync, in device-timestamp order. [`FailureState`] keeps just enough to update that
//! run one stream record at a time and to decide when to alert: an event newer than
//! everything counted is applied from the state alone; a late event inside the current
//! run re-reads the run from the stored timeline ([`super::detection`]). Either way the state
//! equals a recomputation over all stored events, and a redelivered record changes
//! nothing, so no per-event "applied" marker is needed.

use crate::domain::event::{DeviceId, Outcome, StoredEvent};
use crate::domain::notice::{FailureAlert, Notice, RecoveryNotice};
use crate::domain::time::EventTime;
use serde::{Deserialize, Serialize};

/// Failures in a row that make a device "repeatedly failing".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreakRule {
    pub threshold: u32,
}

impl Default for StreakRule {
    fn default() -> Self {
        Self { threshold: 3 }
    }
}

/// The current run of failures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streak {
    pub count: u32,
    pub started_at: EventTime,
    pub last_failure_at: EventTime,
    /// `total_errors` of the newest failure in the run.
    pub last_total_errors: u32,
}

/// What detection keeps per device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureState {
    pub device_id: DeviceId,
    /// Newest device timestamp applied.
    pub last_sync_at: Option<EventTime>,
    /// Newest successful sync applied.
    pub last_success_at: Option<EventTime>,
    /// Failures with a timestamp after `last_success_at`.
    pub streak: Option<Streak>,
    /// The `alert_id` of the alert sent for the current failure condition; cleared
    /// by the success that ends it.
    pub alert_id: Option<String>,
    /// Decided but not yet confirmed published (an outbox): published, then cleared.
    #[serde(default)]
    pub pending_notices: Vec<Notice>,
}

/// How to apply one stored event to a device's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Newer than everything counted so far: the state alone decides.
    InOrder,
    /// Already reflected in the state: a redelivered record, or an event older than
    /// the newest success (which cannot change the current run).
    NoChange,
    /// A late event inside the current run, or a redelivery of one: re-read the run
    /// from the stored timeline (events newer than `after`, newest first, up to the
    /// first success) and pass it to [`FailureState::apply_recount`].
    Recount { after: Option<EventTime> },
}

/// The current run as read back from the stored timeline.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Recount {
    /// The newest stored event's timestamp.
    pub newest_at: Option<EventTime>,
    /// The newest success the scan met (it stops there).
    pub newest_success: Option<EventTime>,
    /// The failures newer than that success.
    pub run: Option<Streak>,
}

impl Recount {
    /// Builds a recount from events newer than the scan's start, newest first; stops
    /// at the first success. Returns `true` while it wants more events.
    pub fn push(&mut self, timestamp: EventTime, outcome: Outcome, total_errors: u32) -> bool {
        if self.newest_success.is_some() {
            return false;
        }
        self.newest_at = self.newest_at.max(Some(timestamp));
        match outcome {
            Outcome::Success => {
                self.newest_success = Some(timestamp);
                false
            }
            Outcome::Failure => {
                let run = self.run.get_or_insert(Streak {
                    count: 0,
                    started_at: timestamp,
                    last_failure_at: timestamp,
                    last_total_errors: total_errors,
                });
                run.count += 1;
                run.started_at = run.started_at.min(timestamp);
                true
            }
        }
    }
}

impl FailureState {
    pub fn new(device_id: DeviceId) -> Self {
        Self {
            device_id,
            last_sync_at: None,
            last_success_at: None,
            streak: None,
            alert_id: None,
            pending_notices: Vec::new(),
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.streak.as_ref().map_or(0, |s| s.count)
    }

    /// The streak's identity: it is the run after one particular success, so it keeps
    /// its id while older failures are back-filled into it.
    pub fn streak_id(&self) -> String {
        match self.last_success_at {
            Some(t) => format!("{}@{}", self.device_id, t),
            None => format!("{}@start", self.device_id),
        }
    }

    /// Decides how `event` is applied. Stream records of one device arrive in commit
    /// order, so an event newer than everything counted is new to this state; anything
    /// else is either already reflected or is re-read from the timeline.
    pub fn step(&self, event: &StoredEvent) -> Step {
        let t = event.timestamp;
        match self.last_sync_at {
            None => Step::InOrder,
            Some(last) if t > last => Step::InOrder,
            Some(last) if t == last => Step::NoChange,
            _ if self.last_success_at.is_some_and(|s| t <= s) => Step::NoChange,
            _ => Step::Recount {
                after: self.last_success_at,
            },
        }
    }

    /// The ids of the notices in the outbox: what to clear once they are published.
    pub fn pending_notice_ids(&self) -> Vec<String> {
        self.pending_notices.iter().map(|n| n.notice_id()).collect()
    }

    /// Removes the notices with these ids from the outbox; true if any was there.
    pub fn clear_notices(&mut self, notice_ids: &[String]) -> bool {
        let before = self.pending_notices.len();
        self.pending_notices
            .retain(|n| !notice_ids.contains(&n.notice_id()));
        self.pending_notices.len() != before
    }

    /// Whether the device belongs in the repeated-failures list.
    pub fn is_failing(&self, rule: StreakRule) -> bool {
        self.consecutive_failures() >= rule.threshold
    }

    /// Applies an event newer than every event counted so far ([`Step::InOrder`]).
    /// Any alert or recovery it causes is appended to `pending_notices`.
    pub fn apply_in_order(&mut self, event: &StoredEvent, rule: StreakRule, now: EventTime) {
        let t = event.timestamp;
        self.last_sync_at = Some(t);
        match event.outcome {
            Outcome::Failure => {
                let streak = self.streak.get_or_insert(Streak {
                    count: 0,
                    started_at: t,
                    last_failure_at: t,
                    last_total_errors: event.total_errors,
                });
                streak.count += 1;
                streak.last_failure_at = t;
                streak.last_total_errors = event.total_errors;
            }
            Outcome::Success => {
                let failures = self.consecutive_failures();
                self.last_success_at = Some(t);
                self.streak = None;
                self.recover(failures, t);
            }
        }
        self.maybe_alert(rule, now);
    }

    /// Replaces the run with one re-read from the timeline ([`Step::Recount`]). A late
    /// success that splits the run leaves the remaining failures; since the device's
    /// newest sync still failed, that is not a recovery.
    pub fn apply_recount(&mut self, recount: Recount, rule: StreakRule, now: EventTime) {
        let failures = self.consecutive_failures();
        self.last_sync_at = self.last_sync_at.max(recount.newest_at);
        self.last_success_at = self.last_success_at.max(recount.newest_success);
        self.streak = recount.run;
        if self.streak.is_none() {
            if let Some(success) = self.last_success_at {
                self.recover(failures, success);
            }
        }
        self.maybe_alert(rule, now);
    }

    fn recover(&mut self, failures: u32, at: EventTime) {
        if let Some(alert_id) = self.alert_id.take() {
            self.pending_notices.push(Notice::Recovered(RecoveryNotice {
                device_id: self.device_id.clone(),
                failures_before_recovery: failures,
                recovered_at: at,
                alert_id,
            }));
        }
    }

    fn maybe_alert(&mut self, rule: StreakRule, now: EventTime) {
        let Some(streak) = &self.streak else { return };
        if streak.count < rule.threshold || self.alert_id.is_some() {
            return;
        }
        let alert_id = self.streak_id();
        self.alert_id = Some(alert_id.clone());
        self.pending_notices.push(Notice::RepeatedFailures(FailureAlert {
            device_id: self.device_id.clone(),
            consecutive_failures: streak.count,
            threshold: rule.threshold,
            streak_started_at: streak.started_at,
            last_failure_at: streak.last_failure_at,
            last_total_errors: streak.last_total_errors,
            detected_at: now,
            alert_id,
        }));
    }
}

#[cfg(test)]
mod tests;
