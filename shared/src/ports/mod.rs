//! Ports: one small trait per use, so each handler takes only what it calls.
//!
//! | port | used by | adapters |
//! | --- | --- | --- |
//! | [`RecordEvents`] | record-sync-event | SQLite, DynamoDB |
//! | [`ReadHistory`] | get-sync-history | SQLite, DynamoDB |
//! | [`DeviceStates`] | detection ([`crate::domain::detection`]) | SQLite, DynamoDB |
//! | [`ListFailing`] | list-repeated-failures | SQLite, DynamoDB |
//! | [`CheckCredentials`] | device routes (the authenticator) | SQLite, DynamoDB |
//! | [`ManageCredentials`] | issue/revoke device credentials | SQLite, DynamoDB |
//! | [`LoadKeys`] | token signing keys | Secrets Manager; a file locally |
//! | [`AlertPublisher`] | detect-failures | SNS; the local runner's printer |

pub mod alerts;
pub mod credentials;
mod error;
pub mod events;
pub mod failing;
pub mod keys;
pub mod states;

pub use alerts::{AlertPublisher, PublishError};
pub use credentials::{CheckCredentials, DeviceCredential, Freshness, ManageCredentials};
pub use error::StoreError;
pub use events::{HistoryPage, HistoryQuery, Order, ReadHistory, RecordEvents, Recorded};
pub use failing::{FailingDevice, FailingKey, FailingPage, ListFailing};
pub use keys::LoadKeys;
pub use states::{DeviceStates, Saved, Versioned};

/// Adapters fetch one item more than a page holds; it is dropped and only says "more".
pub(crate) fn overfetched<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    let more = items.len() > limit;
    items.truncate(limit);
    (items, more)
}
