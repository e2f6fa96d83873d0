//! Secrets kept in files readable by their owner only: the local runner's signing keys,
//! cursor key and webhook secret (in its data directory), or `TOKEN_SIGNING_KEYS_FILE`
//! for `cargo lambda watch`. One function writes them all ([`write_new`]).

use crate::auth::SigningKeys;
use crate::ports::{LoadKeys, StoreError};
use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `secret` to a new file at `path`, mode 0600 from its creation (never
/// readable by others, not even for a moment) and synced. `Ok(false)` if the file
/// already exists (another process, such as the server or a token command, made it).
pub fn write_new(path: &Path, secret: &[u8]) -> std::io::Result<bool> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(secret)?;
            file.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates `dir` (and its parents) if missing and makes it the owner's alone (0700):
/// the data directory holds the events, the keys and the secrets.
pub fn owner_only_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    set_mode(dir, 0o700)
}

/// Makes the database at `path` the owner's alone (0600) before SQLite opens it,
/// creating it empty if missing. SQLite gives its `-wal` and `-shm` files the
/// database's mode; those left by an older run are narrowed here too.
pub fn owner_only_database(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?;
    set_mode(path, 0o600)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        if side.exists() {
            set_mode(&side, 0o600)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// The secret in `path`, created by `make` (and written owner-only) if there is none.
/// A file shorter than `min_len` is not a usable secret: the run fails, naming it,
/// rather than overwrite what someone put there.
pub fn read_or_create(
    path: &Path,
    min_len: usize,
    make: impl FnOnce() -> Result<Vec<u8>, StoreError>,
) -> Result<Vec<u8>, StoreError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| StoreError::unavailable(format!("reading {}", path.display()), e))
    };
    if !path.exists() {
        let secret = make()?;
        let created = write_new(path, &secret)
            .map_err(|e| StoreError::unavailable(format!("writing {}", path.display()), e))?;
        if created {
            return Ok(secret);
        }
    }
    let secret = read(path)?;
    if secret.len() < min_len {
        return Err(StoreError::Corrupt(format!(
            "{} holds {} bytes; a secret needs at least {min_len} (remove the file to make a new one)",
            path.display(),
            secret.len()
        )));
    }
    Ok(secret)
}

/// `n` bytes from the operating system's random source.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::unavailable("OS randomness", std::io::Error::other(e.to_string())))?;
    Ok(bytes)
}

pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file at `path`, written with a new random key (mode 0600) if it is missing.
    pub fn create_if_missing(path: &Path) -> Result<Self, StoreError> {
        if !path.exists() {
            let keys = SigningKeys::generate_json("k1")
                .map_err(|e| StoreError::unavailable("generating a signing key", std::io::Error::other(e)))?;
            write_new(path, keys.as_bytes())
                .map_err(|e| StoreError::unavailable("writing the signing keys", e))?;
        }
        Ok(Self::new(path))
    }
}

#[async_trait]
impl LoadKeys for KeyFile {
    async fn load(&self) -> Result<SigningKeys, StoreError> {
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| StoreError::unavailable(format!("reading {}", self.path.display()), e))?;
        SigningKeys::from_json(&text)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_created_key_file_loads_and_only_its_owner_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let keys = KeyFile::create_if_missing(&path).unwrap().load().await.unwrap();
        assert_eq!(keys.current_kid(), "k1");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        }
        // Created once: a second call keeps the same keys.
        let again = KeyFile::create_if_missing(&path).unwrap().load().await.unwrap();
        assert_eq!(format!("{again:?}"), format!("{keys:?}"));
    }

    #[test]
    fn a_secret_is_made_once_and_kept_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let made = read_or_create(&path, 32, || random_bytes(32)).unwrap();
        let again = read_or_create(&path, 32, || panic!("made twice")).unwrap();
        assert_eq!(made, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
        std::fs::write(&path, b"short").unwrap();
        let err = read_or_create(&path, 32, || random_bytes(32)).unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
    }
}
