//! Messages for operators: a repeated-failure alert and a recovery notice.

use crate::domain::event::DeviceId;
use crate::domain::time::EventTime;
use serde::{Deserialize, Serialize};

/// A message to publish. Serialises to exactly the JSON body of docs/contract.md.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Notice {
    #[serde(rename = "device.repeated_sync_failures")]
    RepeatedFailures(FailureAlert),
    #[serde(rename = "device.sync_recovered")]
    Recovered(RecoveryNotice),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureAlert {
    pub device_id: DeviceId,
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
    pub failures_before_recovery: u32,
    /// Device time of the successful sync that ended the streak.
    pub recovered_at: EventTime,
    /// The `alert_id` of the alert this recovery closes.
    pub alert_id: String,
}

impl Notice {
    /// The `event_type` message attribute, equal to the body's `type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Notice::RepeatedFailures(_) => "device.repeated_sync_failures",
            Notice::Recovered(_) => "device.sync_recovered",
        }
    }

    pub fn device_id(&self) -> &DeviceId {
        match self {
            Notice::RepeatedFailures(a) => &a.device_id,
            Notice::Recovered(r) => &r.device_id,
        }
    }

    /// Unique per message: the streak's id plus the kind of message.
    pub fn notice_id(&self) -> String {
        match self {
            Notice::RepeatedFailures(a) => format!("{}#alert", a.alert_id),
            Notice::Recovered(r) => format!("{}#recovered", r.alert_id),
        }
    }

    /// A subject a person can read in an e-mail client (SNS allows ≤ 100 characters).
    pub fn subject(&self) -> String {
        let subject = match self {
            Notice::RepeatedFailures(a) => format!(
                "PiSync: {} failed {} syncs in a row",
                a.device_id, a.consecutive_failures
            ),
            Notice::Recovered(r) => format!("PiSync: {} is syncing again", r.device_id),
        };
        subject.chars().take(100).collect()
    }

    pub fn to_json(&self) -> String {
        // A plain data enum of strings and integers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}
