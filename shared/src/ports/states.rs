//! Per-device failure state: what detection loads and saves. The sequence (load,
//! step, apply, save with a version check, retry on a lost race) is the domain's,
//! in [`crate::domain::detection`]; adapters only load, save and re-read a run.

use super::StoreError;
use crate::domain::event::DeviceId;
use crate::domain::streak::{FailureState, Recount};
use crate::domain::time::EventTime;
use async_trait::async_trait;

/// A loaded state and the version it was saved with (optimistic concurrency).
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned {
    pub state: FailureState,
    /// Increases by one with every save; a state never saved has version 0.
    pub version: u64,
}

/// Whether a conditional save went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    Written,
    /// Another writer saved the device's state since it was loaded: load again.
    Stale,
}

#[async_trait]
pub trait DeviceStates: Send + Sync {
    async fn load(&self, device: &DeviceId) -> Result<Option<Versioned>, StoreError>;

    /// Saves `state` as version `expected + 1` if the stored version is still
    /// `expected` (0: none stored). `failing` says whether the device belongs in the
    /// repeated-failures list ([`super::ListFailing`]).
    async fn save(&self, state: &FailureState, expected: u64, failing: bool) -> Result<Saved, StoreError>;

    /// The device's current run read back from its stored events newer than `after`,
    /// newest first, up to the first success (see [`Recount::push`]).
    async fn recount(&self, device: &DeviceId, after: Option<EventTime>) -> Result<Recount, StoreError>;
}
