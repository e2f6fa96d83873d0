//! Notices people trust, through the real runner on both stores: a late backlog's
//! streak is recorded but not published, and the notice history reads it back, per
//! device and as a scoped feed; a flapping device is paged once; a school's daily
//! digest goes out at its time and can be previewed.

use crate::support::runner::{Backend, TestApp};
use crate::support::{ago, event, on_both_backends, wait_for};
use serde_json::{json, Value};

/// (type, published, reason) of each notice on a page.
fn decisions(page: &Value) -> Vec<(String, bool, Option<String>)> {
    page["notices"]
        .as_array()
        .expect("notices")
        .iter()
        .map(|n| {
            (
                n["type"].as_str().unwrap().to_owned(),
                n["published"].as_bool().unwrap(),
                n["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// The device's notices once there are `n` of them.
async fn notices_of(app: &TestApp, device: &str, n: usize) -> Value {
    wait_for(&format!("{n} notices of {device}"), || async {
        let page = app.get_device_notices(device, "").await.body;
        (page["notices"].as_array().map(Vec::len) == Some(n)).then_some(page)
    })
    .await
}

async fn a_late_backlogs_streak_is_recorded_not_published(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &["--alert-freshness", "24h"]);
    // Three failures and a success from three days ago, uploaded now.
    let backlog: Vec<Value> = [(4340, 1), (4330, 1), (4320, 1), (4310, 0)]
        .iter()
        .map(|(minutes, errors)| event("dev-late", &ago(*minutes), *errors, 1))
        .collect();
    assert_eq!(app.post_sync_events("dev-late", &backlog).await.status, 200);
    // Failing now: news.
    for m in [3, 2, 1] {
        let e = event("dev-now", &ago(m), 2, 1);
        assert_eq!(app.post_sync_event(&e).await.status, 201);
    }
    let late = notices_of(&app, "dev-late", 2).await;
    let stale = Some("stale".to_owned());
    assert_eq!(
        decisions(&late),
        [
            ("device.sync_recovered".into(), false, stale.clone()),
            ("device.repeated_sync_failures".into(), false, stale),
        ]
    );
    assert_eq!(late["device_id"], "dev-late");
    assert_eq!(late["notices"][0]["alert_id"], late["notices"][1]["alert_id"]);
    let now = notices_of(&app, "dev-now", 1).await;
    assert_eq!(
        decisions(&now),
        [("device.repeated_sync_failures".into(), true, None)]
    );
    // The outbox is written with the history: what was held back never goes out.
    let alerts = app.wait_for_alerts(|a| a.iter().any(|n| n["device_id"] == "dev-now"));
    assert!(alerts.iter().all(|n| n["device_id"] != "dev-late"), "{alerts:?}");
    // The device still counts as having failed: status follows the events.
    assert_eq!(app.get_device("dev-late").await.body["totals"]["failures"], 3);
}

async fn the_notice_feed_is_scoped_and_paged(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let admin = app.administrator();
    assert_eq!(
        admin
            .put_school("north", json!({"name": "North", "timezone": "UTC"}))
            .await
            .status,
        201
    );
    assert_eq!(admin.assign_school("dev-north", Some("north")).await.status, 200);
    for device in ["dev-north", "dev-free"] {
        for m in [3, 2, 1] {
            let e = event(device, &ago(m), 2, 1);
            assert_eq!(app.post_sync_event(&e).await.status, 201);
        }
    }
    notices_of(&app, "dev-north", 1).await;
    notices_of(&app, "dev-free", 1).await;
    // The district's feed, a page at a time.
    let first = app.get_notices("limit=1").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["notices"].as_array().unwrap().len(), 1);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = app.get_notices(&format!("limit=1&cursor={cursor}")).await;
    assert_eq!(second.body["notices"].as_array().unwrap().len(), 1);
    assert!(second.body["next_cursor"].is_null());
    let mut devices = vec![
        first.body["notices"][0]["device_id"].clone(),
        second.body["notices"][0]["device_id"].clone(),
    ];
    devices.sort_by_key(|d| d.to_string());
    assert_eq!(devices, [json!("dev-free"), json!("dev-north")]);
    // A school operator reads its school's only, and not another list's cursor.
    let north = app.school_operator(&["north"], false);
    let north = app.as_operator(Some(&north));
    let own = north.get_notices("").await;
    let own_devices: Vec<&Value> = own.body["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["device_id"])
        .collect();
    assert_eq!(own_devices, [&json!("dev-north")]);
    assert_eq!(north.get_device_notices("dev-free", "").await.status, 404);
    let foreign = north.get_notices(&format!("cursor={cursor}")).await;
    assert_eq!(foreign.status, 400);
    let typed = app.get_notices("type=device.silent").await;
    assert_eq!(typed.body["notices"], json!([]));
    let bad = app.get_notices("type=nope&limit=0").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["details"].as_array().map(Vec::len), Some(2));
}

/// Three rounds of three failures and a success within the flap window: two alerts and
/// recoveries go out, the third alert becomes `device.flapping`; a window without an
/// alert later the periodic check sends `device.stable`.
async fn a_flapping_device_is_paged_once_then_told_stable(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(
        &backend,
        dir.path(),
        &["--flap-window", "20s", "--silent-check-interval", "1s"],
    );
    let mut minutes = 30;
    for _ in 0..3 {
        for errors in [1, 1, 1, 0] {
            let e = event("dev-flap", &ago(minutes), errors, 1);
            assert_eq!(app.post_sync_event(&e).await.status, 201);
            minutes -= 1;
        }
    }
    let kinds = |alerts: &[Value]| -> Vec<String> {
        alerts
            .iter()
            .filter(|a| a["device_id"] == "dev-flap")
            .map(|a| a["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let alerts = app.wait_for_alerts(|a| kinds(a).contains(&"device.stable".to_owned()));
    assert_eq!(
        kinds(&alerts),
        [
            "device.repeated_sync_failures",
            "device.sync_recovered",
            "device.repeated_sync_failures",
            "device.sync_recovered",
            "device.flapping",
            "device.stable",
        ]
    );
    let flapping = alerts.iter().find(|a| a["type"] == "device.flapping").unwrap();
    assert_eq!(
        (
            flapping["alerts_in_window"].as_u64(),
            flapping["window_seconds"].as_u64()
        ),
        (Some(3), Some(20))
    );
    let history = notices_of(&app, "dev-flap", 8).await;
    let held: Vec<_> = decisions(&history)
        .into_iter()
        .filter(|(_, published, _)| !published)
        .collect();
    assert_eq!(
        held,
        [
            ("device.sync_recovered".into(), false, Some("flapping".into())),
            (
                "device.repeated_sync_failures".into(),
                false,
                Some("flapping".into())
            ),
        ]
    );
}

/// The preview says what the digest would, sending nothing; once the school's
/// `digest_at` has passed (here 00:00 UTC: always, today) the periodic check sends
/// it, once, and the feed keeps it.
async fn a_schools_digest_goes_out_at_its_time_and_can_be_previewed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &["--silent-check-interval", "1s"]);
    let admin = app.administrator();
    let north = json!({"name": "North", "timezone": "UTC"});
    assert_eq!(admin.put_school("north", north.clone()).await.status, 201);
    assert_eq!(admin.assign_school("dev-north", Some("north")).await.status, 200);
    for m in [3, 2, 1] {
        let e = event("dev-north", &ago(m), 2, 1);
        assert_eq!(app.post_sync_event(&e).await.status, 201);
    }
    notices_of(&app, "dev-north", 1).await;
    let preview = admin.preview_school_digest("north").await;
    assert_eq!(preview.status, 200);
    assert_eq!(preview.body["type"], "school.digest");
    assert_eq!(preview.body["failing"], json!(["dev-north"]));
    assert_eq!(preview.body["devices"]["failing"], 1);
    let south = app.school_operator(&["south"], false);
    let refused = app.as_operator(Some(&south)).preview_school_digest("north").await;
    assert_eq!(refused.status, 404, "another school's is not found");
    let digests = |alerts: &[Value]| alerts.iter().filter(|a| a["type"] == "school.digest").count();
    assert_eq!(digests(&app.alerts()), 0, "a preview sends nothing");

    let mut with_digest = north;
    with_digest["digest_at"] = json!("00:00");
    assert_eq!(admin.put_school("north", with_digest).await.status, 200);
    let alerts = app.wait_for_alerts(|a| digests(a) >= 1);
    let digest = alerts.iter().find(|a| a["type"] == "school.digest").unwrap();
    assert_eq!(digest["school_id"], "north");
    assert_eq!(digest["failing"], json!(["dev-north"]));
    assert!(digest.get("device_id").is_none(), "about a school, not a device");
    app.settle(3).await;
    // One a day: a run across 00:00 UTC may also see the next date's, never a second
    // digest for one date.
    let sent: Vec<Value> = app
        .alerts()
        .into_iter()
        .filter(|a| a["type"] == "school.digest")
        .map(|a| a["date"].clone())
        .collect();
    let dates: std::collections::BTreeSet<String> = sent.iter().map(Value::to_string).collect();
    assert_eq!(dates.len(), sent.len(), "one digest a day: {sent:?}");
    let kept = decisions(&app.get_notices("type=school.digest").await.body);
    assert!(!kept.is_empty(), "the feed keeps the digest");
    assert!(
        kept.iter().all(|d| *d == ("school.digest".into(), true, None)),
        "published, as sent: {kept:?}"
    );
}

on_both_backends!(
    a_late_backlogs_streak_is_recorded_not_published,
    the_notice_feed_is_scoped_and_paged,
    a_flapping_device_is_paged_once_then_told_stable,
    a_schools_digest_goes_out_at_its_time_and_can_be_previewed,
);
