//! Device and server timestamps: UTC, whole milliseconds, one text form.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An instant in UTC truncated to whole milliseconds.
///
/// Its text form (`2025-05-07T10:30:00.000Z`) has a fixed width, so text order is
/// time order: storage keys built from it sort chronologically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime(i64);

impl EventTime {
    /// 1970-01-01T00:00:00.000Z.
    pub const EPOCH: EventTime = EventTime(0);
    /// 2000-01-01T00:00:00.000Z.
    pub const YEAR_2000: EventTime = EventTime(946_684_800_000);
    /// 0000-01-01T00:00:00.000Z: the earliest time the text form represents.
    pub const FIRST: EventTime = EventTime(-62_167_219_200_000);
    /// 9999-12-31T23:59:59.999Z: the latest.
    pub const LAST: EventTime = EventTime(253_402_300_799_999);

    /// Parses RFC 3339 with an explicit offset (`Z` or `±hh:mm`), normalising to UTC
    /// and dropping digits finer than a millisecond.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed = DateTime::parse_from_rfc3339(text).ok()?;
        Self::from_millis(parsed.timestamp_millis())
    }

    /// Milliseconds since the Unix epoch; `None` outside years 0000–9999, which the
    /// fixed-width text form cannot represent.
    pub fn from_millis(millis: i64) -> Option<Self> {
        (Self::FIRST.0..=Self::LAST.0)
            .contains(&millis)
            .then_some(Self(millis))
    }

    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// This instant moved by `millis` (saturating at the representable range).
    pub fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    fn as_datetime(self) -> DateTime<Utc> {
        // In range by construction.
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_datetime().to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        EventTime::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 timestamp: {text}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_offsets_to_utc_milliseconds() {
        let t = EventTime::parse_rfc3339("2025-05-07T16:00:00.123456+05:30").unwrap();
        assert_eq!(t.to_string(), "2025-05-07T10:30:00.123Z");
        assert_eq!(
            EventTime::parse_rfc3339("2025-05-07T10:30:00Z")
                .unwrap()
                .to_string(),
            "2025-05-07T10:30:00.000Z"
        );
    }

    #[test]
    fn rejects_text_without_offset_or_garbage() {
        for bad in [
            "2025-05-07T10:30:00",
            "2025-05-07",
            "yesterday",
            "",
            "2025-13-07T10:30:00Z",
        ] {
            assert!(EventTime::parse_rfc3339(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn text_order_is_time_order() {
        let a = EventTime::parse_rfc3339("0999-01-01T00:00:00Z").unwrap();
        let b = EventTime::parse_rfc3339("2025-01-01T00:00:00.5Z").unwrap();
        let c = EventTime::parse_rfc3339("2025-01-01T00:00:01Z").unwrap();
        assert!(a < b && b < c);
        assert!(a.to_string() < b.to_string() && b.to_string() < c.to_string());
    }

    #[test]
    fn round_trips_through_serde() {
        let t = EventTime::parse_rfc3339("2025-05-07T10:30:00.001Z").unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2025-05-07T10:30:00.001Z\"");
        assert_eq!(serde_json::from_str::<EventTime>(&json).unwrap(), t);
    }
}
