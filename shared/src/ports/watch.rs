//! Which devices the silence check must look at, without reading every device.

use super::StoreError;
use crate::domain::event::DeviceId;
use crate::domain::time::EventTime;
use async_trait::async_trait;

/// Devices due for a silence check, and how to say they were checked.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DueChecks {
    pub devices: Vec<DeviceId>,
    /// Pass to [`SilenceWatch::checked`] once every device above was checked.
    pub mark: Option<i64>,
}

#[async_trait]
pub trait SilenceWatch: Send + Sync {
    /// At most `limit` devices whose check is due at `now` (each device's next check
    /// time was computed, on its own clock, when it reported or was last checked).
    async fn due(&self, now: EventTime, limit: usize) -> Result<DueChecks, StoreError>;

    /// Check `device` again at `at`.
    async fn recheck(&self, device: &DeviceId, at: EventTime) -> Result<(), StoreError>;

    /// Every device [`SilenceWatch::due`] returned with `mark` was checked.
    async fn checked(&self, mark: i64) -> Result<(), StoreError>;
}
