//! Counting a device's requests against its limits ([`crate::domain::limits`]).

use crate::domain::event::DeviceId;
use crate::domain::limits::Admission;
use crate::domain::time::EventTime;
use crate::ports::StoreError;
use async_trait::async_trait;

#[async_trait]
pub trait LimitDevices: Send + Sync {
    /// Counts one request carrying `events` events for `device` at `now`, unless it
    /// would pass a limit (then nothing is counted).
    async fn admit(&self, device: &DeviceId, events: u32, now: EventTime) -> Result<Admission, StoreError>;
}
