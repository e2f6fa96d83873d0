//! The domain: what a sync event is, which ones are valid, how consecutive failures
//! are counted and which notices that decides. Nothing here knows of AWS or HTTP.

pub mod detection;
pub mod event;
pub mod notice;
pub mod streak;
pub mod time;
pub mod validate;
