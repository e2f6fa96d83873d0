//! What a person reads, for every notice type and channel: compared with the golden
//! files in `shared/tests/golden/` (reviewed by eye; `PISYNC_BLESS=1 cargo test -p
//! pisync-shared --test rendering` rewrites them after a deliberate change).

use pisync_shared::adapters::sns::per_protocol;
use pisync_shared::domain::fleet::FleetCounts;
use pisync_shared::domain::notice::render::{MAX_SMS, MAX_SUBJECT};
use pisync_shared::domain::notice::{
    BackOnlineNotice, DigestDay, FailureAlert, FlappingNotice, Notice, RecoveryNotice, SchoolDigest,
    SilentNotice, StableNotice,
};
use pisync_shared::domain::school::SchoolId;
use pisync_shared::{DeviceId, EventTime};
use std::path::PathBuf;

const DASHBOARD: &str = "https://abc123.execute-api.eu-west-1.amazonaws.com/dashboard";

fn t(text: &str) -> EventTime {
    EventTime::parse_rfc3339(text).unwrap()
}

fn samples() -> Vec<(&'static str, Notice)> {
    let device = DeviceId::parse("pibox-library-2").unwrap();
    vec![
        (
            "repeated_sync_failures",
            Notice::RepeatedFailures(FailureAlert {
                device_id: device.clone(),
                consecutive_failures: 3,
                threshold: 3,
                streak_started_at: t("2025-05-07T10:31:00Z"),
                last_failure_at: t("2025-05-07T10:40:00Z"),
                last_total_errors: 2,
                detected_at: t("2025-05-07T10:40:03Z"),
                alert_id: "pibox-library-2@2025-05-07T09:00:00.000Z".into(),
                school_id: SchoolId::parse("north-high"),
            }),
        ),
        (
            "sync_recovered",
            Notice::Recovered(RecoveryNotice {
                device_id: device.clone(),
                failures_before_recovery: 5,
                recovered_at: t("2025-05-07T12:15:00Z"),
                alert_id: "pibox-library-2@2025-05-07T09:00:00.000Z".into(),
                school_id: SchoolId::parse("north-high"),
            }),
        ),
        (
            "silent",
            Notice::Silent(SilentNotice {
                device_id: device.clone(),
                last_seen_at: t("2025-05-05T16:02:11Z"),
                silent_after_hours: 48.0,
                detected_at: t("2025-05-07T16:03:00Z"),
                alert_id: "pibox-library-2@silent@2025-05-05T16:02:11.000Z".into(),
                school_id: None,
            }),
        ),
        (
            "back_online",
            Notice::BackOnline(BackOnlineNotice {
                device_id: device.clone(),
                silent_since: t("2025-05-05T16:02:11Z"),
                back_at: t("2025-05-09T07:45:30Z"),
                alert_id: "pibox-library-2@silent@2025-05-05T16:02:11.000Z".into(),
                school_id: None,
            }),
        ),
        (
            "flapping",
            Notice::Flapping(FlappingNotice {
                device_id: device.clone(),
                alerts_in_window: 3,
                window_seconds: 86_400,
                detected_at: t("2025-05-07T14:20:02Z"),
                alert_id: "pibox-library-2@flapping@2025-05-07T14:20:00.000Z".into(),
                school_id: SchoolId::parse("north-high"),
            }),
        ),
        (
            "stable",
            Notice::Stable(StableNotice {
                device_id: device.clone(),
                stable_since: t("2025-05-08T09:10:00Z"),
                detected_at: t("2025-05-09T09:11:00Z"),
                alert_id: "pibox-library-2@flapping@2025-05-07T14:20:00.000Z".into(),
                school_id: SchoolId::parse("north-high"),
            }),
        ),
        (
            "digest",
            Notice::Digest(Box::new(SchoolDigest {
                school_id: SchoolId::parse("north-high").unwrap(),
                name: "North High School".into(),
                date: "2025-05-09".into(),
                devices: FleetCounts {
                    total: 42,
                    healthy: 38,
                    failing: 3,
                    silent: 1,
                },
                failing: vec![
                    device,
                    DeviceId::parse("pibook-7b").unwrap(),
                    DeviceId::parse("pibook-12").unwrap(),
                ],
                silent: vec![DeviceId::parse("pibox-gym").unwrap()],
                unpublished: 4,
                yesterday: DigestDay {
                    date: "2025-05-08".into(),
                    syncs: 480,
                    failures: 12,
                    failure_rate: 0.025,
                },
                detected_at: t("2025-05-09T06:00:04Z"),
                alert_id: "north-high@digest@2025-05-09".into(),
            })),
        ),
    ]
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var("PISYNC_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

#[test]
fn every_notice_renders_for_every_channel_as_reviewed() {
    for (name, notice) in samples() {
        let rendered = format!(
            "Subject: {}\n\n{}",
            notice.subject(),
            notice.email_text(Some(DASHBOARD))
        );
        golden(&format!("{name}.email.txt"), &rendered);
        golden(&format!("{name}.sms.txt"), &format!("{}\n", notice.sms()));
        golden(&format!("{name}.text.txt"), &format!("{}\n", notice.summary()));
    }
}

#[test]
fn limits_hold_for_the_longest_device_ids() {
    let long = DeviceId::parse(&"x".repeat(128)).unwrap();
    for (_, mut notice) in samples() {
        match &mut notice {
            Notice::RepeatedFailures(n) => n.device_id = long.clone(),
            Notice::Recovered(n) => n.device_id = long.clone(),
            Notice::Silent(n) => n.device_id = long.clone(),
            Notice::BackOnline(n) => n.device_id = long.clone(),
            Notice::Flapping(n) => n.device_id = long.clone(),
            Notice::Stable(n) => n.device_id = long.clone(),
            // A digest names its school: school ids are at most 64 characters.
            Notice::Digest(n) => n.school_id = SchoolId::parse(&"x".repeat(64)).unwrap(),
        }
        let sms = notice.sms();
        assert!(
            sms.chars().count() <= MAX_SMS,
            "{} chars: {sms}",
            sms.chars().count()
        );
        assert!(sms.contains("xxxx…"), "the id is shortened, not the facts: {sms}");
        assert!(notice.subject().chars().count() <= MAX_SUBJECT);
        assert!(!notice.summary().contains('\n'), "one line");
    }
}

#[test]
fn the_sns_default_message_is_the_contract_json() {
    for (name, notice) in samples() {
        let message: serde_json::Value = serde_json::from_str(&per_protocol(&notice, None)).unwrap();
        let default: serde_json::Value = serde_json::from_str(message["default"].as_str().unwrap()).unwrap();
        let contract: serde_json::Value = serde_json::from_str(&notice.to_json()).unwrap();
        assert_eq!(default, contract, "{name}");
        assert_eq!(default["type"], notice.event_type());
        let email = message["email"].as_str().unwrap();
        assert!(
            !email.contains("dashboard"),
            "{name}: no link without a dashboard URL"
        );
    }
}
