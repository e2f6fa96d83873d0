//! The repeated-failures list: devices whose current streak reaches the threshold.

use super::{overfetched, StoreError, Within};
use crate::domain::device::DeviceState;
use crate::domain::event::DeviceId;
use crate::domain::time::EventTime;
use async_trait::async_trait;
use serde::Serialize;

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
    pub fn from_state(state: &DeviceState) -> Option<Self> {
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

/// Lists the devices detection saved as failing (see [`super::DeviceStates::save`]).
#[async_trait]
pub trait ListFailing: Send + Sync {
    /// Failing devices, longest streak first, then by device id; resumes strictly
    /// after `after`. Reads only failing devices, never the event log.
    async fn repeated_failures(
        &self,
        limit: usize,
        after: Option<&FailingKey>,
        within: &Within,
    ) -> Result<FailingPage, StoreError>;
}
