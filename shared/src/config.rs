//! One typed configuration per process, read once at start, here and nowhere else.
//!
//! A Lambda function reads it from its environment ([`Config::from_env`]); the local
//! runner declares the same settings as command-line flags (clap, each with `env =`
//! one of the names below, so a flag and a Lambda environment variable are the same
//! setting) and builds the same [`Config`] from them. Handlers, adapters and logging
//! receive the values they need; nothing else reads the environment.

use crate::domain::detection::Rules;
use crate::domain::silence::SilenceRule;
use crate::domain::streak::StreakRule;
use crate::domain::validate::EventRules;
use crate::http::cursor::CursorKey;
use std::time::Duration;

/// `FAILURE_THRESHOLD`: failures in a row before an alert (default 3).
pub const FAILURE_THRESHOLD: &str = "FAILURE_THRESHOLD";
/// `MAX_CLOCK_SKEW_SECONDS`: how far in the future a device timestamp may be (default 900).
pub const MAX_CLOCK_SKEW_SECONDS: &str = "MAX_CLOCK_SKEW_SECONDS";
/// `DEVICE_REQUESTS_PER_MINUTE`: requests one device may make per minute (default 120).
pub const DEVICE_REQUESTS_PER_MINUTE: &str = "DEVICE_REQUESTS_PER_MINUTE";
/// `DEVICE_EVENTS_PER_MINUTE`: events one device may send per minute (default 6000).
pub const DEVICE_EVENTS_PER_MINUTE: &str = "DEVICE_EVENTS_PER_MINUTE";
/// `SILENT_AFTER`: no report received for this long makes an unassigned device silent
/// (a duration: `48h`, `90m`, `60s`, `2d`; default 48h).
pub const SILENT_AFTER: &str = "SILENT_AFTER";
/// `ALERT_FRESHNESS`: a failure received within this long of its device timestamp is
/// news; a streak without one is recorded, not published (a duration; default 24h).
pub const ALERT_FRESHNESS: &str = "ALERT_FRESHNESS";
/// `FLAP_COUNT` alerts within `FLAP_WINDOW` (received time) make a device flapping: one
/// `device.flapping`, then its alerts are held until a window passes without one
/// (defaults 3 and 24h).
pub const FLAP_COUNT: &str = "FLAP_COUNT";
pub const FLAP_WINDOW: &str = "FLAP_WINDOW";
/// `CURSOR_SIGNING_KEY`: secret for page cursors (local development; AWS reads
/// `CURSOR_SIGNING_KEY_SECRET_ARN`).
pub const CURSOR_SIGNING_KEY: &str = "CURSOR_SIGNING_KEY";
/// `TABLE_NAME`: the DynamoDB table.
pub const TABLE_NAME: &str = "TABLE_NAME";
/// `EVENT_RETENTION_DAYS`: days an event is kept after it was received (TTL); unset or
/// 0 keeps events.
pub const EVENT_RETENTION_DAYS: &str = "EVENT_RETENTION_DAYS";
/// `ALERT_TOPIC_ARN`: the SNS topic for operator notices.
pub const ALERT_TOPIC_ARN: &str = "ALERT_TOPIC_ARN";
/// The Firehose stream detect-failures sends applied events to (the data team's
/// export); unset: no export.
pub const EXPORT_STREAM_NAME: &str = "EXPORT_STREAM_NAME";
/// `TLS_TRUST_ROOTS`: `aws` (default: the Amazon roots compiled in) or `system`.
pub const TLS_TRUST_ROOTS: &str = "TLS_TRUST_ROOTS";
/// `DASHBOARD_URL`: the dashboard's address, for links in e-mails (optional).
pub const DASHBOARD_URL: &str = "DASHBOARD_URL";
/// `SIGN_IN_DOMAIN`, `SIGN_IN_CLIENT_ID` (with `DASHBOARD_URL`): the dashboard's
/// Cognito hosted-UI sign-in (all three, or the dashboard asks for a pasted token).
pub const SIGN_IN_DOMAIN: &str = "SIGN_IN_DOMAIN";
pub const SIGN_IN_CLIENT_ID: &str = "SIGN_IN_CLIENT_ID";
/// `WEBHOOK_URL`: where every notice is POSTed (`https://`; locally also loopback http).
pub const WEBHOOK_URL: &str = "WEBHOOK_URL";
/// `WEBHOOK_SECRET_ARN`: the Secrets Manager secret that signs webhook deliveries.
pub const WEBHOOK_SECRET_ARN: &str = "WEBHOOK_SECRET_ARN";
/// `WEBHOOK_EXTRA_ROOTS`: PEM certificates of authorities webhook receivers may chain to
/// besides the public web's (a district's own CA). Certificates are public: no secret.
pub const WEBHOOK_EXTRA_ROOTS: &str = "WEBHOOK_EXTRA_ROOTS";
/// `WEBHOOK_QUEUE_URL`: the queue deliver-webhooks reads (to delay a retry).
pub const WEBHOOK_QUEUE_URL: &str = "WEBHOOK_QUEUE_URL";
/// `WEBHOOK_DEAD_LETTER_QUEUE_URL`: where a delivery the receiver rejects goes.
pub const WEBHOOK_DEAD_LETTER_QUEUE_URL: &str = "WEBHOOK_DEAD_LETTER_QUEUE_URL";
/// `CURSOR_SIGNING_KEY_SECRET_ARN`: the Secrets Manager secret holding the cursor key.
pub const CURSOR_SIGNING_KEY_SECRET_ARN: &str = "CURSOR_SIGNING_KEY_SECRET_ARN";
/// `CREDENTIALS_TABLE_NAME`: the DynamoDB table of device credentials.
pub const CREDENTIALS_TABLE_NAME: &str = "CREDENTIALS_TABLE_NAME";
/// `TOKEN_SIGNING_KEYS_SECRET_ARN`: the secret with the token signing keys (AWS).
pub const TOKEN_SIGNING_KEYS_SECRET_ARN: &str = "TOKEN_SIGNING_KEYS_SECRET_ARN";
/// `TOKEN_SIGNING_KEYS_FILE`: a file with the token signing keys (local development).
pub const TOKEN_SIGNING_KEYS_FILE: &str = "TOKEN_SIGNING_KEYS_FILE";
/// `CREDENTIAL_CACHE_SECONDS`: how long a device route trusts a credential it read
/// (the revocation delay; default 60, at most 300).
pub const CREDENTIAL_CACHE_SECONDS: &str = "CREDENTIAL_CACHE_SECONDS";
/// `OPERATOR_GROUPS_CLAIM`: the JWT claim listing an operator's groups
/// (default `cognito:groups`).
pub const OPERATOR_GROUPS_CLAIM: &str = "OPERATOR_GROUPS_CLAIM";
/// `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`) and `AWS_LAMBDA_LOG_FORMAT`: Lambda's
/// logging controls, as the template sets them.
pub const LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
pub const RUST_LOG: &str = "RUST_LOG";
pub const LOG_FORMAT: &str = "AWS_LAMBDA_LOG_FORMAT";
/// What Lambda puts in every function's environment: the region and the role's
/// credentials (only whether they are there is kept, never their values).
pub const AWS_REGION: &str = "AWS_REGION";
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";

/// Defaults, shared by the Lambda environment and the local runner's flags.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
pub const DEFAULT_SILENT_AFTER: &str = "48h";
pub const DEFAULT_ALERT_FRESHNESS: &str = "24h";
pub const DEFAULT_FLAP_COUNT: u32 = 3;
pub const DEFAULT_FLAP_WINDOW: &str = "24h";
pub const DEFAULT_MAX_CLOCK_SKEW_SECONDS: u32 = 900;
pub const DEFAULT_CREDENTIAL_CACHE_SECONDS: u32 = 60;
pub const DEFAULT_OPERATOR_GROUPS_CLAIM: &str = "cognito:groups";

/// Longest credential cache: the contract's revocation delay in AWS.
pub const MAX_CREDENTIAL_CACHE_SECONDS: u32 = 300;
/// Shortest accepted `CURSOR_SIGNING_KEY`.
pub const MIN_CURSOR_KEY_LEN: usize = 32;

/// Where a secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A Secrets Manager secret (AWS).
    SecretsManager(String),
    /// A file readable by its owner only (local development).
    File(std::path::PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} must be set")]
    Missing(&'static str),
    #[error("{name} {expected}, got {value:?}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
        value: String,
    },
    #[error("TLS settings")]
    Tls(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Which certificate authorities the AWS SDK's TLS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustRoots {
    /// The Amazon Trust Services roots compiled in (default).
    #[default]
    Aws,
    /// The operating system's store, loaded at start.
    System,
}

/// How a Lambda function logs (Lambda's own controls).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logging {
    pub level: String,
    pub json: bool,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            level: "INFO".into(),
            json: false,
        }
    }
}

/// What the environment already says about AWS, so the SDK need not search for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsEnvironment {
    pub region: Option<String>,
    /// Both access keys are set: the environment credentials provider alone answers.
    pub has_credentials: bool,
}

/// Everything a PiSync process is configured with. Values a process may not need are
/// optional here and required by the accessor that process calls.
#[derive(Clone, Debug)]
pub struct Config {
    pub rule: StreakRule,
    pub silence: SilenceRule,
    /// For links to a device's page in e-mails.
    pub dashboard_url: Option<String>,
    pub event_rules: EventRules,
    pub device_limits: crate::domain::limits::DeviceLimits,
    /// Days an event is kept after it was received (TTL); `None` keeps events.
    pub retention_days: Option<u32>,
    pub trust_roots: TrustRoots,
    /// How long a device route trusts a credential it read.
    pub credential_cache: Duration,
    /// The JWT claim with an operator's groups.
    pub operator_groups_claim: String,
    pub logging: Logging,
    pub aws: AwsEnvironment,
    pub table: Option<String>,
    pub credentials_table: Option<String>,
    pub cursor_key: Option<CursorKey>,
    pub cursor_key_secret: Option<String>,
    pub signing_keys: Option<SecretSource>,
    pub alert_topic_arn: Option<String>,
    pub export_stream_name: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret_arn: Option<String>,
    /// `WEBHOOK_EXTRA_ROOTS`: PEM text, checked when the webhook client is built.
    pub webhook_extra_roots: Option<String>,
    pub webhook_dead_letter_queue: Option<String>,
    pub webhook_queue: Option<String>,
    pub sign_in: Option<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_lookup(|_| None).unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `var` (the environment, or a test's map).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let positive = |name: &'static str, default: u32| match set(name) {
            None => Ok(default),
            Some(v) => parse_positive(&v).ok_or(ConfigError::Invalid {
                name,
                expected: "must be a positive integer",
                value: v,
            }),
        };
        let retention_days = match set(EVENT_RETENTION_DAYS) {
            None => None,
            Some(v) if v.trim() == "0" => None,
            Some(v) => Some(parse_positive(&v).ok_or(ConfigError::Invalid {
                name: EVENT_RETENTION_DAYS,
                expected: "must be a whole number of days",
                value: v,
            })?),
        };
        let trust_roots = match set(TLS_TRUST_ROOTS) {
            None => TrustRoots::Aws,
            Some(v) => parse_trust_roots(&v).ok_or(ConfigError::Invalid {
                name: TLS_TRUST_ROOTS,
                expected: "must be \"aws\" or \"system\"",
                value: v,
            })?,
        };
        let cursor_key = match set(CURSOR_SIGNING_KEY) {
            None => None,
            Some(secret) if secret.len() < MIN_CURSOR_KEY_LEN => {
                return Err(ConfigError::Invalid {
                    name: CURSOR_SIGNING_KEY,
                    expected: "must be at least 32 characters",
                    // Never echo a secret, not even a short one.
                    value: format!("{} characters", secret.len()),
                });
            }
            Some(secret) => Some(CursorKey::from_secret(secret.as_bytes())),
        };
        let credential_cache = match positive(CREDENTIAL_CACHE_SECONDS, DEFAULT_CREDENTIAL_CACHE_SECONDS)? {
            secs if secs <= MAX_CREDENTIAL_CACHE_SECONDS => Duration::from_secs(secs.into()),
            secs => {
                return Err(ConfigError::Invalid {
                    name: CREDENTIAL_CACHE_SECONDS,
                    expected: "must be at most 300 (the revocation delay)",
                    value: secs.to_string(),
                })
            }
        };
        let signing_keys = match (set(TOKEN_SIGNING_KEYS_SECRET_ARN), set(TOKEN_SIGNING_KEYS_FILE)) {
            (Some(arn), _) => Some(SecretSource::SecretsManager(arn)),
            (None, Some(path)) => Some(SecretSource::File(path.into())),
            (None, None) => None,
        };
        let silent_after = set(SILENT_AFTER).unwrap_or_else(|| DEFAULT_SILENT_AFTER.into());
        let silence = SilenceRule {
            after: parse_duration(&silent_after).ok_or(ConfigError::Invalid {
                name: SILENT_AFTER,
                expected: "must be a duration such as 48h, 90m, 60s or 2d",
                value: silent_after.clone(),
            })?,
        };
        let freshness = set(ALERT_FRESHNESS).unwrap_or_else(|| DEFAULT_ALERT_FRESHNESS.into());
        let freshness = parse_duration(&freshness).ok_or(ConfigError::Invalid {
            name: ALERT_FRESHNESS,
            expected: "must be a duration such as 24h, 90m, 60s or 2d",
            value: freshness.clone(),
        })?;
        let flap_window = set(FLAP_WINDOW).unwrap_or_else(|| DEFAULT_FLAP_WINDOW.into());
        let flap_window = parse_duration(&flap_window).ok_or(ConfigError::Invalid {
            name: FLAP_WINDOW,
            expected: "must be a duration such as 24h, 90m, 60s or 2d",
            value: flap_window.clone(),
        })?;
        let flap_count = positive(FLAP_COUNT, DEFAULT_FLAP_COUNT)?;
        if flap_count < 2 {
            return Err(ConfigError::Invalid {
                name: FLAP_COUNT,
                expected: "must be at least 2 (one alert is not flapping)",
                value: flap_count.to_string(),
            });
        }
        let webhook_url = match set(WEBHOOK_URL) {
            Some(url) if !is_webhook_url(&url) => {
                return Err(ConfigError::Invalid {
                    name: WEBHOOK_URL,
                    expected: "must be an https:// URL (or http:// to a loopback host)",
                    value: url,
                })
            }
            other => other,
        };
        let logging = Logging {
            level: set(LOG_LEVEL)
                .or_else(|| set(RUST_LOG))
                .unwrap_or_else(|| Logging::default().level),
            json: set(LOG_FORMAT).is_some_and(|f| f.eq_ignore_ascii_case("json")),
        };
        Ok(Self {
            rule: StreakRule {
                threshold: positive(FAILURE_THRESHOLD, DEFAULT_FAILURE_THRESHOLD)?,
                freshness,
                flap_count,
                flap_window,
            },
            silence,
            dashboard_url: set(DASHBOARD_URL),
            event_rules: EventRules {
                max_clock_skew_millis: i64::from(positive(
                    MAX_CLOCK_SKEW_SECONDS,
                    DEFAULT_MAX_CLOCK_SKEW_SECONDS,
                )?) * 1000,
            },
            device_limits: crate::domain::limits::DeviceLimits {
                requests_per_minute: positive(
                    DEVICE_REQUESTS_PER_MINUTE,
                    crate::domain::limits::DEFAULT_REQUESTS_PER_MINUTE,
                )?,
                events_per_minute: positive(
                    DEVICE_EVENTS_PER_MINUTE,
                    crate::domain::limits::DEFAULT_EVENTS_PER_MINUTE,
                )?,
            },
            retention_days,
            trust_roots,
            credential_cache,
            operator_groups_claim: set(OPERATOR_GROUPS_CLAIM)
                .unwrap_or_else(|| DEFAULT_OPERATOR_GROUPS_CLAIM.into()),
            logging,
            aws: AwsEnvironment {
                region: set(AWS_REGION),
                has_credentials: set(AWS_ACCESS_KEY_ID).is_some() && set(AWS_SECRET_ACCESS_KEY).is_some(),
            },
            table: set(TABLE_NAME),
            credentials_table: set(CREDENTIALS_TABLE_NAME),
            cursor_key,
            cursor_key_secret: set(CURSOR_SIGNING_KEY_SECRET_ARN),
            signing_keys,
            alert_topic_arn: set(ALERT_TOPIC_ARN),
            export_stream_name: set(EXPORT_STREAM_NAME),
            webhook_url,
            webhook_secret_arn: set(WEBHOOK_SECRET_ARN),
            webhook_extra_roots: set(WEBHOOK_EXTRA_ROOTS),
            webhook_dead_letter_queue: set(WEBHOOK_DEAD_LETTER_QUEUE_URL),
            webhook_queue: set(WEBHOOK_QUEUE_URL),
            sign_in: set(SIGN_IN_DOMAIN).zip(set(SIGN_IN_CLIENT_ID)),
        })
    }

    /// The region for an endpoint such as DynamoDB Local: the environment's, else any.
    pub fn region_or_default(&self) -> String {
        self.aws.region.clone().unwrap_or_else(|| "us-east-1".into())
    }

    /// `TABLE_NAME`, required by every function that uses the table.
    pub fn table(&self) -> Result<&str, ConfigError> {
        required(&self.table, TABLE_NAME)
    }

    /// `CURSOR_SIGNING_KEY` given directly (local development).
    pub fn cursor_key(&self) -> Result<CursorKey, ConfigError> {
        self.cursor_key
            .clone()
            .ok_or(ConfigError::Missing(CURSOR_SIGNING_KEY))
    }

    /// `CREDENTIALS_TABLE_NAME`, required by device routes and credential management.
    pub fn credentials_table(&self) -> Result<&str, ConfigError> {
        required(&self.credentials_table, CREDENTIALS_TABLE_NAME)
    }

    /// Where the token signing keys are: `TOKEN_SIGNING_KEYS_SECRET_ARN`, else
    /// `TOKEN_SIGNING_KEYS_FILE`.
    pub fn signing_keys(&self) -> Result<&SecretSource, ConfigError> {
        self.signing_keys
            .as_ref()
            .ok_or(ConfigError::Missing(TOKEN_SIGNING_KEYS_SECRET_ARN))
    }

    /// The streak and silence rules together, as detection applies them.
    pub fn rules(&self) -> Rules {
        Rules {
            streak: self.rule,
            silence: self.silence,
            ..Rules::default()
        }
    }

    /// `WEBHOOK_URL`, required by deliver-webhooks.
    pub fn webhook_url(&self) -> Result<&str, ConfigError> {
        required(&self.webhook_url, WEBHOOK_URL)
    }

    /// `WEBHOOK_SECRET_ARN`, required by deliver-webhooks.
    pub fn webhook_secret_arn(&self) -> Result<&str, ConfigError> {
        required(&self.webhook_secret_arn, WEBHOOK_SECRET_ARN)
    }

    /// `WEBHOOK_DEAD_LETTER_QUEUE_URL`, required by deliver-webhooks.
    pub fn webhook_dead_letter_queue(&self) -> Result<&str, ConfigError> {
        required(&self.webhook_dead_letter_queue, WEBHOOK_DEAD_LETTER_QUEUE_URL)
    }

    /// `WEBHOOK_QUEUE_URL`, required by deliver-webhooks.
    pub fn webhook_queue(&self) -> Result<&str, ConfigError> {
        required(&self.webhook_queue, WEBHOOK_QUEUE_URL)
    }

    /// The dashboard's hosted-UI sign-in: (domain, client id, redirect URI), when the
    /// stack has a Cognito user pool.
    pub fn dashboard_sign_in(&self) -> Option<(&str, &str, &str)> {
        let (domain, client) = self.sign_in.as_ref()?;
        Some((domain, client, self.dashboard_url.as_deref()?))
    }

    /// `ALERT_TOPIC_ARN`, required by the functions that publish notices.
    pub fn alert_topic_arn(&self) -> Result<&str, ConfigError> {
        required(&self.alert_topic_arn, ALERT_TOPIC_ARN)
    }
}

fn required<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, ConfigError> {
    value.as_deref().ok_or(ConfigError::Missing(name))
}

/// A whole number above zero.
pub fn parse_positive(v: &str) -> Option<u32> {
    v.trim().parse::<u32>().ok().filter(|n| *n > 0)
}

fn parse_trust_roots(v: &str) -> Option<TrustRoots> {
    match v.trim() {
        "aws" => Some(TrustRoots::Aws),
        "system" => Some(TrustRoots::System),
        _ => None,
    }
}

/// `90s`, `30m`, `48h`, `2d`: a positive whole number and a unit.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = number.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(seconds).map(Duration::from_secs)
}

/// A duration as [`parse_duration`] reads it: the largest whole unit.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A webhook receiver: `https://`, or plain `http://` to this machine only (a local
/// receiver during development; nothing else is sent in clear).
pub fn is_webhook_url(url: &str) -> bool {
    if url.starts_with("https://") && url.len() > "https://".len() {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults_when_unset() {
        let c = config(&[]).unwrap();
        assert_eq!(c.rule, StreakRule::default());
        assert_eq!(c.silence, SilenceRule::default());
        assert_eq!(c.dashboard_url, None);
        assert_eq!(c.event_rules, EventRules::default());
        assert_eq!((c.retention_days, c.trust_roots), (None, TrustRoots::Aws));
        assert_eq!(c.credential_cache, Duration::from_secs(60));
        assert_eq!(c.operator_groups_claim, "cognito:groups");
        assert_eq!(c.logging, Logging::default());
        assert_eq!(c.aws, AwsEnvironment::default());
        assert!(matches!(c.signing_keys(), Err(ConfigError::Missing(_))));
        assert!(matches!(c.table(), Err(ConfigError::Missing(TABLE_NAME))));
        assert!(matches!(
            c.cursor_key(),
            Err(ConfigError::Missing(CURSOR_SIGNING_KEY))
        ));
    }

    #[test]
    fn values_are_read_and_checked() {
        let c = config(&[
            (FAILURE_THRESHOLD, "5"),
            (MAX_CLOCK_SKEW_SECONDS, "60"),
            (EVENT_RETENTION_DAYS, "30"),
            (TABLE_NAME, "t"),
            (TLS_TRUST_ROOTS, "system"),
            (SILENT_AFTER, "90m"),
            (ALERT_FRESHNESS, "6h"),
            (FLAP_COUNT, "4"),
            (FLAP_WINDOW, "12h"),
            (LOG_LEVEL, "DEBUG"),
            (LOG_FORMAT, "JSON"),
        ])
        .unwrap();
        assert_eq!(c.rule.threshold, 5);
        assert_eq!(c.event_rules.max_clock_skew_millis, 60_000);
        assert_eq!(c.retention_days, Some(30));
        assert_eq!(c.table().unwrap(), "t");
        assert_eq!(c.trust_roots, TrustRoots::System);
        assert_eq!(c.silence.after, Duration::from_secs(90 * 60));
        assert_eq!(c.rule.freshness, Duration::from_secs(6 * 3600));
        assert_eq!(
            (c.rule.flap_count, c.rule.flap_window),
            (4, Duration::from_secs(12 * 3600))
        );
        assert_eq!(
            c.logging,
            Logging {
                level: "DEBUG".into(),
                json: true
            }
        );
        assert_eq!(
            config(&[(EVENT_RETENTION_DAYS, "0")]).unwrap().retention_days,
            None
        );
        let c = config(&[
            (TOKEN_SIGNING_KEYS_FILE, "/k.json"),
            (TOKEN_SIGNING_KEYS_SECRET_ARN, "arn:s"),
            (CREDENTIALS_TABLE_NAME, "c"),
        ])
        .unwrap();
        assert_eq!(
            c.signing_keys().unwrap(),
            &SecretSource::SecretsManager("arn:s".into())
        );
        assert_eq!(c.credentials_table().unwrap(), "c");
    }

    #[test]
    fn lambdas_environment_answers_region_and_credentials() {
        let c = config(&[
            (AWS_REGION, "eu-west-1"),
            (AWS_ACCESS_KEY_ID, "AKIA"),
            (AWS_SECRET_ACCESS_KEY, "s"),
        ])
        .unwrap();
        assert_eq!(
            c.aws,
            AwsEnvironment {
                region: Some("eu-west-1".into()),
                has_credentials: true
            }
        );
        let partial = config(&[(AWS_ACCESS_KEY_ID, "AKIA")]).unwrap();
        assert!(!partial.aws.has_credentials, "both keys or neither");
        assert!(!format!("{c:?}").contains("AKIA"), "no credential is kept");
    }

    #[test]
    fn bad_values_are_errors_that_name_the_variable() {
        for (name, value) in [
            (FAILURE_THRESHOLD, "0"),
            (MAX_CLOCK_SKEW_SECONDS, "-1"),
            (EVENT_RETENTION_DAYS, "a week"),
            (TLS_TRUST_ROOTS, "mozilla"),
            (CURSOR_SIGNING_KEY, "short"),
            (CREDENTIAL_CACHE_SECONDS, "301"),
            (CREDENTIAL_CACHE_SECONDS, "0"),
            (SILENT_AFTER, "0h"),
            (SILENT_AFTER, "soon"),
            (ALERT_FRESHNESS, "0h"),
            (FLAP_COUNT, "1"),
            (FLAP_WINDOW, "often"),
            (WEBHOOK_URL, "http://hooks.example/x"),
            (WEBHOOK_URL, "ftp://x"),
        ] {
            let err = config(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn a_short_cursor_key_is_not_echoed() {
        let err = config(&[(CURSOR_SIGNING_KEY, "hunter2")])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn durations_take_a_unit_and_read_back() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("48h"), Some(Duration::from_secs(48 * 3600)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(2 * 86_400)));
        for bad in ["", "90", "0s", "-1h", "1.5h", "h", "10w", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        for text in ["90s", "16h", "2d", "90m"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn webhooks_go_over_tls_or_stay_on_this_machine() {
        for ok in [
            "https://hooks.example/x",
            "http://127.0.0.1:9000/hook",
            "http://localhost/x",
            "http://[::1]:80/",
        ] {
            assert!(is_webhook_url(ok), "{ok}");
        }
        for bad in [
            "http://hooks.example/x",
            "http://127.0.0.1.evil/x",
            "ftp://x",
            "https://",
            "hooks",
        ] {
            assert!(!is_webhook_url(bad), "{bad}");
        }
    }
}
