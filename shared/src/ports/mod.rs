//! Ports: one small trait per use, so each handler takes only what it calls.
//!
//! | port | used by | adapters |
//! | --- | --- | --- |
//! | [`RecordEvents`] | record-sync-event(s) | SQLite, DynamoDB |
//! | [`ReadHistory`] | get-sync-history | SQLite, DynamoDB |
//! | [`DeviceStates`] | detection and the silence check ([`crate::domain`]) | SQLite, DynamoDB |
//! | [`Outbox`] | notice delivery ([`crate::domain::delivery`]) | SQLite, DynamoDB |
//! | [`SilenceWatch`] | the silence check | SQLite (an index), DynamoDB (an agenda) |
//! | [`RecordDays`] | detection: per-day totals | SQLite, DynamoDB |
//! | [`ReadFleet`] | fleet-summary | SQLite, DynamoDB |
//! | [`ReadDevices`] | get-device, list-devices | SQLite, DynamoDB |
//! | [`ListFailing`] | list-repeated-failures | SQLite, DynamoDB |
//! | [`ReadSchools`] | the schools routes, scoping | SQLite, DynamoDB |
//! | [`ManageSchools`] | put-school, delete-school | SQLite, DynamoDB |
//! | [`NoticeHistory`] | the notice history routes, the daily digest | SQLite, DynamoDB |
//! | [`DigestLedger`] | the daily digest: its once-a-day mark | SQLite, DynamoDB |
//! | [`ExportEvents`] | `pisync-local export`: every stored event | SQLite, DynamoDB |
//! | [`SendExport`] | detect-failures: applied events to the export | Firehose |
//! | [`AuditTrail`] | the admin routes, list-audit | SQLite, DynamoDB |
//! | [`CheckCredentials`] | device routes (the authenticator) | SQLite, DynamoDB |
//! | [`ManageCredentials`] | issue/revoke device credentials | SQLite, DynamoDB |
//! | [`LimitDevices`] | record-sync-event(s): per-device limits | memory locally; DynamoDB (the credentials item) |
//! | [`LoadKeys`] | token signing keys | Secrets Manager; a file locally |
//! | [`AlertPublisher`] | notice delivery | SNS; the local runner's printer and webhook queue |
//! | [`WebhookTransport`] | webhook delivery | HTTPS (reqwest) |
//! | [`DeliveryQueue`] | deliver-webhooks: retry later, dead letters | SQS |

pub mod alerts;
pub mod audit;
pub mod credentials;
pub mod devices;
pub mod digests;
mod error;
pub mod events;
pub mod export;
pub mod failing;
pub mod fleet;
pub mod keys;
pub mod limits;
pub mod notices;
pub mod outbox;
pub mod schools;
pub mod states;
pub mod watch;
pub mod webhook;

pub use alerts::{AlertPublisher, PublishError};
pub use audit::{AuditPage, AuditTrail};
pub use credentials::{CheckCredentials, DeviceCredential, Freshness, ManageCredentials};
pub use devices::{DeviceKey, DevicePage, ReadDevices};
pub use digests::DigestLedger;
pub use error::StoreError;
pub use events::{HistoryPage, HistoryQuery, Order, ReadHistory, RecordEvents, Recorded};
pub use export::{ExportEvents, ExportPage, ExportedEvent, SendExport};
pub use failing::{FailingDevice, FailingKey, FailingPage, ListFailing};
pub use fleet::{ReadFleet, RecordDays};
pub use keys::LoadKeys;
pub use limits::LimitDevices;
pub use notices::{NoticeHistory, NoticePage, NoticeQuery};
pub use outbox::{Outbox, OutboxEntry};
pub use schools::{ManageSchools, ReadSchools, SchoolDeleted, SchoolPage, SchoolPut};
pub use states::{DeviceStates, Saved, StateWrite, Versioned};
pub use watch::{DueChecks, SilenceWatch};
pub use webhook::{DeliveryQueue, WebhookTransport};

/// Which devices a read covers: the whole fleet (district operators), or the schools
/// a school-scoped operator reaches (or the one school a district operator asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Within {
    Fleet,
    Schools(Vec<crate::domain::school::SchoolId>),
}

/// One store behind every port: what the local runner and the storage contract tests
/// hold, and what each function's local constructor takes its ports from. Each adapter
/// implements every port; a function keeps only the ones it calls.
pub trait Store:
    RecordEvents
    + ReadHistory
    + ListFailing
    + ReadDevices
    + ReadFleet
    + DeviceStates
    + RecordDays
    + Outbox
    + SilenceWatch
    + ReadSchools
    + ManageSchools
    + AuditTrail
    + NoticeHistory
    + DigestLedger
    + ExportEvents
{
}

impl<S> Store for S where
    S: RecordEvents
        + ReadHistory
        + ListFailing
        + ReadDevices
        + ReadFleet
        + DeviceStates
        + RecordDays
        + Outbox
        + SilenceWatch
        + ReadSchools
        + ManageSchools
        + AuditTrail
        + NoticeHistory
        + DigestLedger
        + ExportEvents
{
}

/// Device credentials: checked on device routes, issued and revoked by operators.
pub trait Credentials: CheckCredentials + ManageCredentials {}

impl<C: CheckCredentials + ManageCredentials> Credentials for C {}

/// Adapters fetch one item more than a page holds; it is dropped and only says "more".
pub(crate) fn overfetched<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    let more = items.len() > limit;
    items.truncate(limit);
    (items, more)
}
