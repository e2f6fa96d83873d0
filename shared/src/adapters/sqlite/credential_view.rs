//! The runner's in-memory view of device credentials: what a [`Freshness::MayLag`]
//! read answers from, so a device request costs no read transaction.
//!
//! It stays current two ways. This process's own changes (the credentials routes)
//! update it when they commit. Changes by another process (the `token` command) bump
//! a version that triggers keep in the database; the view reads that version at most
//! every [`RECHECK`], under its lock (so no lookup overtakes a recheck under way), and
//! starts over when it moved. A change made elsewhere is therefore out of every view
//! [`SETTLE`] after its commit, and the `token` command waits that long before it
//! returns. A token that does not match the view is confirmed with a
//! [`Freshness::Latest`] read of the store (the authenticator's rule), so a newly
//! issued token always works at once.
//!
//! [`Freshness::MayLag`]: crate::ports::Freshness::MayLag
//! [`Freshness::Latest`]: crate::ports::Freshness::Latest

use crate::ports::{DeviceCredential, StoreError};
use crate::throttle;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the view reads the database's credentials version.
const RECHECK: Duration = Duration::from_millis(250);
/// How long after its commit a change made by another process can still be in a view:
/// the next lookup after [`RECHECK`] re-reads the version (twice it, for margin).
pub const SETTLE: Duration = Duration::from_millis(2 * 250);
/// Devices kept; past this many the view starts over (only devices with a token we
/// signed reach it, so this is the fleet's size, not an attacker's choice).
const CAPACITY: usize = 100_000;

#[derive(Default)]
struct State {
    entries: HashMap<String, DeviceCredential>,
    /// Bumped whenever entries may have gone stale: a store read that began under an
    /// older epoch may have seen the old credential and must not be kept.
    epoch: u64,
    /// The database's credentials version the entries were read under.
    version: Option<i64>,
    /// When the version was last read.
    checked_at: Option<Instant>,
}

/// A store read begun while the view was at this epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Epoch(u64);

#[derive(Default)]
pub(super) struct CredentialView {
    state: Mutex<State>,
}

impl CredentialView {
    /// The device's credential if the view holds it; otherwise the epoch to read the
    /// store under. First, at most every [`RECHECK`], `read_version` reads the
    /// database's credentials version, and a new one drops every entry.
    pub(super) fn get(
        &self,
        device_id: &str,
        now: Instant,
        read_version: impl FnOnce() -> Result<i64, StoreError>,
    ) -> Result<Result<DeviceCredential, Epoch>, StoreError> {
        // A poisoned lock only costs the view: read the store (and keep nothing).
        let Ok(mut state) = self.state.lock() else {
            return Ok(Err(Epoch(u64::MAX)));
        };
        if throttle::due(&mut state.checked_at, now, RECHECK) {
            let version = read_version()?;
            if state.version != Some(version) {
                state.entries.clear();
                state.epoch += 1;
                state.version = Some(version);
            }
        }
        Ok(match state.entries.get(device_id) {
            Some(credential) => Ok(credential.clone()),
            None => Err(Epoch(state.epoch)),
        })
    }

    /// The epoch a read of the store begins under.
    pub(super) fn epoch(&self) -> Epoch {
        self.state
            .lock()
            .map_or(Epoch(u64::MAX), |state| Epoch(state.epoch))
    }

    /// What a read begun at `read_at` found for `device_id`, kept only if nothing
    /// changed the credentials since it began.
    pub(super) fn keep(&self, read_at: Epoch, device_id: &str, found: Option<&DeviceCredential>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.epoch != read_at.0 {
            return;
        }
        match found {
            Some(credential) => {
                if state.entries.len() >= CAPACITY {
                    state.entries.clear();
                }
                state.entries.insert(device_id.to_owned(), credential.clone());
            }
            None => {
                state.entries.remove(device_id);
            }
        }
    }

    /// This process changed `device_id`'s credential (after its commit): forget it,
    /// and refuse what reads begun before the change found.
    pub(super) fn changed(&self, device_id: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.entries.remove(device_id);
            state.epoch += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::EventTime;

    fn credential(device: &str, byte: u8) -> DeviceCredential {
        DeviceCredential {
            device_id: device.into(),
            token_digest: [byte; 32],
            issued_at: EventTime::from_millis(1_750_000_000_000).unwrap(),
        }
    }

    /// A lookup at `now`, the database's credentials version being `version`.
    fn look(
        view: &CredentialView,
        device: &str,
        now: Instant,
        version: i64,
    ) -> Result<DeviceCredential, Epoch> {
        view.get(device, now, || Ok(version)).unwrap()
    }

    /// A view that has read version 0 at the returned instant, holding `d1` and `d2`.
    fn holding_two() -> (CredentialView, Instant) {
        let (view, start) = (CredentialView::default(), Instant::now());
        for (device, byte) in [("d1", 1), ("d2", 2)] {
            let read_at = look(&view, device, start, 0).unwrap_err();
            view.keep(read_at, device, Some(&credential(device, byte)));
        }
        (view, start)
    }

    #[test]
    fn a_kept_read_is_answered_from_memory() {
        let (view, start) = holding_two();
        assert_eq!(look(&view, "d1", start, 0), Ok(credential("d1", 1)));
    }

    #[test]
    fn a_read_begun_before_a_change_is_not_kept() {
        let (view, start) = holding_two();
        let before = look(&view, "d3", start, 0).unwrap_err();
        view.changed("d3");
        view.keep(before, "d3", Some(&credential("d3", 3)));
        assert!(
            look(&view, "d3", start, 0).is_err(),
            "the read may have seen the old credential"
        );
    }

    #[test]
    fn a_change_here_forgets_the_device_at_once() {
        let (view, start) = holding_two();
        view.changed("d1");
        assert!(look(&view, "d1", start, 0).is_err());
        assert_eq!(look(&view, "d2", start, 0), Ok(credential("d2", 2)));
    }

    #[test]
    fn a_new_database_version_drops_every_entry_at_the_next_recheck() {
        let (view, start) = holding_two();
        // Within the interval the version is not read again: that is the lag SETTLE covers.
        assert!(look(&view, "d1", start + RECHECK / 2, 1).is_ok());
        assert!(
            look(&view, "d1", start + RECHECK, 0).is_ok(),
            "the same version keeps the view"
        );
        assert!(look(&view, "d1", start + 2 * RECHECK, 1).is_err());
        assert!(look(&view, "d2", start + 2 * RECHECK, 1).is_err());
        assert!(RECHECK * 2 <= SETTLE, "the command waits out a whole interval");
    }

    #[test]
    fn a_version_that_cannot_be_read_is_an_error_not_a_stale_answer() {
        let (view, start) = holding_two();
        let failed = view.get("d1", start + RECHECK, || {
            Err(StoreError::unavailable_because("test"))
        });
        assert!(failed.is_err());
    }

    #[test]
    fn a_read_that_found_nothing_removes_the_entry() {
        let (view, start) = holding_two();
        view.keep(view.epoch(), "d1", None);
        assert!(look(&view, "d1", start, 0).is_err());
    }
}
