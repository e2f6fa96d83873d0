//! The silence check's agenda on DynamoDB: each device has an item, keyed by the time
//! it could next become silent, in that time's 5-minute slot (written when it is first
//! seen, when it comes back, and by each check that finds it still reporting). A check
//! reads the slots that ended since the last one, and the current slot up to now —
//! never every device — and a device costs one read and one write per silent period,
//! however often it reports.

use super::item::{
    watch_device, watch_pk, watch_sk, watch_slot, TTL_ATTRIBUTE, WATCH_CURSOR, WATCH_SLOT_MILLIS,
    WATCH_TTL_SECONDS,
};
use super::{n, s, unavailable, DynamoStore, Item, Units};
use crate::domain::event::DeviceId;
use crate::domain::time::EventTime;
use crate::ports::{DueChecks, SilenceWatch, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;

/// Without a cursor (a new table), the check starts this many slots back: a day.
const FIRST_LOOK_BACK: i64 = 288;

#[derive(Deserialize)]
struct Cursor {
    slot: i64,
}

impl DynamoStore {
    /// The devices of `slot` due at or before `upto` (`None`: the whole slot).
    async fn slot_devices(
        &self,
        slot: i64,
        upto: Option<EventTime>,
        devices: &mut Vec<DeviceId>,
    ) -> Result<(), StoreError> {
        let mut start: Option<Item> = None;
        loop {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(watch_pk(slot)));
            let query = match upto {
                None => query.key_condition_expression("pk = :pk"),
                Some(upto) => query
                    .key_condition_expression("pk = :pk AND sk <= :upto")
                    .expression_attribute_values(":upto", s(format!("{:015}#~", upto.millis().max(0)))),
            };
            let out = query
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(self.capacity())
                .send()
                .await
                .map_err(unavailable("Query watch slot"))?;
            self.metered(Units::Read, out.consumed_capacity());
            for item in out.items.unwrap_or_default() {
                if let Some(AttributeValue::S(sk)) = item.get("sk") {
                    devices.extend(watch_device(sk));
                }
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(()),
            }
        }
    }
}

#[async_trait]
impl SilenceWatch for DynamoStore {
    /// The devices of every slot that ended since the last check, whole slots at a
    /// time (at least one), until `limit`; then those of the current slot already due.
    /// Only ended slots are marked checked: the current one is read again next time.
    async fn due(&self, now: EventTime, limit: usize) -> Result<DueChecks, StoreError> {
        let (pk, sk) = WATCH_CURSOR;
        let cursor: Option<Cursor> = self.get(pk.to_owned(), sk.to_owned(), true).await?;
        let current = watch_slot(now);
        let mut slot = cursor.map_or(current - FIRST_LOOK_BACK, |c| c.slot);
        let mut due = DueChecks::default();
        while slot + 1 < current && due.devices.len() < limit.max(1) {
            slot += 1;
            self.slot_devices(slot, None, &mut due.devices).await?;
            due.mark = Some(slot);
        }
        if slot + 1 >= current && due.devices.len() < limit.max(1) {
            self.slot_devices(current, Some(now), &mut due.devices).await?;
        }
        Ok(due)
    }

    async fn recheck(&self, device: &DeviceId, at: EventTime) -> Result<(), StoreError> {
        let slot = watch_slot(at);
        let expires = (slot + 1) * WATCH_SLOT_MILLIS / 1000 + WATCH_TTL_SECONDS;
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(watch_pk(slot)))
            .item("sk", s(watch_sk(at, device)))
            .item(TTL_ATTRIBUTE, n(expires))
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("PutItem watch"))?;
        self.metered(Units::Write, out.consumed_capacity());
        Ok(())
    }

    /// Moves the cursor forward (never back: two checks may overlap).
    async fn checked(&self, mark: i64) -> Result<(), StoreError> {
        let (pk, sk) = WATCH_CURSOR;
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("slot", n(mark))
            .condition_expression("attribute_not_exists(slot) OR slot < :mark")
            .expression_attribute_values(":mark", n(mark))
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        match sent {
            Ok(out) => {
                self.metered(Units::Write, out.consumed_capacity());
                Ok(())
            }
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(unavailable("PutItem watch cursor")(e)),
        }
    }
}
