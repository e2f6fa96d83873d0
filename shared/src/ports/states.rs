//! Per-device state: what detection and the silence check load and save. The
//! sequence (load, apply, save with a version check, again on a lost race) is the
//! domain's ([`crate::domain::detection`], [`crate::domain::sweep`]); adapters only
//! load, save and count a window of the timeline.

use super::StoreError;
use crate::domain::device::{DeviceState, Status};
use crate::domain::event::DeviceId;
use crate::domain::fleet::{CountChange, DayAddition};
use crate::domain::notice::Decided;
use crate::domain::school::{School, SchoolId};
use crate::domain::streak::{RunCount, RunWindow};
use crate::domain::time::EventTime;
use async_trait::async_trait;

/// A loaded state and the version it was saved with (optimistic concurrency).
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned {
    pub state: DeviceState,
    /// Increases by one with every save; a state never saved has version 0.
    pub version: u64,
}

/// Whether a conditional save went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    Written,
    /// Another writer saved the device's state since it was loaded: load again.
    Stale,
    /// The school the save required ([`StateWrite::requires_school`]) does not exist
    /// (it was deleted meanwhile): nothing was written.
    NoSuchSchool,
}

/// One save: the state and everything that must change with it, all or nothing.
#[derive(Clone, Debug)]
pub struct StateWrite<'a> {
    pub state: &'a DeviceState,
    /// The version loaded (0: none stored); the save happens only if it is still so.
    pub expected: u64,
    /// Where `GET /devices` lists the device (`None`: in no list, never having
    /// reported).
    pub status: Option<Status>,
    /// Whether `GET /devices/repeated-failures` lists it (silent or not).
    pub failing: bool,
    /// Notices decided by this change: all enter the history ([`super::NoticeHistory`]),
    /// the published ones the outbox ([`super::Outbox`]).
    pub notices: &'a [Decided],
    /// The changes to the fleet's and the schools' device counts.
    pub counts: Vec<CountChange>,
    /// The school that must exist for the save to happen (an assignment to it).
    pub requires_school: Option<&'a SchoolId>,
    /// Check the device for silence at this time ([`super::SilenceWatch`]).
    pub watch_at: Option<EventTime>,
    /// When the change was decided (orders the outbox).
    pub now: EventTime,
    /// The day totals of the events this change applied, for a store that adds them in
    /// the same write ([`DeviceStates::adds_days_with_state`]); `None` otherwise.
    pub days: Option<&'a DayAddition>,
}

#[async_trait]
pub trait DeviceStates: Send + Sync {
    async fn load(&self, device: &DeviceId) -> Result<Option<Versioned>, StoreError>;

    /// Whether a save adds its [`StateWrite::days`] in the same write. The embedded
    /// store does (one commit per batch instead of two); DynamoDB does not, and gets
    /// one addition per stream batch through [`super::RecordDays`] (one write for the
    /// batch instead of one per device).
    fn adds_days_with_state(&self) -> bool {
        false
    }

    /// Like [`DeviceStates::load`], but the state may be a moment old (on DynamoDB an
    /// eventually consistent read, half the price). Safe before a save: a save against
    /// an old version fails its check, and the caller loads again with `load`.
    async fn load_recent(&self, device: &DeviceId) -> Result<Option<Versioned>, StoreError> {
        self.load(device).await
    }

    /// Writes `write` if the stored version is still `write.expected`.
    async fn save(&self, write: &StateWrite<'_>) -> Result<Saved, StoreError>;

    /// The settings of a device's school (its threshold, hours and closures), as
    /// detection and the periodic check apply them; adapters may keep them for a minute
    /// (a school's new settings apply from each device's next event).
    async fn school(&self, school: &SchoolId) -> Result<Option<School>, StoreError>;

    /// Counts the device's stored failures in `window` (see [`RunWindow`]), oldest
    /// first, reading at most one page (DynamoDB's 1 MB; a bounded number of rows
    /// locally): [`RunCount::read_through`] says where the next page starts.
    async fn count_run(&self, device: &DeviceId, window: RunWindow) -> Result<RunCount, StoreError>;
}
