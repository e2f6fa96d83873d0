//! Device credentials on SQLite: at most one current token digest per device.

use super::SqliteStore;
use crate::domain::time::EventTime;
use crate::ports::{CheckCredentials, DeviceCredential, Freshness, ManageCredentials, StoreError};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use std::time::Instant;

#[async_trait]
impl CheckCredentials for SqliteStore {
    /// [`Freshness::MayLag`]: from the in-memory view (this process's changes at once,
    /// another process's within [`CREDENTIAL_VIEW_SETTLE`](super::CREDENTIAL_VIEW_SETTLE));
    /// [`Freshness::Latest`]: the database.
    async fn current(
        &self,
        device_id: &str,
        freshness: Freshness,
    ) -> Result<Option<DeviceCredential>, StoreError> {
        let view = &self.inner.credential_view;
        let read_at = match freshness {
            Freshness::MayLag => {
                let in_view = view.get(device_id, Instant::now(), || {
                    self.point_read(|conn| {
                        conn.prepare_cached("SELECT version FROM credentials_version")?
                            .query_row([], |row| row.get(0))
                    })
                })?;
                match in_view {
                    Ok(credential) => return Ok(Some(credential)),
                    Err(read_at) => read_at,
                }
            }
            Freshness::Latest => view.epoch(),
        };
        let found = self.stored_credential(device_id)?;
        view.keep(read_at, device_id, found.as_ref());
        Ok(found)
    }
}

impl SqliteStore {
    /// The device's credential as the database holds it.
    fn stored_credential(&self, device_id: &str) -> Result<Option<DeviceCredential>, StoreError> {
        let row = self.point_read(|conn| {
            conn.prepare_cached(
                "SELECT token_sha256, issued_at FROM device_credentials WHERE device_id = ?1",
            )?
            .query_row(params![device_id], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?))
            })
            .optional()
        })?;
        row.map(|(digest, issued)| {
            let token_digest: Option<[u8; 32]> = digest.try_into().ok();
            token_digest
                .zip(EventTime::from_millis(issued))
                .map(|(token_digest, issued_at)| DeviceCredential {
                    device_id: device_id.to_owned(),
                    token_digest,
                    issued_at,
                })
                .ok_or_else(|| StoreError::Corrupt(format!("credential row of {device_id}")))
        })
        .transpose()
    }
}

/// Rare writes outside the group commit: WAL and the busy timeout serialise them with
/// the writer, and other processes (the `token` command) do the same. Each then
/// forgets the device in the view, even after an error (the commit may have happened).
#[async_trait]
impl ManageCredentials for SqliteStore {
    async fn replace(&self, credential: &DeviceCredential) -> Result<(), StoreError> {
        let c = credential.clone();
        let written = self
            .read(move |conn| {
                conn.execute(
                    "INSERT INTO device_credentials (device_id, token_sha256, issued_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (device_id) DO UPDATE SET token_sha256 = excluded.token_sha256,
                                                           issued_at = excluded.issued_at",
                    params![c.device_id, &c.token_digest[..], c.issued_at.millis()],
                )
            })
            .await;
        self.inner.credential_view.changed(&credential.device_id);
        written.map(drop)
    }

    async fn revoke(&self, device_id: &str) -> Result<bool, StoreError> {
        let device = device_id.to_owned();
        let deleted = self
            .read(move |conn| {
                conn.execute(
                    "DELETE FROM device_credentials WHERE device_id = ?1",
                    params![device],
                )
            })
            .await;
        self.inner.credential_view.changed(device_id);
        deleted.map(|n| n > 0)
    }
}
