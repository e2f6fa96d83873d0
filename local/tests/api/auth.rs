//! Authentication and authorization through the real runner, on both stores: the
//! hostile matrix (every route × every wrong credential: exact status, error shape,
//! nothing stored or read), the credential life cycle, and `--no-auth`.

use crate::support::on_both_backends;
use crate::support::runner::{http, Backend, TestApp};
use pisync_shared::auth::token::{sign_device, sign_operator};
use pisync_shared::auth::{Operator, Scope, SigningKeys};
use pisync_shared::http::routes::{Route, ROUTES};
use serde_json::{json, Value};

const TARGET: &str = "dev-target";
const OTHER: &str = "dev-other";

fn event(device: &str, second: u32, errors: u32) -> Value {
    json!({"device_id": device, "timestamp": format!("2025-05-07T10:{:02}:{:02}Z", second / 60, second % 60),
           "total_files_synced": 1, "total_errors": errors, "internet_speed": 1.5})
}

/// The backlog route answers per item inside a 200.
fn is_batch(route: &Route) -> bool {
    route.path == pisync_shared::http::routes::RECORD_SYNC_EVENTS.path
}

/// The runner's own signing keys, read from its data directory.
fn runner_keys(app: &TestApp) -> SigningKeys {
    let text =
        std::fs::read_to_string(app.data_dir.join("signing-keys.json")).expect("the runner wrote its keys");
    SigningKeys::from_json(&text).expect("valid keys")
}

/// `POST /sync-event` of `TARGET`'s event at `second`, with `authorization`.
async fn post_as(app: &TestApp, authorization: &str, second: u32) -> http::Reply {
    let body = serde_json::to_vec(&event(TARGET, second, 0)).unwrap();
    app.send_as(
        "POST",
        "/sync-event",
        Some("application/json"),
        body,
        Some(authorization),
    )
    .await
}

/// Sends `route` (for `TARGET`) with `authorization`; `second` makes each recorded
/// event distinct so that anything stored can be counted.
async fn call(app: &TestApp, route: &Route, authorization: Option<&str>, second: u32) -> http::Reply {
    let path = route.path.replace("{id}", TARGET);
    let body = if is_batch(route) {
        serde_json::to_vec(&json!({"events": [event(TARGET, second, 1)]})).unwrap()
    } else if route.body_limit > 0 {
        serde_json::to_vec(&event(TARGET, second, 1)).unwrap()
    } else {
        Vec::new()
    };
    let content_type = (route.body_limit > 0).then_some("application/json");
    app.send_as(route.method.as_str(), &path, content_type, body, authorization)
        .await
}

fn assert_refused(reply: &http::Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    let code = if status == 401 {
        "unauthorized"
    } else {
        "forbidden"
    };
    assert_eq!(reply.body["error"]["code"], code, "{what}");
    assert!(reply.body["error"]["message"].is_string(), "{what}");
    assert!(reply.body["request_id"].is_string(), "{what}");
    let keys: Vec<&String> = reply.body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["error", "request_id"],
        "{what}: nothing but the error is read"
    );
    pisync_shared::test_util::lambda_events::assert_standard_headers(&reply.headers, what);
    assert_eq!(
        reply.headers.get("www-authenticate").map(|v| v.to_str().unwrap()),
        (status == 401).then_some("Bearer"),
        "{what}"
    );
}

async fn hostile_matrix(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let keys = runner_keys(&app);
    let target = app.device_auth(TARGET).await.unwrap();
    let other = app.device_auth(OTHER).await.unwrap();
    // A device token whose credential was revoked.
    let revoked_device = "dev-revoked";
    let revoked = app.device_auth(revoked_device).await.unwrap();
    assert_eq!(
        app.revoke_device_credentials(revoked_device, app.admin.as_deref())
            .await
            .status,
        204
    );
    // A token the runner's keys would accept but for its retired key id.
    let retired = SigningKeys::new("k0", [("k0", &[9u8; 32][..])]).unwrap();
    let rotated_out = format!("Bearer {}", sign_device(&retired, TARGET).unwrap());
    let expired = format!(
        "Bearer {}",
        sign_operator(&keys, &Operator::district(Scope::Admin), 1).unwrap()
    );
    let target_token = target.trim_start_matches("Bearer ");
    let (read, admin) = (app.read.clone().unwrap(), app.admin.clone().unwrap());

    // Every credential that proves nothing: 401 on every route.
    let unauthenticated: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("Bearer garbage".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("wrong scheme", Some(format!("Basic {target_token}"))),
        ("no scheme", Some(target_token.to_owned())),
        ("truncated", Some(target[..target.len() - 4].to_owned())),
        ("revoked", Some(revoked.clone())),
        ("rotated out", Some(rotated_out)),
        ("expired operator", Some(expired)),
        ("oversized", Some(format!("Bearer {}", "A".repeat(8000)))),
    ];
    let mut second = 0;
    // Public routes (the dashboard's files) hold no data and take no credential.
    for route in ROUTES
        .iter()
        .filter(|r| r.access != pisync_shared::auth::Access::Public)
    {
        for (name, auth) in &unauthenticated {
            second += 1;
            let reply = call(&app, route, auth.as_deref(), second).await;
            assert_refused(
                &reply,
                401,
                &format!("{} {} with {name}", route.method, route.path),
            );
        }
    }
    // Valid credentials on routes they are not for: 403.
    let forbidden: Vec<(&str, &str, &Route)> = ROUTES
        .iter()
        .flat_map(|route| {
            let mut cases = Vec::new();
            match route.access {
                pisync_shared::auth::Access::Public => {}
                pisync_shared::auth::Access::Device => {
                    cases.push(("another device's token", other.as_str(), *route));
                    cases.push(("a read operator", read.as_str(), *route));
                    cases.push(("an admin operator", admin.as_str(), *route));
                }
                pisync_shared::auth::Access::Read => {
                    cases.push(("a device token", target.as_str(), *route));
                }
                pisync_shared::auth::Access::Admin => {
                    cases.push(("a device token", target.as_str(), *route));
                    cases.push(("a read operator", read.as_str(), *route));
                }
            }
            cases
        })
        .collect();
    for (name, auth, route) in forbidden {
        second += 1;
        let reply = call(&app, route, Some(auth), second).await;
        let what = format!("{} {} with {name}", route.method, route.path);
        if is_batch(route) && auth == other {
            // A device token on the backlog route: that item is 403, not the request.
            assert_eq!(reply.status, 200, "{what}: {}", reply.body);
            assert_eq!(reply.body["results"][0]["status"], 403, "{what}");
            assert_eq!(reply.body["results"][0]["error"]["code"], "forbidden", "{what}");
            assert_eq!(reply.body["created"], 0, "{what}");
            assert_eq!(reply.body["rejected"], 1, "{what}");
        } else {
            assert_refused(&reply, 403, &what);
        }
    }

    // Nothing was stored, and no refused credential call changed anything: the
    // target's token still works, and its own event is the only one stored.
    let own = app.post_sync_event(&event(TARGET, 59, 0)).await;
    assert_eq!(own.status, 201, "{}", own.body);
    let history = app.get_sync_history(TARGET, "").await;
    assert_eq!(history.status, 200);
    let stored: Vec<&str> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert_eq!(stored, ["2025-05-07T10:00:59.000Z"]);
    assert_eq!(app.get_sync_history(OTHER, "").await.status, 404);
    assert_eq!(app.get_repeated_failures("").await.body["devices"], json!([]));
}

/// An attacker without the device's token cannot forge its success (to silence its
/// alerts) or squat its next timestamps (to make its genuine reports 409).
async fn forged_success_and_timestamp_squatting_are_closed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let attacker = app.device_auth("dev-attacker").await.unwrap();
    let ahead = (chrono::Utc::now() + chrono::Duration::minutes(14)).to_rfc3339();
    let forged = json!({"device_id": TARGET, "timestamp": ahead, "total_files_synced": 1,
                        "total_errors": 0, "internet_speed": 1.0});
    let body = serde_json::to_vec(&forged).unwrap();
    let reply = app
        .send_as(
            "POST",
            "/sync-event",
            Some("application/json"),
            body.clone(),
            Some(&attacker),
        )
        .await;
    assert_refused(&reply, 403, "another device's token");
    let reply = app
        .send_as("POST", "/sync-event", Some("application/json"), body, None)
        .await;
    assert_refused(&reply, 401, "no token");
    // The genuine device reports that very timestamp: created, not a conflict.
    let mut genuine = forged.clone();
    genuine["total_errors"] = json!(2);
    assert_eq!(app.post_sync_event(&genuine).await.status, 201);
}

async fn credentials_are_issued_replaced_and_revoked(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let admin = app.admin.clone();
    let first = app.issue_device_credentials(TARGET, admin.as_deref()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["device_id"], TARGET);
    assert!(first.body["issued_at"].is_string());
    let first = format!("Bearer {}", first.body["token"].as_str().unwrap());
    // Having credentials does not make a device seen.
    assert_eq!(app.get_sync_history(TARGET, "").await.status, 404);
    let post = |auth: String, second: u32| {
        let app = &app;
        async move { post_as(app, &auth, second).await.status }
    };
    assert_eq!(post(first.clone(), 1).await, 201);
    // Re-issuing through the API: the earlier token stops working at once.
    let second = app.issue_device_credentials(TARGET, admin.as_deref()).await;
    let second = format!("Bearer {}", second.body["token"].as_str().unwrap());
    assert_eq!(post(first.clone(), 2).await, 401);
    assert_eq!(post(second.clone(), 3).await, 201);
    // The command line does the same, while the server runs: the command returns once
    // the server's view of credentials no longer holds the replaced token.
    let third = format!("Bearer {}", app.cli_token(&["device", TARGET]));
    assert_eq!(post(second, 4).await, 401);
    assert_eq!(post(third.clone(), 5).await, 201);
    // Revoked: at once; and a revoked device can be issued new credentials.
    assert_eq!(
        app.revoke_device_credentials(TARGET, admin.as_deref())
            .await
            .status,
        204
    );
    assert_eq!(post(third, 6).await, 401);
    let fourth = app.issue_device_credentials(TARGET, admin.as_deref()).await;
    assert_eq!(fourth.status, 201);
    let fourth = format!("Bearer {}", fourth.body["token"].as_str().unwrap());
    assert_eq!(post(fourth, 7).await, 201);
    // Bad device ids are 400, as everywhere.
    let bad = app.issue_device_credentials("bad%20id", admin.as_deref()).await;
    assert_eq!(bad.status, 400);
}

async fn tokens_survive_a_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let device = app.device_auth(TARGET).await.unwrap();
    let read = app.read.clone();
    app.stop();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let reply = post_as(&app, &device, 1).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let url = app.url(&format!("/device/{TARGET}/sync-history"));
    assert_eq!(http::get(&app.client, &url, read.as_deref()).await.status, 200);
}

on_both_backends!(
    hostile_matrix,
    forged_success_and_timestamp_squatting_are_closed,
    credentials_are_issued_replaced_and_revoked,
    tokens_survive_a_restart,
);

/// `--no-auth` serves every route without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_opens_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&Backend::Embedded, dir.path(), &["--no-auth"]);
    assert_eq!(app.read, None);
    assert_eq!(app.post_sync_event(&event(TARGET, 1, 0)).await.status, 201);
    assert_eq!(app.get_sync_history(TARGET, "").await.status, 200);
    assert_eq!(app.get_repeated_failures("").await.status, 200);
}

/// The data directory and every file the runner writes in it (keys, secrets, the
/// databases and their write-ahead logs) are their owner's alone, even when the
/// directory and the database were made before by someone else's umask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_its_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("pisync.db"), b"").unwrap();
    std::fs::set_permissions(dir.join("pisync.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let app = TestApp::start(&Backend::Embedded, &dir, &[]);
    assert_eq!(app.post_sync_event(&event(TARGET, 1, 0)).await.status, 201);
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the data dir");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    for expected in [
        "signing-keys.json",
        "cursor.key",
        "webhook-secret",
        "pisync.db",
        "pisync.db-wal",
        "webhooks.db",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(expected)),
            "{expected} in {files:?}"
        );
    }
    for file in &files {
        if file.ends_with("alerts.jsonl") {
            continue; // the test's own alerts file, not the runner's
        }
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
}

/// A sign-in link's code opens one read session, once: the link in the runner's
/// output is no reusable credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_code_opens_one_read_session_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&Backend::Embedded, dir.path(), &[]);
    let code = app.sign_in_code();
    assert!(!code.contains("pisync_"), "a code, not a token");
    let url = app.url("/dashboard/session");
    let session = http::post_json(&app.client, &url, &json!({ "code": code }), None).await;
    assert_eq!(session.status, 200, "{:?}", session.body);
    let token = format!("Bearer {}", session.body["token"].as_str().unwrap());
    let reader = app.as_operator(Some(&token));
    assert_eq!(reader.list_devices("").await.status, 200, "a read session");
    assert_eq!(reader.list_audit("").await.status, 403, "not an admin one");
    let again = http::post_json(&app.client, &url, &json!({ "code": code }), None).await;
    assert_eq!(
        (again.status, again.body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let made_up = http::post_json(&app.client, &url, &json!({ "code": "0123456789abcdef" }), None).await;
    assert_eq!(made_up.status, 401);
    let text = std::fs::read_to_string(dir.path().join("sign-in-codes")).unwrap();
    assert!(!text.contains(&code), "the code itself is not kept");
}

/// A key made current in the keys file signs the next credential the running server
/// issues (docs/security.md, "Key rotation"), and the device's token works. Found by
/// the deployed-stack test: issuing used the keys read at start until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_current_signs_the_next_credential() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&Backend::Embedded, dir.path(), &[]);
    let admin = app.admin.clone();
    let kid_of = |reply: &http::Reply| {
        let token = reply.body["token"].as_str().expect("a token").to_owned();
        (token.split('.').nth(1).expect("a key id").to_owned(), token)
    };
    let before = app.issue_device_credentials(TARGET, admin.as_deref()).await;
    assert_eq!(kid_of(&before).0, runner_keys(&app).current_kid());

    let path = app.data_dir.join("signing-keys.json");
    let mut keys: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let added: Value = serde_json::from_str(&SigningKeys::generate_json("k9").unwrap()).unwrap();
    keys["k9"] = added["k9"].clone();
    keys["current"] = json!("k9");
    std::fs::write(&path, keys.to_string()).unwrap();

    let after = app.issue_device_credentials(TARGET, admin.as_deref()).await;
    assert_eq!(after.status, 201, "{}", after.body);
    let (kid, token) = kid_of(&after);
    assert_eq!(kid, "k9");
    let reply = post_as(&app, &format!("Bearer {token}"), 1).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
}

/// Operator tokens are revoked all at once by new operator keys, while the server
/// runs, and device tokens keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_tokens_are_revoked_without_touching_device_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&Backend::Embedded, dir.path(), &[]);
    assert_eq!(app.post_sync_event(&event(TARGET, 1, 0)).await.status, 201);
    assert_eq!(app.reader().list_devices("").await.status, 200);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pisync-local"))
        .args(["token", "revoke-operators", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    crate::support::wait_until("the old operator token refused", || async {
        app.reader().list_devices("").await.status == 401
    })
    .await;
    assert_eq!(app.administrator().list_audit("").await.status, 401);
    assert_eq!(
        app.post_sync_event(&event(TARGET, 2, 0)).await.status,
        201,
        "devices unaffected"
    );
    let fresh = format!("Bearer {}", app.cli_token(&["operator"]));
    assert_eq!(app.as_operator(Some(&fresh)).list_devices("").await.status, 200);
}

/// With `--no-auth` only loopback callers are answered: a DNS-rebound Host, another
/// origin, or a POST that does not say JSON (what a cross-site form can send) is
/// refused, and nothing of it is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_answers_loopback_callers_only() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&Backend::Embedded, dir.path(), &["--no-auth"]);
    let body = serde_json::to_string(&event(TARGET, 1, 0)).unwrap();
    let url = app.url("/sync-event");
    let refused = [
        (
            vec![("host", "attacker.example"), ("content-type", "application/json")],
            403,
        ),
        (
            vec![
                ("origin", "https://attacker.example"),
                ("content-type", "application/json"),
            ],
            403,
        ),
        (vec![("content-type", "text/plain")], 415),
        (vec![], 415),
    ];
    for (headers, status) in refused {
        let reply =
            http::send_with_headers(&app.client, "POST", &url, &headers, body.clone().into_bytes()).await;
        assert_eq!(reply.status, status, "{headers:?}: {:?}", reply.body);
    }
    let history = app.get_sync_history(TARGET, "").await;
    assert_eq!(
        (history.status, history.body["error"]["code"].as_str()),
        (404, Some("device_not_found")),
        "nothing stored"
    );
    assert_eq!(app.post_sync_event(&event(TARGET, 1, 0)).await.status, 201);
    assert_eq!(
        app.get_sync_history(TARGET, "").await.body["events"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}
