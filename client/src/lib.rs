//! pisync-client: what a device maker embeds to report sync attempts to PiSync.
//!
//! [`Client::upload`] sends a backlog through `POST /sync-events` in batches (at most
//! 100 events and 256 KiB each) and answers one [`Outcome`] per event, in order:
//!
//! - `201` and `200` (a replay: PiSync already had it) are both delivered;
//! - `400`, `403` and `409` are final: the event is wrong, not the network, and sending
//!   it again would give the same answer;
//! - `429`, `503`, other 5xx, timeouts and connection failures are retried with
//!   exponential backoff and full jitter, honouring `Retry-After`; an item answered
//!   `503` inside a `200` batch is retried alone. Retrying is safe because PiSync
//!   stores each event exactly once by (device, timestamp).

pub mod retry;

pub use retry::RetryPolicy;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Duration;

/// Largest batch PiSync accepts, in events and in bytes.
pub const MAX_BATCH_EVENTS: usize = 100;
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// What happened to one event of the backlog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now (201).
    Created,
    /// PiSync already had this exact event (200): delivered earlier.
    Replayed,
    /// Refused for good (400, 403, 409, or an unusable line): fix the event, do not resend.
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// Still undelivered after every retry: keep it and try again later.
    NotDelivered { reason: String },
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        matches!(self, Outcome::Created | Outcome::Replayed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the base URL must start with https:// (or http:// for a local runner): {0}")]
    BadUrl(String),
    #[error("building the HTTP client")]
    Http(#[from] reqwest::Error),
}

/// A PiSync client for one device token.
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    authorization: String,
    policy: RetryPolicy,
}

#[derive(Deserialize)]
struct BatchReply {
    results: Vec<ItemReply>,
}

#[derive(Deserialize)]
struct ItemReply {
    status: u16,
    #[serde(default)]
    error: Option<ErrorReply>,
}

#[derive(Deserialize, Default)]
struct ErrorReply {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorReply,
}

/// What one attempt at a batch came to.
enum Attempt {
    /// Per-item answers (index into the batch's pending events).
    Answered(Vec<ItemReply>),
    /// Try the whole batch again, after at least this long if the server said so.
    Retry { reason: String, after: Option<Duration> },
    /// The whole batch is refused for good.
    Refused(Outcome),
}

impl Client {
    /// A client for PiSync at `base_url` (the API's URL) with a device `token`.
    /// Connect timeout 10 s, whole-request timeout 30 s, no redirects (a token is never
    /// sent anywhere but where it was configured to go).
    pub fn new(base_url: &str, token: &str, policy: RetryPolicy) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ClientError::BadUrl(base.to_owned()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            endpoint: format!("{base}/sync-events"),
            authorization: format!("Bearer {}", token.trim()),
            policy,
        })
    }

    /// Uploads `events` (each one JSON object, as the device wrote it) and answers
    /// one outcome per event, in order.
    pub async fn upload(&self, events: &[String]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; events.len()];
        let mut sendable = Vec::new();
        for (i, line) in events.iter().enumerate() {
            match serde_json::from_str::<&RawValue>(line) {
                Ok(_) => sendable.push(i),
                Err(e) => {
                    outcomes[i] = Some(Outcome::Rejected {
                        status: 0,
                        code: "not_json".into(),
                        message: format!("not a JSON value: {e}"),
                    })
                }
            }
        }
        for batch in batches(events, &sendable) {
            for (i, outcome) in batch.iter().zip(self.send_batch(events, &batch).await) {
                outcomes[*i] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or(Outcome::NotDelivered {
                    reason: "not sent".into(),
                })
            })
            .collect()
    }

    /// Sends one batch until every event in it has a final outcome or the attempts
    /// run out.
    async fn send_batch(&self, events: &[String], batch: &[usize]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        let mut reason = String::from("not sent");
        for attempt in 1..=self.policy.max_attempts {
            let body = envelope(pending.iter().map(|p| events[batch[*p]].as_str()));
            let mut after = None;
            match self.attempt(body).await {
                Attempt::Answered(items) if items.len() == pending.len() => {
                    let mut still = Vec::new();
                    for (p, item) in pending.iter().zip(items) {
                        match item.status {
                            201 => outcomes[*p] = Some(Outcome::Created),
                            200 => outcomes[*p] = Some(Outcome::Replayed),
                            429 | 500..=599 => still.push(*p),
                            status => {
                                let error = item.error.unwrap_or_default();
                                outcomes[*p] = Some(Outcome::Rejected {
                                    status,
                                    code: error.code,
                                    message: error.message,
                                });
                            }
                        }
                    }
                    reason = "the store stayed unavailable".into();
                    pending = still;
                }
                Attempt::Answered(_) => reason = "the reply did not answer every event".into(),
                Attempt::Retry {
                    reason: why,
                    after: hint,
                } => {
                    reason = why;
                    after = hint;
                }
                Attempt::Refused(outcome) => {
                    for p in &pending {
                        outcomes[*p] = Some(outcome.clone());
                    }
                    pending.clear();
                }
            }
            if pending.is_empty() {
                break;
            }
            if attempt < self.policy.max_attempts {
                tokio::time::sleep(self.policy.delay(attempt, after, retry::jitter())).await;
            }
        }
        outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| Outcome::NotDelivered {
                    reason: reason.clone(),
                })
            })
            .collect()
    }

    async fn attempt(&self, body: String) -> Attempt {
        let sent = self
            .http
            .post(&self.endpoint)
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    reason: format!("request failed: {e}"),
                    after: None,
                }
            }
        };
        let status = response.status().as_u16();
        let after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(retry::parse_retry_after);
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    reason: format!("reply cut off: {e}"),
                    after,
                }
            }
        };
        match status {
            200 => match serde_json::from_slice::<BatchReply>(&bytes) {
                Ok(reply) => Attempt::Answered(reply.results),
                Err(e) => Attempt::Retry {
                    reason: format!("unreadable reply: {e}"),
                    after: None,
                },
            },
            429 | 500..=599 => Attempt::Retry {
                reason: format!("HTTP {status}"),
                after,
            },
            _ => {
                let error = serde_json::from_slice::<ErrorEnvelope>(&bytes)
                    .map(|e| e.error)
                    .unwrap_or_default();
                Attempt::Refused(Outcome::Rejected {
                    status,
                    code: error.code,
                    message: error.message,
                })
            }
        }
    }
}

/// `{"events":[…]}` from raw event texts.
fn envelope<'a>(events: impl Iterator<Item = &'a str>) -> String {
    let mut body = String::from(r#"{"events":["#);
    for (n, event) in events.enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(event.trim());
    }
    body.push_str("]}");
    body
}

/// Splits the events at `indexes` into batches of at most [`MAX_BATCH_EVENTS`] events
/// and [`MAX_BATCH_BYTES`] bytes of envelope. An event too large for any batch goes
/// alone (the server answers it 413, reported as rejected).
pub fn batches(events: &[String], indexes: &[usize]) -> Vec<Vec<usize>> {
    const ENVELOPE: usize = r#"{"events":[]}"#.len();
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = ENVELOPE;
    for &i in indexes {
        let size = events[i].trim().len() + 1;
        if !current.is_empty() && (current.len() == MAX_BATCH_EVENTS || bytes + size > MAX_BATCH_BYTES) {
            out.push(std::mem::take(&mut current));
            bytes = ENVELOPE;
        }
        current.push(i);
        bytes += size;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_both_limits() {
        let small: Vec<String> = (0..250).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
        let all: Vec<usize> = (0..250).collect();
        let sizes: Vec<usize> = batches(&small, &all).iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let big: Vec<String> = (0..10)
            .map(|_| format!(r#"{{"pad":"{}"}}"#, "x".repeat(60_000)))
            .collect();
        let all: Vec<usize> = (0..10).collect();
        for batch in batches(&big, &all) {
            let body = envelope(batch.iter().map(|i| big[*i].as_str()));
            assert!(body.len() <= MAX_BATCH_BYTES, "{}", body.len());
        }
    }

    #[test]
    fn the_envelope_is_json() {
        let body = envelope([r#"{"a":1}"#, r#" {"b":2} "#].into_iter());
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["events"][1]["b"], 2);
    }

    #[test]
    fn only_https_or_http_urls() {
        assert!(Client::new("ftp://x", "t", RetryPolicy::default()).is_err());
        assert!(Client::new("https://api.example/", "t", RetryPolicy::default()).is_ok());
    }
}
