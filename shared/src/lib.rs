//! PiSync's shared library, in layers a reader can see:
//!
//! - [`domain`]: the sync event, its validation, what PiSync keeps of each device
//!   (streak, status, totals, silence), the notices that decides and how they read,
//!   and the sequences that apply it (load state, apply, save). No AWS, no HTTP.
//! - [`ports`]: one small trait per use (record events, read history, keep device
//!   state, list failing devices, publish notices), and the store's typed errors.
//! - [`auth`]: tokens, signing keys and who may call which route; no AWS, no HTTP.
//! - [`http`]: the one HTTP seam (route table, request → caller + route + body limit),
//!   replies in the one error shape, query parsing and signed cursors.
//! - [`adapters`]: the ports' implementations, each behind a feature so a Lambda links
//!   only what it calls (SQLite for the local runner, DynamoDB and SNS in AWS).
//! - [`function`]: what each function crate exposes (a handler with two
//!   constructors: from AWS, from the local stores); [`lambda`] runs one in Lambda.
//! - [`config`]: one typed configuration per process, read once at start.
//! - [`metrics`]: what the API, detection and delivery did, through the `metrics` facade.
//! - [`throttle`]: "at most once per interval" for work a hot path starts.

pub mod adapters;
pub mod auth;
pub mod config;
pub mod digest;
pub mod domain;
pub mod function;
pub mod http;
pub mod lambda;
pub mod logging;
pub mod metrics;
pub mod ports;
pub mod throttle;

#[cfg(feature = "test-util")]
pub mod test_util;

pub use domain::event::{DeviceId, Outcome, StoredEvent, SyncEvent};
pub use domain::time::EventTime;
