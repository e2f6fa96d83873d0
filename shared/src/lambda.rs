//! The Lambda side of a function: its `main` is one call here. Read the configuration,
//! set up logging and metrics, build the handler once ([`HttpFunction::from_aws`]),
//! then hand it to the runtime. A sandbox runs one invocation at a time on a fraction
//! of a vCPU, so the `main`s use a single-threaded runtime: it starts faster and uses
//! less memory than one worker per core.

use crate::config::Config;
use crate::function::{Aws, EventFunction, HttpFunction};
use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::{service_fn, Error};
use metrics_cloudwatch_embedded::Collector;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An HTTP function's metrics are printed at most this often: one log line per request
/// would cost more than the request (CloudWatch Logs ingestion), and the API's own
/// metrics count requests already. What a sandbox counted in its last minute is lost
/// if it is shut down first.
pub const HTTP_METRICS_INTERVAL: Duration = Duration::from_secs(60);

/// Serves `F` as an API Gateway (HTTP API) function.
pub async fn serve_http<F: HttpFunction>() -> Result<(), Error> {
    let (aws, metrics) = start(F::NAME)?;
    let function = F::from_aws(&aws).await?;
    let flush = Flush::every(metrics, HTTP_METRICS_INTERVAL);
    lambda_http::run(service_fn(|req| async {
        let response = function.handle(req).await;
        flush.maybe();
        Ok::<_, Error>(response)
    }))
    .await
}

/// Serves `F` for its event source; its metrics are printed after every invocation (a
/// stream batch, a scheduled run, a queue batch: their figures feed the alarms).
pub async fn serve_events<F: EventFunction>() -> Result<(), Error> {
    let (aws, metrics) = start(F::NAME)?;
    let function = F::from_aws(&aws).await?;
    let flush = Flush::every(metrics, Duration::ZERO);
    lambda_runtime::run(service_fn(|event: LambdaEvent<F::Event>| async {
        let response = function.handle(event.payload).await;
        flush.maybe();
        Ok::<_, Error>(response)
    }))
    .await
}

fn start(function: &'static str) -> Result<(Aws, Option<&'static Collector>), Error> {
    let config = Config::from_env()?;
    crate::logging::init_lambda(&config.logging);
    let metrics = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(crate::metrics::NAMESPACE)
        .with_dimension("Function", function)
        .init()
        .map_err(|e| tracing::warn!(error = %e, "metrics are off"))
        .ok();
    Ok((Aws::new(config), metrics))
}

/// Prints the collected metrics as EMF lines on stdout, at most once per interval.
struct Flush {
    collector: Option<&'static Collector>,
    interval: Duration,
    last: Mutex<Option<Instant>>,
}

impl Flush {
    fn every(collector: Option<&'static Collector>, interval: Duration) -> Self {
        Self {
            collector,
            interval,
            last: Mutex::new(None),
        }
    }

    fn maybe(&self) {
        let Some(collector) = self.collector else { return };
        let Ok(mut last) = self.last.lock() else { return };
        if last.is_some_and(|at| at.elapsed() < self.interval) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = collector.flush(std::io::stdout().lock()) {
            tracing::warn!(error = %e, "metrics not written");
        }
    }
}
