//! Property tests that throw arbitrary requests at every handler: never a panic,
//! never a 5xx, always the JSON error shape; and whatever is acknowledged is stored.

use crate::support::{handlers, Handlers};
use lambda_http::http::Request;
use lambda_http::{Body, RequestExt};
use pisync_shared::function::{HttpFunction, HttpHandler};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::HashMap;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn check_shape(status: u16, body: &[u8]) -> Result<Value, TestCaseError> {
    prop_assert!(status < 500, "status {status}: {}", String::from_utf8_lossy(body));
    let json: Value =
        serde_json::from_slice(body).map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
    if status >= 400 {
        prop_assert!(json["error"]["code"].is_string());
        prop_assert!(json["error"]["message"].is_string());
        prop_assert!(json["error"]["details"].is_array());
        prop_assert!(json["request_id"].is_string());
    }
    Ok(json)
}

/// JSON values biased towards the event's own fields and edge cases.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(Value::from(2_147_483_648u64)),
        "[a-zA-Z0-9_:.\\- ]{0,140}".prop_map(Value::String),
        Just(Value::String("2025-05-07T10:30:00Z".into())),
        Just(Value::String("2025-05-07T16:00:00+05:30".into())),
        Just(Value::String("9999-12-31T23:59:59Z".into())),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event_like() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        Just("device_id".to_owned()),
        Just("timestamp".to_owned()),
        Just("total_files_synced".to_owned()),
        Just("total_errors".to_owned()),
        Just("internet_speed".to_owned()),
        "[a-z_]{1,12}",
    ];
    proptest::collection::vec((field, json_value()), 0..7)
        .prop_map(|fields| Value::Object(fields.into_iter().collect()))
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        event_like().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        "[ -~]{0,30}".prop_map(Some),
    ]
}

fn query() -> impl Strategy<Value = HashMap<String, Vec<String>>> {
    let key = prop_oneof![
        Just("limit".to_owned()),
        Just("cursor".to_owned()),
        Just("from".to_owned()),
        Just("to".to_owned()),
        Just("order".to_owned()),
        "[a-z]{1,6}",
    ];
    let value = prop_oneof![
        "[ -~]{0,40}",
        Just("asc".to_owned()),
        Just("50".to_owned()),
        Just("2025-05-07T10:30:00Z".to_owned()),
        Just("MjAyNS0wNS0wN1QxMDozMjowMC4wMDBa.D2AiIBXOUMegvNhZ-fP9Sw".to_owned()),
    ];
    proptest::collection::hash_map(key, proptest::collection::vec(value, 1..3), 0..4)
}

fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("GET"),
        Just("POST"),
        Just("PUT"),
        Just("DELETE"),
        Just("PATCH")
    ]
}

async fn post(h: &Handlers, method: &str, ct: Option<String>, body: Vec<u8>) -> lambda_http::Response<Body> {
    let mut req = Request::builder().method(method).uri("/sync-event");
    if let Some(ct) = ct {
        if let Ok(v) = lambda_http::http::HeaderValue::from_str(&ct) {
            req = req.header("content-type", v);
        }
    }
    h.record.handle(req.body(Body::Binary(body)).unwrap()).await
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn record_never_fails_on_client_input(method in method(), ct in content_type(), body in body_bytes()) {
        let rt = runtime();
        let h = handlers();
        rt.block_on(async {
            let response = post(&h, method, ct, body).await;
            let status = response.status().as_u16();
            let json = check_shape(status, response.body().as_ref())?;
            if status == 201 || status == 200 {
                // Acknowledged means stored: the history shows it.
                let device = json["device_id"].as_str().unwrap().to_owned();
                let req = Request::get("/").body(Body::Empty).unwrap().with_path_parameters(HashMap::from([("id".to_owned(), device)]));
                let history = h.history.handle(req).await;
                let listed: Value = serde_json::from_slice(history.body().as_ref()).unwrap();
                prop_assert_eq!(&listed["events"][0], &json);
            }
            Ok::<(), TestCaseError>(())
        })?;
    }

    #[test]
    fn reads_never_fail_on_client_input(method in method(), id in "[ -~]{0,140}", q in query(), which in any::<bool>()) {
        let rt = runtime();
        let h = handlers();
        rt.block_on(async {
            let req = Request::builder().method(method).uri("/").body(Body::Empty).unwrap()
                .with_query_string_parameters(q)
                .with_path_parameters(HashMap::from([("id".to_owned(), id)]));
            let response = if which {
                h.history.handle(req).await
            } else {
                h.failures.handle(req).await
            };
            check_shape(response.status().as_u16(), response.body().as_ref())?;
            Ok::<(), TestCaseError>(())
        })?;
    }
}

/// `Authorization` values: arbitrary text, and near-misses of a real device token.
fn authorization() -> impl Strategy<Value = Vec<u8>> {
    let token_like = (
        "[a-z_]{0,10}",
        "[A-Za-z0-9_-]{0,12}",
        "[A-Za-z0-9_-]{0,90}",
        "[A-Za-z0-9_-]{0,50}",
    )
        .prop_map(|(kind, kid, payload, mac)| format!("Bearer {kind}.{kid}.{payload}.{mac}").into_bytes());
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "[ -~]{0,300}".prop_map(String::into_bytes),
        token_like,
        "(Bearer|bearer|Basic|Token) [ -~]{0,100}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever unsigned text arrives as a credential, the device route answers 401
    /// in the error shape with the challenge: never a panic, a 5xx or a stored event.
    #[test]
    fn any_unsigned_credential_is_401(header in authorization(), body in body_bytes()) {
        use pisync_shared::auth::{Authenticator, KeyRing, SigningKeys};
        let rt = runtime();
        let (_dir, store) = pisync_shared::test_util::sqlite_store();
        let keys = SigningKeys::new("k1", [("k1", &[3u8; 32][..])]).unwrap();
        let mut local = pisync_shared::test_util::local(store.clone());
        local.auth = Authenticator::local(std::sync::Arc::new(KeyRing::fixed(keys)), std::sync::Arc::new(store));
        let record = record_sync_event::RecordSyncEvent::from_local(&local);
        rt.block_on(async {
            let mut req = Request::post("/sync-event").header("content-type", "application/json");
            if let Ok(v) = lambda_http::http::HeaderValue::from_bytes(&header) {
                req = req.header("authorization", v);
            }
            let response = record.handle(req.body(Body::Binary(body)).unwrap()).await;
            prop_assert_eq!(response.status().as_u16(), 401);
            check_shape(401, response.body().as_ref())?;
            prop_assert_eq!(response.headers()["www-authenticate"].to_str().unwrap(), "Bearer");
            Ok::<(), TestCaseError>(())
        })?;
    }
}
