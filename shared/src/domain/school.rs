//! A school: where devices are, whose staff look after them, and when it is open.
//! Its hours and closures, in its own timezone (DST included, from the tz database),
//! decide how much *open time* has passed since a device's last report
//! ([`School::add_open_time`]): a device that stops on Friday afternoon is not silent
//! on Sunday, nor during a holiday.

use crate::domain::time::EventTime;
use crate::domain::validate::{echo_name, parse_members, FieldError};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// Longest school id.
pub const MAX_SCHOOL_ID_LEN: usize = 64;
/// Longest school name.
pub const MAX_NAME_LEN: usize = 200;
/// Most closures a school keeps.
pub const MAX_CLOSURES: usize = 400;
/// Longest closure reason.
pub const MAX_REASON_LEN: usize = 200;
/// Silence after this much open time unless the school says otherwise.
pub const DEFAULT_SILENT_AFTER: Duration = Duration::from_secs(16 * 3600);
/// Bounds of a school's `silent_after`.
pub const MIN_SILENT_AFTER: Duration = Duration::from_secs(60);
pub const MAX_SILENT_AFTER: Duration = Duration::from_secs(60 * 86_400);
/// Bounds of a school's `failure_threshold`.
pub const MAX_FAILURE_THRESHOLD: u32 = 100;
/// How far ahead [`School::add_open_time`] looks for enough open time before it gives
/// up (a school closed for ten years is not going to make a device silent).
const LOOK_AHEAD_DAYS: u32 = 3_660;

/// A school's identity: 1–64 characters of `A-Z a-z 0-9 _ - .`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SchoolId(String);

impl SchoolId {
    pub const RULE: &'static str = "must be 1–64 characters of A-Z a-z 0-9 _ - .";

    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= MAX_SCHOOL_ID_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        ok.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SchoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SchoolId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SchoolId::parse(&text).ok_or_else(|| serde::de::Error::custom(SchoolId::RULE))
    }
}

/// A time of day in minutes since local midnight; `24:00` (1440) closes at midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalTime(u16);

impl LocalTime {
    pub const MIDNIGHT: LocalTime = LocalTime(0);

    /// `HH:MM`, 00:00–23:59, or 24:00 when `end_of_day` may be.
    pub fn parse(text: &str, end_of_day: bool) -> Option<Self> {
        let (h, m) = text.split_once(':')?;
        if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        match (h, m) {
            (24, 0) if end_of_day => Some(Self(1440)),
            (0..=23, 0..=59) => Some(Self(h * 60 + m)),
            _ => None,
        }
    }

    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        LocalTime::parse(&text, true).ok_or_else(|| serde::de::Error::custom("a time HH:MM"))
    }
}

/// The days and the daily hours a school is open, local time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hours {
    #[serde(with = "weekdays")]
    pub days: Vec<Weekday>,
    pub open: LocalTime,
    pub close: LocalTime,
}

/// Days a school is closed, inclusive, local dates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    pub from: NaiveDate,
    pub to: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A school as stored and returned (absent settings are `null`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct School {
    pub school_id: SchoolId,
    pub name: String,
    #[serde(with = "timezone")]
    pub timezone: Tz,
    pub hours: Option<Hours>,
    #[serde(default)]
    pub closures: Vec<Closure>,
    pub failure_threshold: Option<u32>,
    #[serde(with = "duration_text")]
    pub silent_after: Option<Duration>,
    pub webhook_url: Option<String>,
    pub digest_at: Option<LocalTime>,
}

/// Whether a school's `webhook_url` may be plain `http://` to this machine (the local
/// runner) or must be `https://` (AWS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookRule {
    HttpsOnly,
    HttpsOrLoopback,
}

const FIELDS: [&str; 8] = [
    "name",
    "timezone",
    "hours",
    "closures",
    "failure_threshold",
    "silent_after",
    "webhook_url",
    "digest_at",
];

/// Parses and validates the body of `PUT /schools/{school_id}`, reporting every
/// problem at once (one detail per field).
pub fn parse_school(
    body: &[u8],
    school_id: SchoolId,
    webhooks: WebhookRule,
) -> Result<School, Vec<FieldError>> {
    let members = parse_members::<Value>(body)?;
    let mut errors = Vec::new();
    let mut slots: [Option<Value>; 8] = Default::default();
    for (name, value) in members {
        match FIELDS.iter().position(|f| *f == name) {
            Some(i) if slots[i].is_some() => errors.push(FieldError::new(name, "appears more than once")),
            Some(i) => slots[i] = Some(value),
            None => errors.push(FieldError::new(echo_name(&name), "unknown field")),
        }
    }
    let [name, timezone, hours, closures, threshold, silent_after, webhook_url, digest_at] = slots;
    let name = checked(
        &mut errors,
        "name",
        match name {
            None | Some(Value::Null) => Err("is required".into()),
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_NAME_LEN => Ok(s),
            Some(_) => Err(format!("must be a string of 1 to {MAX_NAME_LEN} characters")),
        },
    );
    let timezone = checked(
        &mut errors,
        "timezone",
        match timezone {
            None | Some(Value::Null) => Err("is required".into()),
            Some(Value::String(s)) => s
                .parse::<Tz>()
                .map_err(|_| String::from("must be an IANA timezone name, such as Europe/London or UTC")),
            Some(_) => Err("must be an IANA timezone name".into()),
        },
    );
    let hours = optional(hours, &mut errors, "hours", parse_hours);
    let closures = optional(closures, &mut errors, "closures", parse_closures).unwrap_or_default();
    let failure_threshold = optional(threshold, &mut errors, "failure_threshold", |v| {
        match v.as_u64() {
            Some(n @ 1..=100) => Ok(n as u32),
            _ => Err(format!("must be an integer from 1 to {MAX_FAILURE_THRESHOLD}")),
        }
    });
    let silent_after = optional(silent_after, &mut errors, "silent_after", |v| {
        let parsed = v.as_str().and_then(crate::config::parse_duration);
        match parsed {
            Some(d) if (MIN_SILENT_AFTER..=MAX_SILENT_AFTER).contains(&d) => Ok(d),
            _ => Err("must be a duration of open time from 60s to 60d, such as 16h, 90m or 60s".into()),
        }
    });
    let webhook_url = optional(webhook_url, &mut errors, "webhook_url", |v| {
        let url = v.as_str().ok_or("must be a URL string")?;
        let allowed = match webhooks {
            WebhookRule::HttpsOnly => url.starts_with("https://") && url.len() > 8 && url.len() <= 2048,
            WebhookRule::HttpsOrLoopback => crate::config::is_webhook_url(url) && url.len() <= 2048,
        };
        if !allowed || url.chars().any(char::is_whitespace) {
            return Err(match webhooks {
                WebhookRule::HttpsOnly => "must be an https:// URL".into(),
                WebhookRule::HttpsOrLoopback => "must be an https:// URL (or http:// to this machine)".into(),
            });
        }
        Ok(url.to_owned())
    });
    let digest_at = optional(digest_at, &mut errors, "digest_at", |v| {
        v.as_str()
            .and_then(|t| LocalTime::parse(t, false))
            .ok_or_else(|| "must be a local time HH:MM".into())
    });
    match (name, timezone) {
        (Some(name), Some(timezone)) if errors.is_empty() => Ok(School {
            school_id,
            name,
            timezone,
            hours,
            closures,
            failure_threshold,
            silent_after,
            webhook_url,
            digest_at,
        }),
        _ => Err(errors),
    }
}

/// A required field's verdict, its problem (if any) added to `errors`.
fn checked<T>(errors: &mut Vec<FieldError>, field: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|message| errors.push(FieldError::new(field, message)))
        .ok()
}

/// An optional field: absent or `null` is `None`; otherwise `check` decides.
fn optional<T>(
    value: Option<Value>,
    errors: &mut Vec<FieldError>,
    field: &str,
    check: impl FnOnce(&Value) -> Result<T, String>,
) -> Option<T> {
    match value {
        None | Some(Value::Null) => None,
        Some(v) => check(&v).map_err(|m| errors.push(FieldError::new(field, m))).ok(),
    }
}

fn parse_hours(v: &Value) -> Result<Hours, String> {
    let Value::Object(map) = v else {
        return Err("must be an object {days, open, close}".into());
    };
    let mut problems = Vec::new();
    if let Some(unknown) = map
        .keys()
        .find(|k| !["days", "open", "close"].contains(&k.as_str()))
    {
        problems.push(format!("has an unknown field {}", echo_name(unknown)));
    }
    let days = match map.get("days").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => {
            let parsed: Option<Vec<Weekday>> =
                list.iter().map(|d| d.as_str().and_then(parse_weekday)).collect();
            match parsed {
                Some(mut days) => {
                    days.sort_by_key(|d| d.num_days_from_monday());
                    days.dedup();
                    Some(days)
                }
                None => {
                    problems.push("days must name days as mon, tue, wed, thu, fri, sat, sun".into());
                    None
                }
            }
        }
        _ => {
            problems.push("days must be a non-empty list of mon … sun".into());
            None
        }
    };
    let time = |name: &str, end: bool| {
        map.get(name)
            .and_then(Value::as_str)
            .and_then(|t| LocalTime::parse(t, end))
    };
    let (open, close) = (time("open", false), time("close", true));
    if open.is_none() {
        problems.push("open must be a local time HH:MM".into());
    }
    if close.is_none() {
        problems.push("close must be a local time HH:MM (24:00 for midnight)".into());
    }
    if let (Some(o), Some(c)) = (open, close) {
        if o >= c {
            problems.push("open must be earlier than close".into());
        }
    }
    match (days, open, close) {
        (Some(days), Some(open), Some(close)) if problems.is_empty() => Ok(Hours { days, open, close }),
        _ => Err(problems.join("; ")),
    }
}

fn parse_weekday(text: &str) -> Option<Weekday> {
    Some(match text {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

fn parse_closures(v: &Value) -> Result<Vec<Closure>, String> {
    let Value::Array(list) = v else {
        return Err("must be a list of {from, to, reason}".into());
    };
    if list.len() > MAX_CLOSURES {
        return Err(format!(
            "must hold at most {MAX_CLOSURES} closures, got {}",
            list.len()
        ));
    }
    let mut closures = Vec::with_capacity(list.len());
    let mut problems = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let Value::Object(map) = item else {
            problems.push(format!("[{i}] must be an object {{from, to, reason}}"));
            continue;
        };
        if let Some(unknown) = map
            .keys()
            .find(|k| !["from", "to", "reason"].contains(&k.as_str()))
        {
            problems.push(format!("[{i}] has an unknown field {}", echo_name(unknown)));
        }
        let date = |name: &str| {
            map.get(name)
                .and_then(Value::as_str)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        };
        let (from, to) = (date("from"), date("to"));
        let reason = match map.get("reason") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(r)) if r.chars().count() <= MAX_REASON_LEN => Ok(Some(r.clone())),
            Some(_) => Err(format!(
                "[{i}].reason must be a string of at most {MAX_REASON_LEN} characters"
            )),
        };
        match (from, to, reason) {
            (Some(from), Some(to), Ok(reason)) if from <= to => closures.push(Closure { from, to, reason }),
            (Some(_), Some(_), Ok(_)) => problems.push(format!("[{i}] from must not be later than to")),
            (from, to, reason) => {
                if from.is_none() || to.is_none() {
                    problems.push(format!("[{i}] from and to must be dates YYYY-MM-DD"));
                }
                if let Err(e) = reason {
                    problems.push(e);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    closures.sort_by_key(|c| (c.from, c.to));
    Ok(closures)
}

impl School {
    /// The silent period in open time: the school's, else 16 h.
    pub fn silent_after(&self) -> Duration {
        self.silent_after.unwrap_or(DEFAULT_SILENT_AFTER)
    }

    /// The local date of `t` in the school's timezone.
    pub fn local_date(&self, t: EventTime) -> NaiveDate {
        self.timezone
            .from_utc_datetime(&to_utc(t).naive_utc())
            .date_naive()
    }

    /// Whether the school opens on `date` (a day of its hours, not closed).
    pub fn is_open_day(&self, date: NaiveDate) -> bool {
        let weekday_open = self
            .hours
            .as_ref()
            .is_none_or(|h| h.days.contains(&date.weekday()));
        weekday_open && !self.is_closed(date)
    }

    fn is_closed(&self, date: NaiveDate) -> bool {
        // Sorted by `from`: only closures starting on or before `date` can hold it.
        let starts_by = self.closures.partition_point(|c| c.from <= date);
        self.closures[..starts_by].iter().any(|c| date <= c.to)
    }

    /// The local date whose daily digest is due at `now`: today's, once its `digest_at`
    /// has passed on an open day (`None`: no digest, closed today, or not yet time).
    pub fn digest_due(&self, now: EventTime) -> Option<NaiveDate> {
        let at = self.digest_at?;
        let today = self.local_date(now);
        (self.is_open_day(today) && self.instant(today, at)? <= now).then_some(today)
    }

    /// The open hours of `date` as an instant range (`None`: closed that day).
    fn open_interval(&self, date: NaiveDate) -> Option<(EventTime, EventTime)> {
        if !self.is_open_day(date) {
            return None;
        }
        let (open, close) = match &self.hours {
            Some(h) => (h.open, h.close),
            None => (LocalTime::MIDNIGHT, LocalTime(1440)),
        };
        let start = self.instant(date, open)?;
        let end = self.instant(date, close)?;
        (start < end).then_some((start, end))
    }

    /// The instant a local date and time names: the earlier of an ambiguous local time
    /// (clocks going back), the first valid one after a gap (clocks going forward).
    fn instant(&self, date: NaiveDate, time: LocalTime) -> Option<EventTime> {
        let midnight = NaiveDateTime::new(date, NaiveTime::MIN);
        let mut local = midnight + chrono::Duration::minutes(i64::from(time.0));
        for _ in 0..8 {
            if let Some(t) = self.timezone.from_local_datetime(&local).earliest() {
                return EventTime::from_millis(t.timestamp_millis());
            }
            local += chrono::Duration::minutes(15);
        }
        None
    }

    /// The instant when `amount` of open time has passed since `start`, or `None` if the
    /// school is not open that long in the next ten years.
    pub fn add_open_time(&self, start: EventTime, amount: Duration) -> Option<EventTime> {
        let mut left = i64::try_from(amount.as_millis()).ok()?;
        // The day before too: an interval that began then may still be open at `start`
        // (a school open past midnight UTC, or hours ending at 24:00).
        let mut date = self.local_date(start).pred_opt()?;
        for _ in 0..LOOK_AHEAD_DAYS {
            if let Some((open, close)) = self.open_interval(date) {
                let from = open.max(start);
                if from < close {
                    let available = close.millis() - from.millis();
                    if left <= available {
                        return Some(from.plus_millis(left));
                    }
                    left -= available;
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// Open time between `from` and `to` (zero if `to` is not later).
    pub fn open_time_between(&self, from: EventTime, to: EventTime) -> Duration {
        let mut total = 0i64;
        let Some(mut date) = self.local_date(from).pred_opt() else {
            return Duration::ZERO;
        };
        let last = self.local_date(to);
        while date <= last {
            if let Some((open, close)) = self.open_interval(date) {
                let (a, b) = (open.max(from), close.min(to));
                if a < b {
                    total += b.millis() - a.millis();
                }
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        Duration::from_millis(u64::try_from(total).unwrap_or(0))
    }
}

fn to_utc(t: EventTime) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(t.millis()).single().unwrap_or_default()
}

mod weekdays {
    use super::{parse_weekday, weekday_name};
    use chrono::Weekday;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(days: &[Weekday], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(days.iter().map(|d| weekday_name(*d)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Weekday>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|d| parse_weekday(d).ok_or_else(|| serde::de::Error::custom("a day mon … sun")))
            .collect()
    }
}

mod timezone {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(|_| serde::de::Error::custom("an IANA timezone"))
    }
}

mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => serializer.serialize_str(&crate::config::format_duration(*d)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|t| crate::config::parse_duration(&t).ok_or_else(|| serde::de::Error::custom("a duration")))
            .transpose()
    }
}

#[cfg(test)]
mod tests;

/// `GET /schools/{school_id}` and each item of `GET /schools`: the school and its
/// devices by status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SchoolStatus {
    #[serde(flatten)]
    pub school: School,
    pub devices: crate::domain::fleet::FleetCounts,
}
