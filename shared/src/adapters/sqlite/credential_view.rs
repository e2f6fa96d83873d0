//! The runner's in-memory view of device credentials: what a [`Freshness::MayLag`]
//! read answers from, so a device request costs no read transaction.
//!
//! It stays current two ways. This process's own changes (the credentials routes)
//! update it when they commit: those take effect at once. Changes by another process
//! (the `token` command) bump a version that triggers keep in the database; the view
//! reads that version at most every [`RECHECK`] and starts over when it moved, so they
//! take effect within a second. A token that does not match the view is confirmed with
//! a [`Freshness::Latest`] read of the store (the authenticator's rule), so a newly
//! issued token always works at once.
//!
//! [`Freshness::MayLag`]: crate::ports::Freshness::MayLag
//! [`Freshness::Latest`]: crate::ports::Freshness::Latest

use crate::ports::DeviceCredential;
use crate::throttle::Throttle;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the view reads the database's credentials version.
pub(super) const RECHECK: Duration = Duration::from_millis(250);
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
}

/// A store read begun while the view was at this epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Epoch(u64);

#[derive(Default)]
pub(super) struct CredentialView {
    state: Mutex<State>,
    recheck: Throttle,
}

impl CredentialView {
    /// Whether the database's version is due to be read again (at most one caller per
    /// [`RECHECK`] is told yes).
    pub(super) fn recheck_due(&self, now: Instant) -> bool {
        self.recheck.due(now, RECHECK)
    }

    /// The database's credentials version as just read: a new one drops every entry.
    pub(super) fn saw_version(&self, version: i64) {
        if let Ok(mut state) = self.state.lock() {
            if state.version != Some(version) {
                state.entries.clear();
                state.epoch += 1;
                state.version = Some(version);
            }
        }
    }

    /// The device's credential if the view holds it; otherwise the epoch to read the
    /// store under.
    pub(super) fn get(&self, device_id: &str) -> Result<DeviceCredential, Epoch> {
        match self.state.lock() {
            Ok(state) => match state.entries.get(device_id) {
                Some(credential) => Ok(credential.clone()),
                None => Err(Epoch(state.epoch)),
            },
            // A poisoned lock only costs the view: read the store (and keep nothing).
            Err(_) => Err(Epoch(u64::MAX)),
        }
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

    #[test]
    fn a_kept_read_is_answered_from_memory() {
        let view = CredentialView::default();
        let epoch = view.get("d1").unwrap_err();
        view.keep(epoch, "d1", Some(&credential("d1", 1)));
        assert_eq!(view.get("d1"), Ok(credential("d1", 1)));
    }

    #[test]
    fn a_read_begun_before_a_change_is_not_kept() {
        let view = CredentialView::default();
        let before = view.get("d1").unwrap_err();
        view.changed("d1");
        view.keep(before, "d1", Some(&credential("d1", 1)));
        assert!(
            view.get("d1").is_err(),
            "the read may have seen the old credential"
        );
    }

    #[test]
    fn a_change_here_forgets_the_device_at_once() {
        let view = CredentialView::default();
        view.keep(view.epoch(), "d1", Some(&credential("d1", 1)));
        view.keep(view.epoch(), "d2", Some(&credential("d2", 2)));
        view.changed("d1");
        assert!(view.get("d1").is_err());
        assert_eq!(view.get("d2"), Ok(credential("d2", 2)));
    }

    #[test]
    fn a_new_database_version_drops_every_entry() {
        let view = CredentialView::default();
        view.saw_version(4);
        view.keep(view.epoch(), "d1", Some(&credential("d1", 1)));
        view.saw_version(4);
        assert!(view.get("d1").is_ok(), "the same version keeps the view");
        view.saw_version(5);
        assert!(view.get("d1").is_err());
    }

    #[test]
    fn a_read_that_found_nothing_removes_the_entry() {
        let view = CredentialView::default();
        view.keep(view.epoch(), "d1", Some(&credential("d1", 1)));
        view.keep(view.epoch(), "d1", None);
        assert!(view.get("d1").is_err());
    }
}
