//! The sync event: what a device reports, and what PiSync stores.

use crate::domain::time::EventTime;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Longest accepted device id, in characters.
pub const MAX_DEVICE_ID_LEN: usize = 128;
/// Largest accepted file or error count (2³¹−1).
pub const MAX_COUNT: u32 = i32::MAX as u32;

/// A device id that satisfies the contract: 1–128 characters of `A-Z a-z 0-9 _ - . :`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    pub const RULE: &'static str = "must be 1–128 characters of A-Z a-z 0-9 _ - . :, and not . or ..";

    /// A device id from a client. `.` and `..` are refused: as a path segment they
    /// name no device (a browser or proxy resolves them away).
    pub fn parse(text: &str) -> Option<Self> {
        Self::stored(text).filter(|_| !matches!(text, "." | ".."))
    }

    /// A device id read back from a store, which may predate the dot rule.
    fn stored(text: &str) -> Option<Self> {
        let valid_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':');
        let ok = (1..=MAX_DEVICE_ID_LEN).contains(&text.len()) && text.bytes().all(valid_char);
        ok.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        DeviceId::stored(&text).ok_or_else(|| serde::de::Error::custom(format!("invalid device id: {text}")))
    }
}

/// Whether a sync attempt worked. A sync fails when it reported any error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    /// As the API and the export write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub fn of(total_errors: u32) -> Self {
        if total_errors > 0 {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }
}

/// A validated report of one sync attempt, as a device sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncEvent {
    pub device_id: DeviceId,
    pub timestamp: EventTime,
    pub total_files_synced: u32,
    pub total_errors: u32,
    /// Finite and ≥ 0, Mbit/s.
    pub internet_speed: f64,
}

impl SyncEvent {
    pub fn outcome(&self) -> Outcome {
        Outcome::of(self.total_errors)
    }

    /// The event as stored, stamped with the server's receive time.
    pub fn into_stored(self, received_at: EventTime) -> StoredEvent {
        StoredEvent {
            outcome: self.outcome(),
            device_id: self.device_id,
            timestamp: self.timestamp,
            total_files_synced: self.total_files_synced,
            total_errors: self.total_errors,
            internet_speed: self.internet_speed,
            received_at,
        }
    }
}

/// A stored event: the report plus what the server derived and when it arrived.
/// Its identity is (`device_id`, `timestamp`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub device_id: DeviceId,
    pub timestamp: EventTime,
    pub total_files_synced: u32,
    pub total_errors: u32,
    pub internet_speed: f64,
    pub outcome: Outcome,
    pub received_at: EventTime,
}

impl StoredEvent {
    /// The figures where `sent`, an event with this one's identity, differs from it,
    /// each with this (the stored) value; empty when `sent` is an exact replay.
    pub fn differences(&self, sent: &StoredEvent) -> Vec<crate::domain::validate::FieldError> {
        use crate::domain::validate::FieldError;
        let stored_value =
            |name: &str, value: String| FieldError::new(name, format!("stored value is {value}"));
        let mut details = Vec::new();
        if self.total_files_synced != sent.total_files_synced {
            details.push(stored_value(
                "total_files_synced",
                self.total_files_synced.to_string(),
            ));
        }
        if self.total_errors != sent.total_errors {
            details.push(stored_value("total_errors", self.total_errors.to_string()));
        }
        if self.internet_speed.to_bits() != sent.internet_speed.to_bits() {
            details.push(stored_value("internet_speed", self.internet_speed.to_string()));
        }
        details
    }

    /// True when `other` reports the same sync with the same figures: a replay.
    /// The receive time is the server's, so it is not compared.
    pub fn same_report(&self, other: &StoredEvent) -> bool {
        self.device_id == other.device_id
            && self.timestamp == other.timestamp
            && self.total_files_synced == other.total_files_synced
            && self.total_errors == other.total_errors
            && self.internet_speed.to_bits() == other.internet_speed.to_bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_rule() {
        for ok in ["device_12345", "a", "PiBox-01.school:7", &"x".repeat(128)] {
            assert!(DeviceId::parse(ok).is_some(), "{ok}");
        }
        for bad in ["", "has space", "slash/", "é", "tab\t", &"x".repeat(129)] {
            assert!(DeviceId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn outcome_follows_errors() {
        assert_eq!(Outcome::of(0), Outcome::Success);
        assert_eq!(Outcome::of(1), Outcome::Failure);
        assert_eq!(serde_json::to_string(&Outcome::Failure).unwrap(), "\"failure\"");
    }

    #[test]
    fn replay_compares_reported_fields_only() {
        let event = SyncEvent {
            device_id: DeviceId::parse("d").unwrap(),
            timestamp: EventTime::from_millis(0).unwrap(),
            total_files_synced: 1,
            total_errors: 0,
            internet_speed: 5.3,
        };
        let a = event.clone().into_stored(EventTime::from_millis(10).unwrap());
        let b = event.into_stored(EventTime::from_millis(20).unwrap());
        assert!(a.same_report(&b));
        let mut c = b.clone();
        c.internet_speed = 5.4;
        assert!(!a.same_report(&c));
    }
}
