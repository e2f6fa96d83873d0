//! Settings read from the environment, shared by the Lambdas and the local runner.

use crate::cursor::CursorKey;
use crate::streak::StreakRule;
use crate::validate::EventRules;
use std::fmt;

/// `FAILURE_THRESHOLD`: failures in a row before an alert (default 3).
pub const FAILURE_THRESHOLD: &str = "FAILURE_THRESHOLD";
/// `MAX_CLOCK_SKEW_SECONDS`: how far in the future a device timestamp may be (default 900).
pub const MAX_CLOCK_SKEW_SECONDS: &str = "MAX_CLOCK_SKEW_SECONDS";
/// `CURSOR_SIGNING_KEY`: secret for page cursors; the same on every instance.
pub const CURSOR_SIGNING_KEY: &str = "CURSOR_SIGNING_KEY";
/// `TABLE_NAME`: the DynamoDB table.
pub const TABLE_NAME: &str = "TABLE_NAME";
/// `EVENT_RETENTION_DAYS`: days after its device timestamp an event expires (TTL); unset or 0 keeps events.
pub const EVENT_RETENTION_DAYS: &str = "EVENT_RETENTION_DAYS";
/// `ALERT_TOPIC_ARN`: the SNS topic for operator notices.
pub const ALERT_TOPIC_ARN: &str = "ALERT_TOPIC_ARN";
/// `TLS_TRUST_ROOTS`: `aws` (default: the Amazon roots compiled in) or `system`.
pub const TLS_TRUST_ROOTS: &str = "TLS_TRUST_ROOTS";

#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

pub fn required(name: &str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConfigError(format!("environment variable {name} must be set")))
}

/// A positive integer setting, `default` when unset.
pub fn positive_int(name: &str, default: u32) -> Result<u32, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => parse_positive(&v)
            .ok_or_else(|| ConfigError(format!("{name} must be a positive integer, got {v:?}"))),
    }
}

pub fn parse_positive(v: &str) -> Option<u32> {
    v.trim().parse::<u32>().ok().filter(|n| *n > 0)
}

pub fn streak_rule() -> Result<StreakRule, ConfigError> {
    Ok(StreakRule {
        threshold: positive_int(FAILURE_THRESHOLD, StreakRule::default().threshold)?,
    })
}

pub fn event_rules() -> Result<EventRules, ConfigError> {
    let default_secs = (EventRules::default().max_clock_skew_millis / 1000) as u32;
    Ok(EventRules {
        max_clock_skew_millis: i64::from(positive_int(MAX_CLOCK_SKEW_SECONDS, default_secs)?) * 1000,
    })
}

pub fn cursor_key() -> Result<CursorKey, ConfigError> {
    let secret = required(CURSOR_SIGNING_KEY)?;
    if secret.len() < 32 {
        return Err(ConfigError(format!(
            "{CURSOR_SIGNING_KEY} must be at least 32 characters"
        )));
    }
    Ok(CursorKey::from_secret(secret.as_bytes()))
}
