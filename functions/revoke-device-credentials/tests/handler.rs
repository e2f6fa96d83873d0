//! revoke-device-credentials' handler, called directly with the example events in
//! `events/revoke-device-credentials/`, as API Gateway delivers them after its JWT
//! authorizer.

use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::ports::{CheckCredentials, Freshness};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_documented_answer, files_of, provision_token_of,
};
use pisync_shared::test_util::{local, sqlite_store, TempDir};
use revoke_device_credentials::RevokeDeviceCredentials;

fn handler() -> (
    TempDir,
    RevokeDeviceCredentials,
    pisync_shared::adapters::sqlite::SqliteStore,
) {
    let (dir, store) = sqlite_store();
    let deps = RevokeDeviceCredentials::from_local(&local(store.clone()));
    (dir, deps, store)
}

#[test]
fn every_example_event_has_a_case() {
    assert_eq!(
        files_of("revoke-device-credentials"),
        [
            "revoke-device-credentials/admin.json",
            "revoke-device-credentials/bad-device-id.json",
            "revoke-device-credentials/read-only-operator.json"
        ]
    );
}

#[tokio::test]
async fn an_admin_revokes_and_the_credential_is_gone() {
    let (_dir, deps, store) = handler();
    provision_token_of("record-sync-event/new-event.json", &store).await;
    let response = deps
        .handle(api_request("revoke-device-credentials/admin.json"))
        .await;
    assert_eq!(response.status(), 204);
    assert!(response.body().is_empty());
    for (name, value) in pisync_shared::http::SECURITY_HEADERS {
        assert_eq!(response.headers()[name], value);
    }
    assert_eq!(
        store.current("device_12345", Freshness::Latest).await.unwrap(),
        None
    );
    // Revoking again is still 204: the device has no working token either way.
    let again = deps
        .handle(api_request("revoke-device-credentials/admin.json"))
        .await;
    assert_eq!(again.status(), 204);
}

#[tokio::test]
async fn a_reader_cannot_revoke_and_nothing_changes() {
    let (_dir, deps, store) = handler();
    provision_token_of("record-sync-event/new-event.json", &store).await;
    let file = "revoke-device-credentials/read-only-operator.json";
    assert_documented_answer(
        file,
        &deps.handle(api_request(file)).await,
        403,
        Some("forbidden"),
    );
    assert!(store
        .current("device_12345", Freshness::Latest)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_bad_device_id_is_400() {
    let (_dir, deps, _) = handler();
    let file = "revoke-device-credentials/bad-device-id.json";
    assert_documented_answer(
        file,
        &deps.handle(api_request(file)).await,
        400,
        Some("invalid_request"),
    );
}
