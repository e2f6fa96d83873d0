//! Per-device limits across Lambda sandboxes: each sandbox counts what it admits in
//! memory ([`MinuteCounters`]) and adds its count to the device's credentials item only
//! once it reaches an eighth of a limit, reading back the total every sandbox added.
//! A device reporting as devices do (a request every few minutes) never reaches a
//! flush, so the limit costs it nothing; a flooding device costs one write per eighth
//! of its limit. The count is approximate: sandboxes may each hold up to an eighth
//! unflushed, so with up to eight sandboxes serving one device it admits at most
//! twice its limit (docs/security.md).

use super::{n, s, unavailable, CREDENTIALS_KEY};
use crate::adapters::minute_counters::MinuteCounters;
use crate::domain::event::DeviceId;
use crate::domain::limits::{minute, Admission, DeviceLimits, Usage};
use crate::domain::time::EventTime;
use crate::ports::{LimitDevices, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

const MINUTE: &str = "rate_minute";
const REQUESTS: &str = "rate_requests";
const EVENTS: &str = "rate_events";

pub struct SharedMinuteCounters {
    client: Client,
    /// The credentials table: the counters ride in each device's credential item.
    table: String,
    sandbox: MinuteCounters,
}

impl SharedMinuteCounters {
    pub fn new(client: Client, table: impl Into<String>, limits: DeviceLimits) -> Self {
        Self {
            client,
            table: table.into(),
            sandbox: MinuteCounters::new(limits),
        }
    }

    /// A sandbox adds its count once it holds this much of a limit.
    fn flush_at(&self) -> Usage {
        let limits = self.sandbox.limits();
        Usage {
            requests: (limits.requests_per_minute / 8).max(1),
            events: (limits.events_per_minute / 8).max(1),
        }
    }

    /// Adds `add` to the device's count for `minute`: the total every sandbox added.
    /// `None` when the device has no credential item (revoked meanwhile).
    async fn add_shared(
        &self,
        device: &DeviceId,
        minute: i64,
        add: Usage,
    ) -> Result<Option<Usage>, StoreError> {
        let values: HashMap<String, AttributeValue> = [
            (":m".to_owned(), n(minute)),
            (":r".to_owned(), n(add.requests)),
            (":e".to_owned(), n(add.events)),
        ]
        .into();
        // ADD to this minute's count, else start the minute (on an item that exists and
        // holds an older one); twice at most: another sandbox may start it in between.
        let tries = [
            (format!("ADD {REQUESTS} :r, {EVENTS} :e"), format!("{MINUTE} = :m")),
            (
                format!("SET {MINUTE} = :m, {REQUESTS} = :r, {EVENTS} = :e"),
                format!("attribute_exists({CREDENTIALS_KEY}) AND (attribute_not_exists({MINUTE}) OR {MINUTE} < :m)"),
            ),
        ];
        for (update, condition) in tries.iter().chain(tries.iter()) {
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(CREDENTIALS_KEY, s(device.as_str()))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values.clone()))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match out {
                Ok(out) => return Ok(Some(usage(out.attributes.as_ref()))),
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => return Err(unavailable("UpdateItem rate count")(e)),
            }
        }
        Ok(None)
    }
}

fn usage(attributes: Option<&HashMap<String, AttributeValue>>) -> Usage {
    let count = |name: &str| {
        attributes
            .and_then(|a| a.get(name))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Usage {
        requests: count(REQUESTS),
        events: count(EVENTS),
    }
}

#[async_trait]
impl LimitDevices for SharedMinuteCounters {
    async fn admit(&self, device: &DeviceId, events: u32, now: EventTime) -> Result<Admission, StoreError> {
        let flush_at = self.flush_at();
        let (admission, to_flush) = self.sandbox.with_window(device, now, |window| {
            let admission = self.sandbox.limits().decide(window.total(), events, now);
            if admission != Admission::Admitted {
                return (admission, None);
            }
            window.used = window.used.plus(events);
            if window.used.requests < flush_at.requests && window.used.events < flush_at.events {
                return (admission, None);
            }
            // Counted as shared from now on: the write below makes it so.
            let flush = window.used;
            window.shared = Usage {
                requests: window.shared.requests.saturating_add(flush.requests),
                events: window.shared.events.saturating_add(flush.events),
            };
            window.used = Usage::default();
            (admission, Some(flush))
        });
        if let Some(flush) = to_flush {
            let this_minute = minute(now);
            match self.add_shared(device, this_minute, flush).await {
                Ok(Some(total)) => self.sandbox.with_window(device, now, |window| {
                    if window.minute == this_minute {
                        window.shared.requests = window.shared.requests.max(total.requests);
                        window.shared.events = window.shared.events.max(total.events);
                    }
                }),
                Ok(None) => {}
                // The request was admitted: a count that could not be shared stays this
                // sandbox's (already in `shared`), and recording goes on.
                Err(err) => tracing::warn!(error = %err, "could not add to the device's rate count"),
            }
        }
        Ok(admission)
    }
}
