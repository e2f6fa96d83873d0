//! Every stored event, page by page, for the data team's export (`pisync-local export`;
//! in AWS the stream consumer sends them to Firehose instead).

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
