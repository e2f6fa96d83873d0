//! The DynamoDB item layout, shared by the DynamoDB adapter, the stream decoder of
//! detect-failures and the local runner's stream emulation.
//!
//! | item | `pk` | `sk` |
//! | --- | --- | --- |
//! | event | `DEVICE#<id>` | `EVENT#<ts UTC ms>` |
//! | device state | `DEVICE#<id>` | `STATE` |
//! | waiting notice | `OUTBOX` | `<decided at>#<device>#<n>` |
//! | silence check | `WATCH#<5-minute slot>` | `<due, ms, 15 digits>#<device>` |
//! | silence check progress | `WATCH` | `CURSOR` |
//! | a day's totals (before schools; read, no longer written) | `DAY#<shard>` | `<YYYY-MM-DD>` |
//! | a day's totals of the fleet or a school | `DAYS#FLEET`, `DAYS#SCHOOL#<id>` | `<YYYY-MM-DD>` |
//! | a stream batch's day totals, to roll up | `DAYDELTA#<slot>` | `<addition key>` |
//! | how far day totals are rolled up | `ROLLUP` | `CURSOR` |
//! | the fleet's device counts | `FLEET` | `COUNTS` |
//! | a school | `SCHOOLS` | `<id>` |
//! | a school's device counts | `SCHOOL#<id>` | `COUNTS` |
//! | a school's last daily digest (its local date) | `SCHOOL#<id>` | `DIGEST` |
//!
//! State items also carry the keys of the six sparse indexes (see docs/dynamodb.md).

use crate::domain::device::{DeviceState, Status};
use crate::domain::event::{DeviceId, Outcome, StoredEvent};
use crate::domain::fleet::{CountScope, Day};
use crate::domain::school::SchoolId;
use crate::domain::time::EventTime;
use crate::ports::{FailingDevice, FailingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

// The table's schema, written once: the DynamoDB adapter's table creation and the
// schema-agreement test against template.yaml both read these.

/// The table's string hash and range keys.
pub const TABLE_KEYS: [&str; 2] = ["pk", "sk"];

/// What a global secondary index projects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projected {
    KeysOnly,
    Include(&'static [&'static str]),
}

/// A global secondary index: its name, string hash and range keys, projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexSchema {
    pub name: &'static str,
    pub keys: [&'static str; 2],
    pub projection: Projected,
}

/// Devices whose streak reaches the threshold, longest first (repeated-failures, and
/// `GET /devices?status=failing`). Sharded: see [`FAILING_SHARDS`].
pub const FAILING: IndexSchema = IndexSchema {
    name: "failing",
    keys: ["failing_pk", "failing_sk"],
    projection: Projected::Include(&[
        "device_id",
        "consecutive_failures",
        "streak_started_at",
        "last_failure_at",
        "last_sync_at",
    ]),
};

/// Every device by status, then device id (`GET /devices`, all and healthy). The key
/// changes only when the status does.
pub const DEVICES: IndexSchema = IndexSchema {
    name: "devices",
    keys: ["devices_pk", "devices_sk"],
    projection: Projected::KeysOnly,
};

/// Silent devices, longest silence first (`GET /devices?status=silent`).
pub const SILENT: IndexSchema = IndexSchema {
    name: "silent",
    keys: ["silent_pk", "silent_sk"],
    projection: Projected::KeysOnly,
};

/// A school's devices by status, then device id (`GET /devices?school=`, all and
/// healthy). Like [`DEVICES`], per school.
pub const SCHOOL_DEVICES: IndexSchema = IndexSchema {
    name: "school_devices",
    keys: ["sdev_pk", "sdev_sk"],
    projection: Projected::KeysOnly,
};

/// A school's failing devices, longest streak first (repeated-failures and
/// `GET /devices?status=failing` within a school). Like [`FAILING`], per school.
pub const SCHOOL_FAILING: IndexSchema = IndexSchema {
    name: "school_failing",
    keys: ["sfail_pk", "sfail_sk"],
    projection: Projected::Include(&[
        "device_id",
        "consecutive_failures",
        "streak_started_at",
        "last_failure_at",
        "last_sync_at",
    ]),
};

/// A school's silent devices, longest silence first. Like [`SILENT`], per school.
pub const SCHOOL_SILENT: IndexSchema = IndexSchema {
    name: "school_silent",
    keys: ["ssil_pk", "ssil_sk"],
    projection: Projected::KeysOnly,
};

pub const INDEXES: [IndexSchema; 6] = [
    FAILING,
    DEVICES,
    SILENT,
    SCHOOL_DEVICES,
    SCHOOL_FAILING,
    SCHOOL_SILENT,
];

/// The TTL attribute of event and silence-check items (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// What the table's stream carries: detect-failures decodes new images.
pub const STREAM_VIEW: &str = "NEW_IMAGE";

pub const EVENT_PREFIX: &str = "EVENT#";
pub const STATE_SK: &str = "STATE";
pub const OUTBOX_PK: &str = "OUTBOX";
pub const FLEET_PK: &str = "FLEET";
pub const COUNTS_SK: &str = "COUNTS";
pub const WATCH_CURSOR: (&str, &str) = ("WATCH", "CURSOR");
/// The failing index's partition before it was sharded: still read, so devices saved
/// as failing by an earlier version stay listed until their next state write moves them.
pub const LEGACY_FAILING_PK: &str = "FAILING";
/// Failing devices that are also silent: listed as failing by repeated-failures, but
/// as silent by `GET /devices`. They report nothing, so one partition never runs hot.
pub const FAILING_SILENT_PK: &str = "FAILING_SILENT";
/// Partitions of the failing index. One partition takes about 1,000 write units a
/// second and each streak change of a failing device rewrites its entry (two index
/// writes), so one partition would top out near 500 changes a second — what the API
/// admits by default. Four give 4× headroom; a list page reads every shard
/// (docs/dynamodb.md).
pub const FAILING_SHARDS: u8 = 4;
/// Partitions of the per-day totals: every stream batch adds to the days it touched.
pub const DAY_SHARDS: u8 = 4;
/// Sorts after every `EVENT#<timestamp>` key.
pub const EVENT_KEY_MAX: &str = "EVENT#~";
/// Silence checks are kept in 5-minute slots; the check reads each slot once it ended.
pub const WATCH_SLOT_MILLIS: i64 = 5 * 60 * 1000;
/// A silence-check item expires this long after its slot (TTL tidies processed slots).
pub const WATCH_TTL_SECONDS: i64 = 7 * 86_400;

pub fn device_pk(device: &DeviceId) -> String {
    format!("DEVICE#{device}")
}

pub fn event_sk(ts: EventTime) -> String {
    format!("{EVENT_PREFIX}{ts}")
}

/// A stable shard of `device` among `shards`.
fn shard_of(device: &DeviceId, shards: u8) -> u8 {
    use sha2::{Digest, Sha256};
    Sha256::digest(device.as_str().as_bytes())[0] % shards
}

/// The failing index partition of `device`: a stable hash, so a device stays in its shard.
pub fn failing_pk(device: &DeviceId) -> String {
    format!("FAILING#{}", shard_of(device, FAILING_SHARDS))
}

/// The failing index partitions of devices that are failing and not silent.
pub fn live_failing_partitions() -> Vec<String> {
    let mut partitions: Vec<String> = (0..FAILING_SHARDS).map(|s| format!("FAILING#{s}")).collect();
    partitions.push(LEGACY_FAILING_PK.to_owned());
    partitions
}

/// Every failing index partition a repeated-failures page reads.
pub fn failing_partitions() -> Vec<String> {
    let mut partitions = live_failing_partitions();
    partitions.push(FAILING_SILENT_PK.to_owned());
    partitions
}

/// Sort key of the failing index: ascending order is longest streak first, then device.
pub fn failing_sk(key: &FailingKey) -> String {
    format!("{:010}#{}", u32::MAX - key.consecutive_failures, key.device_id)
}

pub fn devices_pk(status: Status) -> String {
    format!("DEVICES#{}", status.as_str())
}

pub const SILENT_PK: &str = "SILENT";

/// Sort key of the silent index: oldest last report first, then device.
pub fn silent_sk(last_seen_at: EventTime, device: &DeviceId) -> String {
    format!("{last_seen_at}#{device}")
}

pub fn watch_slot(at: EventTime) -> i64 {
    at.millis().div_euclid(WATCH_SLOT_MILLIS)
}

pub fn watch_pk(slot: i64) -> String {
    format!("WATCH#{slot}")
}

/// Sort key of a silence check: in due order within its slot.
pub fn watch_sk(due: EventTime, device: &DeviceId) -> String {
    format!("{:015}#{device}", due.millis().max(0))
}

/// The device of a silence check's sort key.
pub fn watch_device(sk: &str) -> Option<DeviceId> {
    DeviceId::parse(sk.split_once('#')?.1)
}

pub const SCHOOLS_PK: &str = "SCHOOLS";

/// The partition of a school's own items (its counts).
pub fn school_pk(school: &SchoolId) -> String {
    format!("SCHOOL#{school}")
}

/// A school's devices of `status` in [`SCHOOL_DEVICES`].
pub fn school_devices_pk(school: &SchoolId, status: Status) -> String {
    format!("SDEV#{school}#{}", status.as_str())
}

/// A school's failing devices in [`SCHOOL_FAILING`] (silent ones apart, as in [`FAILING`]).
pub fn school_failing_pk(school: &SchoolId, silent: bool) -> String {
    match silent {
        false => format!("SFAIL#{school}"),
        true => format!("SFAIL#{school}#SILENT"),
    }
}

/// A school's silent devices in [`SCHOOL_SILENT`].
pub fn school_silent_pk(school: &SchoolId) -> String {
    format!("SSIL#{school}")
}

/// A scope's rolled-up day totals.
pub fn days_pk(scope: &CountScope) -> String {
    format!("DAYS#{}", scope.key())
}

/// Stream batches' day totals written in one slot, waiting to be rolled up.
pub fn day_delta_pk(slot: i64) -> String {
    format!("DAYDELTA#{slot}")
}

pub const ROLLUP_CURSOR: (&str, &str) = ("ROLLUP", "CURSOR");

pub fn day_pk(shard: u8) -> String {
    format!("DAY#{shard}")
}

pub fn day_partitions() -> Vec<String> {
    (0..DAY_SHARDS).map(day_pk).collect()
}

pub fn day_sk(day: Day) -> String {
    day.text()
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

/// A device's state item. The state itself is one JSON string: any number a report may
/// carry (an `internet_speed` of 1e300) fits, where a DynamoDB number would not.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StateItem {
    pub pk: String,
    pub sk: String,
    pub device_id: DeviceId,
    /// Optimistic-concurrency version, +1 on every write.
    pub version: u64,
    pub state: String,
    /// Absent for a device that has not reported yet (in no list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school_id: Option<SchoolId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices_sk: Option<String>,
    // Only on reported devices of a school: the school indexes' keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdev_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdev_sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sfail_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sfail_sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssil_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssil_sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_sk: Option<String>,
    // Only on failing devices: the failing index's keys and projected list fields.
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
    /// `status` (`None`: never reported) and `failing` are the domain's decisions:
    /// with the state's school they place the item in the indexes.
    pub fn new(
        state: &DeviceState,
        version: u64,
        status: Option<Status>,
        failing: bool,
    ) -> Result<Self, serde_json::Error> {
        let listed = FailingDevice::from_state(state).filter(|_| failing && status.is_some());
        let silent = status == Some(Status::Silent);
        let failing_pk = listed.as_ref().map(|d| match silent {
            true => FAILING_SILENT_PK.to_owned(),
            false => failing_pk(&d.device_id),
        });
        let silent_since = state
            .silent_since
            .or(state.last_seen_at)
            .unwrap_or(EventTime::EPOCH);
        let silent_key = silent.then(|| silent_sk(silent_since, &state.device_id));
        let school = state.school_id.as_ref().filter(|_| status.is_some());
        Ok(Self {
            pk: device_pk(&state.device_id),
            sk: STATE_SK.to_owned(),
            device_id: state.device_id.clone(),
            version,
            state: serde_json::to_string(state)?,
            status,
            school_id: state.school_id.clone(),
            devices_pk: status.map(devices_pk),
            devices_sk: status.map(|_| state.device_id.to_string()),
            sdev_pk: school.zip(status).map(|(id, st)| school_devices_pk(id, st)),
            sdev_sk: school.map(|_| state.device_id.to_string()),
            sfail_pk: school
                .filter(|_| listed.is_some())
                .map(|id| school_failing_pk(id, silent)),
            sfail_sk: school.and(listed.as_ref()).map(|d| failing_sk(&d.key())),
            ssil_pk: school.filter(|_| silent).map(school_silent_pk),
            ssil_sk: school.and(silent_key.clone()),
            silent_pk: silent.then(|| SILENT_PK.to_owned()),
            silent_sk: silent_key,
            failing_pk,
            failing_sk: listed.as_ref().map(|d| failing_sk(&d.key())),
            consecutive_failures: listed.as_ref().map(|d| d.consecutive_failures),
            streak_started_at: listed.as_ref().map(|d| d.streak_started_at),
            last_failure_at: listed.as_ref().map(|d| d.last_failure_at),
            last_sync_at: listed.as_ref().map(|d| d.last_sync_at),
        })
    }

    pub fn device_state(&self) -> Result<DeviceState, serde_json::Error> {
        serde_json::from_str(&self.state)
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
    use crate::domain::streak::Streak;

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
        let state = DeviceState::new(DeviceId::parse("d").unwrap());
        let item = StateItem::new(&state, 1, Some(Status::Healthy), false).unwrap();
        let item: serde_dynamo::Item = serde_dynamo::to_item(&item).unwrap();
        assert!(event_from_image(item).is_none());
    }

    fn failing_state() -> DeviceState {
        let mut state = DeviceState::new(DeviceId::parse("d").unwrap());
        let t = EventTime::from_millis(0).unwrap();
        state.streak = Some(Streak {
            count: 3,
            started_at: t,
            last_failure_at: t,
            last_total_errors: 1,
            fresh: true,
        });
        state.last_seen_at = Some(t);
        state.last_internet_speed = Some(1e300);
        state
    }

    #[test]
    fn states_enter_the_indexes_their_status_and_streak_say() {
        let mut state = failing_state();
        let healthy = StateItem::new(&state, 1, Some(Status::Healthy), false).unwrap();
        assert_eq!((healthy.failing_pk, healthy.silent_pk), (None, None));
        assert_eq!(healthy.devices_pk.as_deref(), Some("DEVICES#healthy"));
        assert_eq!(healthy.sdev_pk, None, "in no school");
        let failing = StateItem::new(&state, 1, Some(Status::Failing), true).unwrap();
        assert_eq!(failing.failing_pk, Some(failing_pk(&failing.device_id)));
        assert_eq!(failing.consecutive_failures, Some(3));
        let silent = StateItem::new(&state, 1, Some(Status::Silent), true).unwrap();
        assert_eq!(
            silent.failing_pk.as_deref(),
            Some(FAILING_SILENT_PK),
            "still a repeated failure"
        );
        assert_eq!(silent.silent_pk.as_deref(), Some(SILENT_PK));
        assert_eq!(silent.devices_pk.as_deref(), Some("DEVICES#silent"));
        assert_eq!(silent.device_state().unwrap(), state, "any speed round-trips");
        let north = SchoolId::parse("north").unwrap();
        state.school_id = Some(north.clone());
        let in_school = StateItem::new(&state, 1, Some(Status::Silent), true).unwrap();
        assert_eq!(in_school.sdev_pk, Some(school_devices_pk(&north, Status::Silent)));
        assert_eq!(in_school.sfail_pk, Some(school_failing_pk(&north, true)));
        assert_eq!(in_school.ssil_pk, Some(school_silent_pk(&north)));
        assert_eq!(in_school.ssil_sk, in_school.silent_sk);
        let unseen = StateItem::new(
            &DeviceState {
                school_id: Some(north),
                ..DeviceState::new(state.device_id.clone())
            },
            1,
            None,
            false,
        )
        .unwrap();
        for key in [
            &unseen.devices_pk,
            &unseen.sdev_pk,
            &unseen.sfail_pk,
            &unseen.ssil_pk,
            &unseen.failing_pk,
            &unseen.silent_pk,
        ] {
            assert_eq!(key, &None, "a device that never reported is in no index");
        }
    }
}
