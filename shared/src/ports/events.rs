//! The event log: recording events, reading a device's history.

use super::{overfetched, StoreError};
use crate::domain::event::{DeviceId, StoredEvent};
use crate::domain::time::EventTime;
use async_trait::async_trait;

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

/// Stores events exactly once.
#[async_trait]
pub trait RecordEvents: Send + Sync {
    /// Stores the event unless its identity is taken; durable when this returns `Ok`.
    async fn record(&self, event: StoredEvent) -> Result<Recorded, StoreError>;

    /// Stores each event as [`RecordEvents::record`] would, answering in order. The
    /// events have distinct identities (the caller settles duplicates); one event's
    /// failure never affects another's. Stores override this to write concurrently.
    async fn record_many(&self, events: Vec<StoredEvent>) -> Vec<Result<Recorded, StoreError>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            outcomes.push(self.record(event).await);
        }
        outcomes
    }
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

/// Reads a device's stored events.
#[async_trait]
pub trait ReadHistory: Send + Sync {
    async fn history(&self, device: &DeviceId, query: &HistoryQuery) -> Result<HistoryPage, StoreError>;

    /// True when the device has at least one stored event.
    async fn device_exists(&self, device: &DeviceId) -> Result<bool, StoreError>;
}
