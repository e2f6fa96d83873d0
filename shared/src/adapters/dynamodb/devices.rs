//! Device states on DynamoDB: one item per device (saved with the notices — outbox
//! and history — count changes and silence check that change with it), the device
//! lists read through sparse indexes, and the repeated-failures list.

use super::item::{
    device_pk, devices_pk, event_sk, failing_partitions, failing_sk, live_failing_partitions,
    school_devices_pk, school_failing_pk, school_pk, school_silent_pk, silent_sk, watch_pk, watch_sk,
    watch_slot, FailingItem, IndexSchema, StateItem, COUNTS_SK, DEVICES, EVENT_PREFIX, FAILING, FLEET_PK,
    OUTBOX_PK, SCHOOLS_PK, SCHOOL_DEVICES, SCHOOL_FAILING, SCHOOL_SILENT, SILENT, SILENT_PK, STATE_SK,
    WATCH_SLOT_MILLIS, WATCH_TTL_SECONDS,
};
use super::{built, corrupt, n, s, unavailable, DynamoStore, Item, Transacted, Units};
use crate::domain::device::{DeviceState, Status};
use crate::domain::event::DeviceId;
use crate::domain::fleet::CountScope;
use crate::domain::school::{School, SchoolId};
use crate::domain::streak::{RunCount, RunWindow};
use crate::domain::time::EventTime;
use crate::ports::{
    DeviceKey, DevicePage, DeviceStates, FailingDevice, FailingKey, FailingPage, ListFailing, ReadDevices,
    ReadSchools, Saved, StateWrite, StoreError, Versioned, Within,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use std::collections::HashMap;
impl DynamoStore {
    /// Up to `limit` items of one partition of `index`, in sort-key order, strictly
    /// after `after`.
    async fn index_page(
        &self,
        index: &IndexSchema,
        pk: String,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let [pk_name, sk_name] = index.keys;
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index.name)
            .expression_attribute_names("#pk", pk_name)
            .expression_attribute_values(":pk", s(pk))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .return_consumed_capacity(self.capacity());
        let query = match after {
            Some(after) => query
                .key_condition_expression("#pk = :pk AND #sk > :after")
                .expression_attribute_names("#sk", sk_name)
                .expression_attribute_values(":after", s(after)),
            None => query.key_condition_expression("#pk = :pk"),
        };
        let out = query.send().await.map_err(unavailable("Query index"))?;
        self.metered(Units::Read, out.consumed_capacity());
        Ok(out.items.unwrap_or_default())
    }

    /// The first `limit` items, by `index`'s sort key, of several of its partitions.
    async fn merged_index_page(
        &self,
        index: &IndexSchema,
        partitions: Vec<String>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let pages = partitions
            .into_iter()
            .map(|pk| self.index_page(index, pk, after, limit));
        let mut items = Vec::new();
        for page in futures_util::future::join_all(pages).await {
            items.extend(page?);
        }
        let sk_name = index.keys[1];
        let sort_key = |item: &Item| match item.get(sk_name) {
            Some(AttributeValue::S(v)) => v.clone(),
            _ => String::new(),
        };
        items.sort_by_key(sort_key);
        items.truncate(limit);
        Ok(items)
    }

    /// The states of `devices` with the status each was saved with, eventually
    /// consistent, in the order given (devices without one are left out).
    async fn states_of(
        &self,
        devices: &[DeviceId],
    ) -> Result<Vec<(Option<Status>, DeviceState)>, StoreError> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Item> = devices
            .iter()
            .map(|d| HashMap::from([("pk".to_owned(), s(device_pk(d))), ("sk".to_owned(), s(STATE_SK))]))
            .collect();
        let mut found: HashMap<String, (Option<Status>, DeviceState)> = HashMap::new();
        for item in self.batch_get(keys, "BatchGetItem states").await? {
            let item: StateItem = serde_dynamo::from_item(item).map_err(corrupt)?;
            let state = item.device_state().map_err(corrupt)?;
            found.insert(item.device_id.to_string(), (item.status, state));
        }
        Ok(devices.iter().filter_map(|d| found.remove(d.as_str())).collect())
    }

    fn outbox_put(&self, write: &StateWrite<'_>) -> Result<Vec<TransactWriteItem>, StoreError> {
        let device = &write.state.device_id;
        write
            .notices
            .iter()
            .enumerate()
            .filter(|(_, decided)| decided.is_published())
            .map(|(i, decided)| {
                let put = Put::builder()
                    .table_name(&self.table)
                    .item("pk", s(OUTBOX_PK))
                    // The version orders a device's saves decided in the same millisecond.
                    .item(
                        "sk",
                        s(format!(
                            "{}#{device}#{:020}#{i:02}",
                            write.now,
                            write.expected + 1
                        )),
                    )
                    .item("notice", s(decided.notice.to_json()))
                    .build()
                    .map_err(built)?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect()
    }
}

fn device_of(item: &Item) -> Option<DeviceId> {
    let Some(AttributeValue::S(pk)) = item.get("pk") else {
        return None;
    };
    DeviceId::parse(pk.strip_prefix("DEVICE#")?)
}

impl DynamoStore {
    async fn load_state(&self, device: &DeviceId, consistent: bool) -> Result<Option<Versioned>, StoreError> {
        let item: Option<StateItem> = self
            .get(device_pk(device), STATE_SK.to_owned(), consistent)
            .await?;
        item.map(|item| {
            Ok(Versioned {
                state: item.device_state().map_err(corrupt)?,
                version: item.version,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl DeviceStates for DynamoStore {
    async fn load(&self, device: &DeviceId) -> Result<Option<Versioned>, StoreError> {
        self.load_state(device, true).await
    }

    async fn load_recent(&self, device: &DeviceId) -> Result<Option<Versioned>, StoreError> {
        self.load_state(device, false).await
    }

    /// A conditional put (`attribute_not_exists` for the first save, else
    /// `version = expected`). When notices, count changes or a silence check come with
    /// it — a status change, which is rare — all of them go in one transaction.
    async fn save(&self, write: &StateWrite<'_>) -> Result<Saved, StoreError> {
        let item =
            StateItem::new(write.state, write.expected + 1, write.status, write.failing).map_err(corrupt)?;
        let item: Item = serde_dynamo::to_item(item).map_err(corrupt)?;
        let (condition, version) = match write.expected {
            0 => ("attribute_not_exists(pk)", None),
            v => ("version = :v", Some(n(v))),
        };
        if write.notices.is_empty()
            && write.counts.is_empty()
            && write.watch_at.is_none()
            && write.requires_school.is_none()
        {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_values(version.map(|v| HashMap::from([(":v".to_owned(), v)])));
            return match put.return_consumed_capacity(self.capacity()).send().await {
                Ok(out) => {
                    self.metered(Units::Write, out.consumed_capacity());
                    Ok(Saved::Written)
                }
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                    Ok(Saved::Stale)
                }
                Err(e) => Err(unavailable("PutItem state")(e)),
            };
        }
        let state_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(version.map(|v| HashMap::from([(":v".to_owned(), v)])))
            .build()
            .map_err(built)?;
        let mut items = vec![TransactWriteItem::builder().put(state_put).build()];
        items.extend(self.outbox_put(write)?);
        items.extend(self.history_puts(write)?);
        for change in &write.counts {
            let pk = match &change.scope {
                CountScope::Fleet => FLEET_PK.to_owned(),
                CountScope::School(id) => school_pk(id),
            };
            let d = change.delta;
            let counts = Update::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(COUNTS_SK))
                .update_expression(
                    "ADD #assigned :assigned, #total :total, #failing :failing, #silent :silent",
                )
                .expression_attribute_names("#assigned", "assigned")
                .expression_attribute_names("#total", "total")
                .expression_attribute_names("#failing", "failing")
                .expression_attribute_names("#silent", "silent")
                .expression_attribute_values(":assigned", n(change.assigned))
                .expression_attribute_values(":total", n(d.total))
                .expression_attribute_values(":failing", n(d.failing))
                .expression_attribute_values(":silent", n(d.silent))
                .build()
                .map_err(built)?;
            items.push(TransactWriteItem::builder().update(counts).build());
        }
        // The school the device moves to must still exist (a delete checks the school's
        // assigned count in its own transaction: the two never interleave).
        let school_check = match write.requires_school {
            Some(id) => {
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .key("pk", s(SCHOOLS_PK))
                    .key("sk", s(id.to_string()))
                    .condition_expression("attribute_exists(pk)")
                    .build()
                    .map_err(built)?;
                items.push(TransactWriteItem::builder().condition_check(check).build());
                Some(items.len() - 1)
            }
            None => None,
        };
        if let Some(at) = write.watch_at {
            let slot = watch_slot(at);
            let expires = (slot + 1) * WATCH_SLOT_MILLIS / 1000 + WATCH_TTL_SECONDS;
            let watch = Put::builder()
                .table_name(&self.table)
                .item("pk", s(watch_pk(slot)))
                .item("sk", s(watch_sk(at, &write.state.device_id)))
                .item(super::item::TTL_ATTRIBUTE, n(expires))
                .build()
                .map_err(built)?;
            items.push(TransactWriteItem::builder().put(watch).build());
        }
        match self.transact(items, "TransactWriteItems state").await? {
            Transacted::Written => Ok(Saved::Written),
            Transacted::Cancelled(reasons) => {
                // The state's condition failed, or another transaction held an item:
                // either way, load again.
                let retryable = reasons.iter().all(|code| {
                    matches!(
                        code.as_str(),
                        "None" | "ConditionalCheckFailed" | "TransactionConflict"
                    )
                });
                let school_gone = school_check
                    .and_then(|i| reasons.get(i))
                    .is_some_and(|code| code == "ConditionalCheckFailed");
                if school_gone {
                    Ok(Saved::NoSuchSchool)
                } else if retryable {
                    Ok(Saved::Stale)
                } else {
                    Err(StoreError::unavailable_because(format!(
                        "TransactWriteItems state cancelled: {}",
                        reasons.join(", ")
                    )))
                }
            }
        }
    }

    /// The school's item, kept for [`DynamoStore::with_school_cache`]'s time (a school's
    /// new settings reach detection within it).
    async fn school(&self, school: &SchoolId) -> Result<Option<School>, StoreError> {
        if let Some(cached) = self.schools.cached(school) {
            return Ok(cached);
        }
        let read = ReadSchools::school(self, school).await?;
        self.schools.keep(school, read.clone());
        Ok(read)
    }

    /// One page of a strongly consistent `Query` over the window, oldest first,
    /// filtered to failures, projecting only the timestamp: at most 1 MB of the
    /// device's events read.
    async fn count_run(&self, device: &DeviceId, window: RunWindow) -> Result<RunCount, StoreError> {
        let lo = window
            .after
            .map_or(EVENT_PREFIX.to_owned(), |t| event_sk(t.plus_millis(1)));
        let hi = event_sk(window.through);
        if lo > hi {
            return Ok(RunCount::default()); // an empty window
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .filter_expression("total_errors > :none")
            .projection_expression("#ts")
            .expression_attribute_names("#ts", "timestamp")
            .expression_attribute_values(":pk", s(device_pk(device)))
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi))
            .expression_attribute_values(":none", n(0))
            .consistent_read(true)
            .set_limit(self.count_page_items)
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("Query run"))?;
        self.metered(Units::Read, out.consumed_capacity());
        let items = out.items.unwrap_or_default();
        let first_failure = match items.first().and_then(|i| i.get("timestamp")) {
            Some(AttributeValue::S(ts)) => EventTime::parse_rfc3339(ts),
            _ => None,
        };
        // The page ended before the window did: its last key (an event, failed or
        // not) is where the next page starts.
        let read_through = match out.last_evaluated_key.as_ref().and_then(|k| k.get("sk")) {
            Some(AttributeValue::S(sk)) => {
                let ts = sk.strip_prefix(EVENT_PREFIX).and_then(EventTime::parse_rfc3339);
                Some(ts.ok_or_else(|| corrupt(format!("event key {sk}")))?)
            }
            _ => None,
        };
        Ok(RunCount {
            failures: u32::try_from(items.len()).unwrap_or(u32::MAX),
            first_failure,
            read_through,
        })
    }
}

#[async_trait]
impl ReadDevices for DynamoStore {
    async fn device(&self, device: &DeviceId) -> Result<Option<DeviceState>, StoreError> {
        let item: Option<StateItem> = self.get(device_pk(device), STATE_SK.to_owned(), false).await?;
        item.map(|item| item.device_state().map_err(corrupt)).transpose()
    }

    /// The index gives the page's devices in order; one `BatchGetItem` reads their
    /// states. A device whose status changed after the index was read (indexes lag by
    /// a fraction of a second) is left out of this page.
    async fn devices(
        &self,
        status: Option<Status>,
        limit: usize,
        after: Option<&DeviceKey>,
        within: &Within,
    ) -> Result<DevicePage, StoreError> {
        let after_sk = after.map(|key| match key {
            DeviceKey::Id(d) => d.to_string(),
            DeviceKey::Streak {
                consecutive_failures,
                device_id,
            } => failing_sk(&FailingKey {
                consecutive_failures: *consecutive_failures,
                device_id: device_id.clone(),
            }),
            DeviceKey::Silence {
                last_seen_at,
                device_id,
            } => silent_sk(*last_seen_at, device_id),
        });
        let after_sk = after_sk.as_deref();
        let fetch = limit + 1;
        // The fleet's lists, or the same lists of each school asked for, merged: a
        // page reads a page from each partition, never the rest of the fleet.
        let (index, partitions) = match (within, status) {
            (Within::Fleet, None) => (&DEVICES, Status::ALL.map(devices_pk).to_vec()),
            (Within::Fleet, Some(Status::Healthy)) => (&DEVICES, vec![devices_pk(Status::Healthy)]),
            (Within::Fleet, Some(Status::Failing)) => (&FAILING, live_failing_partitions()),
            (Within::Fleet, Some(Status::Silent)) => (&SILENT, vec![SILENT_PK.to_owned()]),
            (Within::Schools(ids), None) => (
                &SCHOOL_DEVICES,
                ids.iter()
                    .flat_map(|id| Status::ALL.map(|st| school_devices_pk(id, st)))
                    .collect(),
            ),
            (Within::Schools(ids), Some(Status::Healthy)) => (
                &SCHOOL_DEVICES,
                ids.iter()
                    .map(|id| school_devices_pk(id, Status::Healthy))
                    .collect(),
            ),
            (Within::Schools(ids), Some(Status::Failing)) => (
                &SCHOOL_FAILING,
                ids.iter().map(|id| school_failing_pk(id, false)).collect(),
            ),
            (Within::Schools(ids), Some(Status::Silent)) => {
                (&SCHOOL_SILENT, ids.iter().map(school_silent_pk).collect())
            }
        };
        let items = self.merged_index_page(index, partitions, after_sk, fetch).await?;
        let more = items.len() > limit;
        let devices: Vec<DeviceId> = items.iter().take(limit).filter_map(device_of).collect();
        let states = self
            .states_of(&devices)
            .await?
            .into_iter()
            .filter(|(saved, _)| saved.is_some() && status.is_none_or(|wanted| *saved == Some(wanted)))
            .map(|(_, state)| state)
            .collect();
        Ok(DevicePage {
            devices: states,
            more,
        })
    }
}

#[async_trait]
impl ListFailing for DynamoStore {
    async fn repeated_failures(
        &self,
        limit: usize,
        after: Option<&FailingKey>,
        within: &Within,
    ) -> Result<FailingPage, StoreError> {
        // One query per shard (or per school, silent ones too), each for a page and one
        // more, then a merge by the index's own order: the first `limit + 1` of the
        // union are the page.
        let after = after.map(failing_sk);
        let (index, partitions) = match within {
            Within::Fleet => (&FAILING, failing_partitions()),
            Within::Schools(ids) => (
                &SCHOOL_FAILING,
                ids.iter()
                    .flat_map(|id| [school_failing_pk(id, false), school_failing_pk(id, true)])
                    .collect(),
            ),
        };
        let items = self
            .merged_index_page(index, partitions, after.as_deref(), limit + 1)
            .await?;
        let devices = items
            .into_iter()
            .map(|item| {
                let f: FailingItem = serde_dynamo::from_item(item).map_err(corrupt)?;
                Ok(FailingDevice {
                    device_id: f.device_id,
                    consecutive_failures: f.consecutive_failures,
                    streak_started_at: f.streak_started_at,
                    last_failure_at: f.last_failure_at,
                    last_sync_at: f.last_sync_at,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(FailingPage::from_overfetch(devices, limit))
    }
}
