//! Schools on DynamoDB: each school's settings in one item of the `SCHOOLS` partition
//! (listed by id), its device counts in its own `SCHOOL#<id>` / `COUNTS` item, kept by
//! the state saves that move them. Deleting a school checks, in the same transaction,
//! that no device is assigned to it.

use super::item::{school_pk, COUNTS_SK, SCHOOLS_PK};
use super::{built, corrupt, s, unavailable, DynamoStore, Item, Transacted, Units};
use crate::domain::fleet::{FleetCounts, SchoolCounts};
use crate::domain::school::{School, SchoolId};
use crate::ports::{ManageSchools, ReadSchools, SchoolDeleted, SchoolPage, SchoolPut, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, ReturnValue, TransactWriteItem};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Deserialize)]
struct SchoolItem {
    sk: String,
    school: String,
}

#[derive(Deserialize, Default)]
struct CountsItem {
    #[serde(default)]
    pk: String,
    #[serde(default)]
    assigned: i64,
    #[serde(default)]
    total: i64,
    #[serde(default)]
    failing: i64,
    #[serde(default)]
    silent: i64,
}

fn parse(item: Item) -> Result<School, StoreError> {
    let item: SchoolItem = serde_dynamo::from_item(item).map_err(corrupt)?;
    serde_json::from_str(&item.school).map_err(|e| corrupt(format!("school {}: {e}", item.sk)))
}

/// A school as read (`None`: it did not exist), and when.
type Cached = (Instant, Option<School>);

/// Schools as last read, each for a while (detection reads a device's school for every
/// batch; a school's settings change rarely).
#[derive(Clone, Default)]
pub(crate) struct SchoolCache {
    ttl: Duration,
    entries: Arc<Mutex<HashMap<SchoolId, Cached>>>,
}

impl SchoolCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Arc::default(),
        }
    }

    pub(crate) fn cached(&self, id: &SchoolId) -> Option<Option<School>> {
        let entries = self.entries.lock().ok()?;
        let (at, school) = entries.get(id)?;
        (at.elapsed() < self.ttl).then(|| school.clone())
    }

    pub(crate) fn keep(&self, id: &SchoolId, school: Option<School>) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= 10_000 {
                entries.clear();
            }
            entries.insert(id.clone(), (Instant::now(), school));
        }
    }
}

#[async_trait]
impl ReadSchools for DynamoStore {
    async fn school(&self, id: &SchoolId) -> Result<Option<School>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(SCHOOLS_PK))
            .key("sk", s(id.to_string()))
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(unavailable("GetItem school"))?;
        self.metered(Units::Read, out.consumed_capacity());
        out.item.map(parse).transpose()
    }

    async fn schools(&self, after: Option<&SchoolId>, limit: usize) -> Result<SchoolPage, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(SCHOOLS_PK))
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .return_consumed_capacity(self.capacity());
        let query = match after {
            Some(after) => query
                .key_condition_expression("pk = :pk AND sk > :after")
                .expression_attribute_values(":after", s(after.to_string())),
            None => query.key_condition_expression("pk = :pk"),
        };
        let out = query.send().await.map_err(unavailable("Query schools"))?;
        self.metered(Units::Read, out.consumed_capacity());
        let mut schools = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(parse)
            .collect::<Result<Vec<_>, _>>()?;
        let more = schools.len() > limit;
        schools.truncate(limit);
        Ok(SchoolPage { schools, more })
    }

    async fn school_counts(&self, ids: &[SchoolId]) -> Result<Vec<SchoolCounts>, StoreError> {
        let keys: Vec<Item> = ids
            .iter()
            .map(|id| {
                HashMap::from([
                    ("pk".to_owned(), s(school_pk(id))),
                    ("sk".to_owned(), s(COUNTS_SK)),
                ])
            })
            .collect();
        let mut found: HashMap<String, CountsItem> = HashMap::new();
        for item in self.batch_get(keys, "BatchGetItem school counts").await? {
            let counts: CountsItem = serde_dynamo::from_item(item).map_err(corrupt)?;
            found.insert(counts.pk.clone(), counts);
        }
        Ok(ids
            .iter()
            .map(|id| {
                let c = found.remove(&school_pk(id)).unwrap_or_default();
                SchoolCounts {
                    assigned: u64::try_from(c.assigned).unwrap_or(0),
                    devices: FleetCounts::from_totals(c.total, c.failing, c.silent),
                }
            })
            .collect())
    }
}

#[async_trait]
impl ManageSchools for DynamoStore {
    async fn put_school(&self, school: &School, may_create: bool) -> Result<SchoolPut, StoreError> {
        let json = serde_json::to_string(school).map_err(corrupt)?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(SCHOOLS_PK))
            .item("sk", s(school.school_id.to_string()))
            .item("school", s(json))
            .return_values(ReturnValue::AllOld)
            .return_consumed_capacity(self.capacity());
        if !may_create {
            put = put.condition_expression("attribute_exists(pk)");
        }
        let out = match put.send().await {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                return Ok(SchoolPut::NotFound)
            }
            Err(e) => return Err(unavailable("PutItem school")(e)),
        };
        self.metered(Units::Write, out.consumed_capacity());
        Ok(match out.attributes {
            Some(old) if !old.is_empty() => SchoolPut::Replaced,
            _ => SchoolPut::Created,
        })
    }

    /// One transaction: the school item deleted if it exists, provided its counts item
    /// says no device is assigned. An assignment to it checks the school item in its own
    /// transaction, so the two are serialised.
    async fn delete_school(&self, id: &SchoolId) -> Result<SchoolDeleted, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(SCHOOLS_PK))
            .key("sk", s(id.to_string()))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(built)?;
        let empty = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(school_pk(id)))
            .key("sk", s(COUNTS_SK))
            .condition_expression("attribute_not_exists(assigned) OR assigned <= :none")
            .expression_attribute_values(":none", AttributeValue::N("0".into()))
            .build()
            .map_err(built)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().condition_check(empty).build(),
        ];
        match self.transact(items, "TransactWriteItems school delete").await? {
            Transacted::Written => Ok(SchoolDeleted::Deleted),
            Transacted::Cancelled(reasons) => match (
                reasons.first().map(String::as_str),
                reasons.get(1).map(String::as_str),
            ) {
                (Some("ConditionalCheckFailed"), _) => Ok(SchoolDeleted::NotFound),
                (_, Some("ConditionalCheckFailed")) => Ok(SchoolDeleted::NotEmpty),
                _ => Err(StoreError::unavailable_because(format!(
                    "TransactWriteItems school delete cancelled: {}",
                    reasons.join(", ")
                ))),
            },
        }
    }
}
