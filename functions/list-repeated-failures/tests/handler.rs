//! list-repeated-failures' handler, called directly with the example events in
//! `events/list-repeated-failures/`, over a store where one device is failing.

use list_repeated_failures::ListRepeatedFailures;
use pisync_shared::domain::detection::{apply_event, Rules};
use pisync_shared::function::{HttpFunction, HttpHandler};
use pisync_shared::test_util::lambda_events::{
    api_request, assert_documented_answer, assert_standard_headers, error_fields, files_of, reply_json,
    GATEWAY_REQUEST_ID,
};
use pisync_shared::test_util::{local, minute, sqlite_store, stored_event};

fn handler(store: pisync_shared::adapters::sqlite::SqliteStore) -> ListRepeatedFailures {
    ListRepeatedFailures::from_local(&local(store))
}

#[test]
fn every_example_event_has_a_case() {
    assert_eq!(
        files_of("list-repeated-failures"),
        [
            "list-repeated-failures/bad-limit.json",
            "list-repeated-failures/device-token.json",
            "list-repeated-failures/first-page.json",
            "list-repeated-failures/one-school.json"
        ]
    );
}

#[tokio::test]
async fn the_first_page_lists_the_failing_device_with_its_streak() {
    let (_dir, store) = sqlite_store();
    for m in 1..=4 {
        apply_event(
            &store,
            Rules::default(),
            &stored_event("dev-failing", m, 1),
            minute(10),
        )
        .await
        .expect("applied");
    }
    apply_event(
        &store,
        Rules::default(),
        &stored_event("dev-fine", 1, 0),
        minute(10),
    )
    .await
    .expect("applied");
    let deps = handler(store);
    let response = deps
        .handle(api_request("list-repeated-failures/first-page.json"))
        .await;
    assert_eq!(response.status(), 200);
    assert_standard_headers(response.headers(), "first page");
    let body = reply_json(&response);
    assert_eq!(body["threshold"], 3);
    assert_eq!(body["devices"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["devices"][0]["device_id"], "dev-failing");
    assert_eq!(body["devices"][0]["consecutive_failures"], 4);
    assert_eq!(body["devices"][0]["streak_started_at"], minute(1).to_string());
}

#[tokio::test]
async fn a_bad_limit_is_a_400_naming_it() {
    let (_dir, store) = sqlite_store();
    let response = handler(store)
        .handle(api_request("list-repeated-failures/bad-limit.json"))
        .await;
    assert_eq!(response.status(), 400);
    assert_standard_headers(response.headers(), "bad limit");
    let body = reply_json(&response);
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(body["request_id"], GATEWAY_REQUEST_ID);
    assert_eq!(error_fields(&body), ["limit"]);
}

/// In AWS the JWT authorizer turns a device token away before the function; if one
/// ever arrived without the authorizer's claims, the function still refuses it.
#[tokio::test]
async fn a_request_without_the_authorizers_claims_is_401() {
    let (_dir, store) = sqlite_store();
    let response = handler(store)
        .handle(api_request("list-repeated-failures/device-token.json"))
        .await;
    assert_documented_answer("device-token.json", &response, 401, Some("unauthorized"));
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

/// A school's operator with `school=` gets its school's failing devices, and the
/// school's threshold.
#[tokio::test]
async fn one_schools_failing_devices_by_its_threshold() {
    use pisync_shared::domain::school::SchoolId;
    use pisync_shared::ports::ManageSchools;
    let (_dir, store) = sqlite_store();
    let mut riverside = pisync_shared::test_util::school("riverside");
    riverside.failure_threshold = Some(2);
    store.put_school(&riverside, true).await.unwrap();
    pisync_shared::domain::assignment::assign(
        &store,
        &pisync_shared::test_util::device("dev-river"),
        SchoolId::parse("riverside").as_ref(),
        Rules::default().streak,
        |_| true,
        minute(0),
    )
    .await
    .unwrap();
    for device in ["dev-river", "dev-elsewhere"] {
        for m in 1..=3 {
            apply_event(&store, Rules::default(), &stored_event(device, m, 1), minute(10))
                .await
                .expect("applied");
        }
    }
    let response = handler(store)
        .handle(api_request("list-repeated-failures/one-school.json"))
        .await;
    let body = reply_json(&response);
    assert_eq!(response.status(), 200, "{body}");
    assert_eq!(body["threshold"], 2);
    let ids: Vec<&str> = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["dev-river"]);
}
