//! Delivering the outbox: waiting notices are published oldest first and removed once
//! published. A device (or school) whose notice could not be published keeps its
//! later ones waiting too, so an operator never sees a recovery before its alert.

use crate::domain::notice::Notice;
use crate::ports::{AlertPublisher, Outbox, PublishError, StoreError};
use async_trait::async_trait;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};

/// Most notices one delivery round takes from the outbox.
pub const NOTICES_PER_ROUND: usize = 100;

/// Failed publishes after which a round stops, taking the channel to be down: a
/// failing or hanging channel costs a round at most this many publish timeouts, and
/// the rest wait for the next round.
pub const FAILURES_PER_ROUND: usize = 3;

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
    let mut held: HashSet<String> = HashSet::new();
    for entry in outbox.pending(NOTICES_PER_ROUND).await? {
        let subject = entry.notice.subject_id();
        if held.contains(subject) {
            continue;
        }
        match publisher.publish(&entry.notice).await {
            Ok(()) => {
                outbox.delivered(&entry).await?;
                tracing::info!(
                    event_type = entry.notice.event_type(),
                    subject = subject,
                    "notice published"
                );
                delivered.published.push(entry.notice);
            }
            Err(err) => {
                tracing::warn!(error = %err, event_type = entry.notice.event_type(), subject = subject, "notice not published; it stays in the outbox");
                held.insert(subject.to_owned());
                delivered.failed += 1;
                if delivered.failed == FAILURES_PER_ROUND {
                    break;
                }
            }
        }
    }
    Ok(delivered)
}

/// Whether this process's last delivery round may have left notices in the outbox
/// (the store or the channel failed, or the round was full). The stream consumer then
/// delivers with its next batch even if that batch decides nothing, so a notice held
/// up by an outage goes out with the next records, not only at the scheduled round.
#[derive(Debug, Default)]
pub struct Owed(AtomicBool);

impl Owed {
    pub fn is_owed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Remembers what a round left behind.
    pub fn after(&self, round: &Result<Delivered, StoreError>) {
        let left_some = match round {
            Ok(delivered) => delivered.failed > 0 || delivered.published.len() >= NOTICES_PER_ROUND,
            Err(_) => true,
        };
        self.0.store(left_some, Ordering::Relaxed);
    }
}

/// Notice ids this process remembers having published.
const REMEMBERED: usize = 4096;

/// A publisher that publishes each notice at most once per process: when the outbox
/// entry of a published notice could not be removed (the store failed right then),
/// the next delivery round finds it again, and this skips it instead of sending it a
/// second time; and when two rounds run at once (the stream's and the schedule's, in
/// the local runner) and read the same entry, only the first sends it. Across
/// processes (a crash, another Lambda sandbox) a notice can still go out twice;
/// subscribers tell by `alert_id`, and FIFO topics drop it themselves.
pub struct PublishOnce<P> {
    inner: P,
    /// Held for the whole publish, so a second round asking for the same notice waits
    /// for the first one's outcome. Publishes in one process are sequential anyway (a
    /// Lambda sandbox runs one invocation at a time; a round publishes in turn).
    published: tokio::sync::Mutex<VecDeque<String>>,
}

impl<P> PublishOnce<P> {
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            published: tokio::sync::Mutex::new(VecDeque::new()),
        }
    }
}

#[async_trait]
impl<P: AlertPublisher> AlertPublisher for PublishOnce<P> {
    async fn publish(&self, notice: &Notice) -> Result<(), PublishError> {
        let id = notice.notice_id();
        let mut published = self.published.lock().await;
        if published.contains(&id) {
            return Ok(());
        }
        self.inner.publish(notice).await?;
        if published.len() == REMEMBERED {
            published.pop_front();
        }
        published.push_back(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::DeviceId;
    use crate::domain::notice::RecoveryNotice;
    use crate::domain::time::EventTime;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[async_trait]
    impl AlertPublisher for Counting {
        async fn publish(&self, _: &Notice) -> Result<(), PublishError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn a_round_is_owed_after_a_failure_or_a_full_round_only() {
        let owed = Owed::default();
        let round = |failed, published| {
            Ok(Delivered {
                published: vec![recovery("d@start"); published],
                failed,
            })
        };
        owed.after(&Err(StoreError::unavailable_because("down")));
        assert!(owed.is_owed());
        owed.after(&round(0, 1));
        assert!(!owed.is_owed());
        owed.after(&round(1, 0));
        assert!(owed.is_owed());
        owed.after(&round(0, NOTICES_PER_ROUND));
        assert!(owed.is_owed(), "a full round may have left more");
    }

    fn recovery(alert_id: &str) -> Notice {
        Notice::Recovered(RecoveryNotice {
            device_id: DeviceId::parse("d").unwrap(),
            failures_before_recovery: 3,
            recovered_at: EventTime::EPOCH,
            alert_id: alert_id.into(),
            school_id: None,
        })
    }

    /// A publisher that takes a while, as SNS or a slow disk does.
    #[derive(Default)]
    struct Slow(AtomicUsize);

    #[async_trait]
    impl AlertPublisher for Slow {
        async fn publish(&self, _: &Notice) -> Result<(), PublishError> {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn two_rounds_at_once_publish_a_notice_they_both_read_once() {
        // The stream's round and the scheduled round can read the same outbox entry at
        // the same moment; only one of them may send it.
        let once = PublishOnce::new(Slow::default());
        let notice = recovery("d@start");
        let (first, second) = tokio::join!(once.publish(&notice), once.publish(&notice));
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(once.inner.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_notice_published_once_is_not_sent_again_by_this_process() {
        let once = PublishOnce::new(Counting::default());
        once.publish(&recovery("d@start")).await.unwrap();
        once.publish(&recovery("d@start")).await.unwrap();
        once.publish(&recovery("d@other")).await.unwrap();
        assert_eq!(once.inner.0.load(Ordering::SeqCst), 2);
    }
}
