//! The fleet's numbers: per-day sync summaries (kept by detection, for the fleet by UTC
//! day and for each school by its local day: counts, and sketches of the speeds and of
//! the devices that reported) and device counts by status (kept with each state save),
//! read by `GET /fleet/summary` and the analytics routes.

use super::{StoreError, Within};
use crate::domain::fleet::{Day, DayAddition, DayTotals, FleetCounts};
use crate::domain::time::EventTime;
use async_trait::async_trait;
use std::collections::BTreeMap;

/// Adds newly applied events' figures to their days (detection, once per stream batch,
/// at `now`). Adding an addition whose key was already added changes nothing, so a
/// retry after an error never counts twice (DynamoDB: a retry of a batch applied more
/// than a few minutes after its events were received counts once within 10 minutes).
#[async_trait]
pub trait RecordDays: Send + Sync {
    async fn add_days(&self, addition: &DayAddition, now: EventTime) -> Result<(), StoreError>;

    /// Folds additions recorded up to a while before `now` into the days they add to
    /// (the periodic check). A store that adds at once has nothing to do.
    async fn roll_up_days(&self, now: EventTime) -> Result<(), StoreError> {
        let _ = now;
        Ok(())
    }
}

/// Reads the fleet's counts and days; the cost depends on the number of days asked
/// for, never on the number of devices or events.
#[async_trait]
pub trait ReadFleet: Send + Sync {
    /// The devices by status `within` the fleet or some schools (summed).
    async fn counts(&self, within: &Within) -> Result<FleetCounts, StoreError>;

    /// The stored totals of the days from `first` to `last`, inclusive (days without
    /// syncs are absent), `within` the fleet or some schools (summed).
    async fn days(
        &self,
        first: Day,
        last: Day,
        within: &Within,
    ) -> Result<BTreeMap<Day, DayTotals>, StoreError>;
}
