//! The DynamoDB item layout, shared by the DynamoDB adapter, the stream decoder of
//! detect-failures and the local runner's stream emulation.
//!
//! | item   | `pk`           | `sk`               |
//! |--------|----------------|--------------------|
//! | event  | `DEVICE#<id>`  | `EVENT#<ts UTC ms>`|
//! | state  | `DEVICE#<id>`  | `STATE`            |
//!
//! Failing devices' state items also carry `failing_pk`/`failing_sk`, the keys of the
//! sparse `failing` index (see docs/dynamodb.md).

use crate::domain::event::{DeviceId, Outcome, StoredEvent};
use crate::domain::streak::FailureState;
use crate::domain::time::EventTime;
use crate::ports::FailingKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

// The table's schema, written once: the DynamoDB adapter's table creation and the
// schema-agreement test against template.yaml both read these.

/// The table's string hash and range keys.
pub const TABLE_KEYS: [&str; 2] = ["pk", "sk"];
/// The sparse failing index's string hash and range keys.
pub const FAILING_KEYS: [&str; 2] = ["failing_pk", "failing_sk"];
/// The attributes the failing index projects: [`FailingItem`]'s fields.
pub const FAILING_PROJECTION: [&str; 5] = [
    "device_id",
    "consecutive_failures",
    "streak_started_at",
    "last_failure_at",
    "last_sync_at",
];
/// The TTL attribute of event items (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// What the table's stream carries: detect-failures decodes new images.
pub const STREAM_VIEW: &str = "NEW_IMAGE";

pub const EVENT_PREFIX: &str = "EVENT#";
pub const STATE_SK: &str = "STATE";
pub const FAILING_INDEX: &str = "failing";
/// The failing index's partition before it was sharded: still read, so devices saved
/// as failing by an earlier version stay listed until their next state write moves them.
pub const LEGACY_FAILING_PK: &str = "FAILING";
/// Partitions of the failing index. One partition takes about 1,000 write units a
/// second and each streak change of a failing device rewrites its entry (two index
/// writes), so one partition would top out near 500 changes a second — what the API
/// admits by default. Four give 4× headroom; a list page reads every shard
/// (docs/dynamodb.md).
pub const FAILING_SHARDS: u8 = 4;
/// Sorts after every `EVENT#<timestamp>` key.
pub const EVENT_KEY_MAX: &str = "EVENT#~";

pub fn device_pk(device: &DeviceId) -> String {
    format!("DEVICE#{device}")
}

pub fn event_sk(ts: EventTime) -> String {
    format!("{EVENT_PREFIX}{ts}")
}

/// The failing index partition of `device`: a stable hash, so a device stays in its shard.
pub fn failing_pk(device: &DeviceId) -> String {
    use sha2::{Digest, Sha256};
    let shard = Sha256::digest(device.as_str().as_bytes())[0] % FAILING_SHARDS;
    format!("FAILING#{shard}")
}

/// Every failing index partition a list page reads.
pub fn failing_partitions() -> Vec<String> {
    let mut partitions: Vec<String> = (0..FAILING_SHARDS).map(|s| format!("FAILING#{s}")).collect();
    partitions.push(LEGACY_FAILING_PK.to_owned());
    partitions
}

/// Sort key of the failing index: ascending order is longest streak first, then device.
pub fn failing_sk(key: &FailingKey) -> String {
    format!("{:010}#{}", u32::MAX - key.consecutive_failures, key.device_id)
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EventItem {
    pub pk: String,
    pub sk: String,
    pub device_id: DeviceId,
    pub timestamp: EventTime,
    pub total_files_synced: u32,
    pub total_errors: u32,
    pub internet_speed: Speed,
    pub outcome: Outcome,
    pub received_at: EventTime,
    /// TTL attribute, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl EventItem {
    pub fn new(event: &StoredEvent, expires_at: Option<i64>) -> Self {
        Self {
            pk: device_pk(&event.device_id),
            sk: event_sk(event.timestamp),
            device_id: event.device_id.clone(),
            timestamp: event.timestamp,
            total_files_synced: event.total_files_synced,
            total_errors: event.total_errors,
            internet_speed: Speed(event.internet_speed),
            outcome: event.outcome,
            received_at: event.received_at,
            expires_at,
        }
    }

    pub fn into_event(self) -> StoredEvent {
        StoredEvent {
            device_id: self.device_id,
            timestamp: self.timestamp,
            total_files_synced: self.total_files_synced,
            total_errors: self.total_errors,
            internet_speed: self.internet_speed.0,
            // Derived again rather than trusted from the item.
            outcome: Outcome::of(self.total_errors),
            received_at: self.received_at,
        }
    }

    pub fn to_item<I: From<serde_dynamo::Item>>(&self) -> Result<I, serde_dynamo::Error> {
        serde_dynamo::to_item(self)
    }
}

/// The event in a stream image, if the image is an event item.
pub fn event_from_image(image: serde_dynamo::Item) -> Option<Result<StoredEvent, serde_dynamo::Error>> {
    let is_event = matches!(
        image.get("sk"),
        Some(serde_dynamo::AttributeValue::S(sk)) if sk.starts_with(EVENT_PREFIX)
    );
    is_event.then(|| serde_dynamo::from_item::<_, EventItem>(image).map(EventItem::into_event))
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StateItem {
    pub pk: String,
    pub sk: String,
    pub device_id: DeviceId,
    /// Optimistic-concurrency version, +1 on every write.
    pub version: u64,
    pub state: FailureState,
    // Only on failing devices: the sparse index's keys and projected list fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streak_started_at: Option<EventTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<EventTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<EventTime>,
}

impl StateItem {
    /// `failing` is the domain's decision ([`FailureState::is_failing`]): only then
    /// does the item carry the sparse index's keys.
    pub fn new(state: FailureState, version: u64, failing: bool) -> Self {
        let failing = crate::ports::FailingDevice::from_state(&state).filter(|_| failing);
        Self {
            pk: device_pk(&state.device_id),
            sk: STATE_SK.to_owned(),
            device_id: state.device_id.clone(),
            version,
            failing_pk: failing.as_ref().map(|d| failing_pk(&d.device_id)),
            failing_sk: failing.as_ref().map(|d| failing_sk(&d.key())),
            consecutive_failures: failing.as_ref().map(|d| d.consecutive_failures),
            streak_started_at: failing.as_ref().map(|d| d.streak_started_at),
            last_failure_at: failing.as_ref().map(|d| d.last_failure_at),
            last_sync_at: failing.as_ref().map(|d| d.last_sync_at),
            state,
        }
    }
}

/// The projection of a state item in the failing index.
#[derive(Deserialize, Debug)]
pub struct FailingItem {
    pub device_id: DeviceId,
    pub consecutive_failures: u32,
    pub streak_started_at: EventTime,
    pub last_failure_at: EventTime,
    pub last_sync_at: EventTime,
}

/// `internet_speed` as stored: a DynamoDB number when it fits DynamoDB's number range
/// (always, for real speeds), otherwise its exact decimal text, so no valid report
/// is ever refused by the store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speed(pub f64);

impl Speed {
    fn fits_dynamodb_number(self) -> bool {
        self.0 == 0.0 || (1e-129..1e125).contains(&self.0)
    }
}

impl Serialize for Speed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.fits_dynamodb_number() {
            serializer.serialize_f64(self.0)
        } else {
            serializer.collect_str(&format_args!("{:e}", self.0))
        }
    }
}

impl<'de> Deserialize<'de> for Speed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Speed;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or its decimal text")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Speed, E> {
                Ok(Speed(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Speed, E> {
                Ok(Speed(v as f64))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Speed, E> {
                Ok(Speed(v as f64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Speed, E> {
                v.parse().map(Speed).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(speed: f64) -> StoredEvent {
        StoredEvent {
            device_id: DeviceId::parse("device_1").unwrap(),
            timestamp: EventTime::parse_rfc3339("2025-05-07T10:30:00Z").unwrap(),
            total_files_synced: 42,
            total_errors: 2,
            internet_speed: speed,
            outcome: Outcome::Failure,
            received_at: EventTime::parse_rfc3339("2025-05-07T10:31:00Z").unwrap(),
        }
    }

    #[test]
    fn event_items_round_trip_including_extreme_speeds() {
        for speed in [5.3, 0.0, 0.1 + 0.2, 1e300, 5e-324, f64::MAX, 1e124, 7.0] {
            let item: serde_dynamo::Item = EventItem::new(&event(speed), Some(1)).to_item().unwrap();
            let back = event_from_image(item).unwrap().unwrap();
            assert_eq!(back, event(speed), "{speed}");
        }
    }

    #[test]
    fn keys_and_ordering() {
        let e = EventItem::new(&event(1.0), None);
        assert_eq!(e.pk, "DEVICE#device_1");
        assert_eq!(e.sk, "EVENT#2025-05-07T10:30:00.000Z");
        assert!(e.sk.as_str() < EVENT_KEY_MAX && EVENT_KEY_MAX < STATE_SK);
        let key = |n, d| {
            failing_sk(&FailingKey {
                consecutive_failures: n,
                device_id: DeviceId::parse(d).unwrap(),
            })
        };
        assert!(key(10, "b") < key(9, "a"), "longer streak first");
        assert!(key(5, "a") < key(5, "b"), "then by device id");
    }

    #[test]
    fn non_event_images_are_not_events() {
        let state = StateItem::new(FailureState::new(DeviceId::parse("d").unwrap()), 1, false);
        let item: serde_dynamo::Item = serde_dynamo::to_item(&state).unwrap();
        assert!(event_from_image(item).is_none());
    }

    #[test]
    fn only_states_saved_as_failing_enter_the_index() {
        use crate::domain::streak::Streak;
        let mut state = FailureState::new(DeviceId::parse("d").unwrap());
        let t = EventTime::from_millis(0).unwrap();
        state.streak = Some(Streak {
            count: 2,
            started_at: t,
            last_failure_at: t,
            last_total_errors: 1,
        });
        assert!(StateItem::new(state.clone(), 1, false).failing_pk.is_none());
        let failing = StateItem::new(state, 1, true);
        assert_eq!(failing.failing_pk, Some(failing_pk(&failing.device_id)));
        assert!(failing
            .failing_pk
            .as_deref()
            .is_some_and(|pk| pk.starts_with("FAILING#")));
        assert_eq!(failing.consecutive_failures, Some(2));
    }
}
