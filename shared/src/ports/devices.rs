//! Reading devices: one device's state, and the fleet list by status.

use super::{overfetched, StoreError, Within};
use crate::domain::device::{DeviceState, Status};
use crate::domain::event::DeviceId;
use crate::domain::time::EventTime;
use async_trait::async_trait;

/// Position in a device list, in that list's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceKey {
    /// All devices and healthy ones: by device id.
    Id(DeviceId),
    /// Failing devices: longest streak first, then device id.
    Streak {
        consecutive_failures: u32,
        device_id: DeviceId,
    },
    /// Silent devices: longest silence (oldest last report) first, then device id.
    Silence {
        last_seen_at: EventTime,
        device_id: DeviceId,
    },
}

impl DeviceKey {
    /// The key of `state` in the list of `status` (`None`: all devices).
    pub fn of(status: Option<Status>, state: &DeviceState) -> Self {
        let device_id = state.device_id.clone();
        match status {
            Some(Status::Failing) => DeviceKey::Streak {
                consecutive_failures: state.consecutive_failures(),
                device_id,
            },
            Some(Status::Silent) => DeviceKey::Silence {
                last_seen_at: state
                    .silent_since
                    .or(state.last_seen_at)
                    .unwrap_or(EventTime::EPOCH),
                device_id,
            },
            Some(Status::Healthy) | None => DeviceKey::Id(device_id),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DevicePage {
    pub devices: Vec<DeviceState>,
    pub more: bool,
}

impl DevicePage {
    /// A page from up to `limit + 1` devices fetched in list order.
    pub fn from_overfetch(devices: Vec<DeviceState>, limit: usize) -> Self {
        let (devices, more) = overfetched(devices, limit);
        Self { devices, more }
    }
}

#[async_trait]
pub trait ReadDevices: Send + Sync {
    /// The device's state; `None` for a device that never reported.
    async fn device(&self, device: &DeviceId) -> Result<Option<DeviceState>, StoreError>;

    /// Devices with `status` (`None`: all) `within` the fleet or some schools, in
    /// that list's order, resuming strictly after `after`. Reads what the page
    /// returns (through an index per school), never the event log or other schools.
    async fn devices(
        &self,
        status: Option<Status>,
        limit: usize,
        after: Option<&DeviceKey>,
        within: &Within,
    ) -> Result<DevicePage, StoreError>;
}
