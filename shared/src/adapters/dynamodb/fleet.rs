//! The fleet's items on DynamoDB: the notice outbox, the per-day totals of the fleet
//! and of each school (each stream batch writes its own small delta item; the periodic
//! check rolls slots of them up into the days, so concurrent batches never crowd one
//! item and a school's day costs at most one write per slot), and the device counts
//! by status.

use super::item::{
    day_delta_pk, day_partitions, day_sk, days_pk, COUNTS_SK, FLEET_PK, OUTBOX_PK, ROLLUP_CURSOR,
};
use super::{corrupt, n, s, unavailable, DynamoStore, Units};
use crate::domain::fleet::{CountScope, Day, DayAddition, DayTotals, FleetCounts};
use crate::domain::sketch::{DeviceSketch, SpeedSketch};
use crate::ports::{Outbox, OutboxEntry, ReadFleet, ReadSchools, RecordDays, StoreError, Within};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct OutboxItem {
    sk: String,
    notice: String,
}

#[derive(Deserialize, Default)]
struct CountsItem {
    #[serde(default)]
    total: i64,
    #[serde(default)]
    failing: i64,
    #[serde(default)]
    silent: i64,
}

/// A scope's day: its counts and sketches, the version every rewrite bumps, the last
/// slot rolled into it and the keys of the late additions added to it.
#[derive(Deserialize, Default)]
struct DayItem {
    sk: String,
    #[serde(default)]
    syncs: u64,
    #[serde(default)]
    failures: u64,
    #[serde(default)]
    files_synced: u64,
    #[serde(default)]
    speed_sum: f64,
    #[serde(default, deserialize_with = "binary")]
    speeds: Vec<u8>,
    #[serde(default, deserialize_with = "binary")]
    devices: Vec<u8>,
    #[serde(default)]
    v: u64,
    #[serde(default)]
    rolled: Option<i64>,
    #[serde(default)]
    late: Vec<String>,
}

impl DayItem {
    fn totals(&self) -> Result<DayTotals, StoreError> {
        let sketch = |e| corrupt(format!("day item {}: {e}", self.sk));
        Ok(DayTotals {
            syncs: self.syncs,
            failures: self.failures,
            files_synced: self.files_synced,
            speed_sum: self.speed_sum,
            speeds: SpeedSketch::from_bytes(&self.speeds).map_err(sketch)?,
            devices: DeviceSketch::from_bytes(&self.devices).map_err(sketch)?,
        })
    }
}

/// A binary attribute (serde_dynamo hands it over as bytes).
fn binary<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Bytes;
    impl serde::de::Visitor<'_> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a binary attribute")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }
    deserializer.deserialize_byte_buf(Bytes)
}

#[async_trait]
impl Outbox for DynamoStore {
    async fn pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(OUTBOX_PK))
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("Query outbox"))?;
        self.metered(Units::Read, out.consumed_capacity());
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                let item: OutboxItem = serde_dynamo::from_item(item).map_err(corrupt)?;
                Ok(OutboxEntry {
                    notice: serde_json::from_str(&item.notice).map_err(corrupt)?,
                    key: item.sk,
                })
            })
            .collect()
    }

    async fn delivered(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(OUTBOX_PK))
            .key("sk", s(entry.key.clone()))
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("DeleteItem outbox"))?;
        self.metered(Units::Write, out.consumed_capacity());
        Ok(())
    }
}

/// A number as DynamoDB takes it: exponent notation keeps a sum of speeds within its
/// 38 significant digits.
fn decimal(v: f64) -> AttributeValue {
    AttributeValue::N(format!("{v:e}"))
}

/// How long a batch's day totals wait, at most, to be rolled up: a day and a margin
/// (TTL tidies them; the roll-up reads them within minutes).
const DELTA_TTL_SECONDS: i64 = 2 * 86_400;
/// Slots a roll-up reads at most per run (a long outage catches up over several runs).
const SLOTS_PER_RUN: i64 = 60;
/// Without a cursor (a new table), the roll-up starts this many slots back.
const FIRST_LOOK_BACK_SLOTS: i64 = 12;

/// One day's totals of one scope, as a delta item lists them: scope, day, syncs,
/// failures, files, speed sum, and the speed and device sketches in base64.
#[derive(serde::Serialize, Deserialize)]
struct DeltaDay(String, i64, u64, u64, u64, f64, String, String);

impl DeltaDay {
    fn of(scope: &CountScope, day: Day, t: &DayTotals) -> Self {
        Self(
            scope.key(),
            day.number(),
            t.syncs,
            t.failures,
            t.files_synced,
            t.speed_sum,
            BASE64.encode(t.speeds.to_bytes()),
            BASE64.encode(t.devices.to_bytes()),
        )
    }

    fn totals(self) -> Result<((CountScope, Day), DayTotals), StoreError> {
        let Self(scope, day, syncs, failures, files_synced, speed_sum, speeds, devices) = self;
        let scope = CountScope::from_key(&scope).ok_or_else(|| corrupt(format!("scope {scope}")))?;
        let bytes = |text: &str| BASE64.decode(text).map_err(corrupt);
        let totals = DayTotals {
            syncs,
            failures,
            files_synced,
            speed_sum,
            speeds: SpeedSketch::from_bytes(&bytes(&speeds)?).map_err(corrupt)?,
            devices: DeviceSketch::from_bytes(&bytes(&devices)?).map_err(corrupt)?,
        };
        Ok(((scope, Day::from_number(day)), totals))
    }
}

/// Where an addition to a day comes from, which makes adding it once: a rolled-up
/// slot (a day takes slots in order) or a late addition (a day lists their keys).
enum Mark<'a> {
    Slot(i64),
    Late(&'a str),
}

/// Rewrites of one day that lose a race before giving up (another roll-up or a late
/// addition wrote it in between).
const DAY_WRITE_ATTEMPTS: u32 = 8;

#[derive(Deserialize)]
struct DeltaItem {
    days: String,
}

#[derive(Deserialize)]
struct CursorItem {
    slot: i64,
}

impl DynamoStore {
    fn slot_of(&self, t: crate::domain::time::EventTime) -> i64 {
        let slot = i64::try_from(self.rollup.slot.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        t.millis().div_euclid(slot)
    }

    /// The batches' additions written in `slot`, merged.
    async fn slot_days(&self, slot: i64) -> Result<BTreeMap<(CountScope, Day), DayTotals>, StoreError> {
        let mut days: BTreeMap<(CountScope, Day), DayTotals> = BTreeMap::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(day_delta_pk(slot)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(self.capacity())
                .send()
                .await
                .map_err(unavailable("Query day deltas"))?;
            self.metered(Units::Read, out.consumed_capacity());
            for item in out.items.unwrap_or_default() {
                let item: DeltaItem = serde_dynamo::from_item(item).map_err(corrupt)?;
                let listed: Vec<DeltaDay> = serde_json::from_str(&item.days).map_err(corrupt)?;
                for listed in listed {
                    let (key, totals) = listed.totals()?;
                    days.entry(key).or_default().add(&totals);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(days),
            }
        }
    }

    /// Adds `totals` to one scope's day unless `mark` was added to it already (a
    /// roll-up that stopped half-way and runs again, a late addition retried): read the
    /// day, merge in the domain's terms, write it back if no one else did meanwhile.
    async fn add_to_day(
        &self,
        scope: &CountScope,
        day: Day,
        totals: &DayTotals,
        mark: Mark<'_>,
    ) -> Result<(), StoreError> {
        for _ in 0..DAY_WRITE_ATTEMPTS {
            let stored: DayItem = self
                .get(days_pk(scope), day_sk(day), true)
                .await?
                .unwrap_or_default();
            let mut rolled = stored.rolled;
            let mut late = stored.late.clone();
            match mark {
                Mark::Slot(slot) if stored.rolled.is_some_and(|r| r >= slot) => return Ok(()),
                Mark::Slot(slot) => rolled = Some(slot),
                Mark::Late(key) if stored.late.iter().any(|k| k == key) => return Ok(()),
                Mark::Late(key) => late.push(key.to_owned()),
            }
            let mut sum = stored.totals()?;
            sum.add(totals);
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(days_pk(scope)))
                .item("sk", s(day_sk(day)))
                .item("syncs", n(sum.syncs))
                .item("failures", n(sum.failures))
                .item("files_synced", n(sum.files_synced))
                .item("speed_sum", decimal(sum.speed_sum))
                .item("speeds", AttributeValue::B(Blob::new(sum.speeds.to_bytes())))
                .item("devices", AttributeValue::B(Blob::new(sum.devices.to_bytes())))
                .item("v", n(stored.v + 1))
                .return_consumed_capacity(self.capacity());
            if let Some(rolled) = rolled {
                put = put.item("rolled", n(rolled));
            }
            if !late.is_empty() {
                put = put.item("late", AttributeValue::Ss(late));
            }
            put = match stored.v {
                0 => put.condition_expression("attribute_not_exists(v)"),
                v => put
                    .condition_expression("v = :v")
                    .expression_attribute_values(":v", n(v)),
            };
            match put.send().await {
                Ok(out) => {
                    self.metered(Units::Write, out.consumed_capacity());
                    return Ok(());
                }
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => return Err(unavailable("PutItem day")(e)),
            }
        }
        Err(StoreError::unavailable_because(format!(
            "day {} of {} kept changing",
            day.text(),
            scope.key()
        )))
    }

    async fn day_items(&self, pk: String, first: Day, last: Day) -> Result<Vec<DayItem>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":first", s(day_sk(first)))
            .expression_attribute_values(":last", s(day_sk(last)))
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("Query days"))?;
        self.metered(Units::Read, out.consumed_capacity());
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(corrupt))
            .collect()
    }

    /// A late addition (its slot may be rolled up already) goes straight into its
    /// days, each of which records the addition's key: a retry adds nothing more.
    async fn add_late_days(&self, addition: &DayAddition) -> Result<(), StoreError> {
        for ((scope, day), totals) in &addition.days {
            self.add_to_day(scope, *day, totals, Mark::Late(&addition.key))
                .await?;
        }
        Ok(())
    }

    /// Whether the addition's delta item is in its slot (written by an earlier attempt).
    async fn delta_written(&self, slot: i64, key: &str) -> Result<bool, StoreError> {
        let item: Option<DeltaItem> = self.get(day_delta_pk(slot), key.to_owned(), true).await?;
        Ok(item.is_some())
    }
}

#[async_trait]
impl RecordDays for DynamoStore {
    /// One conditional put of the batch's totals into the slot of the time its latest
    /// event was received (the same item on every retry, so a retry adds nothing); the
    /// periodic check rolls slots up into days ([`RecordDays::roll_up_days`]). One
    /// small write per stream batch, and at most one write per scope and day per slot,
    /// however many batches touched it. An addition applied later than half the
    /// roll-up margin after that time (detection was failing for a while) may miss its
    /// slot's roll-up, so it is added to its days directly, unless an earlier attempt
    /// wrote its delta.
    async fn add_days(
        &self,
        addition: &DayAddition,
        now: crate::domain::time::EventTime,
    ) -> Result<(), StoreError> {
        let slot = self.slot_of(addition.at);
        let late_after = i64::try_from(self.rollup.margin.as_millis() / 2).unwrap_or(i64::MAX);
        if now.millis().saturating_sub(addition.at.millis()) > late_after {
            if self.delta_written(slot, &addition.key).await? {
                return Ok(());
            }
            return self.add_late_days(addition).await;
        }
        let listed: Vec<DeltaDay> = addition
            .days
            .iter()
            .map(|((scope, day), t)| DeltaDay::of(scope, *day, t))
            .collect();
        let slot_end_seconds = (slot + 1) * i64::try_from(self.rollup.slot.as_millis()).unwrap_or(0) / 1000;
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(day_delta_pk(slot)))
            .item("sk", s(addition.key.clone()))
            .item("days", s(serde_json::to_string(&listed).map_err(corrupt)?))
            .item(
                super::item::TTL_ATTRIBUTE,
                n(slot_end_seconds + DELTA_TTL_SECONDS),
            )
            .condition_expression("attribute_not_exists(pk)")
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        match sent {
            Ok(out) => {
                self.metered(Units::Write, out.consumed_capacity());
                Ok(())
            }
            // Written already: a retry after a reply that was lost.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(unavailable("PutItem day delta")(e)),
        }
    }

    /// Rolls up every slot that ended a margin before `now` and is not rolled up yet,
    /// oldest first, then moves the cursor past them.
    async fn roll_up_days(&self, now: crate::domain::time::EventTime) -> Result<(), StoreError> {
        let margin = i64::try_from(self.rollup.margin.as_millis()).unwrap_or(0);
        let last_complete = self.slot_of(now.plus_millis(-margin)) - 1;
        let cursor: Option<CursorItem> = self
            .get(ROLLUP_CURSOR.0.to_owned(), ROLLUP_CURSOR.1.to_owned(), true)
            .await?;
        let first = cursor.map_or(last_complete - FIRST_LOOK_BACK_SLOTS + 1, |c| c.slot + 1);
        let last = last_complete.min(first + SLOTS_PER_RUN - 1);
        if first > last {
            return Ok(());
        }
        for slot in first..=last {
            for ((scope, day), totals) in self.slot_days(slot).await? {
                self.add_to_day(&scope, day, &totals, Mark::Slot(slot)).await?;
            }
        }
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(ROLLUP_CURSOR.0))
            .item("sk", s(ROLLUP_CURSOR.1))
            .item("slot", n(last))
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("PutItem roll-up cursor"))?;
        self.metered(Units::Write, out.consumed_capacity());
        Ok(())
    }
}

#[async_trait]
impl ReadFleet for DynamoStore {
    async fn counts(&self, within: &Within) -> Result<FleetCounts, StoreError> {
        match within {
            Within::Fleet => {
                let item: Option<CountsItem> =
                    self.get(FLEET_PK.to_owned(), COUNTS_SK.to_owned(), false).await?;
                let c = item.unwrap_or_default();
                Ok(FleetCounts::from_totals(c.total, c.failing, c.silent))
            }
            Within::Schools(ids) => {
                let mut sum = FleetCounts::default();
                for counts in self.school_counts(ids).await? {
                    let d = counts.devices;
                    sum.total += d.total;
                    sum.healthy += d.healthy;
                    sum.failing += d.failing;
                    sum.silent += d.silent;
                }
                Ok(sum)
            }
        }
    }

    /// The rolled-up days of each scope asked for (and, for the fleet, the sharded days
    /// written before schools), summed.
    async fn days(
        &self,
        first: Day,
        last: Day,
        within: &Within,
    ) -> Result<BTreeMap<Day, DayTotals>, StoreError> {
        let mut partitions: Vec<String> = match within {
            Within::Fleet => vec![days_pk(&CountScope::Fleet)],
            Within::Schools(ids) => ids
                .iter()
                .map(|id| days_pk(&CountScope::School(id.clone())))
                .collect(),
        };
        if *within == Within::Fleet {
            partitions.extend(day_partitions());
        }
        let reads = partitions.into_iter().map(|pk| self.day_items(pk, first, last));
        let mut days: BTreeMap<Day, DayTotals> = BTreeMap::new();
        for items in futures_util::future::join_all(reads).await {
            for item in items? {
                let day = Day::parse(&item.sk).ok_or_else(|| corrupt(format!("day item {}", item.sk)))?;
                days.entry(day).or_default().add(&item.totals()?);
            }
        }
        Ok(days)
    }
}
