use super::*;

fn id(s: &str) -> SchoolId {
    SchoolId::parse(s).unwrap()
}

fn parse(body: &str) -> Result<School, Vec<FieldError>> {
    parse_school(body.as_bytes(), id("riverside"), WebhookRule::HttpsOnly)
}

fn fields(body: &str) -> Vec<String> {
    parse(body).unwrap_err().into_iter().map(|e| e.field).collect()
}

const EXAMPLE: &str = r#"{ "name": "Riverside Primary", "timezone": "Europe/London",
  "hours": { "days": ["mon", "tue", "wed", "thu", "fri"], "open": "08:00", "close": "16:00" },
  "closures": [ { "from": "2026-12-19", "to": "2027-01-04", "reason": "Winter break" } ],
  "failure_threshold": 3, "silent_after": "16h",
  "webhook_url": "https://hooks.example/riverside", "digest_at": "07:00" }"#;

#[test]
fn the_contracts_example_is_a_school_and_reads_back_as_sent() {
    let school = parse(EXAMPLE).unwrap();
    assert_eq!(school.timezone, chrono_tz::Europe::London);
    assert_eq!(school.silent_after(), Duration::from_secs(16 * 3600));
    let json = serde_json::to_value(&school).unwrap();
    let sent: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    for (field, value) in sent.as_object().unwrap() {
        assert_eq!(&json[field], value, "{field}");
    }
    assert_eq!(json["school_id"], "riverside");
    let back: School = serde_json::from_value(json).unwrap();
    assert_eq!(back, school);
}

#[test]
fn only_name_and_timezone_are_required_and_the_rest_reads_as_null() {
    let school = parse(r#"{"name": "Hill", "timezone": "UTC"}"#).unwrap();
    let json = serde_json::to_value(&school).unwrap();
    for field in [
        "hours",
        "failure_threshold",
        "silent_after",
        "webhook_url",
        "digest_at",
    ] {
        assert!(json[field].is_null(), "{field}: {json}");
    }
    assert_eq!(json["closures"], serde_json::json!([]));
    assert_eq!(school.silent_after(), DEFAULT_SILENT_AFTER);
}

#[test]
fn every_problem_is_reported_at_once_one_detail_per_field() {
    let body = r#"{"name": "", "timezone": "Mars/Olympus",
        "hours": {"days": [], "open": "17:00", "close": "16:00"},
        "closures": [{"from": "2026-12-20", "to": "2026-12-19"}],
        "failure_threshold": 0, "silent_after": "30s",
        "webhook_url": "http://hooks.example/x", "digest_at": "25:00", "colour": "red"}"#;
    assert_eq!(
        fields(body),
        [
            "colour",
            "name",
            "timezone",
            "hours",
            "closures",
            "failure_threshold",
            "silent_after",
            "webhook_url",
            "digest_at"
        ]
    );
    assert_eq!(fields(r#"{}"#), ["name", "timezone"]);
    assert_eq!(fields("[1]"), ["body"]);
    assert_eq!(
        fields(r#"{"name": "a", "name": "b", "timezone": "UTC"}"#),
        ["name"]
    );
}

#[test]
fn field_rules_hold_at_their_edges() {
    let with = |extra: &str| {
        parse(&format!(
            r#"{{"name": "S", "timezone": "Asia/Kolkata", {extra}}}"#
        ))
    };
    assert!(with(r#""failure_threshold": 100"#).is_ok());
    assert!(with(r#""failure_threshold": 101"#).is_err());
    assert!(with(r#""silent_after": "60s""#).is_ok());
    assert!(with(r#""silent_after": "59s""#).is_err());
    assert!(with(r#""silent_after": "60d""#).is_ok());
    assert!(with(r#""silent_after": "61d""#).is_err());
    assert!(with(r#""hours": {"days": ["sat"], "open": "00:00", "close": "24:00"}"#).is_ok());
    assert!(with(r#""hours": {"days": ["sat"], "open": "24:00", "close": "24:00"}"#).is_err());
    assert!(with(r#""hours": {"days": ["funday"], "open": "08:00", "close": "09:00"}"#).is_err());
    assert!(with(r#""hours": {"days": ["mon"], "open": "8:00", "close": "09:00"}"#).is_err());
    assert!(with(r#""digest_at": "24:00""#).is_err());
    let many: Vec<String> = (0..=MAX_CLOSURES)
        .map(|_| r#"{"from": "2026-01-01", "to": "2026-01-01"}"#.to_owned())
        .collect();
    assert!(with(&format!(r#""closures": [{}]"#, many[1..].join(","))).is_ok());
    assert!(with(&format!(r#""closures": [{}]"#, many.join(","))).is_err());
    assert!(with(&format!(r#""name": "{}""#, "x".repeat(201))).is_err());
}

#[test]
fn a_local_receiver_is_allowed_only_where_the_rule_allows_it() {
    let body = r#"{"name": "S", "timezone": "UTC", "webhook_url": "http://127.0.0.1:9000/hook"}"#;
    assert!(parse(body).is_err());
    assert!(parse_school(body.as_bytes(), id("s"), WebhookRule::HttpsOrLoopback).is_ok());
}

#[test]
fn school_ids_follow_their_rule() {
    for ok in ["riverside", "R-1.b_2", &"x".repeat(64)] {
        assert!(SchoolId::parse(ok).is_some(), "{ok}");
    }
    for bad in ["", "a b", "a/b", "é", &"x".repeat(65), "a:b"] {
        assert!(SchoolId::parse(bad).is_none(), "{bad}");
    }
}

fn at(text: &str) -> EventTime {
    EventTime::parse_rfc3339(text).unwrap()
}

fn riverside() -> School {
    parse(EXAMPLE).unwrap()
}

#[test]
fn a_device_quiet_from_friday_afternoon_is_silent_on_tuesday_not_sunday() {
    // Friday 2026-11-27 15:00 London (UTC in winter): 1 h left that day, 8 h on Monday,
    // the last 7 h on Tuesday.
    let school = riverside();
    let due = school.add_open_time(at("2026-11-27T15:00:00Z"), Duration::from_secs(16 * 3600));
    assert_eq!(due, Some(at("2026-12-01T15:00:00Z")));
    assert_eq!(
        school.open_time_between(at("2026-11-27T15:00:00Z"), at("2026-11-29T23:00:00Z")),
        Duration::from_secs(3600),
        "a weekend adds no open time"
    );
}

#[test]
fn closures_are_not_open_time() {
    // The winter break runs 19 Dec to 4 Jan inclusive: quiet from Friday 18 Dec 08:00,
    // 8 h that day, then nothing until Tuesday 5 Jan.
    let school = riverside();
    let due = school.add_open_time(at("2026-12-18T08:00:00Z"), Duration::from_secs(16 * 3600));
    assert_eq!(due, Some(at("2027-01-05T16:00:00Z")));
    assert!(!school.is_open_day(NaiveDate::from_ymd_opt(2027, 1, 4).unwrap()));
    assert!(school.is_open_day(NaiveDate::from_ymd_opt(2027, 1, 5).unwrap()));
}

#[test]
fn open_hours_are_local_time_across_daylight_saving() {
    // London moves to BST on Sunday 29 March 2026: open 08:00 local is 08:00Z on Friday
    // 27 March and 07:00Z on Monday 30 March.
    let school = riverside();
    let due = school.add_open_time(at("2026-03-27T15:00:00Z"), Duration::from_secs(2 * 3600));
    assert_eq!(due, Some(at("2026-03-30T08:00:00Z")));
    // Open all day, every day: open time is elapsed time, 23 h on the short Sunday.
    let always = parse(r#"{"name": "Always", "timezone": "Europe/London"}"#).unwrap();
    let start = at("2026-03-28T12:00:00Z");
    assert_eq!(
        always.add_open_time(start, Duration::from_secs(24 * 3600)),
        Some(start.plus_millis(24 * 3_600_000))
    );
    let sunday = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
    let (open, close) = always.open_interval(sunday).unwrap();
    assert_eq!(close.millis() - open.millis(), 23 * 3_600_000);
}

#[test]
fn a_school_never_open_long_enough_never_makes_a_device_silent() {
    let closed = parse(
        r#"{"name": "Closed", "timezone": "UTC",
            "closures": [{"from": "2000-01-01", "to": "2099-12-31"}]}"#,
    )
    .unwrap();
    assert_eq!(
        closed.add_open_time(at("2026-01-01T00:00:00Z"), Duration::from_secs(60)),
        None
    );
}

#[test]
fn open_time_is_consistent_with_the_instant_it_adds_up_to() {
    // Quiet for a random stretch in a school with hours: the open time between the two
    // instants is what add_open_time was asked for.
    let school = riverside();
    let mut start = at("2026-11-02T06:13:00Z");
    for i in 0..200u64 {
        let amount = Duration::from_secs(60 + (i * 7_919) % (40 * 3600));
        let due = school.add_open_time(start, amount).unwrap();
        assert_eq!(
            school.open_time_between(start, due),
            amount,
            "from {start} for {amount:?}"
        );
        start = start.plus_millis(3_600_000 * 7 + 60_000 * (i as i64 % 59));
    }
}

#[test]
fn a_digest_is_due_from_its_local_time_on_open_days_only() {
    let school = riverside(); // digest at 07:00 Europe/London, open Monday to Friday
    let date = |text: &str| text.parse::<NaiveDate>().ok();
    assert_eq!(school.digest_due(at("2026-12-02T06:59:59Z")), None, "not yet");
    assert_eq!(school.digest_due(at("2026-12-02T07:00:00Z")), date("2026-12-02"));
    assert_eq!(
        school.digest_due(at("2026-12-02T23:59:00Z")),
        date("2026-12-02"),
        "still today's"
    );
    assert_eq!(
        school.digest_due(at("2026-07-01T06:00:00Z")),
        date("2026-07-01"),
        "07:00 BST is 06:00 UTC"
    );
    assert_eq!(school.digest_due(at("2026-07-01T05:59:00Z")), None);
    assert_eq!(school.digest_due(at("2026-12-05T12:00:00Z")), None, "a Saturday");
    assert_eq!(
        school.digest_due(at("2026-12-21T12:00:00Z")),
        None,
        "winter break"
    );
    let without = School {
        digest_at: None,
        ..riverside()
    };
    assert_eq!(
        without.digest_due(at("2026-12-02T12:00:00Z")),
        None,
        "no digest_at"
    );
}
