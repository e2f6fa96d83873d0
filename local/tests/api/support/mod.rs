//! Helpers shared by the integration tests (fixtures every crate uses live in
//! `pisync_shared::test_util`).

pub mod runner;

/// Runs each named `async fn(Backend)` scenario as two tests: on the embedded store and
/// on DynamoDB Local (a fresh table each).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::runner::Backend::Embedded).await
                }
            )*
        }
        mod dynamodb_local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = crate::support::runner::Backend::Dynamo {
                        endpoint: pisync_shared::test_util::dynamodb_endpoint(),
                        table: pisync_shared::test_util::unique_table("bb"),
                    };
                    super::$name(backend).await
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

use get_sync_history::GetSyncHistory;
use list_repeated_failures::ListRepeatedFailures;
use pisync_shared::auth::Authenticator;
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::domain::validate::EventRules;
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::test_util::{sqlite_store, TempDir};
use record_sync_event::RecordSyncEvent;
use std::sync::Arc;

/// The HTTP handlers over one embedded store in a temporary directory, with
/// authentication off: these tests are about bodies and queries (the hostile
/// credential matrix runs against the real runner).
pub struct Handlers {
    pub _dir: TempDir,
    pub record: RecordSyncEvent,
    pub history: GetSyncHistory,
    pub failures: ListRepeatedFailures,
}

pub fn handlers() -> Handlers {
    let (dir, store) = sqlite_store();
    let key = CursorKey::from_secret(b"test key");
    Handlers {
        record: RecordSyncEvent {
            log: Arc::new(store.clone()),
            rules: EventRules::default(),
            auth: Authenticator::off(),
        },
        history: GetSyncHistory {
            log: Arc::new(store.clone()),
            cursor_key: key.clone(),
            auth: Authenticator::off(),
        },
        failures: ListRepeatedFailures {
            failing: Arc::new(store),
            rule: StreakRule::default(),
            cursor_key: key,
            auth: Authenticator::off(),
        },
        _dir: dir,
    }
}
