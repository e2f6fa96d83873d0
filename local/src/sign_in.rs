//! One-time sign-in codes for the dashboard. The runner prints a link carrying a code
//! (and `pisync-local sign-in` prints another while it runs); the dashboard exchanges
//! the code once, within 10 minutes, for a read session token (`POST
//! /dashboard/session`). So the line in the runner's output, which operators may ship
//! to a log store, is not a reusable credential. Codes live in the data dir, owner-only,
//! as SHA-256 digests (128 bits; never the code) with their expiry, so the command and the
//! runner share them.

use pisync_shared::adapters::secret_file;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The codes' file in the data directory.
pub const SIGN_IN_FILE: &str = "sign-in-codes";
/// How long a code may wait to be used.
pub const CODE_VALIDITY_SECONDS: i64 = 600;
/// How long the session a code opens lasts.
pub const SESSION_HOURS: i64 = 12;

fn file(data_dir: &Path) -> PathBuf {
    data_dir.join(SIGN_IN_FILE)
}

/// `(digest, expires_at)` of each code in the file still valid at `now`.
fn valid(data_dir: &Path, now: i64) -> std::io::Result<Vec<(String, i64)>> {
    let text = match std::fs::read_to_string(file(data_dir)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let (digest, expires) = line.split_once(' ')?;
            Some((digest.to_owned(), expires.parse().ok()?))
        })
        .filter(|(_, expires)| *expires > now)
        .collect())
}

/// Replaces the file with `codes` (written whole, then renamed over it, owner-only).
fn save(data_dir: &Path, codes: &[(String, i64)]) -> std::io::Result<()> {
    let text: String = codes.iter().map(|(d, e)| format!("{d} {e}\n")).collect();
    let temp = data_dir.join(format!("{SIGN_IN_FILE}.{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    if !secret_file::write_new(&temp, text.as_bytes())? {
        return Err(std::io::Error::other(
            "a stale temporary sign-in file is in the way",
        ));
    }
    std::fs::rename(&temp, file(data_dir))
}

/// A new code valid 10 minutes from `now` (Unix seconds); expired ones are dropped.
pub fn new_code(data_dir: &Path, now: i64) -> Result<String, crate::Failure> {
    let code = pisync_shared::digest::hex(&secret_file::random_bytes(16)?);
    let mut codes = valid(data_dir, now)?;
    codes.push((digest(&code), now + CODE_VALIDITY_SECONDS));
    save(data_dir, &codes)?;
    Ok(code)
}

/// Uses `code` up: `true` if it was issued, unused and not expired at `now`.
pub fn redeem(data_dir: &Path, code: &str, now: i64) -> std::io::Result<bool> {
    let wanted = digest(code);
    let codes = valid(data_dir, now)?;
    let before = codes.len();
    let left: Vec<_> = codes.into_iter().filter(|(d, _)| *d != wanted).collect();
    let found = left.len() < before;
    save(data_dir, &left)?;
    Ok(found)
}

fn digest(code: &str) -> String {
    pisync_shared::digest::short_sha256(code.trim().as_bytes())
}

/// Opens dashboard sessions for sign-in codes (the runner's `POST /dashboard/session`).
pub struct Sessions {
    pub data_dir: PathBuf,
    pub keys: std::sync::Arc<pisync_shared::auth::KeyRing>,
}

/// A session a code opened: a district read token and when it expires (Unix seconds).
#[derive(serde::Serialize)]
pub struct Session {
    pub token: String,
    pub expires_at: i64,
}

impl Sessions {
    /// A read session for `code`, if it is a code issued, unused and not expired.
    pub fn open(&self, code: &str) -> Result<Option<Session>, crate::Failure> {
        let now = chrono::Utc::now().timestamp();
        if !redeem(&self.data_dir, code, now)? {
            return Ok(None);
        }
        let operator = pisync_shared::auth::Operator::of(
            pisync_shared::auth::Scope::Read,
            pisync_shared::auth::Reach::District,
            "dashboard",
        );
        let seconds = SESSION_HOURS * 3600;
        Ok(Some(Session {
            token: crate::auth::operator_token_for(&self.keys, &operator, seconds)?,
            expires_at: now + seconds,
        }))
    }
}

/// The dashboard's sign-in link for a runner at `base` (`http://host:port`).
pub fn link(base: &str, code: &str) -> String {
    format!("{base}/dashboard#code={code}")
}

/// Writes `line` and flushes: the link goes to stdout, where tests and people read it.
pub fn print_link(base: &str, code: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "pisync-local dashboard: {}", link(base, code))?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_and_only_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let first = new_code(dir.path(), 1_000).unwrap();
        let second = new_code(dir.path(), 1_000).unwrap();
        assert!(redeem(dir.path(), &first, 1_001).unwrap());
        assert!(!redeem(dir.path(), &first, 1_002).unwrap(), "used up");
        assert!(!redeem(dir.path(), "made-up", 1_002).unwrap());
        assert!(
            !redeem(dir.path(), &second, 1_000 + CODE_VALIDITY_SECONDS).unwrap(),
            "expired"
        );
        let text = std::fs::read_to_string(dir.path().join(SIGN_IN_FILE)).unwrap();
        assert!(!text.contains(&first) && !text.contains(&second), "digests only");
    }
}
