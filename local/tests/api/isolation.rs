//! School isolation, property-style: devices spread at random over schools (and none),
//! reporting at random; then for school operators of one and of two schools, every
//! read route must show exactly the devices of their schools — a device elsewhere
//! answers as one that does not exist, and is in no list, count or summary. Devices
//! then move at random and it is checked again. On both stores. The seed is printed
//! with every failure (`PISYNC_ISOLATION_SEED` repeats a run).

use crate::support::runner::{Backend, Operator, TestApp};
use crate::support::{ago, event, ids, on_both_backends, wait_for};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const SCHOOLS: [&str; 3] = ["a", "b", "c"];
const DEVICES: usize = 12;

/// xorshift64*: small, seeded, enough to spread devices.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    fn school(&mut self) -> Option<&'static str> {
        let pick = self.below(SCHOOLS.len() as u64 + 1) as usize;
        SCHOOLS.get(pick).copied()
    }
}

fn seed() -> u64 {
    std::env::var("PISYNC_ISOLATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64 | 1)
}

fn device(i: usize) -> String {
    format!("iso-{i:02}")
}

/// Every item of a paged list (`key`: its array), following `next_cursor`.
async fn all_pages(
    seed: u64,
    what: &str,
    mut page: impl AsyncFnMut(Option<String>) -> Value,
    key: &str,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let body = page(cursor.take()).await;
        let listed = body[key]
            .as_array()
            .unwrap_or_else(|| panic!("seed {seed}: {what}: {body}"));
        items.extend(listed.iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

fn with_cursor(query: &str, cursor: Option<String>) -> String {
    match cursor {
        Some(c) => format!("{query}&cursor={c}"),
        None => query.to_owned(),
    }
}

/// What the district sees of every device: its school and status.
async fn district_view(app: &TestApp) -> Vec<Value> {
    all_pages(
        0,
        "district list",
        async |c| app.list_devices(&with_cursor("limit=5", c)).await.body,
        "devices",
    )
    .await
}

/// Checks every read route for an operator of `reach` against the district's view.
async fn check_operator(app: &TestApp, seed: u64, reach: &[&str], syncs: &[(usize, u64)]) {
    let token = app.school_operator(reach, false);
    let op: Operator<'_> = app.as_operator(Some(&token));
    let district = district_view(app).await;
    let in_reach = |d: &Value| d["school_id"].as_str().is_some_and(|s| reach.contains(&s));
    let visible: BTreeSet<String> = district
        .iter()
        .filter(|d| in_reach(d))
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect();
    let context = format!("seed {seed}, operator of {reach:?}");
    // One device at a time: the same answer as a device that never existed.
    let ghost = op.get_device("iso-ghost").await;
    for i in 0..DEVICES {
        let id = device(i);
        let got = op.get_device(&id).await;
        let history = op.get_sync_history(&id, "limit=1").await;
        if visible.contains(&id) {
            assert_eq!(
                (got.status, history.status),
                (200, 200),
                "{context}: {id} {}",
                got.body
            );
        } else {
            assert_eq!(got.status, 404, "{context}: {id} leaked: {}", got.body);
            assert_eq!(
                got.body["error"]["code"], ghost.body["error"]["code"],
                "{context}"
            );
            let message = got.body["error"]["message"]
                .as_str()
                .unwrap()
                .replace(&id, "iso-ghost");
            assert_eq!(
                message, ghost.body["error"]["message"],
                "{context}: the same words"
            );
            assert_eq!(history.status, 404, "{context}: {id} history leaked");
        }
    }
    // Every list, every status.
    for status in ["", "&status=healthy", "&status=failing", "&status=silent"] {
        let query = format!("limit=2{status}");
        let listed = all_pages(
            seed,
            "devices",
            async |c| op.list_devices(&with_cursor(&query, c)).await.body,
            "devices",
        )
        .await;
        let listed: BTreeSet<String> = listed
            .iter()
            .map(|d| d["device_id"].as_str().unwrap().to_owned())
            .collect();
        let expected: BTreeSet<String> = district
            .iter()
            .filter(|d| in_reach(d) && (status.is_empty() || status.ends_with(d["status"].as_str().unwrap())))
            .map(|d| d["device_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, expected, "{context}: GET /devices?{query}");
    }
    let failing = all_pages(
        seed,
        "failing",
        async |c| op.get_repeated_failures(&with_cursor("limit=2", c)).await.body,
        "devices",
    )
    .await;
    let failing: BTreeSet<String> = failing
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect();
    let district_failing = ids(&app.get_repeated_failures("limit=100").await.body);
    let expected: BTreeSet<String> = district_failing
        .into_iter()
        .filter(|d| visible.contains(d))
        .collect();
    assert_eq!(failing, expected, "{context}: repeated failures");
    // Counts and the summary: its schools' devices only.
    let summary = op.fleet_summary("days=1").await.body;
    assert_eq!(summary["devices"]["total"], visible.len(), "{context}: {summary}");
    let failing_count = district
        .iter()
        .filter(|d| in_reach(d) && d["status"] == "failing")
        .count();
    assert_eq!(summary["devices"]["failing"], failing_count, "{context}");
    if !syncs.is_empty() {
        // Before any move: the syncs of the last two days (the reports were minutes
        // ago, on either side of a midnight) are those of its devices.
        let expected: u64 = syncs
            .iter()
            .filter(|(i, _)| visible.contains(&device(*i)))
            .map(|(_, n)| n)
            .sum();
        let got = wait_for(&format!("{context}: its syncs summed"), || async {
            let body = op.fleet_summary("days=2").await.body;
            let syncs: Option<u64> = body["days"].as_array()?.iter().map(|d| d["syncs"].as_u64()).sum();
            (syncs == Some(expected)).then_some(syncs)
        })
        .await;
        assert_eq!(got, Some(expected));
    }
    // Schools: only its own, and others answer as missing.
    let schools = op.list_schools("").await.body;
    let listed: Vec<&str> = schools["schools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["school_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, reach, "{context}: GET /schools");
    for school in SCHOOLS {
        let mine = reach.contains(&school);
        assert_eq!(
            op.get_school(school).await.status,
            if mine { 200 } else { 404 },
            "{context}: {school}"
        );
        let narrowed = op.list_devices(&format!("school={school}")).await;
        assert_eq!(
            narrowed.status,
            if mine { 200 } else { 404 },
            "{context}: school={school}"
        );
        if !mine {
            assert_eq!(narrowed.body["error"]["code"], "school_not_found", "{context}");
            assert_eq!(
                op.fleet_summary(&format!("school={school}")).await.status,
                404,
                "{context}"
            );
            assert_eq!(
                op.get_repeated_failures(&format!("school={school}")).await.status,
                404,
                "{context}"
            );
        }
    }
    // The audit trail: readers have none; its admins get exactly the district's
    // entries about its schools (a device moved out of one of them included).
    assert_eq!(op.list_audit("").await.status, 403, "{context}: a reader's audit");
    let admin_token = app.school_operator(reach, true);
    let admin = app.as_operator(Some(&admin_token));
    let theirs = all_pages(
        seed,
        "audit",
        async |c| admin.list_audit(&with_cursor("limit=3", c)).await.body,
        "entries",
    )
    .await;
    let district = all_pages(
        seed,
        "audit",
        async |c| {
            app.administrator()
                .list_audit(&with_cursor("limit=100", c))
                .await
                .body
        },
        "entries",
    )
    .await;
    let about_reach = |e: &&Value| {
        [&e["school_id"], &e["previous_school_id"]]
            .iter()
            .any(|s| s.as_str().is_some_and(|s| reach.contains(&s)))
    };
    let expected: Vec<&Value> = district.iter().filter(about_reach).collect();
    assert_eq!(
        theirs.iter().collect::<Vec<_>>(),
        expected,
        "{context}: GET /audit"
    );
}

async fn school_operators_see_only_their_schools(backend: Backend) {
    let seed = seed();
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&backend, dir.path(), &[]);
    let admin = app.administrator();
    for school in SCHOOLS {
        let reply = admin
            .put_school(school, json!({"name": school, "timezone": "UTC"}))
            .await;
        assert_eq!(reply.status, 201);
    }
    let mut syncs = Vec::new();
    for i in 0..DEVICES {
        if let Some(school) = rng.school() {
            assert_eq!(admin.assign_school(&device(i), Some(school)).await.status, 200);
        }
        let reports = 1 + rng.below(4);
        let failing = rng.below(2) == 0;
        for m in 0..reports {
            let errors = u32::from(failing);
            let reply = app
                .post_sync_event(&event(&device(i), &ago(10 - m as i64), errors, 1))
                .await;
            assert_eq!(reply.status, 201, "seed {seed}: {}", reply.body);
        }
        syncs.push((i, reports));
    }
    let total: u64 = syncs.iter().map(|(_, n)| n).sum();
    wait_for(&format!("seed {seed}: every report applied"), || async {
        let totals: u64 = district_view(&app)
            .await
            .iter()
            .map(|d| d["totals"]["syncs"].as_u64().unwrap_or(0))
            .sum();
        (totals == total).then_some(())
    })
    .await;
    check_operator(&app, seed, &["a"], &syncs).await;
    check_operator(&app, seed, &["a", "b"], &syncs).await;
    // Moves, then the same checks on the new assignment (a day's syncs stay counted
    // where they were applied, so only status and lists are compared).
    for i in 0..DEVICES {
        if rng.below(2) == 0 {
            let to = rng.school();
            assert_eq!(
                admin.assign_school(&device(i), to).await.status,
                200,
                "seed {seed}"
            );
        }
    }
    check_operator(&app, seed, &["b"], &[]).await;
    check_operator(&app, seed, &["a", "c"], &[]).await;
}

on_both_backends!(school_operators_see_only_their_schools);
