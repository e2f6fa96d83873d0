//! The fleet's numbers: per-day sync totals (kept by detection) and device counts by
//! status (kept with each state save), read by `GET /fleet/summary`.

use super::StoreError;
use crate::domain::fleet::{Day, DayAddition, DayTotals, FleetCounts};
use async_trait::async_trait;
use std::collections::BTreeMap;

/// Adds newly applied events' figures to their days (detection, once per stream batch).
/// Adding an addition whose key was already added changes nothing, so a retry after
/// an error never counts twice.
#[async_trait]
pub trait RecordDays: Send + Sync {
    async fn add_days(&self, addition: &DayAddition) -> Result<(), StoreError>;
}

/// Reads the fleet's counts and days; the cost depends on the number of days asked
/// for, never on the number of devices or events.
#[async_trait]
pub trait ReadFleet: Send + Sync {
    async fn counts(&self) -> Result<FleetCounts, StoreError>;

    /// The stored totals of the days from `first` to `last`, inclusive (days without
    /// syncs are absent).
    async fn days(&self, first: Day, last: Day) -> Result<BTreeMap<Day, DayTotals>, StoreError>;
}
