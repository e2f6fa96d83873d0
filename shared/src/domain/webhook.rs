//! Webhook deliveries: where a notice goes (the fleet's webhook, and its school's),
//! what is sent (the notice's JSON fields plus a one-line `text`, which Slack and Teams
//! incoming webhooks show as is), how it is signed, and when a failed delivery is
//! tried again.
//!
//! Signature: `X-PiSync-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`
//! with `X-PiSync-Timestamp: <Unix seconds>`. A receiver recomputes it over the raw
//! body and rejects a timestamp more than five minutes from its clock (a replay).

use crate::domain::notice::Notice;
use crate::domain::school::SchoolId;
use crate::ports::{ReadSchools, StoreError, WebhookTransport};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub const TIMESTAMP_HEADER: &str = "x-pisync-timestamp";
pub const SIGNATURE_HEADER: &str = "x-pisync-signature";

/// Where a notice is delivered: the fleet's webhook (`--webhook-url`, the template's
/// `AlertWebhookUrl`), or the `webhook_url` of the notice's school. Each target is a
/// delivery of its own, retried on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookTarget {
    Fleet,
    School(SchoolId),
}

impl WebhookTarget {
    /// How a queue names the target: `fleet`, or `school:<id>`.
    pub fn key(&self) -> String {
        match self {
            WebhookTarget::Fleet => "fleet".into(),
            WebhookTarget::School(id) => format!("school:{id}"),
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        match key {
            "fleet" => Some(WebhookTarget::Fleet),
            other => SchoolId::parse(other.strip_prefix("school:")?).map(WebhookTarget::School),
        }
    }

    /// The targets `notice` may go to: the fleet's when it has a webhook, and the
    /// notice's school's (which may have none: see [`target_url`]).
    pub fn of(notice: &Notice, fleet_webhook: bool) -> Vec<Self> {
        let fleet = fleet_webhook.then_some(WebhookTarget::Fleet);
        let school = notice.school_id().cloned().map(WebhookTarget::School);
        fleet.into_iter().chain(school).collect()
    }
}

/// The URL `target` is delivered to now: the fleet's URL, or the school's current
/// `webhook_url` (`None`: it has none, or no longer exists; the delivery is dropped).
/// Read at each attempt, so a school's new URL applies to its retries too.
pub async fn target_url(
    target: &WebhookTarget,
    fleet_url: Option<&str>,
    schools: &dyn ReadSchools,
) -> Result<Option<String>, StoreError> {
    Ok(match target {
        WebhookTarget::Fleet => fleet_url.map(str::to_owned),
        WebhookTarget::School(id) => schools.school(id).await?.and_then(|s| s.webhook_url),
    })
}

/// The body POSTed for `notice`.
pub fn payload(notice: &Notice) -> String {
    let mut body = match serde_json::to_value(notice) {
        Ok(serde_json::Value::Object(fields)) => fields,
        // A plain data enum always serialises to an object.
        _ => serde_json::Map::new(),
    };
    body.insert("text".into(), format!("PiSync: {}", notice.summary()).into());
    serde_json::Value::Object(body).to_string()
}

/// `sha256=<hex>` over `"<timestamp>.<body>"`.
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", crate::digest::hex(&mac.finalize().into_bytes()))
}

/// Signs `body` (a [`payload`]) at `timestamp` (Unix seconds) and POSTs it to `url`.
pub async fn send(
    transport: &dyn WebhookTransport,
    url: &str,
    secret: &[u8],
    body: &str,
    timestamp: i64,
) -> Answer {
    let headers = [
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (SIGNATURE_HEADER, signature(secret, timestamp, body)),
    ];
    transport.post(url, body, &headers).await
}

/// What a receiver's answer means for the delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: delivered; never sent again.
    Delivered,
    /// 5xx, 429, 408, a timeout or no connection: try again later.
    TryAgain,
    /// Any other status (a wrong URL, a rejected signature): trying again cannot help.
    Rejected,
}

impl Answer {
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Answer::Delivered,
            408 | 429 | 500..=599 => Answer::TryAgain,
            _ => Answer::Rejected,
        }
    }
}

/// When failed deliveries are tried again: 10 s after the first attempt, then twice
/// as long each time up to an hour apart, for 24 hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first: Duration,
    pub longest: Duration,
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(10),
            longest: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubled = self.first.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1).min(20))
                .unwrap_or(u32::MAX),
        );
        doubled.min(self.longest)
    }

    /// Whether a delivery first tried `elapsed` ago may still be tried again.
    pub fn may_retry(&self, elapsed: Duration) -> bool {
        elapsed < self.give_up_after
    }

    /// Attempts made in the 24 hours, at most: how many receives a queue allows.
    pub fn attempts(&self) -> u32 {
        let mut attempts = 1;
        let mut waited = Duration::ZERO;
        while waited + self.delay(attempts) < self.give_up_after {
            waited += self.delay(attempts);
            attempts += 1;
        }
        attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::DeviceId;
    use crate::domain::notice::RecoveryNotice;
    use crate::domain::time::EventTime;

    #[test]
    fn the_payload_is_the_notice_plus_a_text_line() {
        let notice = Notice::Recovered(RecoveryNotice {
            device_id: DeviceId::parse("pibox-7").unwrap(),
            failures_before_recovery: 4,
            recovered_at: EventTime::parse_rfc3339("2025-05-07T10:45:00Z").unwrap(),
            alert_id: "pibox-7@start".into(),
            school_id: None,
        });
        let body: serde_json::Value = serde_json::from_str(&payload(&notice)).unwrap();
        let contract: serde_json::Value = serde_json::from_str(&notice.to_json()).unwrap();
        for (field, value) in contract.as_object().unwrap() {
            assert_eq!(&body[field], value, "{field}");
        }
        assert!(body["text"]
            .as_str()
            .unwrap()
            .starts_with("PiSync: pibox-7 is syncing again"));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: hmac.new(b"key", b"1700000000.{}", "sha256") in Python.
        assert_eq!(
            signature(b"key", 1_700_000_000, "{}"),
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_ne!(signature(b"key", 1, "{}"), signature(b"key", 2, "{}"));
        assert_ne!(signature(b"key", 1, "{}"), signature(b"other", 1, "{}"));
    }

    #[test]
    fn a_notice_goes_to_the_fleet_webhook_and_its_schools() {
        let mut notice = Notice::Recovered(RecoveryNotice {
            device_id: DeviceId::parse("pibox-7").unwrap(),
            failures_before_recovery: 4,
            recovered_at: EventTime::EPOCH,
            alert_id: "pibox-7@start".into(),
            school_id: SchoolId::parse("north"),
        });
        let north = WebhookTarget::School(SchoolId::parse("north").unwrap());
        assert_eq!(
            WebhookTarget::of(&notice, true),
            [WebhookTarget::Fleet, north.clone()]
        );
        assert_eq!(WebhookTarget::of(&notice, false), std::slice::from_ref(&north));
        if let Notice::Recovered(r) = &mut notice {
            r.school_id = None;
        }
        assert_eq!(WebhookTarget::of(&notice, true), [WebhookTarget::Fleet]);
        assert!(WebhookTarget::of(&notice, false).is_empty());
        for target in [WebhookTarget::Fleet, north] {
            assert_eq!(WebhookTarget::parse(&target.key()), Some(target));
        }
        assert_eq!(WebhookTarget::parse("school:"), None);
        assert_eq!(WebhookTarget::parse("elsewhere"), None);
    }

    #[test]
    fn answers_by_status() {
        assert_eq!(Answer::of_status(204), Answer::Delivered);
        for status in [408, 429, 500, 503] {
            assert_eq!(Answer::of_status(status), Answer::TryAgain, "{status}");
        }
        for status in [301, 400, 401, 404, 410] {
            assert_eq!(Answer::of_status(status), Answer::Rejected, "{status}");
        }
    }

    #[test]
    fn retries_start_within_ten_seconds_and_last_a_day() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1), Duration::from_secs(10));
        assert_eq!(policy.delay(2), Duration::from_secs(20));
        assert_eq!(policy.delay(30), Duration::from_secs(3600));
        assert!(policy.may_retry(Duration::from_secs(23 * 3600)));
        assert!(!policy.may_retry(Duration::from_secs(24 * 3600)));
        let attempts = policy.attempts();
        assert!((25..=40).contains(&attempts), "{attempts}");
    }
}
