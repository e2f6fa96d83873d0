//! `pisync-upload BACKLOG.jsonl`: sends a device's backlog (one sync report per line)
//! to PiSync and prints one JSON line per report with what happened to it.
//!
//! The URL and token come from `--url`/`PISYNC_URL` and `PISYNC_TOKEN` (or
//! `--token-file`), never from a command-line argument other processes could read.
//! Exit status: 0 when every report was delivered (created or already there), 1 when
//! some were rejected or could not be delivered, 2 on a usage error.

use clap::Parser;
use pisync_client::{Client, Outcome, RetryPolicy};
use std::path::PathBuf;
use std::process::ExitCode;

/// Sends a device's backlog of sync reports (one JSON object per line) to PiSync.
#[derive(Parser)]
#[command(name = "pisync-upload")]
struct Args {
    /// PiSync's API URL.
    #[arg(long, env = "PISYNC_URL")]
    url: String,
    /// A file holding the device's token (else PISYNC_TOKEN; never the token itself on
    /// the command line, where other processes could read it).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The backlog file.
    file: PathBuf,
}

/// The variable holding the device's token, when no --token-file is given.
const TOKEN_VARIABLE: &str = "PISYNC_TOKEN";

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pisync-upload: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<ExitCode, String> {
    let token = match &args.token_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        None => std::env::var(TOKEN_VARIABLE)
            .map_err(|_| format!("no token: set {TOKEN_VARIABLE} or pass --token-file"))?,
    };
    let (url, file) = (args.url, args.file.display().to_string());
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
