//! `GET /fleet/summary`: devices by status, and per day (device time: UTC days, or the
//! school's local days with `school=`) the syncs, failures, failure rate, files synced
//! and mean internet speed of the last `days` days. Reads one counts item and the days asked for: the cost never grows with the
//! number of devices or events. `school=ID` narrows to one school (its counts item and
//! days); a school operator's summary sums its schools'.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::fleet::{summarize_days, Day, DaySummary, FleetCounts};
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::FLEET_SUMMARY;
use pisync_shared::http::scope;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::{ReadFleet, ReadSchools};
use pisync_shared::EventTime;
use serde::Serialize;
use std::sync::Arc;

pub struct FleetSummary {
    fleet: Arc<dyn ReadFleet>,
    schools: Arc<dyn ReadSchools>,
    auth: Authenticator,
}

#[derive(Serialize)]
struct SummaryBody {
    devices: FleetCounts,
    days: Vec<DaySummary>,
}

const DEFAULT_DAYS: u32 = 14;

impl HttpFunction for FleetSummary {
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
impl HttpHandler for FleetSummary {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&FLEET_SUMMARY, &req, &self.auth).await {
            Ok(call) => call.reply(summary(self, &call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

async fn summary(deps: &FleetSummary, call: &Call<'_>) -> Result<SummaryBody, ApiError> {
    let mut problems = Vec::new();
    let params = call.query(&["days", "school"], &mut problems);
    let school = scope::school_param(&params, &mut problems);
    let days = http::parse_days(&params, DEFAULT_DAYS, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::invalid_request(problems));
    }
    let reading = scope::within(&call.caller, school, deps.schools.as_ref()).await?;
    let within = reading.within;
    // One school's days are its local days.
    let today = match &reading.school {
        Some(school) => Day::local(EventTime::now(), school.timezone),
        None => Day::of(EventTime::now()),
    };
    let first = today.plus(1 - i64::from(days));
    let (counts, stored) = tokio::join!(deps.fleet.counts(&within), deps.fleet.days(first, today, &within));
    Ok(SummaryBody {
        devices: counts?,
        days: summarize_days(today, days, &stored?),
    })
}
