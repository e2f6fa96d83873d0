//! `GET /analytics/schools`: the caller's schools over the last `days` (default 7) of
//! each school's own calendar, highest failure rate first (ties by id): devices by
//! status, syncs, failures, failure rate, files synced, devices reporting and the
//! internet speed's p50, p90 and mean. Reads each school, its counts item and its day
//! summaries: the cost grows with schools and days, never with events.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::{Authenticator, Reach};
use pisync_shared::domain::analytics::{rank_schools, SchoolFigures};
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::routes::SCHOOL_ANALYTICS;
use pisync_shared::http::{self, ApiError, Call};
use pisync_shared::ports::{ReadFleet, ReadSchools, Within};
use pisync_shared::EventTime;
use serde::Serialize;
use std::sync::Arc;

pub struct SchoolAnalytics {
    fleet: Arc<dyn ReadFleet>,
    schools: Arc<dyn ReadSchools>,
    auth: Authenticator,
}

#[derive(Serialize)]
struct SchoolsBody {
    schools: Vec<SchoolFigures>,
}

const DEFAULT_DAYS: u32 = 7;

impl HttpFunction for SchoolAnalytics {
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
impl HttpHandler for SchoolAnalytics {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&SCHOOL_ANALYTICS, &req, &self.auth).await {
            Ok(call) => call.reply(self.ranked(&call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

impl SchoolAnalytics {
    async fn ranked(&self, call: &Call<'_>) -> Result<SchoolsBody, ApiError> {
        let mut problems = Vec::new();
        let params = call.query(&["days"], &mut problems);
        let days = http::parse_days(&params, DEFAULT_DAYS, &mut problems);
        if !problems.is_empty() {
            return Err(ApiError::invalid_request(problems));
        }
        let within = match call.caller.reach() {
            Some(Reach::District) => Within::Fleet,
            Some(Reach::Schools(own)) => Within::Schools(own.clone()),
            None => return Err(ApiError::forbidden("only an operator may read")),
        };
        let schools = rank_schools(
            self.schools.as_ref(),
            self.fleet.as_ref(),
            &within,
            days,
            EventTime::now(),
        )
        .await?;
        Ok(SchoolsBody { schools })
    }
}
