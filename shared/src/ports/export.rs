//! Every stored event for the data team's export: read page by page from a store
//! (`pisync-local export`), or sent on by the stream consumer as it applies them (AWS:
//! to Firehose, which writes them to S3 as Parquet).

use super::StoreError;
use crate::domain::event::StoredEvent;
use crate::domain::school::SchoolId;
use crate::domain::time::EventTime;
use async_trait::async_trait;

/// A stored event and the school it counts in.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportedEvent {
    pub event: StoredEvent,
    /// The device's school when the event was stored (the embedded store; rows stored
    /// before it kept one, and DynamoDB's items: its school now).
    pub school_id: Option<SchoolId>,
}

/// One page of the export; `next` resumes after it (`None`: nothing more).
#[derive(Clone, Debug, PartialEq)]
pub struct ExportPage {
    pub events: Vec<ExportedEvent>,
    pub next: Option<String>,
}

#[async_trait]
pub trait ExportEvents: Send + Sync {
    /// The stored events received from `from` (inclusive) to `until` (exclusive), in
    /// no particular order, after the page `after` ended; at most about `limit` rows
    /// read per page.
    async fn export_page(
        &self,
        from: EventTime,
        until: EventTime,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ExportPage, StoreError>;
}

/// Sends applied events on to the export (detect-failures, in AWS).
#[async_trait]
pub trait SendExport: Send + Sync {
    /// Sends every one of `events`, retrying what is refused a few times; an error
    /// means some may not have been sent (the caller has the batch delivered again).
    async fn send(&self, events: &[ExportedEvent]) -> Result<(), StoreError>;
}
