//! Turns a request body into a [`SyncEvent`], reporting every problem at once.

use crate::domain::event::{DeviceId, SyncEvent, MAX_COUNT};
use crate::domain::time::EventTime;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

/// One problem with one field (or with the body as a whole: field `body`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Bounds that depend on the server rather than the contract's fixed rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRules {
    /// How far ahead of server time a device clock may be.
    pub max_clock_skew_millis: i64,
}

impl Default for EventRules {
    fn default() -> Self {
        Self {
            max_clock_skew_millis: 15 * 60 * 1000,
        }
    }
}

const FIELDS: [&str; 5] = [
    "device_id",
    "timestamp",
    "total_files_synced",
    "total_errors",
    "internet_speed",
];

/// Longest field name echoed back in an error, so a hostile key cannot bloat the reply.
const MAX_ECHOED_NAME: usize = 64;

/// Parses and validates a sync event. `now` is the server's clock.
/// No PiBook or PiBox reported before this: an earlier timestamp is a reset clock.
pub const EARLIEST_TIMESTAMP: EventTime = EventTime::YEAR_2000;

pub fn parse_sync_event(
    body: &[u8],
    now: EventTime,
    rules: EventRules,
) -> Result<SyncEvent, Vec<FieldError>> {
    let members = parse_object(body)?;
    let mut errors = Vec::new();
    let mut slots: [Option<Value>; 5] = Default::default();
    for (name, value) in members {
        match FIELDS.iter().position(|f| *f == name) {
            Some(i) if slots[i].is_some() => errors.push(FieldError::new(name, "appears more than once")),
            Some(i) => slots[i] = Some(value),
            None => errors.push(FieldError::new(echo_name(&name), "unknown field")),
        }
    }
    let [device_id, timestamp, files, errs, speed] = slots;

    let device_id = required(&mut errors, "device_id", device_id, |v| {
        v.as_str()
            .and_then(DeviceId::parse)
            .ok_or(DeviceId::RULE.to_owned())
    });
    let timestamp = required(&mut errors, "timestamp", timestamp, |v| {
        let text = v.as_str().ok_or("must be an RFC 3339 timestamp string")?;
        let t = EventTime::parse_rfc3339(text)
            .ok_or("must be an RFC 3339 timestamp with an offset, e.g. 2025-05-07T10:30:00Z")?;
        if t < EARLIEST_TIMESTAMP {
            return Err(format!("must not be earlier than {EARLIEST_TIMESTAMP}"));
        }
        let latest = now.plus_millis(rules.max_clock_skew_millis);
        if t > latest {
            return Err(format!(
                "must not be later than server time plus {} s (latest accepted now: {latest})",
                rules.max_clock_skew_millis / 1000
            ));
        }
        Ok(t)
    });
    let total_files_synced = required(&mut errors, "total_files_synced", files, count);
    let total_errors = required(&mut errors, "total_errors", errs, count);
    let internet_speed = required(&mut errors, "internet_speed", speed, |v| match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(x + 0.0), // +0.0 folds −0 into 0
            Some(x) if x.is_finite() => Err("must be ≥ 0".to_owned()),
            _ => Err("must be a finite number".to_owned()),
        },
        _ => Err("must be a number (Mbit/s)".to_owned()),
    });

    match (
        device_id,
        timestamp,
        total_files_synced,
        total_errors,
        internet_speed,
    ) {
        (Some(device_id), Some(timestamp), Some(files), Some(errs), Some(speed)) if errors.is_empty() => {
            Ok(SyncEvent {
                device_id,
                timestamp,
                total_files_synced: files,
                total_errors: errs,
                internet_speed: speed,
            })
        }
        _ => Err(errors),
    }
}

fn count(v: &Value) -> Result<u32, String> {
    let Value::Number(n) = v else {
        return Err("must be an integer".to_owned());
    };
    if let Some(u) = n.as_u64() {
        return u32::try_from(u)
            .ok()
            .filter(|u| *u <= MAX_COUNT)
            .ok_or(format!("must be ≤ {MAX_COUNT}"));
    }
    if n.as_i64().is_some() {
        return Err("must be ≥ 0".to_owned());
    }
    Err("must be an integer".to_owned())
}

fn required<T>(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<Value>,
    check: impl FnOnce(&Value) -> Result<T, String>,
) -> Option<T> {
    let Some(value) = value else {
        errors.push(FieldError::new(field, "is required"));
        return None;
    };
    check(&value)
        .map_err(|message| errors.push(FieldError::new(field, message)))
        .ok()
}

pub(crate) fn echo_name(name: &str) -> String {
    match name.char_indices().nth(MAX_ECHOED_NAME) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_owned(),
    }
}

/// Most events in one `POST /sync-events` request.
pub const MAX_BATCH_EVENTS: usize = 100;

/// The envelope of a backlog upload, `{"events": [ … ]}`: each event's raw JSON, in
/// order, for [`parse_sync_event`] to judge one by one. Every problem with the
/// envelope itself is reported at once; the events' own problems are not looked at.
pub fn parse_batch(body: &[u8]) -> Result<Vec<&RawValue>, Vec<FieldError>> {
    let members = parse_members::<&RawValue>(body)?;
    let mut errors = Vec::new();
    let mut events: Option<&RawValue> = None;
    for (name, value) in members {
        if name != "events" {
            errors.push(FieldError::new(echo_name(&name), "unknown field"));
        } else if events.is_some() {
            errors.push(FieldError::new("events", "appears more than once"));
        } else {
            events = Some(value);
        }
    }
    let items = match events {
        None => {
            errors.push(FieldError::new("events", "is required"));
            None
        }
        Some(raw) => match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
            Err(_) => {
                errors.push(FieldError::new("events", "must be an array of sync events"));
                None
            }
            Ok(items) if items.is_empty() || items.len() > MAX_BATCH_EVENTS => {
                errors.push(FieldError::new(
                    "events",
                    format!("must hold 1 to {MAX_BATCH_EVENTS} events, got {}", items.len()),
                ));
                None
            }
            Ok(items) => Some(items),
        },
    };
    match items {
        Some(items) if errors.is_empty() => Ok(items),
        _ => Err(errors),
    }
}

/// The members of a JSON object in order, duplicates kept so they can be reported.
fn parse_object(body: &[u8]) -> Result<Vec<(String, Value)>, Vec<FieldError>> {
    parse_members::<Value>(body)
}

/// The members of a JSON object, values as `V` (a parsed value, or the raw text).
pub(crate) fn parse_members<'de, V: serde::Deserialize<'de>>(
    body: &'de [u8],
) -> Result<Vec<(String, V)>, Vec<FieldError>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let members = de
        .deserialize_map(MembersVisitor(std::marker::PhantomData))
        .and_then(|members| de.end().map(|()| members));
    members.map_err(|e| {
        let message = if body.iter().all(u8::is_ascii_whitespace) {
            "is empty; expected a JSON object".to_owned()
        } else {
            format!("is not a valid JSON object: {e}")
        };
        vec![FieldError::new("body", message)]
    })
}

struct MembersVisitor<V>(std::marker::PhantomData<V>);

impl<'de, V: serde::Deserialize<'de>> Visitor<'de> for MembersVisitor<V> {
    type Value = Vec<(String, V)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(5);
        while let Some(entry) = map.next_entry::<String, V>()? {
            members.push(entry);
        }
        Ok(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_hands_back_each_event_raw() {
        let body = br#"{"events":[{"a":1},{"device_id":"d","device_id":"e"}]}"#;
        let items = parse_batch(body).unwrap();
        assert_eq!(items.len(), 2);
        // Raw, so a duplicate key inside an event is still seen by the event's parser.
        assert_eq!(items[1].get(), r#"{"device_id":"d","device_id":"e"}"#);
    }

    #[test]
    fn every_envelope_problem_is_reported() {
        let fields = |body: &str| -> Vec<String> {
            parse_batch(body.as_bytes())
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(r#"{"evnts":[]}"#), ["evnts", "events"]);
        assert_eq!(fields(r#"{"events":{}}"#), ["events"]);
        assert_eq!(fields(r#"{"events":[]}"#), ["events"]);
        assert_eq!(fields(r#"{"events":[1],"events":[2]}"#), ["events"]);
        assert_eq!(fields("[]"), ["body"]);
        assert_eq!(fields(""), ["body"]);
        let over: Vec<&str> = vec!["{}"; MAX_BATCH_EVENTS + 1];
        assert_eq!(
            fields(&format!(r#"{{"events":[{}]}}"#, over.join(","))),
            ["events"]
        );
        let full: Vec<&str> = vec!["{}"; MAX_BATCH_EVENTS];
        assert!(parse_batch(format!(r#"{{"events":[{}]}}"#, full.join(",")).as_bytes()).is_ok());
    }

    fn now() -> EventTime {
        EventTime::parse_rfc3339("2025-05-07T12:00:00Z").unwrap()
    }

    fn parse(body: &str) -> Result<SyncEvent, Vec<FieldError>> {
        parse_sync_event(body.as_bytes(), now(), EventRules::default())
    }

    fn fields(body: &str) -> Vec<(String, String)> {
        parse(body)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    const VALID: &str = r#"{"device_id":"device_12345","timestamp":"2025-05-07T10:30:00Z","total_files_synced":42,"total_errors":2,"internet_speed":5.3}"#;

    #[test]
    fn accepts_the_contract_example() {
        let e = parse(VALID).unwrap();
        assert_eq!(e.device_id.as_str(), "device_12345");
        assert_eq!(e.timestamp.to_string(), "2025-05-07T10:30:00.000Z");
        assert_eq!((e.total_files_synced, e.total_errors), (42, 2));
        assert_eq!(e.internet_speed, 5.3);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let got = fields(
            r#"{"device_id":"bad id","timestamp":"yesterday","total_files_synced":-1,"total_errors":1.5,"internet_speed":-2,"colour":"red"}"#,
        );
        let names: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "colour",
                "device_id",
                "timestamp",
                "total_files_synced",
                "total_errors",
                "internet_speed"
            ]
        );
        assert!(got
            .iter()
            .any(|(f, m)| f == "total_files_synced" && m == "must be ≥ 0"));
        assert!(got
            .iter()
            .any(|(f, m)| f == "internet_speed" && m == "must be ≥ 0"));
        assert!(got.iter().any(|(f, m)| f == "colour" && m == "unknown field"));
    }

    #[test]
    fn missing_fields_are_each_named() {
        let got = fields("{}");
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|(_, m)| m == "is required"));
    }

    #[test]
    fn count_bounds() {
        let body = |n: &str| {
            VALID.replace(
                "\"total_files_synced\":42",
                &format!("\"total_files_synced\":{n}"),
            )
        };
        assert_eq!(parse(&body("0")).unwrap().total_files_synced, 0);
        assert_eq!(parse(&body("2147483647")).unwrap().total_files_synced, MAX_COUNT);
        for bad in [
            "2147483648",
            "18446744073709551616",
            "-1",
            "1.0",
            "\"3\"",
            "null",
            "true",
        ] {
            assert_eq!(fields(&body(bad))[0].0, "total_files_synced", "{bad}");
        }
    }

    #[test]
    fn speed_rules() {
        let body = |n: &str| VALID.replace("5.3", n);
        assert_eq!(parse(&body("0")).unwrap().internet_speed, 0.0);
        assert!(parse(&body("-0.0")).unwrap().internet_speed.is_sign_positive());
        assert_eq!(parse(&body("7")).unwrap().internet_speed, 7.0);
        for bad in ["-0.1", "\"fast\"", "null"] {
            assert_eq!(fields(&body(bad))[0].0, "internet_speed", "{bad}");
        }
        // Out-of-range literals are not valid JSON numbers for us: a 400 on the body.
        assert_eq!(fields(&body("1e999"))[0].0, "body");
    }

    #[test]
    fn timestamp_rules() {
        let body = |t: &str| VALID.replace("2025-05-07T10:30:00Z", t);
        assert_eq!(
            parse(&body("2025-05-07T16:00:00+05:30"))
                .unwrap()
                .timestamp
                .to_string(),
            "2025-05-07T10:30:00.000Z"
        );
        // 15 minutes of skew allowed, not more.
        assert!(parse(&body("2025-05-07T12:15:00Z")).is_ok());
        let late = fields(&body("2025-05-07T12:15:00.001Z"));
        assert_eq!(late[0].0, "timestamp");
        assert!(late[0].1.contains("server time"));
        for bad in ["2025-05-07T10:30:00", "2025-05-07", "not a time"] {
            assert_eq!(fields(&body(bad))[0].0, "timestamp", "{bad}");
        }
        let custom = EventRules {
            max_clock_skew_millis: 0,
        };
        assert!(parse_sync_event(body("2025-05-07T12:00:00.001Z").as_bytes(), now(), custom).is_err());
    }

    #[test]
    fn timestamps_before_2000_are_a_reset_clock() {
        let body = |t: &str| VALID.replace("2025-05-07T10:30:00Z", t);
        assert!(parse(&body("2000-01-01T00:00:00Z")).is_ok());
        for old in [
            "1999-12-31T23:59:59.999Z",
            "1970-01-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
        ] {
            let got = fields(&body(old));
            assert_eq!(got[0].0, "timestamp", "{old}");
            assert!(got[0].1.contains("2000-01-01T00:00:00.000Z"), "{}", got[0].1);
        }
    }

    #[test]
    fn dot_device_ids_are_refused() {
        for id in [".", ".."] {
            let got = fields(&VALID.replace("device_12345", id));
            assert_eq!(got[0].0, "device_id", "{id}");
        }
        assert!(parse(&VALID.replace("device_12345", "...")).is_ok());
        assert!(parse(&VALID.replace("device_12345", ".hidden")).is_ok());
    }

    #[test]
    fn duplicate_keys_are_not_silently_merged() {
        let body = VALID.replace("\"total_errors\":2", "\"total_errors\":2,\"total_errors\":0");
        assert_eq!(
            fields(&body),
            [("total_errors".to_owned(), "appears more than once".to_owned())]
        );
    }

    #[test]
    fn malformed_bodies_are_one_body_error() {
        for bad in [
            "",
            "   ",
            "[]",
            "42",
            "{",
            "{\"device_id\":}",
            "null",
            &format!("{VALID} trailing"),
            "\u{feff}{}",
        ] {
            let got = fields(bad);
            assert_eq!(got.len(), 1, "{bad}");
            assert_eq!(got[0].0, "body", "{bad}");
        }
    }

    #[test]
    fn long_unknown_names_are_truncated_in_errors() {
        let body = VALID.replace("{", &format!("{{\"{}\":1,", "k".repeat(500)));
        let got = fields(&body);
        assert_eq!(got[0].0.chars().count(), MAX_ECHOED_NAME + 1);
    }
}
