//! Messages for operators: a repeated-failure alert, its recovery, a device gone
//! silent and its return, a device flapping and stable again, and a school's daily
//! digest. Each serialises to
//! exactly the JSON body of docs/contract.md; [`render`] turns one into an e-mail, an
//! SMS and a one-line text.

pub mod decided;
pub mod render;

pub use decided::{Decided, NoticeRecord, Withheld};

use crate::domain::event::DeviceId;
use crate::domain::fleet::FleetCounts;
use crate::domain::school::SchoolId;
use crate::domain::time::EventTime;
use serde::{Deserialize, Serialize};

/// A message to publish.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Notice {
    #[serde(rename = "device.repeated_sync_failures")]
    RepeatedFailures(FailureAlert),
    #[serde(rename = "device.sync_recovered")]
    Recovered(RecoveryNotice),
    #[serde(rename = "device.silent")]
    Silent(SilentNotice),
    #[serde(rename = "device.back_online")]
    BackOnline(BackOnlineNotice),
    #[serde(rename = "device.flapping")]
    Flapping(FlappingNotice),
    #[serde(rename = "device.stable")]
    Stable(StableNotice),
    /// Boxed: a digest is several times the size of the device notices.
    #[serde(rename = "school.digest")]
    Digest(Box<SchoolDigest>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureAlert {
    pub device_id: DeviceId,
    /// The device's school when the notice was decided (`null`: unassigned).
    #[serde(default)]
    pub school_id: Option<SchoolId>,
    pub consecutive_failures: u32,
    pub threshold: u32,
    pub streak_started_at: EventTime,
    pub last_failure_at: EventTime,
    pub last_total_errors: u32,
    pub detected_at: EventTime,
    /// Same for every message about one streak: subscribers can deduplicate on it.
    pub alert_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryNotice {
    pub device_id: DeviceId,
    /// The device's school when the notice was decided (`null`: unassigned).
    #[serde(default)]
    pub school_id: Option<SchoolId>,
    pub failures_before_recovery: u32,
    /// Device time of the successful sync that ended the streak.
    pub recovered_at: EventTime,
    /// The `alert_id` of the alert this recovery closes.
    pub alert_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SilentNotice {
    pub device_id: DeviceId,
    /// The device's school when the notice was decided (`null`: unassigned).
    #[serde(default)]
    pub school_id: Option<SchoolId>,
    /// When PiSync last received a report from the device (server time).
    pub last_seen_at: EventTime,
    /// The silent period, in hours (fractional for short local settings).
    pub silent_after_hours: f64,
    pub detected_at: EventTime,
    /// Same for this notice and the `device.back_online` that ends the silence.
    pub alert_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackOnlineNotice {
    pub device_id: DeviceId,
    /// The device's school when the notice was decided (`null`: unassigned).
    #[serde(default)]
    pub school_id: Option<SchoolId>,
    /// When the device had last reported before it went silent (server time).
    pub silent_since: EventTime,
    /// When its new report was received (server time).
    pub back_at: EventTime,
    /// The `alert_id` of the `device.silent` notice this one closes.
    pub alert_id: String,
}

/// A device whose alerts came too often: it replaces the alert that reached the flap
/// count; the device's alerts and recoveries are recorded, not published, until it is
/// stable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlappingNotice {
    pub device_id: DeviceId,
    /// The device's school when the notice was decided (`null`: unassigned).
    #[serde(default)]
    pub school_id: Option<SchoolId>,
    /// Alerts within the window, this one included.
    pub alerts_in_window: u32,
    pub window_seconds: u64,
    pub detected_at: EventTime,
    /// Same for this notice and the `device.stable` that ends it.
    pub alert_id: String,
}

/// A flapping device that went a whole flap window without an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StableNotice {
    pub device_id: DeviceId,
    /// The device's school when the notice was decided (`null`: unassigned).
    #[serde(default)]
    pub school_id: Option<SchoolId>,
    /// Its last alert (received time): no alert since.
    pub stable_since: EventTime,
    pub detected_at: EventTime,
    /// The `alert_id` of the `device.flapping` notice this one closes.
    pub alert_id: String,
}

/// Most device ids a digest lists as failing, and as silent.
pub const DIGEST_LIST_MAX: usize = 50;

/// A school's morning summary at its `digest_at` on open days: how its devices stand,
/// the worst of them, what was recorded but not published, and yesterday's syncs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchoolDigest {
    pub school_id: SchoolId,
    /// The school's name, for the people who read the digest.
    pub name: String,
    /// The school's local date the digest is for (`YYYY-MM-DD`).
    pub date: String,
    pub devices: FleetCounts,
    /// Failing devices, longest streak first (at most [`DIGEST_LIST_MAX`]).
    pub failing: Vec<DeviceId>,
    /// Silent devices, longest silence first (at most [`DIGEST_LIST_MAX`]).
    pub silent: Vec<DeviceId>,
    /// The school's notices recorded but not published in the 24 h before
    /// `detected_at` (stale or flapping).
    pub unpublished: u32,
    pub yesterday: DigestDay,
    pub detected_at: EventTime,
    /// `<school>@digest@<date>`: one per school and date.
    pub alert_id: String,
}

/// The day before a digest's date: its syncs by device timestamp.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigestDay {
    pub date: String,
    pub syncs: u64,
    pub failures: u64,
    /// A fraction between 0 and 1 (0 without syncs).
    pub failure_rate: f64,
}

impl Notice {
    /// Every notice type, as the body's `type` says it.
    pub const TYPES: [&'static str; 7] = [
        "device.repeated_sync_failures",
        "device.sync_recovered",
        "device.silent",
        "device.back_online",
        "device.flapping",
        "device.stable",
        "school.digest",
    ];

    /// The `event_type` message attribute, equal to the body's `type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Notice::RepeatedFailures(_) => "device.repeated_sync_failures",
            Notice::Recovered(_) => "device.sync_recovered",
            Notice::Silent(_) => "device.silent",
            Notice::BackOnline(_) => "device.back_online",
            Notice::Flapping(_) => "device.flapping",
            Notice::Stable(_) => "device.stable",
            Notice::Digest(_) => "school.digest",
        }
    }

    /// The device's school when the notice was decided; a digest's school.
    pub fn school_id(&self) -> Option<&SchoolId> {
        match self {
            Notice::RepeatedFailures(n) => n.school_id.as_ref(),
            Notice::Recovered(n) => n.school_id.as_ref(),
            Notice::Silent(n) => n.school_id.as_ref(),
            Notice::BackOnline(n) => n.school_id.as_ref(),
            Notice::Flapping(n) => n.school_id.as_ref(),
            Notice::Stable(n) => n.school_id.as_ref(),
            Notice::Digest(n) => Some(&n.school_id),
        }
    }

    /// The device the notice is about (`None`: a school's digest).
    pub fn device_id(&self) -> Option<&DeviceId> {
        match self {
            Notice::RepeatedFailures(n) => Some(&n.device_id),
            Notice::Recovered(n) => Some(&n.device_id),
            Notice::Silent(n) => Some(&n.device_id),
            Notice::BackOnline(n) => Some(&n.device_id),
            Notice::Flapping(n) => Some(&n.device_id),
            Notice::Stable(n) => Some(&n.device_id),
            Notice::Digest(_) => None,
        }
    }

    /// What the notice is about: its device, or a digest's school. Notices about one
    /// subject are delivered in the order they were decided.
    pub fn subject_id(&self) -> &str {
        match self {
            Notice::Digest(n) => n.school_id.as_str(),
            _ => self.device_id().map(DeviceId::as_str).unwrap_or_default(),
        }
    }

    /// Shared by a notice and the one that closes it.
    pub fn alert_id(&self) -> &str {
        match self {
            Notice::RepeatedFailures(n) => &n.alert_id,
            Notice::Recovered(n) => &n.alert_id,
            Notice::Silent(n) => &n.alert_id,
            Notice::BackOnline(n) => &n.alert_id,
            Notice::Flapping(n) => &n.alert_id,
            Notice::Stable(n) => &n.alert_id,
            Notice::Digest(n) => &n.alert_id,
        }
    }

    /// Unique per message: the episode's id plus the kind of message.
    pub fn notice_id(&self) -> String {
        let kind = match self {
            Notice::RepeatedFailures(_) => "alert",
            Notice::Recovered(_) => "recovered",
            Notice::Silent(_) => "silent",
            Notice::BackOnline(_) => "back_online",
            Notice::Flapping(_) => "flapping",
            Notice::Stable(_) => "stable",
            Notice::Digest(_) => "digest",
        };
        format!("{}#{kind}", self.alert_id())
    }

    /// The JSON body of docs/contract.md.
    pub fn to_json(&self) -> String {
        // A plain data enum of strings and numbers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> EventTime {
        EventTime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn silence_notices_match_the_contract() {
        let silent = Notice::Silent(SilentNotice {
            device_id: DeviceId::parse("pibox-7").unwrap(),
            school_id: None,
            last_seen_at: at("2025-05-05T08:00:00Z"),
            silent_after_hours: 48.0,
            detected_at: at("2025-05-07T08:03:00Z"),
            alert_id: "pibox-7@silent@2025-05-05T08:00:00.000Z".into(),
        });
        let json: serde_json::Value = serde_json::from_str(&silent.to_json()).unwrap();
        assert_eq!(json["type"], "device.silent");
        assert_eq!(json["device_id"], "pibox-7");
        assert_eq!(json["last_seen_at"], "2025-05-05T08:00:00.000Z");
        assert_eq!(json["silent_after_hours"], 48.0);
        assert_eq!(json["detected_at"], "2025-05-07T08:03:00.000Z");
        assert!(json["school_id"].is_null(), "unassigned: null, not absent");
        assert!(json.as_object().unwrap().contains_key("school_id"));
        let back = Notice::BackOnline(BackOnlineNotice {
            device_id: DeviceId::parse("pibox-7").unwrap(),
            school_id: SchoolId::parse("riverside"),
            silent_since: at("2025-05-05T08:00:00Z"),
            back_at: at("2025-05-09T09:00:00Z"),
            alert_id: silent.alert_id().to_owned(),
        });
        let json: serde_json::Value = serde_json::from_str(&back.to_json()).unwrap();
        assert_eq!(json["type"], "device.back_online");
        assert_eq!(json["silent_since"], "2025-05-05T08:00:00.000Z");
        assert_eq!(json["back_at"], "2025-05-09T09:00:00.000Z");
        assert_eq!(json["school_id"], "riverside");
        assert_ne!(silent.notice_id(), back.notice_id());
        assert_eq!(serde_json::from_str::<Notice>(&back.to_json()).unwrap(), back);
    }
}
