//! Schools through the real runner, on both stores: the resource, assignment, who may
//! do what, a school's threshold on its devices, and `school=` on the lists.

use crate::support::runner::{Backend, TestApp};
use crate::support::{ago, event, ids, on_both_backends, wait_for};
use serde_json::{json, Value};

/// A school body with the contract's example settings.
fn riverside() -> Value {
    json!({
        "name": "Riverside Primary", "timezone": "Europe/London",
        "hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "open": "08:00", "close": "16:00"},
        "closures": [{"from": "2026-12-19", "to": "2027-01-04", "reason": "Winter break"}],
        "failure_threshold": 3, "silent_after": "16h",
        "webhook_url": "https://hooks.example/riverside", "digest_at": "07:00"
    })
}

fn named(name: &str) -> Value {
    json!({"name": name, "timezone": "UTC"})
}

fn start(backend: &Backend) -> (tempfile::TempDir, TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(backend, dir.path(), &[]);
    (dir, app)
}

fn school_ids(page: &Value) -> Vec<String> {
    page["schools"]
        .as_array()
        .expect("schools")
        .iter()
        .map(|s| s["school_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn schools_are_created_replaced_listed_and_deleted(backend: Backend) {
    let (_dir, app) = start(&backend);
    let admin = app.administrator();
    let created = admin.put_school("riverside", riverside()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let mut stored = riverside();
    stored["school_id"] = json!("riverside");
    assert_eq!(created.body, stored, "the stored school, every field");
    let replaced = admin.put_school("riverside", named("Riverside")).await;
    assert_eq!(replaced.status, 200);
    assert_eq!(
        replaced.body["hours"],
        Value::Null,
        "a replacement is whole: absent settings are null"
    );
    for id in ["oakwood", "ash", "birch"] {
        assert_eq!(admin.put_school(id, named(id)).await.status, 201);
    }
    let school = app.reader().get_school("riverside").await;
    assert_eq!(school.status, 200);
    assert_eq!(school.body["name"], "Riverside");
    assert_eq!(
        school.body["devices"],
        json!({"total": 0, "healthy": 0, "failing": 0, "silent": 0})
    );
    let first = app.reader().list_schools("limit=3").await;
    assert_eq!(
        school_ids(&first.body),
        ["ash", "birch", "oakwood"],
        "by school id"
    );
    let cursor = first.body["next_cursor"].as_str().expect("more");
    let rest = app
        .reader()
        .list_schools(&format!("limit=3&cursor={cursor}"))
        .await;
    assert_eq!(school_ids(&rest.body), ["riverside"]);
    assert_eq!(rest.body["next_cursor"], Value::Null);
    assert_eq!(admin.delete_school("ash").await.status, 204);
    let gone = admin.delete_school("ash").await;
    assert_eq!(
        (gone.status, gone.body["error"]["code"].as_str()),
        (404, Some("school_not_found"))
    );
    assert_eq!(app.reader().get_school("ash").await.status, 404);
}

/// Every problem with a body is listed at once, one detail per field.
async fn every_problem_with_a_school_is_listed(backend: Backend) {
    let (_dir, app) = start(&backend);
    let reply = app
        .administrator()
        .put_school(
            "bad",
            json!({
                "timezone": "Mars/Olympus",
                "hours": {"days": [], "open": "16:00", "close": "08:00"},
                "closures": [{"from": "2027-01-04", "to": "2026-12-19"}],
                "failure_threshold": 0, "silent_after": "10s",
                "webhook_url": "http://hooks.example/x", "digest_at": "25:00", "colour": "blue"
            }),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "invalid_school");
    let mut fields: Vec<&str> = reply.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort();
    fields.dedup();
    assert_eq!(
        fields,
        [
            "closures",
            "colour",
            "digest_at",
            "failure_threshold",
            "hours",
            "name",
            "silent_after",
            "timezone",
            "webhook_url"
        ]
    );
    assert_eq!(app.reader().get_school("bad").await.status, 404, "nothing stored");
    let bad_id = app.administrator().put_school("no%20spaces", named("x")).await;
    assert_eq!(bad_id.status, 400);
}

async fn a_school_with_devices_is_not_deleted(backend: Backend) {
    let (_dir, app) = start(&backend);
    let admin = app.administrator();
    admin.put_school("oakwood", named("Oakwood")).await;
    let assigned = admin.assign_school("pibox-1", Some("oakwood")).await;
    assert_eq!(assigned.status, 200, "{}", assigned.body);
    assert_eq!(
        assigned.body,
        json!({"device_id": "pibox-1", "school_id": "oakwood"})
    );
    let refused = admin.delete_school("oakwood").await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (409, Some("school_not_empty"))
    );
    assert_eq!(admin.assign_school("pibox-1", None).await.status, 200);
    assert_eq!(admin.delete_school("oakwood").await.status, 204);
    let nowhere = admin.assign_school("pibox-1", Some("oakwood")).await;
    assert_eq!(
        (nowhere.status, nowhere.body["error"]["code"].as_str()),
        (404, Some("school_not_found"))
    );
}

/// A school admin replaces its own school, creates none, deletes none, and cannot
/// touch another's; a school reader writes nothing.
async fn school_admins_replace_their_own_school_only(backend: Backend) {
    let (_dir, app) = start(&backend);
    for id in ["north", "south"] {
        app.administrator().put_school(id, named(id)).await;
    }
    let north_admin = app.school_operator(&["north", "west"], true);
    let north = app.as_operator(Some(&north_admin));
    assert_eq!(north.put_school("north", named("North High")).await.status, 200);
    let create = north.put_school("west", named("West")).await;
    assert_eq!(
        (create.status, create.body["error"]["code"].as_str()),
        (404, Some("school_not_found"))
    );
    let other = north.put_school("south", named("Mine now")).await;
    assert_eq!(
        (other.status, other.body["error"]["code"].as_str()),
        (404, Some("school_not_found"))
    );
    assert_eq!(north.delete_school("north").await.status, 403);
    assert_eq!(north.delete_school("south").await.status, 404);
    assert_eq!(
        app.reader().get_school("south").await.body["name"],
        "south",
        "unchanged"
    );
    let reader = app.school_operator(&["north"], false);
    assert_eq!(
        app.as_operator(Some(&reader))
            .put_school("north", named("x"))
            .await
            .status,
        403
    );
}

/// Assignment needs the admin of the target school and of the device's current one;
/// only a district admin takes a device out of every school.
async fn assignment_follows_who_administers_what(backend: Backend) {
    let (_dir, app) = start(&backend);
    for id in ["north", "south"] {
        app.administrator().put_school(id, named(id)).await;
    }
    let north_admin = app.school_operator(&["north"], true);
    let north = app.as_operator(Some(&north_admin));
    assert_eq!(
        north.assign_school("new-1", Some("north")).await.status,
        200,
        "a device not yet reported"
    );
    assert_eq!(
        app.administrator()
            .assign_school("south-1", Some("south"))
            .await
            .status,
        200
    );
    let steal = north.assign_school("south-1", Some("north")).await;
    assert_eq!(
        (steal.status, steal.body["error"]["code"].as_str()),
        (404, Some("device_not_found")),
        "another school's device is not there for it"
    );
    let push = north.assign_school("new-1", Some("south")).await;
    assert_eq!(
        (push.status, push.body["error"]["code"].as_str()),
        (404, Some("school_not_found"))
    );
    assert_eq!(north.assign_school("new-1", None).await.status, 403);
    let reader = app.school_operator(&["north"], false);
    assert_eq!(
        app.as_operator(Some(&reader))
            .assign_school("new-2", Some("north"))
            .await
            .status,
        403
    );
    let body = json!({"school": "north"}).to_string().into_bytes();
    let bad = app
        .send_as(
            "PUT",
            "/device/new-1/school",
            Some("application/json"),
            body,
            Some(&north_admin),
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
}

/// `POST /device/{id}/credentials` with a school assigns and issues in one call; a
/// school admin must name one of its schools for a device outside them.
async fn issuing_can_assign_in_one_call(backend: Backend) {
    let (_dir, app) = start(&backend);
    app.administrator().put_school("north", named("North")).await;
    let north = app.school_operator(&["north"], true);
    let north = app.as_operator(Some(&north));
    let without = north.issue_device_credentials("pibook-7", None).await;
    assert_eq!(without.status, 400, "{}", without.body);
    assert_eq!(without.body["error"]["details"][0]["field"], "school_id");
    let issued = north.issue_device_credentials("pibook-7", Some("north")).await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    assert_eq!(issued.body["school_id"], "north");
    let token = format!("Bearer {}", issued.body["token"].as_str().unwrap());
    let again = north.issue_device_credentials("pibook-7", None).await;
    assert_eq!(
        (again.status, again.body["school_id"].as_str()),
        (201, Some("north")),
        "its own device now"
    );
    // The first token was replaced; the second records.
    let newest = format!("Bearer {}", again.body["token"].as_str().unwrap());
    let sent = |auth: String| {
        let app = &app;
        async move {
            crate::support::runner::http::post_json(
                &app.client,
                &app.url("/sync-event"),
                &event("pibook-7", &ago(1), 0, 1),
                Some(&auth),
            )
            .await
            .status
        }
    };
    assert_eq!(sent(token).await, 401);
    assert_eq!(sent(newest).await, 201);
    assert_eq!(north.revoke_device_credentials("pibook-7").await.status, 204);
    assert_eq!(north.revoke_device_credentials("someone-else").await.status, 404);
}

/// A school's threshold applies to its devices (from their next event); their notices
/// carry the school; devices in no school keep the fleet's threshold.
async fn a_schools_threshold_applies_to_its_devices(backend: Backend) {
    let (_dir, app) = start(&backend);
    let admin = app.administrator();
    admin
        .put_school(
            "strict",
            json!({"name": "Strict", "timezone": "UTC", "failure_threshold": 2}),
        )
        .await;
    admin.assign_school("strict-1", Some("strict")).await;
    for m in [5, 4] {
        for device in ["strict-1", "fleet-1"] {
            assert_eq!(
                app.post_sync_event(&event(device, &ago(m), 1, 1)).await.status,
                201
            );
        }
    }
    let alerts = app.wait_for_alerts(|a| !a.is_empty());
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["device_id"], "strict-1");
    assert_eq!(alerts[0]["threshold"], 2);
    assert_eq!(alerts[0]["school_id"], "strict");
    let device = app.get_device("strict-1").await;
    assert_eq!(
        (device.body["status"].as_str(), device.body["school_id"].as_str()),
        (Some("failing"), Some("strict"))
    );
    let fleet = app.get_device("fleet-1").await;
    assert_eq!(
        (fleet.body["status"].as_str(), fleet.body["school_id"].clone()),
        (Some("healthy"), Value::Null)
    );
    let failing = app.get_repeated_failures("school=strict").await;
    assert_eq!(
        (failing.body["threshold"].as_u64(), ids(&failing.body)),
        (Some(2), vec!["strict-1".to_owned()])
    );
}

/// `school=` narrows the lists, the failing list and the summary to one school.
async fn lists_and_summary_narrow_to_one_school(backend: Backend) {
    let (_dir, app) = start(&backend);
    let admin = app.administrator();
    for id in ["north", "south"] {
        admin.put_school(id, named(id)).await;
    }
    for (device, school) in [("n-1", "north"), ("n-2", "north"), ("s-1", "south")] {
        admin.assign_school(device, Some(school)).await;
    }
    for device in ["n-1", "n-2", "s-1", "x-1"] {
        app.post_sync_event(&event(device, &ago(3), 0, 2)).await;
    }
    for m in [2, 1, 0] {
        app.post_sync_event(&event("n-2", &ago(m), 1, 0)).await;
    }
    // Detection lists a device once it has applied its first event: wait for all four.
    wait_for("every device listed", || async {
        let page = app.list_devices("").await;
        (ids(&page.body).len() == 4).then_some(())
    })
    .await;
    assert_eq!(ids(&app.list_devices("school=north").await.body), ["n-1", "n-2"]);
    assert_eq!(ids(&app.list_devices("school=south").await.body), ["s-1"]);
    let failing = wait_for("n-2 failing", || async {
        let page = app.get_repeated_failures("school=north").await;
        (!ids(&page.body).is_empty()).then_some(page.body)
    })
    .await;
    assert_eq!(ids(&failing), ["n-2"]);
    assert!(ids(&app.get_repeated_failures("school=south").await.body).is_empty());
    let summary = wait_for("north's syncs summed", || async {
        let reply = app.fleet_summary("school=north&days=1").await;
        (reply.body["days"][0]["syncs"] == 5).then_some(reply.body)
    })
    .await;
    assert_eq!(
        summary["devices"],
        json!({"total": 2, "healthy": 1, "failing": 1, "silent": 0})
    );
    let counts = app.reader().get_school("north").await.body["devices"].clone();
    assert_eq!(counts, summary["devices"], "the school's counts agree");
    let unknown = app.list_devices("school=nowhere").await;
    assert_eq!(
        (unknown.status, unknown.body["error"]["code"].as_str()),
        (404, Some("school_not_found"))
    );
    let bad = app.list_devices("school=not%20an%20id").await;
    assert_eq!(bad.status, 400);
    // A cursor of one school's list is not another's.
    let first = app.list_devices("school=north&limit=1").await;
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    assert_eq!(
        app.list_devices(&format!("school=south&cursor={cursor}"))
            .await
            .status,
        400
    );
}

on_both_backends!(
    schools_are_created_replaced_listed_and_deleted,
    a_school_with_devices_is_not_deleted,
    school_admins_replace_their_own_school_only,
    assignment_follows_who_administers_what,
    issuing_can_assign_in_one_call,
    a_schools_threshold_applies_to_its_devices,
    lists_and_summary_narrow_to_one_school,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_problem_with_a_school_is_listed_at_once() {
    every_problem_with_a_school_is_listed(Backend::Embedded).await;
}
