//! The domain: what a sync event is, which ones are valid, what PiSync keeps of each
//! device (streak, status, totals, silence), which notices that decides, and the
//! sequences that apply it (load, apply, save). Nothing here knows of AWS or HTTP.

pub mod analytics;
pub mod applied;
pub mod assignment;
pub mod audit;
pub mod delivery;
pub mod detection;
pub mod device;
pub mod event;
pub mod fleet;
pub mod limits;
pub mod notice;
pub mod school;
pub mod school_digest;
pub mod silence;
pub mod sketch;
pub mod streak;
pub mod sweep;
pub mod time;
pub mod validate;
pub mod webhook;
