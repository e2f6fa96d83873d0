//! A notice as decided: published, or only recorded with the reason it was held back
//! (a backlog's old streak, a flapping device). Every decision enters the notice
//! history ([`NoticeRecord`]); only published ones enter the outbox.

use super::{Notice, SchoolDigest};
use crate::domain::time::EventTime;
use serde::{Deserialize, Serialize};

/// Why a notice was recorded but not published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Withheld {
    /// The streak was history when it was learnt of (a backlog), not news.
    Stale,
    /// The device alternates failure and recovery; one `device.flapping` said so.
    Flapping,
}

impl Withheld {
    pub fn as_str(self) -> &'static str {
        match self {
            Withheld::Stale => "stale",
            Withheld::Flapping => "flapping",
        }
    }
}

/// A notice and whether it is published.
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    pub notice: Notice,
    /// `None`: published.
    pub withheld: Option<Withheld>,
}

impl Decided {
    pub fn published(notice: Notice) -> Self {
        Self {
            notice,
            withheld: None,
        }
    }

    pub fn held(notice: Notice, reason: Withheld) -> Self {
        Self {
            notice,
            withheld: Some(reason),
        }
    }

    pub fn is_published(&self) -> bool {
        self.withheld.is_none()
    }

    /// The history entry for this decision, made at `decided_at`.
    pub fn record(&self, decided_at: EventTime) -> NoticeRecord {
        NoticeRecord {
            notice: self.notice.clone(),
            published: self.is_published(),
            reason: self.withheld,
            decided_at,
        }
    }
}

/// One entry of the notice history: the notice's own fields, then whether it was
/// published and why not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoticeRecord {
    #[serde(flatten)]
    pub notice: Notice,
    pub published: bool,
    pub reason: Option<Withheld>,
    /// When detection or the periodic check decided it (server time).
    pub decided_at: EventTime,
}

impl NoticeRecord {
    pub fn to_json(&self) -> String {
        // Strings, numbers and a tagged enum of them always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The history's order: decision time, then the notice's subject (its device, or a
/// digest's school), the device's save's version and the notice's place in that save.
/// Newest first is this key descending; a page's cursor is the last key it returned.
pub fn history_key(decided_at: EventTime, subject: &str, version: u64, index: usize) -> String {
    format!("{decided_at}#{subject}#{version:020}#{index:02}")
}

/// A digest's history key: one digest per school and save.
pub fn digest_history_key(digest: &SchoolDigest) -> String {
    history_key(digest.detected_at, digest.school_id.as_str(), 0, 0)
}

/// Days a decided notice is kept at least.
pub const NOTICE_RETENTION_DAYS: i64 = 400;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::DeviceId;
    use crate::domain::notice::RecoveryNotice;

    #[test]
    fn a_record_is_the_notice_with_its_decision() {
        let notice = Notice::Recovered(RecoveryNotice {
            device_id: DeviceId::parse("pibook-1").unwrap(),
            school_id: None,
            failures_before_recovery: 4,
            recovered_at: EventTime::parse_rfc3339("2026-09-14T08:00:00Z").unwrap(),
            alert_id: "pibook-1@start".into(),
        });
        let decided_at = EventTime::parse_rfc3339("2026-09-21T08:00:00Z").unwrap();
        let record = Decided::held(notice.clone(), Withheld::Stale).record(decided_at);
        let json: serde_json::Value = serde_json::from_str(&record.to_json()).unwrap();
        assert_eq!(json["type"], "device.sync_recovered");
        assert_eq!(json["failures_before_recovery"], 4);
        assert_eq!(json["published"], false);
        assert_eq!(json["reason"], "stale");
        assert_eq!(json["decided_at"], "2026-09-21T08:00:00.000Z");
        let back: NoticeRecord = serde_json::from_str(&record.to_json()).unwrap();
        assert_eq!(back, record);
        let published = Decided::published(notice).record(decided_at);
        let json: serde_json::Value = serde_json::from_str(&published.to_json()).unwrap();
        assert_eq!(json["published"], true);
        assert!(json["reason"].is_null());
    }

    #[test]
    fn history_keys_sort_by_decision_time() {
        let early = history_key(EventTime::from_millis(1_000).unwrap(), "pibook-1", 9, 1);
        let late = history_key(EventTime::from_millis(2_000).unwrap(), "pibook-1", 1, 0);
        assert!(early < late);
    }
}
