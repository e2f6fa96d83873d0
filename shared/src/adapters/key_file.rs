//! Token signing keys in a file readable by its owner only (the local runner's data
//! directory, or `TOKEN_SIGNING_KEYS_FILE` for `cargo lambda watch`).

use crate::auth::SigningKeys;
use crate::ports::{LoadKeys, StoreError};
use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};

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
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => file
                    .write_all(keys.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| StoreError::unavailable("writing the signing keys", e))?,
                // Another process (the server, the token command) created it meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(StoreError::unavailable("creating the signing keys", e)),
            }
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
}
