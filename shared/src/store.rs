//! Storage ports. Adapters: SQLite (embedded, local) and DynamoDB (production).

use crate::event::{DeviceId, StoredEvent};
use crate::streak::{FailureState, StreakRule};
use crate::time::EventTime;
use async_trait::async_trait;
use serde::Serialize;
use std::fmt;

/// What happened to a reported event.
#[derive(Clone, Debug, PartialEq)]
pub enum Recorded {
    /// Stored now.
    Created(StoredEvent),
    /// Already stored with the same figures; nothing written. Holds the stored copy.
    Replayed(StoredEvent),
    /// Another event with the same identity but different figures is stored.
    Conflict(StoredEvent),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Newest first.
    Desc,
    Asc,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Desc => "desc",
            Order::Asc => "asc",
        }
    }
}

/// One page of a device's history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryQuery {
    /// Inclusive bounds on the device timestamp.
    pub from: Option<EventTime>,
    pub to: Option<EventTime>,
    pub order: Order,
    pub limit: usize,
    /// Resume strictly after this timestamp (in `order`).
    pub after: Option<EventTime>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HistoryPage {
    pub events: Vec<StoredEvent>,
    /// More events match after the last one returned.
    pub more: bool,
}

impl HistoryPage {
    /// A page from up to `limit + 1` events fetched in order: an extra one only tells
    /// that more follow.
    pub fn from_overfetch(events: Vec<StoredEvent>, limit: usize) -> Self {
        let (events, more) = overfetched(events, limit);
        Self { events, more }
    }
}

/// Adapters fetch one item more than a page holds; it is dropped and only says "more".
fn overfetched<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    let more = items.len() > limit;
    items.truncate(limit);
    (items, more)
}

/// A device in the repeated-failures list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailingDevice {
    pub device_id: DeviceId,
    pub consecutive_failures: u32,
    pub streak_started_at: EventTime,
    pub last_failure_at: EventTime,
    pub last_sync_at: EventTime,
}

impl FailingDevice {
    pub fn from_state(state: &FailureState) -> Option<Self> {
        let streak = state.streak.as_ref()?;
        Some(Self {
            device_id: state.device_id.clone(),
            consecutive_failures: streak.count,
            streak_started_at: streak.started_at,
            last_failure_at: streak.last_failure_at,
            last_sync_at: state.last_sync_at.unwrap_or(streak.last_failure_at),
        })
    }

    pub fn key(&self) -> FailingKey {
        FailingKey {
            consecutive_failures: self.consecutive_failures,
            device_id: self.device_id.clone(),
        }
    }
}

/// Position in the repeated-failures list: longest streak first, then device id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailingKey {
    pub consecutive_failures: u32,
    pub device_id: DeviceId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FailingPage {
    pub devices: Vec<FailingDevice>,
    pub more: bool,
}

impl FailingPage {
    /// A page from up to `limit + 1` devices fetched in list order.
    pub fn from_overfetch(devices: Vec<FailingDevice>, limit: usize) -> Self {
        let (devices, more) = overfetched(devices, limit);
        Self { devices, more }
    }
}

/// The result of applying one event to its device's failure state.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// False when the state already reflected the event (a redelivered record, or an
    /// event older than the newest success): nothing was written.
    pub newly_applied: bool,
    /// The state afterwards, with any notices still to publish.
    pub state: FailureState,
}

#[derive(Debug)]
pub enum StoreError {
    /// The backing store is unreachable, throttled or failed; the caller may retry.
    Unavailable(String),
    /// Stored data could not be read back: a bug or manual tampering.
    Corrupt(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "store unavailable: {m}"),
            StoreError::Corrupt(m) => write!(f, "stored data unreadable: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The event log: record events and read a device's history.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Stores the event unless its identity is taken; durable when this returns `Ok`.
    async fn record(&self, event: StoredEvent) -> Result<Recorded, StoreError>;

    async fn history(&self, device: &DeviceId, query: &HistoryQuery) -> Result<HistoryPage, StoreError>;

    /// True when the device has at least one stored event.
    async fn device_exists(&self, device: &DeviceId) -> Result<bool, StoreError>;
}

/// Per-device failure state, kept by the detector and read by the failures list.
#[async_trait]
pub trait FailureStates: Send + Sync {
    /// The rule this store applies; its threshold also decides list membership.
    fn rule(&self) -> StreakRule;

    /// Applies a stored event to its device's state (see [`crate::streak`]). The new
    /// state is written only if it changed, with a version check; applying the same
    /// event again changes nothing and returns `newly_applied: false`.
    async fn apply(&self, event: &StoredEvent, now: EventTime) -> Result<Applied, StoreError>;

    /// Removes published notices (by [`crate::notice::Notice::notice_id`]) from the outbox.
    async fn clear_notices(&self, device: &DeviceId, notice_ids: &[String]) -> Result<(), StoreError>;

    async fn state(&self, device: &DeviceId) -> Result<Option<FailureState>, StoreError>;

    /// Devices whose current streak is at least the threshold, longest first, then by
    /// device id; resumes strictly after `after`.
    async fn repeated_failures(
        &self,
        limit: usize,
        after: Option<&FailingKey>,
    ) -> Result<FailingPage, StoreError>;
}
