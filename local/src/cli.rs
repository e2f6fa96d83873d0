//! Command-line flags, each with an environment-variable fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
pisync-local: PiSync on one machine, same routes and handlers as production.

USAGE: pisync-local [FLAGS]                     serve the API
       pisync-local token device ID [FLAGS]     issue a device token (earlier ones stop working)
       pisync-local token operator [--admin] [FLAGS]   issue an operator token (read, or admin)

  --addr ADDR                 listen address         [PISYNC_ADDR, default 127.0.0.1:3000]
  --data-dir DIR              embedded store folder  [PISYNC_DATA_DIR, default ./.pisync]
  --alerts-file PATH          append each alert as one JSON line  [PISYNC_ALERTS_FILE]
  --failure-threshold N       failures in a row that alert        [PISYNC_FAILURE_THRESHOLD, default 3]
  --silent-after DURATION     no report for this long: silent (48h, 90s, 30m, 2d)
                                                     [PISYNC_SILENT_AFTER, default 48h]
  --silent-check-interval DURATION   how often to look for silent devices and retry
                              waiting notices        [PISYNC_SILENT_CHECK_INTERVAL, default 60s]
  --webhook-url URL           POST each notice here as signed JSON (Slack-compatible)
                                                     [PISYNC_WEBHOOK_URL]
  --webhook-secret SECRET     signs webhook deliveries  [default: a random secret kept,
                              owner-only, in DIR/webhook-secret; no environment variable,
                              since environments leak]
  --dynamodb-endpoint URL     use DynamoDB at URL instead of the embedded store
                                                     [PISYNC_DYNAMODB_ENDPOINT]
  --table NAME                DynamoDB table, created if missing  [PISYNC_TABLE, default pisync-local]
                              (device credentials go in NAME-credentials)
  --no-auth                   serve without authentication (development only)  [PISYNC_NO_AUTH=1]
  -h, --help                  this text

Tokens print alone on stdout. The token commands take the same --data-dir,
--dynamodb-endpoint and --table as the server and work while it runs.
";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub alerts_file: Option<PathBuf>,
    pub failure_threshold: u32,
    pub silent_after: Duration,
    pub silent_check_interval: Duration,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub dynamodb_endpoint: Option<String>,
    pub table: String,
    /// Authentication off (`--no-auth`).
    pub no_auth: bool,
}

/// A `token` subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    Device(String),
    Operator { admin: bool },
}

pub enum Parsed {
    Run(Options),
    Token(TokenRequest, Options),
    Help,
}

/// Parses `args` (without the program name): a `token` subcommand, or the server.
pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Parsed, String> {
    match args.first().map(String::as_str) {
        Some("token") => {
            let (request, rest) = match args.get(1).map(String::as_str) {
                Some("device") => {
                    let id = args
                        .get(2)
                        .filter(|id| !id.starts_with("--"))
                        .ok_or("token device needs a device id")?;
                    (TokenRequest::Device(id.clone()), &args[3..])
                }
                Some("operator") => {
                    let admin = args.get(2).is_some_and(|a| a == "--admin");
                    let skip = if admin { 3 } else { 2 };
                    (TokenRequest::Operator { admin }, &args[skip..])
                }
                _ => return Err("token needs `device ID` or `operator [--admin]`".into()),
            };
            match parse_flags(rest, env)? {
                Parsed::Run(options) => Ok(Parsed::Token(request, options)),
                other => Ok(other),
            }
        }
        _ => parse_flags(args, env),
    }
}

/// Parses the flags; `env` looks up fallbacks.
fn parse_flags(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Parsed, String> {
    let mut flags: Vec<(&str, String)> = Vec::new();
    let mut no_auth = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        if arg == "--no-auth" {
            no_auth = true;
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        let known = [
            "--addr",
            "--data-dir",
            "--alerts-file",
            "--failure-threshold",
            "--silent-after",
            "--silent-check-interval",
            "--webhook-url",
            "--webhook-secret",
            "--dynamodb-endpoint",
            "--table",
        ];
        let Some(flag) = known.iter().find(|k| **k == name) else {
            return Err(format!("unknown argument {arg:?}"));
        };
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?,
        };
        flags.push((flag, value));
    }
    let get = |flag: &str, var: &str| {
        flags
            .iter()
            .rev()
            .find(|(f, _)| *f == flag)
            .map(|(_, v)| v.clone())
            .or_else(|| env(var).filter(|v| !v.is_empty()))
    };
    let addr = get("--addr", "PISYNC_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into());
    let addr = addr
        .parse()
        .map_err(|_| format!("--addr must be HOST:PORT with an IP host, got {addr:?}"))?;
    let threshold = match get("--failure-threshold", "PISYNC_FAILURE_THRESHOLD") {
        None => pisync_shared::domain::streak::StreakRule::default().threshold,
        Some(v) => pisync_shared::config::parse_positive(&v)
            .ok_or_else(|| format!("--failure-threshold must be a positive integer, got {v:?}"))?,
    };
    let duration = |flag: &str, var: &str, default: &str| {
        let text = get(flag, var).unwrap_or_else(|| default.into());
        parse_duration(&text)
            .ok_or_else(|| format!("{flag} must be a duration such as 48h, 30m or 90s, got {text:?}"))
    };
    let webhook_url = get("--webhook-url", "PISYNC_WEBHOOK_URL");
    if let Some(url) = &webhook_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "--webhook-url must be an http:// or https:// URL, got {url:?}"
            ));
        }
    }
    Ok(Parsed::Run(Options {
        silent_after: duration("--silent-after", "PISYNC_SILENT_AFTER", "48h")?,
        silent_check_interval: duration("--silent-check-interval", "PISYNC_SILENT_CHECK_INTERVAL", "60s")?,
        webhook_url,
        webhook_secret: flags
            .iter()
            .rev()
            .find(|(f, _)| *f == "--webhook-secret")
            .map(|(_, v)| v.clone()),
        addr,
        data_dir: get("--data-dir", "PISYNC_DATA_DIR")
            .unwrap_or_else(|| "./.pisync".into())
            .into(),
        alerts_file: get("--alerts-file", "PISYNC_ALERTS_FILE").map(PathBuf::from),
        failure_threshold: threshold,
        dynamodb_endpoint: get("--dynamodb-endpoint", "PISYNC_DYNAMODB_ENDPOINT"),
        table: get("--table", "PISYNC_TABLE").unwrap_or_else(|| "pisync-local".into()),
        no_auth: no_auth || env("PISYNC_NO_AUTH").is_some_and(|v| v == "1" || v == "true"),
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Options, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        match parse(&args, lookup)? {
            Parsed::Run(o) => Ok(o),
            Parsed::Token(..) => Err("token".into()),
            Parsed::Help => Err("help".into()),
        }
    }

    fn token(args: &[&str]) -> Result<(TokenRequest, Options), String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args, |_| None)? {
            Parsed::Token(request, options) => Ok((request, options)),
            _ => Err("not a token command".into()),
        }
    }

    #[test]
    fn authentication_is_on_unless_turned_off() {
        assert!(!run(&[], &[]).unwrap().no_auth);
        assert!(run(&["--no-auth"], &[]).unwrap().no_auth);
        assert!(run(&[], &[("PISYNC_NO_AUTH", "1")]).unwrap().no_auth);
    }

    #[test]
    fn token_commands_take_the_server_flags() {
        let (request, options) = token(&["token", "device", "device_1", "--data-dir", "/d"]).unwrap();
        assert_eq!(request, TokenRequest::Device("device_1".into()));
        assert_eq!(options.data_dir, PathBuf::from("/d"));
        assert_eq!(
            token(&["token", "operator"]).unwrap().0,
            TokenRequest::Operator { admin: false }
        );
        assert_eq!(
            token(&["token", "operator", "--admin", "--table", "t"]).unwrap(),
            (
                TokenRequest::Operator { admin: true },
                run(&["--table", "t"], &[]).unwrap()
            )
        );
        assert!(token(&["token"]).is_err());
        assert!(token(&["token", "device"]).is_err());
        assert!(token(&["token", "device", "--data-dir"]).is_err());
    }

    #[test]
    fn defaults_match_the_contract() {
        let o = run(&[], &[]).unwrap();
        assert_eq!(o.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(o.data_dir, PathBuf::from("./.pisync"));
        assert_eq!(o.failure_threshold, 3);
        assert_eq!(o.silent_after, Duration::from_secs(48 * 3600));
        assert_eq!(o.silent_check_interval, Duration::from_secs(60));
        assert_eq!((o.alerts_file, o.dynamodb_endpoint), (None, None));
    }

    #[test]
    fn flags_beat_environment() {
        let env = [
            ("PISYNC_ADDR", "127.0.0.1:1"),
            ("PISYNC_FAILURE_THRESHOLD", "5"),
            ("PISYNC_TABLE", "t"),
        ];
        let o = run(&["--addr", "127.0.0.1:2", "--alerts-file=a.jsonl"], &env).unwrap();
        assert_eq!(o.addr.port(), 2);
        assert_eq!(o.failure_threshold, 5);
        assert_eq!(o.table, "t");
        assert_eq!(o.alerts_file, Some(PathBuf::from("a.jsonl")));
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("48h"), Some(Duration::from_secs(48 * 3600)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(2 * 86_400)));
        for bad in ["", "90", "0s", "-1h", "1.5h", "h", "10w"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        let o = run(&["--silent-after", "90s", "--silent-check-interval=1s"], &[]).unwrap();
        assert_eq!(
            (o.silent_after, o.silent_check_interval),
            (Duration::from_secs(90), Duration::from_secs(1))
        );
        assert!(run(&["--silent-after", "soon"], &[]).is_err());
        assert!(run(&["--webhook-url", "ftp://x"], &[]).is_err());
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(run(&["--nope"], &[]).is_err());
        assert!(run(&["--addr"], &[]).is_err());
        assert!(run(&["--failure-threshold", "0"], &[]).is_err());
        assert!(run(&["--addr", "localhost"], &[]).is_err());
        assert_eq!(run(&["--help"], &[]), Err("help".into()));
    }
}
