//! `pisync-upload BACKLOG.jsonl`: sends a device's backlog (one sync report per line)
//! to PiSync and prints one JSON line per report with what happened to it.
//!
//! The URL and token come from `--url`/`PISYNC_URL` and `PISYNC_TOKEN` (or
//! `--token-file`), never from a command-line argument other processes could read.
//! Exit status: 0 when every report was delivered (created or already there), 1 when
//! some were rejected or could not be delivered, 2 on a usage error.

use pisync_client::{Client, Outcome, RetryPolicy};
use std::process::ExitCode;

const USAGE: &str = "usage: pisync-upload [--url URL] [--token-file PATH] BACKLOG.jsonl
  URL    PiSync's API URL            [PISYNC_URL]
  token  the device's token          [PISYNC_TOKEN, or --token-file]";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pisync-upload: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let mut url = std::env::var("PISYNC_URL").ok();
    let mut token = std::env::var("PISYNC_TOKEN").ok();
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => url = Some(args.next().ok_or("--url needs a value")?),
            "--token-file" => {
                let path = args.next().ok_or("--token-file needs a path")?;
                token = Some(std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other if file.is_none() && !other.starts_with("--") => file = Some(other.to_owned()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let url = url.ok_or("no URL: set PISYNC_URL or pass --url")?;
    let token = token.ok_or("no token: set PISYNC_TOKEN or pass --token-file")?;
    let file = file.ok_or("no backlog file")?;
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
    // Line numbers of the non-empty lines, so each outcome names its line.
    let (numbers, events): (Vec<usize>, Vec<String>) = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| (n + 1, l.to_owned()))
        .unzip();
    let client = Client::new(&url, &token, RetryPolicy::default()).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let outcomes = runtime.block_on(client.upload(&events));
    let mut delivered = 0;
    for (line, outcome) in numbers.iter().zip(&outcomes) {
        let report = match outcome {
            Outcome::Created => serde_json::json!({"line": line, "outcome": "created"}),
            Outcome::Replayed => serde_json::json!({"line": line, "outcome": "already_stored"}),
            Outcome::Rejected {
                status,
                code,
                message,
            } => {
                serde_json::json!({"line": line, "outcome": "rejected", "status": status, "code": code, "message": message})
            }
            Outcome::NotDelivered { reason } => {
                serde_json::json!({"line": line, "outcome": "not_delivered", "reason": reason})
            }
        };
        println!("{report}");
        delivered += usize::from(outcome.delivered());
    }
    eprintln!(
        "pisync-upload: {delivered} of {} reports delivered",
        outcomes.len()
    );
    Ok(if delivered == outcomes.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
