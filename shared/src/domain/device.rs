//! What PiSync knows of one device, kept from its stored reports: when it was seen,
//! its newest sync, success and failure, its current failure streak, its totals and
//! whether it went silent — and the rules that change it, one new event at a time.
//!
//! Each stored event is applied exactly once ([`crate::domain::applied`]). Everything
//! here is O(1) per event except a late success inside the current run, which needs
//! the store to count the failures after it ([`RunWindow`]), and a late failure inside
//! a stretch of the run that was counted that way (it may already be in the count).

use crate::domain::applied::Applied;
use crate::domain::event::{DeviceId, Outcome, StoredEvent};
use crate::domain::notice::{
    BackOnlineNotice, Decided, FailureAlert, FlappingNotice, Notice, RecoveryNotice, StableNotice, Withheld,
};
use crate::domain::school::SchoolId;
use crate::domain::streak::{PendingCount, RunCount, RunWindow, Streak, StreakRule};
use crate::domain::time::EventTime;
use serde::{Deserialize, Serialize};

/// A device's health as operators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Failing,
    Silent,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Healthy, Status::Failing, Status::Silent];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Failing => "failing",
            Status::Silent => "silent",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Counts over every stored report of a device (replays are not stored, so never count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    pub syncs: u64,
    pub failures: u64,
    pub files_synced: u64,
    pub errors: u64,
}

/// The per-device state detection keeps. Stored as JSON in one item per device, kept
/// small (absent values are left out) so that a save usually costs one write unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    pub device_id: DeviceId,
    /// Server time of the first and of the newest stored report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen_at: Option<EventTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<EventTime>,
    /// Device time of the newest sync, success and failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<EventTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<EventTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<EventTime>,
    /// `internet_speed` of the newest sync (device time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_internet_speed: Option<f64>,
    #[serde(default)]
    pub totals: Totals,
    /// Failures with a timestamp after `last_success_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streak: Option<Streak>,
    /// The `alert_id` of the alert sent for the current failure condition; cleared
    /// by the success that ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    /// Why that alert was recorded but not published; its recovery follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_withheld: Option<Withheld>,
    /// Received times of the device's recent news alerts, within the flap window (fewer
    /// than the flap count: reaching it makes the device flapping).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_alerts: Vec<EventTime>,
    /// Set while the device is flapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping: Option<Flapping>,
    /// Set when the device was found silent: its `last_seen_at` then. Cleared by its
    /// next report, which sends `device.back_online`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_since: Option<EventTime>,
    /// The run's count came from the store up to this device timestamp: a late failure
    /// at or before it may already be counted, so it is counted again, not added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_through: Option<EventTime>,
    /// A count of the run in progress (a late success inside a long run), continued
    /// page by page by the next batches and the periodic check. Meanwhile the run keeps
    /// its earlier figures and decides no alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counting: Option<PendingCount>,
    #[serde(default)]
    pub applied: Applied,
    /// The school the device is assigned to (operators assign it; a device need not
    /// have reported). Its threshold and hours apply from the device's next event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school_id: Option<SchoolId>,
    /// The failure threshold the state was last saved with (its school's, else the
    /// fleet's); 0 in a state from before schools: the fleet's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub threshold: u32,
}

/// A flapping device: its alerts and recoveries are held until a whole flap window
/// passes without an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flapping {
    /// The `device.flapping` notice's, which the `device.stable` one repeats.
    pub alert_id: String,
    /// Received time of its latest alert.
    pub last_alert_at: EventTime,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `GET /device/{id}` and each item of `GET /devices`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceStatus {
    pub device_id: DeviceId,
    pub school_id: Option<SchoolId>,
    pub status: Status,
    pub first_seen_at: Option<EventTime>,
    pub last_seen_at: Option<EventTime>,
    pub last_sync_at: Option<EventTime>,
    pub last_success_at: Option<EventTime>,
    pub last_failure_at: Option<EventTime>,
    pub consecutive_failures: u32,
    pub streak_started_at: Option<EventTime>,
    /// `total_errors` of the newest failure of the current streak.
    pub last_total_errors: Option<u32>,
    pub last_internet_speed: Option<f64>,
    pub totals: Totals,
}

impl DeviceState {
    pub fn new(device_id: DeviceId) -> Self {
        Self {
            device_id,
            first_seen_at: None,
            last_seen_at: None,
            last_sync_at: None,
            last_success_at: None,
            last_failure_at: None,
            last_internet_speed: None,
            totals: Totals::default(),
            streak: None,
            alert_id: None,
            alert_withheld: None,
            recent_alerts: Vec::new(),
            flapping: None,
            silent_since: None,
            counted_through: None,
            counting: None,
            applied: Applied::default(),
            school_id: None,
            threshold: 0,
        }
    }

    /// The rule the state was saved with: its own threshold, else `fleet`'s.
    pub fn rule(&self, fleet: StreakRule) -> StreakRule {
        match self.threshold {
            0 => fleet,
            threshold => StreakRule { threshold, ..fleet },
        }
    }

    /// Whether the device has reported: a device assigned to a school before its first
    /// report has a state, but is in no list and no count.
    pub fn seen(&self) -> bool {
        self.last_seen_at.is_some()
    }

    /// The status the lists and counts hold it under (`None`: never seen).
    pub fn listed_status(&self, fleet: StreakRule) -> Option<Status> {
        self.seen().then(|| self.status(fleet))
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.streak.as_ref().map_or(0, |s| s.count)
    }

    /// Whether the device belongs in the repeated-failures list (silent or not), by the
    /// threshold it was saved with (else `fleet`'s).
    pub fn is_failing(&self, fleet: StreakRule) -> bool {
        self.consecutive_failures() >= self.rule(fleet).threshold
    }

    /// A device both failing and silent is silent.
    pub fn status(&self, rule: StreakRule) -> Status {
        if self.silent_since.is_some() {
            Status::Silent
        } else if self.is_failing(rule) {
            Status::Failing
        } else {
            Status::Healthy
        }
    }

    pub fn view(&self, rule: StreakRule) -> DeviceStatus {
        DeviceStatus {
            device_id: self.device_id.clone(),
            school_id: self.school_id.clone(),
            status: self.status(rule),
            first_seen_at: self.first_seen_at,
            last_seen_at: self.last_seen_at,
            last_sync_at: self.last_sync_at,
            last_success_at: self.last_success_at,
            last_failure_at: self.last_failure_at,
            consecutive_failures: self.consecutive_failures(),
            streak_started_at: self.streak.as_ref().map(|s| s.started_at),
            last_total_errors: self.streak.as_ref().map(|s| s.last_total_errors),
            last_internet_speed: self.last_internet_speed,
            totals: self.totals,
        }
    }

    /// The streak's identity: it is the run after one particular success, so it keeps
    /// its id while older failures are back-filled into it.
    pub fn streak_id(&self) -> String {
        match self.last_success_at {
            Some(t) => format!("{}@{}", self.device_id, t),
            None => format!("{}@start", self.device_id),
        }
    }

    /// Applies an event not applied before. Notices it decides are appended to
    /// `notices`. Returns the window of the timeline whose failures the store must
    /// count when the run cannot be known from the state alone; pass the count to
    /// [`DeviceState::apply_count`].
    pub fn apply(
        &mut self,
        e: &StoredEvent,
        rule: StreakRule,
        now: EventTime,
        notices: &mut Vec<Decided>,
    ) -> Option<RunWindow> {
        self.first_seen_at = Some(self.first_seen_at.map_or(e.received_at, |t| t.min(e.received_at)));
        self.last_seen_at = Some(self.last_seen_at.map_or(e.received_at, |t| t.max(e.received_at)));
        if let Some(silent_since) = self.silent_since.take() {
            notices.push(Decided::published(Notice::BackOnline(BackOnlineNotice {
                device_id: self.device_id.clone(),
                school_id: self.school_id.clone(),
                silent_since,
                back_at: e.received_at,
                alert_id: silence_id(&self.device_id, silent_since),
            })));
        }
        self.count_totals(e);
        let t = e.timestamp;
        let failed = e.outcome == Outcome::Failure;
        let fresh = failed && rule.is_fresh(t, e.received_at);
        if failed {
            self.last_failure_at = self.last_failure_at.max(Some(t));
        }
        let newest = self.last_sync_at.is_none_or(|last| t > last);
        if newest {
            self.last_sync_at = Some(t);
            self.last_internet_speed = Some(e.internet_speed);
            if failed {
                match &mut self.streak {
                    Some(run) => run.extend(t, e.total_errors, fresh),
                    None => self.streak = Some(Streak::first(t, e.total_errors, fresh)),
                }
                if let Some(count) = &mut self.counting {
                    count.window.through = t; // stored already: the count will reach it
                }
            } else {
                let failures = self.consecutive_failures();
                self.last_success_at = Some(t);
                self.streak = None;
                self.counted_through = None;
                self.counting = None;
                self.recover(failures, t, notices);
            }
            self.maybe_alert(rule, now, notices);
            return None;
        }
        if self.last_success_at.is_some_and(|s| t < s) {
            // Older than the newest success: the current run does not change.
            return None;
        }
        let through = self.last_sync_at.unwrap_or(t);
        if !failed {
            // A late success inside the run: only the failures after it remain. The
            // newest sync still failed, so this is not a recovery.
            self.last_success_at = Some(t);
            return Some(RunWindow {
                after: Some(t),
                through,
            });
        }
        if let Some(count) = &self.counting {
            // Ahead of the count in progress, it will be counted (it is stored); where
            // the count has read, it may or may not be in it: count again.
            return count.has_read(t).then_some(RunWindow {
                after: self.last_success_at,
                through,
            });
        }
        if self.counted_through.is_some_and(|c| t <= c) {
            return Some(RunWindow {
                after: self.last_success_at,
                through,
            });
        }
        match &mut self.streak {
            Some(run) => run.back_fill(t, fresh),
            None => self.streak = Some(Streak::first(t, e.total_errors, fresh)),
        }
        self.maybe_alert(rule, now, notices);
        None
    }

    /// Starts counting the failures in `window` (replacing a count in progress):
    /// continue with [`DeviceState::add_count_page`].
    pub fn start_count(&mut self, window: RunWindow) {
        self.counting = Some(PendingCount::new(window));
    }

    /// What the count in progress must read next.
    pub fn count_to_read(&self) -> Option<RunWindow> {
        self.counting.as_ref().map(PendingCount::rest)
    }

    /// Adds a page of the count in progress; once the window is counted, the run is
    /// set from it.
    pub fn add_count_page(
        &mut self,
        page: RunCount,
        rule: StreakRule,
        now: EventTime,
        notices: &mut Vec<Decided>,
    ) {
        let Some(count) = &mut self.counting else { return };
        if let Some(total) = count.add(page) {
            let window = count.window;
            self.counting = None;
            self.apply_count(window, total, rule, now, notices);
        }
    }

    /// Sets the run from the store's count of `window`'s failures.
    fn apply_count(
        &mut self,
        window: RunWindow,
        count: RunCount,
        rule: StreakRule,
        now: EventTime,
        notices: &mut Vec<Decided>,
    ) {
        self.counted_through = Some(window.through);
        self.streak = match (count.first_failure, self.streak.take()) {
            (Some(first), Some(run)) if count.failures > 0 => Some(Streak {
                count: count.failures,
                started_at: first,
                ..run
            }),
            (Some(first), None) if count.failures > 0 => Some(Streak {
                count: count.failures,
                started_at: first,
                last_failure_at: self.last_failure_at.unwrap_or(first),
                last_total_errors: 0,
                // What the count read says nothing of when its failures arrived.
                fresh: false,
            }),
            // Nothing left to count (the events expired under retention).
            _ => None,
        };
        self.maybe_alert(rule, now, notices);
    }

    fn count_totals(&mut self, e: &StoredEvent) {
        let totals = &mut self.totals;
        totals.syncs += 1;
        totals.files_synced += u64::from(e.total_files_synced);
        totals.errors += u64::from(e.total_errors);
        if e.outcome == Outcome::Failure {
            totals.failures += 1;
        }
    }

    /// A recovery is published exactly when its alert was.
    fn recover(&mut self, failures: u32, at: EventTime, notices: &mut Vec<Decided>) {
        let withheld = self.alert_withheld.take();
        if let Some(alert_id) = self.alert_id.take() {
            let notice = Notice::Recovered(RecoveryNotice {
                device_id: self.device_id.clone(),
                school_id: self.school_id.clone(),
                failures_before_recovery: failures,
                recovered_at: at,
                alert_id,
            });
            notices.push(Decided { notice, withheld });
        }
    }

    /// Decides the alert of a run at the threshold: published if the run is news,
    /// else recorded as stale — and published after all once a fresh failure joins
    /// the run, so the outcome depends on the run's failures, not on their order.
    fn maybe_alert(&mut self, rule: StreakRule, now: EventTime, notices: &mut Vec<Decided>) {
        if self.counting.is_some() {
            return; // the run's figures are provisional until the count ends
        }
        let Some(streak) = &self.streak else { return };
        if streak.count < rule.threshold {
            return;
        }
        let news_at_last = self.alert_withheld == Some(Withheld::Stale) && streak.fresh;
        if self.alert_id.is_some() && !news_at_last {
            return;
        }
        let alert_id = self.alert_id.clone().unwrap_or_else(|| self.streak_id());
        self.alert_id = Some(alert_id.clone());
        let notice = Notice::RepeatedFailures(FailureAlert {
            device_id: self.device_id.clone(),
            school_id: self.school_id.clone(),
            consecutive_failures: streak.count,
            threshold: rule.threshold,
            streak_started_at: streak.started_at,
            last_failure_at: streak.last_failure_at,
            last_total_errors: streak.last_total_errors,
            detected_at: now,
            alert_id,
        });
        if !streak.fresh {
            self.alert_withheld = Some(Withheld::Stale);
            notices.push(Decided::held(notice, Withheld::Stale));
            return;
        }
        // Flapping is judged by when PiSync learnt of each alert (received time).
        let at = self.last_seen_at.unwrap_or(now);
        let flapping = self.count_alert(at, rule, now);
        let withheld = (self.flapping.is_some()).then_some(Withheld::Flapping);
        self.alert_withheld = withheld;
        notices.push(Decided { notice, withheld });
        if let Some(flapping) = flapping {
            notices.push(Decided::published(flapping));
        }
    }

    /// Counts a news alert received at `at`: the `device.flapping` notice that replaces
    /// it if it reaches the flap count within the window.
    fn count_alert(&mut self, at: EventTime, rule: StreakRule, now: EventTime) -> Option<Notice> {
        if let Some(flapping) = &mut self.flapping {
            flapping.last_alert_at = flapping.last_alert_at.max(at);
            return None;
        }
        let window = rule.flap_window_millis();
        self.recent_alerts
            .retain(|t| at.millis().saturating_sub(t.millis()) < window);
        self.recent_alerts.push(at);
        let alerts_in_window = u32::try_from(self.recent_alerts.len()).unwrap_or(u32::MAX);
        if alerts_in_window < rule.flap_count {
            return None;
        }
        self.recent_alerts.clear();
        let alert_id = format!("{}@flapping@{at}", self.device_id);
        self.flapping = Some(Flapping {
            alert_id: alert_id.clone(),
            last_alert_at: at,
        });
        Some(Notice::Flapping(FlappingNotice {
            device_id: self.device_id.clone(),
            school_id: self.school_id.clone(),
            alerts_in_window,
            window_seconds: rule.flap_window.as_secs(),
            detected_at: now,
            alert_id,
        }))
    }

    /// When a flapping device becomes stable: a whole flap window after its latest alert.
    pub fn stable_at(&self, rule: StreakRule) -> Option<EventTime> {
        let flapping = self.flapping.as_ref()?;
        Some(flapping.last_alert_at.plus_millis(rule.flap_window_millis()))
    }

    /// The periodic check: a flapping device without an alert for a whole window is
    /// stable again (one `device.stable`), and its alerts are published again.
    pub fn check_stable(&mut self, rule: StreakRule, now: EventTime) -> Option<Notice> {
        if self.stable_at(rule)? > now {
            return None;
        }
        let flapping = self.flapping.take()?;
        Some(Notice::Stable(StableNotice {
            device_id: self.device_id.clone(),
            school_id: self.school_id.clone(),
            stable_since: flapping.last_alert_at,
            detected_at: now,
            alert_id: flapping.alert_id,
        }))
    }
}

/// The `alert_id` of a silence: the device and the report it went quiet after.
pub fn silence_id(device: &DeviceId, last_seen_at: EventTime) -> String {
    format!("{device}@silent@{last_seen_at}")
}

#[cfg(test)]
mod tests;
