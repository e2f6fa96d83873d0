//! Command-line flags, each with an environment-variable fallback.

use std::net::SocketAddr;
use std::path::PathBuf;

pub const USAGE: &str = "\
pisync-local: PiSync on one machine, same routes and handlers as production.

USAGE: pisync-local [FLAGS]

  --addr ADDR                 listen address         [PISYNC_ADDR, default 127.0.0.1:3000]
  --data-dir DIR              embedded store folder  [PISYNC_DATA_DIR, default ./.pisync]
  --alerts-file PATH          append each alert as one JSON line  [PISYNC_ALERTS_FILE]
  --failure-threshold N       failures in a row that alert        [PISYNC_FAILURE_THRESHOLD, default 3]
  --dynamodb-endpoint URL     use DynamoDB at URL instead of the embedded store
                                                     [PISYNC_DYNAMODB_ENDPOINT]
  --table NAME                DynamoDB table, created if missing  [PISYNC_TABLE, default pisync-local]
  -h, --help                  this text
";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub alerts_file: Option<PathBuf>,
    pub failure_threshold: u32,
    pub dynamodb_endpoint: Option<String>,
    pub table: String,
}

pub enum Parsed {
    Run(Options),
    Help,
}

/// Parses `args` (without the program name); `env` looks up fallbacks.
pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Parsed, String> {
    let mut flags: Vec<(&str, String)> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
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
    Ok(Parsed::Run(Options {
        addr,
        data_dir: get("--data-dir", "PISYNC_DATA_DIR")
            .unwrap_or_else(|| "./.pisync".into())
            .into(),
        alerts_file: get("--alerts-file", "PISYNC_ALERTS_FILE").map(PathBuf::from),
        failure_threshold: threshold,
        dynamodb_endpoint: get("--dynamodb-endpoint", "PISYNC_DYNAMODB_ENDPOINT"),
        table: get("--table", "PISYNC_TABLE").unwrap_or_else(|| "pisync-local".into()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Options, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        match parse(&args, lookup)? {
            Parsed::Run(o) => Ok(o),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let o = run(&[], &[]).unwrap();
        assert_eq!(o.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(o.data_dir, PathBuf::from("./.pisync"));
        assert_eq!(o.failure_threshold, 3);
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
    fn bad_flags_are_errors() {
        assert!(run(&["--nope"], &[]).is_err());
        assert!(run(&["--addr"], &[]).is_err());
        assert!(run(&["--failure-threshold", "0"], &[]).is_err());
        assert!(run(&["--addr", "localhost"], &[]).is_err());
        assert_eq!(run(&["--help"], &[]), Err("help".into()));
    }
}
