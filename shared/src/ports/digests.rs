//! The daily digest's once-a-day mark. A digest is saved (history and outbox) in the
//! same write as the mark saying its school has had the digest of that date, so two
//! periodic checks racing never send it twice.

use super::StoreError;
use crate::domain::notice::SchoolDigest;
use crate::domain::school::SchoolId;
use async_trait::async_trait;
use chrono::NaiveDate;

#[async_trait]
pub trait DigestLedger: Send + Sync {
    /// The local date of the school's last digest (`None`: never sent).
    async fn last_digest(&self, school: &SchoolId) -> Result<Option<NaiveDate>, StoreError>;

    /// Saves `digest` for `date` (history and outbox, decided at its `detected_at`)
    /// with its school's mark, unless the mark already reaches `date`: then nothing is
    /// written and the answer is `false`.
    async fn save_digest(&self, digest: &SchoolDigest, date: NaiveDate) -> Result<bool, StoreError>;
}
