//! PiSync's shared library: the domain (sync events, validation, the streak rule),
//! the ports (storage, alerts), the HTTP plumbing every endpoint uses, and the
//! adapters, each behind a feature so a Lambda links only what it calls.

pub mod alerts;
pub mod config;
pub mod cursor;
pub mod event;
pub mod http;
pub mod notice;
pub mod store;
pub mod streak;
pub mod time;
pub mod validate;

pub mod adapters;

pub use event::{DeviceId, Outcome, StoredEvent, SyncEvent};
pub use time::EventTime;
