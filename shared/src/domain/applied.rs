//! Which stream records a device's state already reflects, so every stored event
//! changes the state exactly once although records are delivered at least once.
//!
//! A device's stream records arrive in commit order, one batch at a time, and a batch
//! that fails is redelivered from its earliest unfinished record. So:
//!
//! - an event newer than the newest one applied is new (nothing applied can be newer);
//! - an event at the newest timestamp applied *is* that event (its identity);
//! - any other event is new unless it is in [`Applied::recent`], the events applied
//!   by the saves since the stream last moved past this device's records.
//!
//! `recent` is emptied when a batch brings only records past [`Applied::through`]: the
//! stream then has moved on, and what came before can no longer be redelivered. It
//! holds at most one stream batch of the device's records (the event source mapping
//! delivers at most 100; the local feeds the same), capped at [`MAX_RECENT`].

use crate::domain::time::EventTime;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Most timestamps kept in [`Applied::recent`]: more than a stream batch holds
/// (`BatchSize` ≤ 100, checked against template.yaml by a test).
pub const MAX_RECENT: usize = 256;

/// A stream record's sequence number: decimal digits, compared as numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamPosition(String);

impl StreamPosition {
    /// A sequence number as DynamoDB Streams (or the local feed) writes it; `None`
    /// unless it is all digits.
    pub fn parse(text: &str) -> Option<Self> {
        let digits = text.trim_start_matches('0');
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| Self(digits.to_owned()))
    }
}

impl PartialOrd for StreamPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StreamPosition {
    /// Numeric order: no leading zeros are kept, so length first, then the digits.
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

/// The events applied since the stream last moved past this device's records.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Applied {
    /// Stored as epoch milliseconds: half the size of timestamps as text, and it holds
    /// up to a batch of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "millis")]
    pub recent: Vec<EventTime>,
    /// The highest stream position applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<StreamPosition>,
}

/// `recent` as epoch milliseconds; states saved before read as timestamps too.
mod millis {
    use crate::domain::time::EventTime;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(times: &[EventTime], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(times.iter().map(|t| t.millis()))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Millis(i64),
        Text(EventTime),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EventTime>, D::Error> {
        Vec::<Stored>::deserialize(d)?
            .into_iter()
            .map(|t| match t {
                Stored::Millis(ms) => {
                    EventTime::from_millis(ms).ok_or_else(|| D::Error::custom("time out of range"))
                }
                Stored::Text(t) => Ok(t),
            })
            .collect()
    }
}

impl Applied {
    /// Called before applying a batch of the device's records at `positions`: if every
    /// one is past [`Applied::through`], the earlier records can no longer come back.
    pub fn start_batch(&mut self, positions: &[Option<StreamPosition>]) {
        let moved_on = match &self.through {
            Some(through) => positions.iter().all(|p| p.as_ref().is_some_and(|p| p > through)),
            None => false,
        };
        if moved_on {
            self.recent.clear();
        }
    }

    /// Whether the event at `timestamp` is already reflected, given the newest
    /// timestamp applied.
    pub fn contains(&self, timestamp: EventTime, newest: Option<EventTime>) -> bool {
        match newest {
            None => false,
            Some(newest) if timestamp > newest => false,
            Some(newest) if timestamp == newest => true,
            Some(_) => self.recent.contains(&timestamp),
        }
    }

    /// Remembers an applied event.
    pub fn record(&mut self, timestamp: EventTime, position: Option<&StreamPosition>) {
        self.recent.push(timestamp);
        if self.recent.len() > MAX_RECENT {
            let excess = self.recent.len() - MAX_RECENT;
            self.recent.drain(..excess);
        }
        if let Some(position) = position {
            if self.through.as_ref().is_none_or(|t| position > t) {
                self.through = Some(position.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(s: &str) -> Option<StreamPosition> {
        StreamPosition::parse(s)
    }

    fn at(ms: i64) -> EventTime {
        EventTime::from_millis(ms).unwrap()
    }

    #[test]
    fn recent_is_stored_as_millis_and_read_either_way() {
        let mut applied = Applied::default();
        applied.record(at(1_746_613_800_000), pos("7").as_ref());
        let json = serde_json::to_string(&applied).unwrap();
        assert_eq!(json, r#"{"recent":[1746613800000],"through":"7"}"#);
        assert_eq!(serde_json::from_str::<Applied>(&json).unwrap(), applied);
        let earlier = r#"{"recent":["2025-05-07T10:30:00.000Z"],"through":"7"}"#;
        assert_eq!(serde_json::from_str::<Applied>(earlier).unwrap(), applied);
    }

    #[test]
    fn positions_compare_as_numbers() {
        assert!(pos("000000000000000000010") > pos("9"));
        assert!(pos("111000000000000000000003") > pos("111000000000000000000002"));
        assert_eq!(pos("007"), pos("7"));
        assert_eq!(pos(""), None);
        assert_eq!(pos("12a"), None);
    }

    #[test]
    fn newer_is_new_newest_is_known_older_only_if_recent() {
        let mut applied = Applied::default();
        applied.record(at(5), pos("1").as_ref());
        assert!(!applied.contains(at(10), None), "nothing applied yet");
        assert!(!applied.contains(at(11), Some(at(10))));
        assert!(applied.contains(at(10), Some(at(10))));
        assert!(applied.contains(at(5), Some(at(10))));
        assert!(!applied.contains(at(4), Some(at(10))));
    }

    #[test]
    fn a_batch_past_the_last_position_forgets_the_earlier_ones() {
        let mut applied = Applied::default();
        applied.record(at(5), pos("10").as_ref());
        applied.start_batch(&[pos("9"), pos("11")]);
        assert_eq!(applied.recent, [at(5)], "a redelivery: keep");
        applied.start_batch(&[None]);
        assert_eq!(applied.recent, [at(5)], "no position: keep");
        applied.start_batch(&[pos("11"), pos("12")]);
        assert!(applied.recent.is_empty(), "the stream moved on");
    }

    #[test]
    fn recent_is_bounded() {
        let mut applied = Applied::default();
        for ms in 0..(MAX_RECENT as i64 + 10) {
            applied.record(at(ms), None);
        }
        assert_eq!(applied.recent.len(), MAX_RECENT);
        assert_eq!(applied.recent[0], at(10));
    }
}
