//! Delivering the outbox: waiting notices are published oldest first and removed once
//! published. A device whose notice could not be published keeps its later ones
//! waiting too, so an operator never sees a recovery before its alert.

use crate::domain::event::DeviceId;
use crate::domain::notice::Notice;
use crate::ports::{AlertPublisher, Outbox, StoreError};
use std::collections::HashSet;

/// Most notices one delivery round takes from the outbox.
pub const NOTICES_PER_ROUND: usize = 100;

/// What one delivery round did.
#[derive(Debug, Default)]
pub struct Delivered {
    pub published: Vec<Notice>,
    /// Notices whose publishing failed (they stay in the outbox).
    pub failed: usize,
}

/// Publishes what is waiting in the outbox.
pub async fn deliver_pending(
    outbox: &dyn Outbox,
    publisher: &dyn AlertPublisher,
) -> Result<Delivered, StoreError> {
    let mut delivered = Delivered::default();
    let mut held: HashSet<DeviceId> = HashSet::new();
    for entry in outbox.pending(NOTICES_PER_ROUND).await? {
        let device = entry.notice.device_id();
        if held.contains(device) {
            continue;
        }
        match publisher.publish(&entry.notice).await {
            Ok(()) => {
                outbox.delivered(&entry).await?;
                tracing::info!(event_type = entry.notice.event_type(), device_id = %device, "notice published");
                delivered.published.push(entry.notice);
            }
            Err(err) => {
                tracing::warn!(error = %err, event_type = entry.notice.event_type(), device_id = %device, "notice not published; it stays in the outbox");
                held.insert(device.clone());
                delivered.failed += 1;
            }
        }
    }
    Ok(delivered)
}
