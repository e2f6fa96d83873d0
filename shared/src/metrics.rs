//! Operational metrics through the `metrics` facade: what the API recorded, what
//! detection, the periodic check and delivery did. The process decides where they go
//! — a Lambda function prints them in CloudWatch Embedded Metric Format
//! ([`crate::lambda`], `metrics_cloudwatch_embedded`), the local runner serves them at
//! `GET /metrics` in Prometheus text (`metrics-exporter-prometheus`). Every name is
//! declared here, once; each moves with what it counts.

use crate::domain::delivery::Delivered;
use crate::domain::notice::Notice;
use crate::domain::time::EventTime;
use crate::ports::StoreError;

/// The CloudWatch namespace of PiSync's metrics.
pub const NAMESPACE: &str = "PiSync";

/// Events the API answered, one by one (each item of a batch), by `result`:
/// `created`, `replayed`, `conflict` (same identity, other figures), `rejected`
/// (invalid, or not the caller's device), `failed` (the store was down: 503).
pub const EVENTS_RECORDED: &str = "pisync_events_recorded_total";
/// Requests the HTTP seam refused before any handler logic, by `status` (401, 403,
/// 405, 413, 415; and 429 when a device is over its limits).
pub const REQUESTS_REFUSED: &str = "pisync_requests_refused_total";
/// New events applied by detection, by `outcome`.
pub const SYNCS_DETECTED: &str = "pisync_syncs_detected_total";
/// Notices published, by `type`.
pub const NOTICES_PUBLISHED: &str = "pisync_notices_published_total";
/// Notices that could not be published (they stay in the outbox).
pub const PUBLISH_FAILURES: &str = "pisync_publish_failures_total";
/// Stream records detection will retry.
pub const RECORDS_FAILED: &str = "pisync_records_failed_total";
/// Events whose day totals could not be added (the fleet summary misses them).
pub const DAY_TOTALS_LOST: &str = "pisync_day_totals_lost_total";
/// Time from receiving an event to applying it.
pub const DETECTION_LAG: &str = "pisync_detection_lag_seconds";
/// Runs of the periodic check (silence, waiting notices) completed.
pub const CHECKS: &str = "pisync_periodic_checks_total";
/// Webhook deliveries, by `result`: `delivered`, `retry` (to be tried again) or
/// `rejected` (given up: the receiver refused it, or 24 hours passed).
pub const WEBHOOK_DELIVERIES: &str = "pisync_webhook_deliveries_total";
/// Connections the local runner closed on accept: their address held its share.
pub const CONNECTIONS_REFUSED: &str = "pisync_connections_refused_total";
/// Webhook deliveries waiting in the local runner's queue.
pub const WEBHOOKS_WAITING: &str = "pisync_webhooks_waiting";

/// Describes every metric (the Prometheus exporter's `# HELP` lines).
pub fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        EVENTS_RECORDED,
        Unit::Count,
        "Events the API answered: created, replayed, conflict or rejected."
    );
    describe_counter!(
        REQUESTS_REFUSED,
        Unit::Count,
        "Requests refused before any handler logic, by status."
    );
    describe_counter!(
        SYNCS_DETECTED,
        Unit::Count,
        "New events applied by failure detection, by outcome."
    );
    describe_counter!(NOTICES_PUBLISHED, Unit::Count, "Notices published, by type.");
    describe_counter!(
        PUBLISH_FAILURES,
        Unit::Count,
        "Notices that could not be published (they stay in the outbox)."
    );
    describe_counter!(
        RECORDS_FAILED,
        Unit::Count,
        "Stream records detection will retry."
    );
    describe_counter!(
        DAY_TOTALS_LOST,
        Unit::Count,
        "Events whose day totals could not be added."
    );
    describe_counter!(CHECKS, Unit::Count, "Runs of the periodic check completed.");
    describe_counter!(
        WEBHOOK_DELIVERIES,
        Unit::Count,
        "Webhook deliveries: delivered, retry or rejected."
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        Unit::Count,
        "Connections closed on accept: their client address held its share."
    );
    metrics::describe_gauge!(
        WEBHOOKS_WAITING,
        Unit::Count,
        "Webhook deliveries waiting in the local queue."
    );
    describe_histogram!(
        DETECTION_LAG,
        Unit::Seconds,
        "Time from receiving an event to applying it."
    );
}

/// Counts the API's answer to one event, by the status it got (as the event's own
/// request, or as its item of a batch).
pub fn event_answered(status: u16) {
    let result = match status {
        201 => "created",
        200 => "replayed",
        409 => "conflict",
        500..=599 => "failed",
        _ => "rejected",
    };
    metrics::counter!(EVENTS_RECORDED, "result" => result).increment(1);
}

/// Counts one webhook delivery attempt by what came of it.
pub fn webhook_delivery(result: &'static str) {
    metrics::counter!(WEBHOOK_DELIVERIES, "result" => result).increment(1);
}

/// Counts a request the seam refused, by its status.
pub fn request_refused(status: u16) {
    metrics::counter!(REQUESTS_REFUSED, "status" => status.to_string()).increment(1);
}

/// What one invocation (a stream batch, a check, a delivery round) did; its handler
/// returns it (the tests read it) and [`Figures::record`] hands it to the facade.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// New events applied by detection, by outcome.
    pub syncs_succeeded: u64,
    pub syncs_failed: u64,
    /// Notices published, by type.
    pub notices: Vec<(&'static str, u64)>,
    /// Notices that could not be published (they stay in the outbox).
    pub publish_failures: u64,
    /// Stream records that will be retried.
    pub records_failed: u64,
    /// Time from receiving each new event to applying it, in milliseconds.
    pub detection_lags_ms: Vec<i64>,
    /// Day totals that could not be added (the fleet summary misses them).
    pub day_totals_lost: u64,
    /// Periodic check runs completed.
    pub checks: u64,
}

impl Figures {
    pub fn published(&mut self, notices: &[Notice]) {
        for notice in notices {
            let kind = notice.event_type();
            match self.notices.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => self.notices.push((kind, 1)),
            }
        }
    }

    /// Counts a delivery round; an outbox that could not be read counts as a failure
    /// (its notices wait for the next round).
    pub fn delivered(&mut self, round: Result<Delivered, StoreError>) {
        match round {
            Ok(delivered) => {
                self.published(&delivered.published);
                self.publish_failures += delivered.failed as u64;
            }
            Err(err) => {
                tracing::warn!(error = %err, "outbox could not be read; notices wait for the next round");
                self.publish_failures += 1;
            }
        }
    }

    pub fn lag(&mut self, received_at: EventTime, now: EventTime) {
        self.detection_lags_ms
            .push((now.millis() - received_at.millis()).max(0));
    }

    /// The longest lag, if any event was applied.
    pub fn max_lag_ms(&self) -> Option<i64> {
        self.detection_lags_ms.iter().copied().max()
    }

    /// Adds these figures to the process's metrics.
    pub fn record(&self) {
        let counter = |name: &'static str, value: u64| {
            if value > 0 {
                metrics::counter!(name).increment(value);
            }
        };
        if self.syncs_succeeded > 0 {
            metrics::counter!(SYNCS_DETECTED, "outcome" => "success").increment(self.syncs_succeeded);
        }
        if self.syncs_failed > 0 {
            metrics::counter!(SYNCS_DETECTED, "outcome" => "failure").increment(self.syncs_failed);
        }
        for (kind, n) in &self.notices {
            metrics::counter!(NOTICES_PUBLISHED, "type" => *kind).increment(*n);
        }
        counter(PUBLISH_FAILURES, self.publish_failures);
        counter(RECORDS_FAILED, self.records_failed);
        counter(DAY_TOTALS_LOST, self.day_totals_lost);
        counter(CHECKS, self.checks);
        let lag = metrics::histogram!(DETECTION_LAG);
        for ms in &self.detection_lags_ms {
            lag.record(*ms as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    type Snapshot = Vec<(
        metrics_util::CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        DebugValue,
    )>;

    /// Every counter's value in `snapshot`, as `name{label=value}` → count.
    fn counters(snapshot: &Snapshot) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = snapshot
            .iter()
            .filter_map(|(key, _, _, value)| {
                let name = key.key().name().to_owned();
                let labels: Vec<String> = key
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                match (key.kind(), value) {
                    (MetricKind::Counter, DebugValue::Counter(n)) => {
                        Some((format!("{name}{{{}}}", labels.join(",")), *n))
                    }
                    _ => None,
                }
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn each_figure_moves_its_own_counter() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut figures = Figures {
            syncs_succeeded: 3,
            syncs_failed: 1,
            publish_failures: 2,
            records_failed: 4,
            day_totals_lost: 5,
            checks: 7,
            ..Figures::default()
        };
        figures.notices.push(("device.silent", 6));
        figures.lag(
            EventTime::from_millis(1_000).unwrap(),
            EventTime::from_millis(3_500).unwrap(),
        );
        metrics::with_local_recorder(&recorder, || figures.record());
        // One snapshot: taking it drains the histograms.
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(
            counters(&snapshot),
            [
                (format!("{DAY_TOTALS_LOST}{{}}"), 5),
                (format!("{NOTICES_PUBLISHED}{{type=device.silent}}"), 6),
                (format!("{CHECKS}{{}}"), 7),
                (format!("{PUBLISH_FAILURES}{{}}"), 2),
                (format!("{RECORDS_FAILED}{{}}"), 4),
                (format!("{SYNCS_DETECTED}{{outcome=failure}}"), 1),
                (format!("{SYNCS_DETECTED}{{outcome=success}}"), 3),
            ]
        );
        let lags: Vec<f64> = snapshot
            .into_iter()
            .filter_map(|(key, _, _, value)| match value {
                DebugValue::Histogram(values) if key.key().name() == DETECTION_LAG => {
                    Some(values.into_iter().map(|v| v.into_inner()).collect::<Vec<_>>())
                }
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(lags, [2.5]);
    }

    #[test]
    fn each_answer_counts_under_its_result() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            for status in [201, 200, 200, 409, 400, 403, 503] {
                event_answered(status);
            }
            request_refused(401);
        });
        assert_eq!(
            counters(&snapshotter.snapshot().into_vec()),
            [
                (format!("{EVENTS_RECORDED}{{result=conflict}}"), 1),
                (format!("{EVENTS_RECORDED}{{result=created}}"), 1),
                (format!("{EVENTS_RECORDED}{{result=failed}}"), 1),
                (format!("{EVENTS_RECORDED}{{result=rejected}}"), 2),
                (format!("{EVENTS_RECORDED}{{result=replayed}}"), 2),
                (format!("{REQUESTS_REFUSED}{{status=401}}"), 1),
            ]
        );
    }
}
