//! Every event item, for `pisync-local export` against a DynamoDB table: a Scan of the
//! event items (a batch job's read: the whole table, a page at a time). An event item
//! does not keep its school, so each device's current school is read once per page.

use super::item::{EventItem, EVENT_PREFIX};
use super::{corrupt, s, unavailable, DynamoStore, Units};
use crate::domain::event::DeviceId;
use crate::domain::school::SchoolId;
use crate::domain::time::EventTime;
use crate::ports::{DeviceStates, ExportEvents, ExportPage, ExportedEvent, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// The cursor: the last key a Scan page evaluated, as `pk` newline `sk`.
fn cursor_of(key: &HashMap<String, AttributeValue>) -> Option<String> {
    let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
    Some(format!("{}\n{}", text("pk")?, text("sk")?))
}

fn key_of(cursor: &str) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let (pk, sk) = cursor
        .split_once('\n')
        .ok_or_else(|| corrupt(format!("export cursor {cursor:?}")))?;
    Ok(HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
    ]))
}

#[async_trait]
impl ExportEvents for DynamoStore {
    async fn export_page(
        &self,
        from: EventTime,
        until: EventTime,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ExportPage, StoreError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(sk, :event)")
            .expression_attribute_values(":event", s(EVENT_PREFIX))
            .set_exclusive_start_key(after.map(key_of).transpose()?)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("Scan events"))?;
        self.metered(Units::Read, out.consumed_capacity());
        let next = out.last_evaluated_key.as_ref().and_then(cursor_of);
        let mut schools: HashMap<DeviceId, Option<SchoolId>> = HashMap::new();
        let mut events = Vec::new();
        for item in out.items.unwrap_or_default() {
            let event = serde_dynamo::from_item::<_, EventItem>(item)
                .map_err(corrupt)?
                .into_event();
            if event.received_at < from || event.received_at >= until {
                continue;
            }
            let school_id = match schools.get(&event.device_id) {
                Some(school) => school.clone(),
                None => {
                    let state = self.load_recent(&event.device_id).await?;
                    let school = state.and_then(|v| v.state.school_id);
                    schools.insert(event.device_id.clone(), school.clone());
                    school
                }
            };
            events.push(ExportedEvent { event, school_id });
        }
        Ok(ExportPage { events, next })
    }
}
