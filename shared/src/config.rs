//! One typed configuration per process, read from the environment once, in `main`.
//! Handlers receive the values they need; nothing else reads the environment.

use crate::domain::detection::Rules;
use crate::domain::silence::SilenceRule;
use crate::domain::streak::StreakRule;
use crate::domain::validate::EventRules;
use crate::http::cursor::CursorKey;

/// `FAILURE_THRESHOLD`: failures in a row before an alert (default: [`StreakRule::default`]).
pub const FAILURE_THRESHOLD: &str = "FAILURE_THRESHOLD";
/// `MAX_CLOCK_SKEW_SECONDS`: how far in the future a device timestamp may be (default 900).
pub const MAX_CLOCK_SKEW_SECONDS: &str = "MAX_CLOCK_SKEW_SECONDS";
/// `CURSOR_SIGNING_KEY`: secret for page cursors; the same on every instance.
pub const CURSOR_SIGNING_KEY: &str = "CURSOR_SIGNING_KEY";
/// `TABLE_NAME`: the DynamoDB table.
pub const TABLE_NAME: &str = "TABLE_NAME";
/// `EVENT_RETENTION_DAYS`: days an event is kept (TTL); unset or 0 keeps events.
pub const EVENT_RETENTION_DAYS: &str = "EVENT_RETENTION_DAYS";
/// `ALERT_TOPIC_ARN`: the SNS topic for operator notices.
pub const ALERT_TOPIC_ARN: &str = "ALERT_TOPIC_ARN";
/// `TLS_TRUST_ROOTS`: `aws` (default: the Amazon roots compiled in) or `system`.
pub const TLS_TRUST_ROOTS: &str = "TLS_TRUST_ROOTS";
/// `SILENT_AFTER_HOURS`: hours without a report that make a device silent (default 48).
pub const SILENT_AFTER_HOURS: &str = "SILENT_AFTER_HOURS";
/// `DASHBOARD_URL`: the dashboard's address, for links in e-mails (optional).
pub const DASHBOARD_URL: &str = "DASHBOARD_URL";
/// `SIGN_IN_DOMAIN`, `SIGN_IN_CLIENT_ID`, `DASHBOARD_URL`: the dashboard's Cognito
/// hosted UI sign-in (all three, or the dashboard asks for a pasted token).
pub const SIGN_IN_DOMAIN: &str = "SIGN_IN_DOMAIN";
pub const SIGN_IN_CLIENT_ID: &str = "SIGN_IN_CLIENT_ID";
/// `WEBHOOK_URL`: where deliver-webhooks POSTs each notice (`https://`).
pub const WEBHOOK_URL: &str = "WEBHOOK_URL";
/// `WEBHOOK_SECRET_ARN`: the Secrets Manager secret that signs webhook deliveries.
pub const WEBHOOK_SECRET_ARN: &str = "WEBHOOK_SECRET_ARN";
/// `WEBHOOK_QUEUE_URL`: the queue deliver-webhooks reads (to delay a retry).
pub const WEBHOOK_QUEUE_URL: &str = "WEBHOOK_QUEUE_URL";
/// `WEBHOOK_DEAD_LETTER_QUEUE_URL`: where a delivery the receiver rejects goes.
pub const WEBHOOK_DEAD_LETTER_QUEUE_URL: &str = "WEBHOOK_DEAD_LETTER_QUEUE_URL";

/// `CURSOR_SIGNING_KEY_SECRET_ARN`: the Secrets Manager secret holding the cursor key
/// (AWS; `CURSOR_SIGNING_KEY` gives the value directly for local development).
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

/// Longest credential cache: the contract's revocation delay in AWS.
pub const MAX_CREDENTIAL_CACHE_SECONDS: u32 = 300;

/// Where a secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A Secrets Manager secret (AWS).
    SecretsManager(String),
    /// A file readable by its owner only (local development).
    File(std::path::PathBuf),
}

/// Shortest accepted `CURSOR_SIGNING_KEY`.
pub const MIN_CURSOR_KEY_LEN: usize = 32;

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

/// Everything a PiSync process reads from its environment. Values a process may not
/// need are optional here and required by the accessor that process calls.
#[derive(Clone, Debug)]
pub struct Config {
    pub rule: StreakRule,
    pub silence: SilenceRule,
    /// For links to a device's page in e-mails.
    pub dashboard_url: Option<String>,
    pub event_rules: EventRules,
    /// Days an event is kept after it was received (TTL); `None` keeps events.
    pub retention_days: Option<u32>,
    pub trust_roots: TrustRoots,
    /// How long a device route trusts a credential it read.
    pub credential_cache: std::time::Duration,
    /// The JWT claim with an operator's groups.
    pub operator_groups_claim: String,
    table: Option<String>,
    credentials_table: Option<String>,
    cursor_key: Option<CursorKey>,
    cursor_key_secret: Option<String>,
    signing_keys: Option<SecretSource>,
    alert_topic_arn: Option<String>,
    webhook_url: Option<String>,
    webhook_secret_arn: Option<String>,
    webhook_dead_letter_queue: Option<String>,
    webhook_queue: Option<String>,
    sign_in: Option<(String, String)>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `var` (the environment, or a test's map).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let default_skew_secs = (EventRules::default().max_clock_skew_millis / 1000) as u32;
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
        let trust_roots = match set(TLS_TRUST_ROOTS).as_deref() {
            None | Some("aws") => TrustRoots::Aws,
            Some("system") => TrustRoots::System,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: TLS_TRUST_ROOTS,
                    expected: "must be \"aws\" or \"system\"",
                    value: other.to_owned(),
                })
            }
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
        let credential_cache = match positive(CREDENTIAL_CACHE_SECONDS, 60)? {
            secs if secs <= MAX_CREDENTIAL_CACHE_SECONDS => std::time::Duration::from_secs(secs.into()),
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
        let silence = SilenceRule {
            after: std::time::Duration::from_secs(3600 * u64::from(positive(SILENT_AFTER_HOURS, 48)?)),
        };
        let webhook_url = match set(WEBHOOK_URL) {
            Some(url) if !url.starts_with("https://") => {
                return Err(ConfigError::Invalid {
                    name: WEBHOOK_URL,
                    expected: "must be an https:// URL",
                    value: url,
                })
            }
            other => other,
        };
        Ok(Self {
            silence,
            dashboard_url: set(DASHBOARD_URL),
            webhook_url,
            webhook_secret_arn: set(WEBHOOK_SECRET_ARN),
            webhook_dead_letter_queue: set(WEBHOOK_DEAD_LETTER_QUEUE_URL),
            webhook_queue: set(WEBHOOK_QUEUE_URL),
            sign_in: set(SIGN_IN_DOMAIN).zip(set(SIGN_IN_CLIENT_ID)),
            credential_cache,
            operator_groups_claim: set(OPERATOR_GROUPS_CLAIM).unwrap_or_else(|| "cognito:groups".into()),
            credentials_table: set(CREDENTIALS_TABLE_NAME),
            cursor_key_secret: set(CURSOR_SIGNING_KEY_SECRET_ARN),
            signing_keys,
            rule: StreakRule {
                threshold: positive(FAILURE_THRESHOLD, StreakRule::default().threshold)?,
            },
            event_rules: EventRules {
                max_clock_skew_millis: i64::from(positive(MAX_CLOCK_SKEW_SECONDS, default_skew_secs)?) * 1000,
            },
            retention_days,
            trust_roots,
            table: set(TABLE_NAME),
            cursor_key,
            alert_topic_arn: set(ALERT_TOPIC_ARN),
        })
    }

    /// `TABLE_NAME`, required by every function.
    pub fn table(&self) -> Result<&str, ConfigError> {
        self.table.as_deref().ok_or(ConfigError::Missing(TABLE_NAME))
    }

    /// `CURSOR_SIGNING_KEY` given directly (local development).
    pub fn cursor_key(&self) -> Result<CursorKey, ConfigError> {
        self.cursor_key
            .clone()
            .ok_or(ConfigError::Missing(CURSOR_SIGNING_KEY))
    }

    /// `CURSOR_SIGNING_KEY_SECRET_ARN`, where the paged read functions find their key in AWS.
    pub fn cursor_key_secret(&self) -> Option<&str> {
        self.cursor_key_secret.as_deref()
    }

    /// `CREDENTIALS_TABLE_NAME`, required by device routes and credential management.
    pub fn credentials_table(&self) -> Result<&str, ConfigError> {
        self.credentials_table
            .as_deref()
            .ok_or(ConfigError::Missing(CREDENTIALS_TABLE_NAME))
    }

    /// Where the token signing keys are: `TOKEN_SIGNING_KEYS_SECRET_ARN`, else
    /// `TOKEN_SIGNING_KEYS_FILE`.
    pub fn signing_keys(&self) -> Result<&SecretSource, ConfigError> {
        self.signing_keys
            .as_ref()
            .ok_or(ConfigError::Missing(TOKEN_SIGNING_KEYS_SECRET_ARN))
    }

    /// `CURSOR_SIGNING_KEY` if it is set (the local runner falls back to its own key).
    pub fn cursor_key_if_set(&self) -> Option<CursorKey> {
        self.cursor_key.clone()
    }

    /// The streak and silence rules together, as detection applies them.
    pub fn rules(&self) -> Rules {
        Rules {
            streak: self.rule,
            silence: self.silence,
        }
    }

    /// `WEBHOOK_URL`, required by deliver-webhooks (always `https://`).
    pub fn webhook_url(&self) -> Result<&str, ConfigError> {
        self.webhook_url
            .as_deref()
            .ok_or(ConfigError::Missing(WEBHOOK_URL))
    }

    /// `WEBHOOK_SECRET_ARN`, required by deliver-webhooks.
    pub fn webhook_secret_arn(&self) -> Result<&str, ConfigError> {
        self.webhook_secret_arn
            .as_deref()
            .ok_or(ConfigError::Missing(WEBHOOK_SECRET_ARN))
    }

    /// `WEBHOOK_DEAD_LETTER_QUEUE_URL`, required by deliver-webhooks.
    pub fn webhook_dead_letter_queue(&self) -> Result<&str, ConfigError> {
        self.webhook_dead_letter_queue
            .as_deref()
            .ok_or(ConfigError::Missing(WEBHOOK_DEAD_LETTER_QUEUE_URL))
    }

    /// The dashboard's hosted-UI sign-in: (domain, client id, redirect URI), when the
    /// stack has a Cognito user pool.
    pub fn dashboard_sign_in(&self) -> Option<(&str, &str, &str)> {
        let (domain, client) = self.sign_in.as_ref()?;
        Some((domain, client, self.dashboard_url.as_deref()?))
    }

    /// `WEBHOOK_QUEUE_URL`, required by deliver-webhooks.
    pub fn webhook_queue(&self) -> Result<&str, ConfigError> {
        self.webhook_queue
            .as_deref()
            .ok_or(ConfigError::Missing(WEBHOOK_QUEUE_URL))
    }

    /// `ALERT_TOPIC_ARN`, required by detect-failures.
    pub fn alert_topic_arn(&self) -> Result<&str, ConfigError> {
        self.alert_topic_arn
            .as_deref()
            .ok_or(ConfigError::Missing(ALERT_TOPIC_ARN))
    }
}

/// A whole number above zero.
pub fn parse_positive(v: &str) -> Option<u32> {
    v.trim().parse::<u32>().ok().filter(|n| *n > 0)
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
        assert_eq!(c.credential_cache, std::time::Duration::from_secs(60));
        assert_eq!(c.operator_groups_claim, "cognito:groups");
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
        ])
        .unwrap();
        assert_eq!(c.rule.threshold, 5);
        assert_eq!(c.event_rules.max_clock_skew_millis, 60_000);
        assert_eq!(c.retention_days, Some(30));
        assert_eq!(c.table().unwrap(), "t");
        assert_eq!(c.trust_roots, TrustRoots::System);
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
    fn bad_values_are_errors_that_name_the_variable() {
        for (name, value) in [
            (FAILURE_THRESHOLD, "0"),
            (MAX_CLOCK_SKEW_SECONDS, "-1"),
            (EVENT_RETENTION_DAYS, "a week"),
            (TLS_TRUST_ROOTS, "mozilla"),
            (CURSOR_SIGNING_KEY, "short"),
            (CREDENTIAL_CACHE_SECONDS, "301"),
            (CREDENTIAL_CACHE_SECONDS, "0"),
            (SILENT_AFTER_HOURS, "0"),
            (WEBHOOK_URL, "http://hooks.example/x"),
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
}
