//! Operational figures: what detection, the silence check and notice delivery did.
//! A Lambda function prints them once per invocation in CloudWatch Embedded Metric
//! Format (one log line, no API call); the local runner adds them up and serves them
//! at `GET /metrics` in Prometheus text format. Both read the same [`Figures`].

use crate::domain::delivery::Delivered;
use crate::domain::notice::Notice;
use crate::domain::time::EventTime;
use crate::ports::StoreError;
use serde_json::{json, Map, Value};
use std::sync::Mutex;

/// The CloudWatch namespace of PiSync's metrics.
pub const NAMESPACE: &str = "PiSync";

/// What one invocation (a stream batch, a check, a delivery round) did.
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
    /// Longest time from receiving an event to applying it, in milliseconds.
    pub detection_lag_ms: Option<i64>,
    /// Day totals that could not be added (the fleet summary misses them).
    pub day_totals_lost: u64,
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
        let lag = (now.millis() - received_at.millis()).max(0);
        self.detection_lag_ms = Some(self.detection_lag_ms.map_or(lag, |l| l.max(lag)));
    }

    pub fn add(&mut self, other: &Figures) {
        self.syncs_succeeded += other.syncs_succeeded;
        self.syncs_failed += other.syncs_failed;
        self.publish_failures += other.publish_failures;
        self.records_failed += other.records_failed;
        self.day_totals_lost += other.day_totals_lost;
        for (kind, n) in &other.notices {
            match self.notices.iter_mut().find(|(k, _)| k == kind) {
                Some((_, total)) => *total += n,
                None => self.notices.push((kind, *n)),
            }
        }
        if let Some(lag) = other.detection_lag_ms {
            self.detection_lag_ms = Some(self.detection_lag_ms.map_or(lag, |l| l.max(lag)));
        }
    }

    /// One Embedded Metric Format document per dimension set: the counts without
    /// dimensions, notices by type. Empty when there is nothing to say.
    pub fn to_emf(&self, function: &str, now: EventTime) -> Vec<String> {
        let mut lines = Vec::new();
        let mut counts: Vec<(&str, Value, &str)> = [
            ("SyncsSucceeded", self.syncs_succeeded, "Count"),
            ("SyncsFailed", self.syncs_failed, "Count"),
            ("PublishFailures", self.publish_failures, "Count"),
            ("RecordsFailed", self.records_failed, "Count"),
            ("DayTotalsLost", self.day_totals_lost, "Count"),
        ]
        .into_iter()
        .filter(|(_, n, _)| *n > 0)
        .map(|(name, n, unit)| (name, json!(n), unit))
        .collect();
        if let Some(lag) = self.detection_lag_ms {
            counts.push(("DetectionLag", json!(lag), "Milliseconds"));
        }
        if !counts.is_empty() {
            lines.push(emf(function, now, &[], &counts));
        }
        for (kind, n) in &self.notices {
            lines.push(emf(
                function,
                now,
                &[("NoticeType", kind)],
                &[("NoticesPublished", json!(n), "Count")],
            ));
        }
        lines
    }
}

fn emf(
    function: &str,
    now: EventTime,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, Value, &str)],
) -> String {
    let mut doc = Map::new();
    let mut names: Vec<&str> = vec!["Function"];
    names.extend(dimensions.iter().map(|(name, _)| *name));
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": now.millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [names],
                "Metrics": metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    doc.insert("Function".into(), json!(function));
    for (name, value) in dimensions {
        doc.insert((*name).into(), json!(value));
    }
    for (name, value, _) in metrics {
        doc.insert((*name).into(), value.clone());
    }
    Value::Object(doc).to_string()
}

/// The local runner's running totals, rendered as Prometheus text.
#[derive(Default)]
pub struct Registry {
    totals: Mutex<Figures>,
    /// Events stored through the API, by route outcome.
    recorded: Mutex<(u64, u64)>,
}

impl Registry {
    pub fn add(&self, figures: &Figures) {
        if let Ok(mut totals) = self.totals.lock() {
            totals.add(figures);
        }
    }

    /// Counts events the API stored (created) and answered as replays.
    pub fn recorded(&self, created: u64, replayed: u64) {
        if let Ok(mut recorded) = self.recorded.lock() {
            recorded.0 += created;
            recorded.1 += replayed;
        }
    }

    pub fn render(&self) -> String {
        let totals = self.totals.lock().map(|t| t.clone()).unwrap_or_default();
        let (created, replayed) = self.recorded.lock().map(|r| *r).unwrap_or_default();
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, samples: &[(String, u64)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (labels, value) in samples {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        counter(
            "pisync_events_recorded_total",
            "Events stored through the API, and replays answered without storing.",
            &[
                ("{result=\"created\"}".into(), created),
                ("{result=\"replayed\"}".into(), replayed),
            ],
        );
        counter(
            "pisync_syncs_detected_total",
            "New events applied by failure detection, by outcome.",
            &[
                ("{outcome=\"success\"}".into(), totals.syncs_succeeded),
                ("{outcome=\"failure\"}".into(), totals.syncs_failed),
            ],
        );
        let mut notices: Vec<(String, u64)> = totals
            .notices
            .iter()
            .map(|(kind, n)| (format!("{{type=\"{kind}\"}}"), *n))
            .collect();
        notices.sort();
        counter(
            "pisync_notices_published_total",
            "Notices published, by type.",
            &notices,
        );
        counter(
            "pisync_publish_failures_total",
            "Notices that could not be published (they stay in the outbox).",
            &[(String::new(), totals.publish_failures)],
        );
        counter(
            "pisync_records_failed_total",
            "Stream records detection will retry.",
            &[(String::new(), totals.records_failed)],
        );
        out.push_str(
            "# HELP pisync_detection_lag_max_seconds Longest time from receiving an event to applying it.\n\
             # TYPE pisync_detection_lag_max_seconds gauge\n",
        );
        let lag = totals.detection_lag_ms.unwrap_or(0) as f64 / 1000.0;
        out.push_str(&format!("pisync_detection_lag_max_seconds {lag}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_documents_name_their_metrics() {
        let mut figures = Figures {
            syncs_succeeded: 3,
            syncs_failed: 1,
            ..Figures::default()
        };
        figures.lag(
            EventTime::from_millis(1_000).unwrap(),
            EventTime::from_millis(3_500).unwrap(),
        );
        figures.notices.push(("device.silent", 2));
        let lines = figures.to_emf("detect-failures", EventTime::from_millis(5_000).unwrap());
        assert_eq!(lines.len(), 2);
        let counts: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(counts["SyncsFailed"], 1);
        assert_eq!(counts["DetectionLag"], 2500);
        assert_eq!(counts["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        let names: Vec<&str> = counts["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["SyncsSucceeded", "SyncsFailed", "DetectionLag"]);
        let notices: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(
            (
                notices["NoticeType"].as_str(),
                notices["NoticesPublished"].as_u64()
            ),
            (Some("device.silent"), Some(2))
        );
        assert!(Figures::default().to_emf("f", EventTime::EPOCH).is_empty());
    }

    #[test]
    fn prometheus_text_adds_up_every_invocation() {
        let registry = Registry::default();
        let mut one = Figures {
            syncs_failed: 2,
            ..Figures::default()
        };
        one.notices.push(("device.repeated_sync_failures", 1));
        registry.add(&one);
        registry.add(&one);
        registry.recorded(5, 1);
        let text = registry.render();
        assert!(
            text.contains("pisync_syncs_detected_total{outcome=\"failure\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("pisync_notices_published_total{type=\"device.repeated_sync_failures\"} 2\n"));
        assert!(text.contains("pisync_events_recorded_total{result=\"created\"} 5\n"));
    }
}
