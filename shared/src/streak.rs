//! The consecutive-failure rule, kept incrementally per device.
//!
//! A device's current streak is the run of failed syncs after its newest successful
//! sync, in device-timestamp order. [`FailureState`] keeps just enough to update that
//! run one event at a time, in any arrival order, and to decide when to alert.

use crate::event::{DeviceId, Outcome, StoredEvent};
use crate::notice::{FailureAlert, Notice, RecoveryNotice};
use crate::time::EventTime;
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

/// The applied failures strictly after a given time: what remains of a streak when a
/// late success lands inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tail {
    pub count: u32,
    pub first_at: Option<EventTime>,
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

    /// When `event` is a success landing inside the current streak, the storage
    /// adapter must count the applied failures after this time and pass them to
    /// [`FailureState::apply`]. Every other event is decided from the state alone.
    pub fn tail_needed(&self, event: &StoredEvent) -> Option<EventTime> {
        let streak = self.streak.as_ref()?;
        let t = event.timestamp;
        let inside = event.outcome == Outcome::Success
            && self.last_success_at.is_none_or(|s| t > s)
            && t > streak.started_at
            && t < streak.last_failure_at;
        inside.then_some(t)
    }

    /// Applies one event that has not been applied before. Any alert or recovery it
    /// causes is appended to `pending_notices`.
    pub fn apply(&mut self, event: &StoredEvent, tail: Option<Tail>, rule: StreakRule, now: EventTime) {
        let t = event.timestamp;
        self.last_sync_at = self.last_sync_at.max(Some(t));
        if self.last_success_at.is_some_and(|s| t < s) {
            return; // lands before the newest success: the current run is unchanged
        }
        match event.outcome {
            Outcome::Failure => self.add_failure(event, rule, now),
            Outcome::Success => self.add_success(t, tail),
        }
    }

    fn add_failure(&mut self, event: &StoredEvent, rule: StreakRule, now: EventTime) {
        let t = event.timestamp;
        let streak_id = self.streak_id();
        let streak = self.streak.get_or_insert(Streak {
            count: 0,
            started_at: t,
            last_failure_at: t,
            last_total_errors: event.total_errors,
        });
        streak.count += 1;
        streak.started_at = streak.started_at.min(t);
        if t >= streak.last_failure_at {
            streak.last_failure_at = t;
            streak.last_total_errors = event.total_errors;
        }
        if streak.count >= rule.threshold && self.alert_id.is_none() {
            let alert_id = streak_id;
            self.alert_id = Some(alert_id.clone());
            let alert = FailureAlert {
                device_id: self.device_id.clone(),
                consecutive_failures: streak.count,
                threshold: rule.threshold,
                streak_started_at: streak.started_at,
                last_failure_at: streak.last_failure_at,
                last_total_errors: streak.last_total_errors,
                detected_at: now,
                alert_id,
            };
            self.pending_notices.push(Notice::RepeatedFailures(alert));
        }
    }

    fn add_success(&mut self, t: EventTime, tail: Option<Tail>) {
        self.last_success_at = Some(t);
        let Some(streak) = self.streak.as_mut() else {
            return;
        };
        if t < streak.started_at {
            return; // the whole run is after this success
        }
        let remaining = match tail {
            Some(tail) if t < streak.last_failure_at => tail,
            _ => Tail {
                count: 0,
                first_at: None,
            },
        };
        match remaining.first_at {
            Some(first) if remaining.count > 0 => {
                // A late success split the run: the device's newest sync still failed,
                // so the failure condition goes on and no recovery is announced.
                streak.count = remaining.count;
                streak.started_at = first;
            }
            _ => {
                let failures = streak.count;
                self.streak = None;
                if let Some(alert_id) = self.alert_id.take() {
                    self.pending_notices.push(Notice::Recovered(RecoveryNotice {
                        device_id: self.device_id.clone(),
                        failures_before_recovery: failures,
                        recovered_at: t,
                        alert_id,
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
