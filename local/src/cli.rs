//! The command line, declared with clap. Every flag can also be given as an environment
//! variable: a setting a Lambda function has too takes the Lambda's name
//! (`FAILURE_THRESHOLD`, `SILENT_AFTER`, `WEBHOOK_URL`, `TABLE_NAME`, …), so one name
//! means one setting everywhere; settings only the runner has are `PISYNC_*`. A flag
//! beats its variable. The values become the same [`Config`] a Lambda function reads.

use clap::{Args, Parser, Subcommand};
use pisync_shared::config::{self, Config, ConfigError};
use pisync_shared::domain::fleet::Day;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "pisync-local",
    about = "PiSync on one machine: the production handlers behind a local HTTP server",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Issue a token; it is printed alone on stdout. Works while the server runs.
    Token {
        #[command(subcommand)]
        kind: TokenRequest,
    },
    /// Write every stored event as Parquet under OUT/events/date=YYYY-MM-DD/ (the UTC
    /// date each was received), as the AWS export does; prints the files written.
    Export {
        /// The folder to write into (each date's file is replaced).
        #[arg(long, value_name = "OUT")]
        out: PathBuf,
        /// The first date received to export (YYYY-MM-DD, UTC).
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        from: Option<Day>,
        /// The last date received to export (YYYY-MM-DD, UTC, inclusive).
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        to: Option<Day>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a new dashboard sign-in link: one use, within 10 minutes (the runner
    /// prints one when it starts).
    SignIn {
        /// The runner's address, as the browser reaches it.
        #[arg(long, env = "PISYNC_URL", default_value = "http://127.0.0.1:3000")]
        url: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn parse_date(text: &str) -> Result<Day, String> {
    Day::parse(text).ok_or_else(|| format!("{text:?} is not a date (YYYY-MM-DD)"))
}

/// A `token` subcommand.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    /// A device token; the device's earlier tokens stop working.
    Device {
        /// The device id.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke every operator token issued so far (new operator keys; device tokens
    /// keep working); prints nothing. A running server refuses them within a second.
    RevokeOperators {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// An operator token (read, or admin with --admin), valid 30 days: the district's,
    /// or with --school one school operator's (repeat it for several schools).
    Operator {
        /// Also manage credentials, assignments (and, for the district, schools).
        #[arg(long)]
        admin: bool,
        /// A school this operator looks after (none: the whole district).
        #[arg(long, value_name = "ID")]
        school: Vec<String>,
        /// Who holds the token, as the audit trail names them.
        #[arg(long, default_value = pisync_shared::auth::token::DEFAULT_SUBJECT)]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

impl TokenRequest {
    pub fn store(&self) -> &StoreArgs {
        match self {
            TokenRequest::Device { store, .. }
            | TokenRequest::Operator { store, .. }
            | TokenRequest::RevokeOperators { store } => store,
        }
    }
}

/// Where the data is: the server's and the commands' flags alike.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct StoreArgs {
    /// Embedded store folder (also keys and queues).
    #[arg(long, env = "PISYNC_DATA_DIR", default_value = "./.pisync")]
    pub data_dir: PathBuf,
    /// Use DynamoDB at this URL (e.g. DynamoDB Local) instead of the embedded store.
    #[arg(long, env = "PISYNC_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// DynamoDB table, created if missing; credentials go in TABLE-credentials.
    #[arg(long, env = config::TABLE_NAME, default_value = "pisync-local")]
    pub table: String,
}

/// The server's flags.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct RunArgs {
    /// Listen address (`127.0.0.1:0` picks a free port; the first stdout line says which).
    #[arg(long, env = "PISYNC_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Append each notice as one JSON line.
    #[arg(long, env = "PISYNC_ALERTS_FILE")]
    pub alerts_file: Option<PathBuf>,
    /// Failures in a row that alert.
    #[arg(long, env = config::FAILURE_THRESHOLD, default_value_t = config::DEFAULT_FAILURE_THRESHOLD,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub failure_threshold: u32,
    /// No report for this long makes a device silent (48h, 90m, 60s, 2d).
    #[arg(long, env = config::SILENT_AFTER, default_value = config::DEFAULT_SILENT_AFTER, value_parser = duration)]
    pub silent_after: Duration,
    /// A failure received within this long of its device time is news: a streak with
    /// none (a backlog) is recorded, not published, and so is its recovery.
    #[arg(long, env = config::ALERT_FRESHNESS, default_value = config::DEFAULT_ALERT_FRESHNESS, value_parser = duration)]
    pub alert_freshness: Duration,
    /// This many alerts within `--flap-window` (received time) make a device flapping:
    /// one `device.flapping` replaces the alert, and its alerts and recoveries are held
    /// until a whole window passes without one (then `device.stable`).
    #[arg(long, env = config::FLAP_COUNT, default_value_t = config::DEFAULT_FLAP_COUNT,
          value_parser = clap::value_parser!(u32).range(2..))]
    pub flap_count: u32,
    #[arg(long, env = config::FLAP_WINDOW, default_value = config::DEFAULT_FLAP_WINDOW, value_parser = duration)]
    pub flap_window: Duration,
    /// How often to look for silent devices and deliver waiting notices.
    #[arg(long, env = "PISYNC_SILENT_CHECK_INTERVAL", default_value = "60s", value_parser = duration)]
    pub silent_check_interval: Duration,
    /// POST each notice here as signed JSON (Slack-compatible `text`); https://, or
    /// http:// to this machine.
    #[arg(long, env = config::WEBHOOK_URL, value_parser = webhook_url)]
    pub webhook_url: Option<String>,
    /// A file holding the webhook signing secret (default: a random secret kept,
    /// owner-only, in DATA_DIR/webhook-secret). Never the secret itself: a command
    /// line is visible to every user of the machine.
    #[arg(long, env = "PISYNC_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Requests one device may make per minute; beyond it 429 `rate_limited`.
    #[arg(long, env = config::DEVICE_REQUESTS_PER_MINUTE,
          default_value_t = pisync_shared::domain::limits::DEFAULT_REQUESTS_PER_MINUTE,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub device_requests_per_minute: u32,
    /// Events one device may send per minute (a batch counts each of its events).
    #[arg(long, env = config::DEVICE_EVENTS_PER_MINUTE,
          default_value_t = pisync_shared::domain::limits::DEFAULT_EVENTS_PER_MINUTE,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub device_events_per_minute: u32,
    /// Serve without authentication (development only; the runner warns at start).
    #[arg(long, env = "PISYNC_NO_AUTH")]
    pub no_auth: bool,
    /// What to log, on stderr (a tracing filter: `info`, `warn`, `pisync=debug`, …).
    #[arg(long, env = config::RUST_LOG, default_value = "info")]
    pub log: String,
}

impl RunArgs {
    /// The process's configuration: the environment's settings (those without a flag,
    /// such as `MAX_CLOCK_SKEW_SECONDS` or `CURSOR_SIGNING_KEY`), with the flags' values.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = Config::from_env()?;
        config.rule.threshold = self.failure_threshold;
        config.silence.after = self.silent_after;
        config.rule.freshness = self.alert_freshness;
        config.rule.flap_count = self.flap_count;
        config.rule.flap_window = self.flap_window;
        config.device_limits = pisync_shared::domain::limits::DeviceLimits {
            requests_per_minute: self.device_requests_per_minute,
            events_per_minute: self.device_events_per_minute,
        };
        config.webhook_url = self.webhook_url.clone();
        config.table = Some(self.store.table.clone());
        Ok(config)
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    config::parse_duration(text).ok_or_else(|| format!("{text:?} is not a duration such as 48h, 30m or 90s"))
}

fn webhook_url(text: &str) -> Result<String, String> {
    if config::is_webhook_url(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not an https:// URL (or http:// to this machine)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pisync-local").chain(args.iter().copied()))
    }

    fn run(args: &[&str]) -> RunArgs {
        let cli = parse(args).expect("valid flags");
        assert!(cli.command.is_none());
        cli.run
    }

    fn token(args: &[&str]) -> Result<TokenRequest, clap::Error> {
        match parse(args)?.command {
            Some(Command::Token { kind }) => Ok(kind),
            _ => panic!("not a token command"),
        }
    }

    #[test]
    fn authentication_is_on_unless_turned_off() {
        assert!(!run(&[]).no_auth);
        assert!(run(&["--no-auth"]).no_auth);
    }

    #[test]
    fn token_commands_take_the_store_flags() {
        let request = token(&["token", "device", "device_1", "--data-dir", "/d"]).unwrap();
        assert_eq!(request.store().data_dir, PathBuf::from("/d"));
        assert!(matches!(request, TokenRequest::Device { ref id, .. } if id == "device_1"));
        assert!(matches!(
            token(&["token", "operator"]).unwrap(),
            TokenRequest::Operator { admin: false, .. }
        ));
        let admin = token(&["token", "operator", "--admin", "--table", "t"]).unwrap();
        assert!(matches!(admin, TokenRequest::Operator { admin: true, .. }));
        assert_eq!(admin.store(), &run(&["--table", "t"]).store);
        assert!(parse(&["token"]).is_err());
        assert!(parse(&["token", "device"]).is_err());
        assert!(
            parse(&["token", "operator", "--addr", "127.0.0.1:1"]).is_err(),
            "not a server flag"
        );
    }

    #[test]
    fn defaults_match_the_contract() {
        let o = run(&[]);
        assert_eq!(o.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(o.store.data_dir, PathBuf::from("./.pisync"));
        assert_eq!(o.failure_threshold, 3);
        assert_eq!(o.silent_after, Duration::from_secs(48 * 3600));
        assert_eq!(o.alert_freshness, Duration::from_secs(24 * 3600));
        assert_eq!((o.flap_count, o.flap_window), (3, Duration::from_secs(24 * 3600)));
        assert_eq!(o.silent_check_interval, Duration::from_secs(60));
        assert_eq!((o.alerts_file, o.store.dynamodb_endpoint), (None, None));
    }

    #[test]
    fn flags_are_typed_and_checked() {
        let o = run(&[
            "--addr",
            "127.0.0.1:2",
            "--alerts-file=a.jsonl",
            "--silent-after",
            "90s",
        ]);
        assert_eq!(o.addr.port(), 2);
        assert_eq!(o.alerts_file, Some(PathBuf::from("a.jsonl")));
        assert_eq!(o.silent_after, Duration::from_secs(90));
        for bad in [
            &["--nope"][..],
            &["--addr"],
            &["--failure-threshold", "0"],
            &["--addr", "localhost"],
            &["--silent-after", "soon"],
            &["--alert-freshness", "0h"],
            &["--flap-count", "1"],
            &["--flap-window", "often"],
            &["--webhook-url", "ftp://x"],
            &["--webhook-url", "http://hooks.example/x"],
            &["--webhook-secret", "hunter2"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_flags_become_the_lambda_configuration() {
        let config = run(&[
            "--failure-threshold",
            "5",
            "--silent-after",
            "2h",
            "--alert-freshness",
            "6h",
            "--table",
            "t",
        ])
        .config()
        .unwrap();
        assert_eq!(config.rule.threshold, 5);
        assert_eq!(config.rule.freshness, Duration::from_secs(6 * 3600));
        assert_eq!(config.silence.after, Duration::from_secs(7200));
        assert_eq!(config.table().unwrap(), "t");
    }
}
