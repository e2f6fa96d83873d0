//! `GET /analytics/daily`: per day of the last `days` (default 14), oldest first, the
//! syncs, failures, failure rate, files synced, devices reporting and the internet
//! speed's p50, p90 and mean. Days are the school's local days with `school=`, UTC days
//! for the fleet; a school operator without `school=` gets its schools summed. Reads
//! the day summaries asked for (one Query per school, or the fleet's): the cost grows
//! with `days`, never with events.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::analytics::{self, AnalyticsDay};
use pisync_shared::domain::school::{School, SchoolId};
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::DAILY_ANALYTICS;
use pisync_shared::http::{self, scope, ApiError, Call};
use pisync_shared::ports::{ReadFleet, ReadSchools, Within};
use pisync_shared::EventTime;
use serde::Serialize;
use std::sync::Arc;

pub struct DailyAnalytics {
    fleet: Arc<dyn ReadFleet>,
    schools: Arc<dyn ReadSchools>,
    auth: Authenticator,
}

#[derive(Serialize)]
struct DailyBody {
    /// The school asked for; `null` for the fleet or a school operator's schools.
    school_id: Option<SchoolId>,
    timezone: String,
    days: Vec<AnalyticsDay>,
}

const DEFAULT_DAYS: u32 = 14;

impl HttpFunction for DailyAnalytics {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        let store = aws.store().await?;
        Ok(Self {
            fleet: store.clone(),
            schools: store,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            fleet: local.store.clone(),
            schools: local.store.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for DailyAnalytics {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&DAILY_ANALYTICS, &req, &self.auth).await {
            Ok(call) => call.reply(self.daily(&call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

impl DailyAnalytics {
    async fn daily(&self, call: &Call<'_>) -> Result<DailyBody, ApiError> {
        let mut problems = Vec::new();
        let params = call.query(&["days", "school"], &mut problems);
        let school = scope::school_param(&params, &mut problems);
        let days = http::parse_days(&params, DEFAULT_DAYS, &mut problems);
        if !problems.is_empty() {
            return Err(ApiError::invalid_request(problems));
        }
        let reading = scope::within(&call.caller, school, self.schools.as_ref()).await?;
        let timezone = match (&reading.school, &reading.within) {
            (Some(school), _) => school.timezone,
            (None, Within::Fleet) => analytics::FLEET_CALENDAR,
            (None, Within::Schools(ids)) => {
                let mut own: Vec<School> = Vec::with_capacity(ids.len());
                for id in ids {
                    own.extend(self.schools.school(id).await?);
                }
                analytics::calendar(&own.iter().collect::<Vec<_>>())
            }
        };
        let (first, today) = analytics::window(EventTime::now(), timezone, days);
        let stored = self.fleet.days(first, today, &reading.within).await?;
        Ok(DailyBody {
            school_id: reading.school.map(|s| s.school_id),
            timezone: timezone.name().to_owned(),
            days: analytics::daily(today, days, &stored),
        })
    }
}
