//! The credentials ports on both stores: SQLite, and DynamoDB Local
//! (PISYNC_TEST_DYNAMODB_ENDPOINT).

use pisync_shared::adapters::sqlite::{SqliteStore, CREDENTIAL_VIEW_SETTLE};
use pisync_shared::ports::{CheckCredentials, DeviceCredential, Freshness, ManageCredentials};
use pisync_shared::test_util::{dynamodb_local_credentials, sqlite_store};
use pisync_shared::EventTime;
use std::sync::Arc;

struct Fixture {
    check: Arc<dyn CheckCredentials>,
    manage: Arc<dyn ManageCredentials>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn of<S: CheckCredentials + ManageCredentials + Clone + 'static>(
        store: S,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        Self {
            check: Arc::new(store.clone()),
            manage: Arc::new(store),
            _dir: dir,
        }
    }
}

fn sqlite() -> Fixture {
    let (dir, store) = sqlite_store();
    Fixture::of(store, Some(dir))
}

async fn dynamodb() -> Fixture {
    Fixture::of(dynamodb_local_credentials("creds").await, None)
}

fn credential(device: &str, byte: u8) -> DeviceCredential {
    DeviceCredential {
        device_id: device.into(),
        token_digest: [byte; 32],
        issued_at: EventTime::from_millis(1_750_000_000_123).unwrap(),
    }
}

async fn replacing_keeps_only_the_newest(f: Fixture) {
    f.manage.replace(&credential("d1", 1)).await.unwrap();
    f.manage.replace(&credential("d1", 2)).await.unwrap();
    assert_eq!(
        f.check.current("d1", Freshness::Latest).await.unwrap(),
        Some(credential("d1", 2))
    );
    assert_eq!(f.check.current("d2", Freshness::Latest).await.unwrap(), None);
}

async fn revoking_removes_the_credential(f: Fixture) {
    f.manage.replace(&credential("d1", 1)).await.unwrap();
    assert!(f.manage.revoke("d1").await.unwrap());
    assert_eq!(f.check.current("d1", Freshness::Latest).await.unwrap(), None);
    assert!(!f.manage.revoke("d1").await.unwrap(), "nothing left to revoke");
    f.manage.replace(&credential("d1", 3)).await.unwrap();
    assert_eq!(
        f.check.current("d1", Freshness::Latest).await.unwrap(),
        Some(credential("d1", 3))
    );
}

#[tokio::test]
async fn sqlite_replacing_keeps_only_the_newest() {
    replacing_keeps_only_the_newest(sqlite()).await;
}

#[tokio::test]
async fn dynamodb_replacing_keeps_only_the_newest() {
    replacing_keeps_only_the_newest(dynamodb().await).await;
}

#[tokio::test]
async fn sqlite_revoking_removes_the_credential() {
    revoking_removes_the_credential(sqlite()).await;
}

#[tokio::test]
async fn dynamodb_revoking_removes_the_credential() {
    revoking_removes_the_credential(dynamodb().await).await;
}

/// A read that may lag still finds a credential written a while ago (DynamoDB Local
/// answers eventually consistent reads from the latest data; the lag is AWS's).
#[tokio::test]
async fn dynamodb_a_lagging_read_finds_an_older_credential() {
    let f = dynamodb().await;
    f.manage.replace(&credential("d1", 4)).await.unwrap();
    assert_eq!(
        f.check.current("d1", Freshness::MayLag).await.unwrap(),
        Some(credential("d1", 4))
    );
}

/// SQLite answers lagging reads from its in-memory view: this process's changes show
/// in it at once.
#[tokio::test]
async fn sqlite_a_change_here_shows_in_lagging_reads_at_once() {
    let f = sqlite();
    f.manage.replace(&credential("d1", 1)).await.unwrap();
    assert_eq!(
        f.check.current("d1", Freshness::MayLag).await.unwrap(),
        Some(credential("d1", 1))
    );
    f.manage.replace(&credential("d1", 2)).await.unwrap();
    assert_eq!(
        f.check.current("d1", Freshness::MayLag).await.unwrap(),
        Some(credential("d1", 2))
    );
    f.manage.revoke("d1").await.unwrap();
    assert_eq!(f.check.current("d1", Freshness::MayLag).await.unwrap(), None);
}

/// Another process's change (the `token` command; here a second store on the same
/// file): a read that cannot lag sees it at once, a lagging one once the change has
/// settled (what the command waits for before it returns).
#[tokio::test]
async fn sqlite_another_process_change_reaches_lagging_reads_once_settled() {
    let (dir, here) = sqlite_store();
    let elsewhere = SqliteStore::open(&dir.path().join("test.db")).unwrap();
    elsewhere.replace(&credential("d1", 1)).await.unwrap();
    assert_eq!(
        here.current("d1", Freshness::MayLag).await.unwrap(),
        Some(credential("d1", 1))
    );

    elsewhere.replace(&credential("d1", 2)).await.unwrap();
    assert_eq!(
        here.current("d1", Freshness::Latest).await.unwrap(),
        Some(credential("d1", 2))
    );
    elsewhere.revoke("d1").await.unwrap();
    tokio::time::sleep(CREDENTIAL_VIEW_SETTLE).await;
    assert_eq!(here.current("d1", Freshness::MayLag).await.unwrap(), None);
}
