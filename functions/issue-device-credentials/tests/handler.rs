//! issue-device-credentials' handler, called directly with the example events in
//! `events/issue-device-credentials/`, as API Gateway delivers them after its JWT
//! authorizer.

use issue_device_credentials::IssueDeviceCredentials;
use pisync_shared::auth::{token, Authenticator, Caller};
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::ports::{CheckCredentials, Freshness};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_examples_answered, dev_keys, reply_json, Case,
};
use pisync_shared::test_util::{local, sqlite_store, TempDir};
use std::sync::Arc;

/// (file, status, error code)
const CASES: &[Case] = &[
    ("issue-device-credentials/admin.json", 201, None),
    ("issue-device-credentials/assign-and-issue.json", 201, None),
    (
        "issue-device-credentials/bad-device-id.json",
        400,
        Some("invalid_request"),
    ),
    (
        "issue-device-credentials/read-only-operator.json",
        403,
        Some("forbidden"),
    ),
    (
        "issue-device-credentials/school-admin-without-school.json",
        400,
        Some("invalid_request"),
    ),
];

fn handler() -> (
    TempDir,
    IssueDeviceCredentials,
    pisync_shared::adapters::sqlite::SqliteStore,
) {
    let (dir, store) = sqlite_store();
    let deps = IssueDeviceCredentials::from_local(&local(store.clone()));
    (dir, deps, store)
}

/// As [`handler`], with the school riverside.
async fn with_riverside() -> (
    TempDir,
    IssueDeviceCredentials,
    pisync_shared::adapters::sqlite::SqliteStore,
) {
    let (dir, deps, store) = handler();
    pisync_shared::test_util::school_with(&store, "riverside", &[]).await;
    (dir, deps, store)
}

#[tokio::test]
async fn each_example_event_gets_its_documented_answer() {
    let (_dir, deps, _) = with_riverside().await;
    assert_examples_answered("issue-device-credentials", CASES, &deps).await;
}

#[tokio::test]
async fn the_issued_token_is_the_devices_only_credential() {
    let (_dir, deps, store) = handler();
    let first = reply_json(
        &deps
            .handle(api_request("issue-device-credentials/admin.json"))
            .await,
    );
    let second = reply_json(
        &deps
            .handle(api_request("issue-device-credentials/admin.json"))
            .await,
    );
    assert_eq!(second["device_id"], "device_12345");
    assert!(second["issued_at"].is_string());
    let (first, second) = (
        first["token"].as_str().unwrap(),
        second["token"].as_str().unwrap(),
    );
    assert_ne!(first, second);
    // Only the newest token's digest is stored; the token itself is nowhere.
    let stored = store
        .current("device_12345", Freshness::Latest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.token_digest, token::digest(second));
    let device_auth = Authenticator::local(Arc::new(dev_keys()), Arc::new(store));
    let presented = |t: &str| format!("Bearer {t}");
    let (first, second) = (presented(first), presented(second));
    fn as_header(h: &str) -> pisync_shared::auth::Presented<'_> {
        pisync_shared::auth::Presented {
            authorization: Some(h.as_bytes()),
            gateway_claims: None,
        }
    }
    assert!(device_auth.authenticate(as_header(&first)).await.is_err());
    assert_eq!(
        device_auth.authenticate(as_header(&second)).await.unwrap(),
        Caller::Device("device_12345".into())
    );
}

/// A school admin names its school for a device in none: the device is assigned, then
/// issued; the school is in the reply.
#[tokio::test]
async fn a_school_admin_assigns_and_issues_in_one_call() {
    use pisync_shared::ports::DeviceStates;
    let (_dir, deps, store) = with_riverside().await;
    let response = deps
        .handle(api_request("issue-device-credentials/assign-and-issue.json"))
        .await;
    let body = reply_json(&response);
    assert_eq!(
        (response.status().as_u16(), body["school_id"].as_str()),
        (201, Some("riverside"))
    );
    let state = store
        .load(&pisync_shared::test_util::device("pibook-new"))
        .await
        .unwrap()
        .expect("a state for the assigned device");
    assert_eq!(
        state.state.school_id.map(|s| s.to_string()).as_deref(),
        Some("riverside")
    );
}
