//! The audit trail's store ([`crate::domain::audit`]).

use crate::domain::audit::AuditEntry;
use crate::ports::{StoreError, Within};
use async_trait::async_trait;

/// A page of entries, newest first; `more` when older ones follow.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub more: bool,
}

#[async_trait]
pub trait AuditTrail: Send + Sync {
    /// Keeps `entry` (again, harmlessly, if a retried request records it twice).
    async fn record_action(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Entries `within` (the fleet: every entry; schools: those about them), newest
    /// first, older than `before` (an entry's [`AuditEntry::key`]).
    async fn audit_entries(
        &self,
        within: &Within,
        before: Option<&str>,
        limit: usize,
    ) -> Result<AuditPage, StoreError>;
}
