//! What a person reads: an e-mail subject and plain-text body, an SMS, and the one-line
//! summary a chat webhook shows. The JSON body ([`Notice::to_json`]) stays the
//! machine-readable contract; these are views of the same facts.

use super::{Notice, SchoolDigest};
use crate::domain::event::DeviceId;
use crate::domain::time::EventTime;

/// Longest SNS e-mail subject.
pub const MAX_SUBJECT: usize = 100;
/// Longest SMS PiSync sends (one GSM segment is 160; operators' carriers add prefixes).
pub const MAX_SMS: usize = 140;

impl Notice {
    /// A subject a person can read in an e-mail client.
    pub fn subject(&self) -> String {
        let subject = match self {
            Notice::RepeatedFailures(a) => format!(
                "PiSync: {} failed {} syncs in a row",
                a.device_id, a.consecutive_failures
            ),
            Notice::Recovered(r) => format!("PiSync: {} is syncing again", r.device_id),
            Notice::Silent(s) => format!(
                "PiSync: {} has not reported for {}",
                s.device_id,
                period(s.silent_after_hours)
            ),
            Notice::BackOnline(b) => format!("PiSync: {} is reporting again", b.device_id),
            Notice::Flapping(f) => format!(
                "PiSync: {} is flapping ({} alerts in {})",
                f.device_id,
                f.alerts_in_window,
                period(f.window_seconds as f64 / 3600.0)
            ),
            Notice::Stable(s) => format!("PiSync: {} is stable again", s.device_id),
            Notice::Digest(d) => format!(
                "PiSync digest {}: {} failing, {} silent of {} devices at {}",
                d.date, d.devices.failing, d.devices.silent, d.devices.total, d.name
            ),
        };
        clip(&subject, MAX_SUBJECT)
    }

    /// One line: what happened, to which device, since when. Webhook receivers (Slack,
    /// Teams) show it as is.
    pub fn summary(&self) -> String {
        match self {
            Notice::RepeatedFailures(a) => format!(
                "{} failed {} syncs in a row (since {}; last failure {} with {} errors)",
                a.device_id,
                a.consecutive_failures,
                human(a.streak_started_at),
                human(a.last_failure_at),
                a.last_total_errors
            ),
            Notice::Recovered(r) => format!(
                "{} is syncing again: a successful sync at {} ended {} failures in a row",
                r.device_id,
                human(r.recovered_at),
                r.failures_before_recovery
            ),
            Notice::Silent(s) => format!(
                "{} has not reported for {} (last report received {})",
                s.device_id,
                period(s.silent_after_hours),
                human(s.last_seen_at)
            ),
            Notice::BackOnline(b) => format!(
                "{} is reporting again (report received {}; silent since {})",
                b.device_id,
                human(b.back_at),
                human(b.silent_since)
            ),
            Notice::Flapping(f) => format!(
                "{} is flapping: {} failure alerts in {}; its alerts and recoveries are held \
                 until it goes {} without one",
                f.device_id,
                f.alerts_in_window,
                period(f.window_seconds as f64 / 3600.0),
                period(f.window_seconds as f64 / 3600.0)
            ),
            Notice::Stable(s) => format!(
                "{} is stable again: no failure alert since {}; its alerts are published again",
                s.device_id,
                human(s.stable_since)
            ),
            Notice::Digest(d) => format!(
                "{} ({}) on {}: {} devices, {} healthy, {} failing, {} silent; yesterday ({}) {}; \
                 {} notices held back in the last 24 hours",
                d.name,
                d.school_id,
                d.date,
                d.devices.total,
                d.devices.healthy,
                d.devices.failing,
                d.devices.silent,
                d.yesterday.date,
                day_line(d),
                d.unpublished
            ),
        }
    }

    /// An SMS of at most [`MAX_SMS`] characters: the device (or school) id is
    /// shortened, never the facts.
    pub fn sms(&self) -> String {
        let device = self.subject_id();
        let text = |device: &str| match self {
            Notice::RepeatedFailures(a) => format!(
                "PiSync: {device} failed {} syncs in a row since {}.",
                a.consecutive_failures,
                minute(a.streak_started_at)
            ),
            Notice::Recovered(r) => format!(
                "PiSync: {device} syncs again ({} failures ended {}).",
                r.failures_before_recovery,
                minute(r.recovered_at)
            ),
            Notice::Silent(s) => format!(
                "PiSync: {device} silent for {}, last report {}.",
                period(s.silent_after_hours),
                minute(s.last_seen_at)
            ),
            Notice::BackOnline(b) => format!(
                "PiSync: {device} reports again {} (silent since {}).",
                minute(b.back_at),
                minute(b.silent_since)
            ),
            Notice::Flapping(f) => format!(
                "PiSync: {device} flapping, {} alerts in {}; alerts held till it settles.",
                f.alerts_in_window,
                period(f.window_seconds as f64 / 3600.0)
            ),
            Notice::Stable(s) => format!(
                "PiSync: {device} stable, no alert since {}; alerts resume.",
                minute(s.stable_since)
            ),
            Notice::Digest(d) => format!(
                "PiSync {device} {}: {} failing, {} silent of {}. Yesterday {}/{} syncs failed.",
                d.date,
                d.devices.failing,
                d.devices.silent,
                d.devices.total,
                d.yesterday.failures,
                d.yesterday.syncs
            ),
        };
        let full = text(device);
        let over = full.chars().count().saturating_sub(MAX_SMS);
        if over == 0 {
            return full;
        }
        let keep = device.chars().count().saturating_sub(over + 1);
        text(&format!("{}…", device.chars().take(keep).collect::<String>()))
    }

    /// The plain-text e-mail body. `dashboard` is the dashboard's URL, when configured:
    /// the mail then links to the device's page.
    pub fn email_text(&self, dashboard: Option<&str>) -> String {
        let mut lines: Vec<String> = Vec::new();
        match self {
            Notice::RepeatedFailures(a) => {
                lines.push(format!(
                    "Device {} failed {} syncs in a row (the alert threshold is {}).",
                    a.device_id, a.consecutive_failures, a.threshold
                ));
                lines.push(String::new());
                lines.push(format!(
                    "First failure of the run:  {}",
                    human(a.streak_started_at)
                ));
                lines.push(format!(
                    "Latest failure:            {} ({} errors)",
                    human(a.last_failure_at),
                    a.last_total_errors
                ));
                lines.push(format!("Detected by PiSync:        {}", human(a.detected_at)));
                lines.push(String::new());
                lines.push(
                    "PiSync sends no further alert while these failures continue, and a \
                     recovery notice when a sync succeeds again."
                        .into(),
                );
            }
            Notice::Recovered(r) => {
                lines.push(format!("Device {} is syncing again.", r.device_id));
                lines.push(String::new());
                lines.push(format!("Successful sync:           {}", human(r.recovered_at)));
                lines.push(format!(
                    "Failures in a row before:  {}",
                    r.failures_before_recovery
                ));
            }
            Notice::Silent(s) => {
                lines.push(format!(
                    "Device {} has not reported to PiSync for {}.",
                    s.device_id,
                    period(s.silent_after_hours)
                ));
                lines.push(String::new());
                lines.push(format!("Last report received:      {}", human(s.last_seen_at)));
                lines.push(format!("Detected by PiSync:        {}", human(s.detected_at)));
                lines.push(String::new());
                lines.push(
                    "It may be switched off, out of reach of a network, or broken. PiSync \
                     sends a notice when it reports again."
                        .into(),
                );
            }
            Notice::BackOnline(b) => {
                lines.push(format!("Device {} is reporting again.", b.device_id));
                lines.push(String::new());
                lines.push(format!("Report received:           {}", human(b.back_at)));
                lines.push(format!("Silent since:              {}", human(b.silent_since)));
            }
            Notice::Flapping(f) => {
                let window = period(f.window_seconds as f64 / 3600.0);
                lines.push(format!(
                    "Device {} is flapping: {} failure alerts within {}.",
                    f.device_id, f.alerts_in_window, window
                ));
                lines.push(String::new());
                lines.push(format!("Detected by PiSync:        {}", human(f.detected_at)));
                lines.push(String::new());
                lines.push(format!(
                    "Rather than page you on every cycle, PiSync records this device's \
                     further alerts and recoveries without sending them (see its notice \
                     history) until it goes {window} without an alert, and then sends one \
                     notice that it is stable."
                ));
            }
            Notice::Stable(s) => {
                lines.push(format!("Device {} is stable again.", s.device_id));
                lines.push(String::new());
                lines.push(format!("No failure alert since:    {}", human(s.stable_since)));
                lines.push(format!("Detected by PiSync:        {}", human(s.detected_at)));
                lines.push(String::new());
                lines.push("Its alerts and recoveries are sent again from now on.".into());
            }
            Notice::Digest(d) => digest_lines(d, &mut lines),
        }
        if let Some(url) = dashboard {
            lines.push(String::new());
            let what = if self.device_id().is_some() {
                "the device"
            } else {
                "PiSync"
            };
            lines.push(format!(
                "Open {what} in the dashboard: {}",
                dashboard_link(url, self)
            ));
        }
        lines.push(String::new());
        lines.push("--".into());
        lines.push(match self {
            Notice::Digest(_) => "Device counts are as of the digest's time; a day's syncs are \
                 counted by device timestamp, UTC day."
                .into(),
            _ => "Sync times are the device's clock, in UTC; \"received\" and \"detected\" \
                 times are PiSync's."
                .into(),
        });
        lines.push(format!("Reference: {}", self.notice_id()));
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

/// The digest's e-mail body: the counts, the devices to look at, yesterday.
fn digest_lines(d: &SchoolDigest, lines: &mut Vec<String>) {
    lines.push(format!(
        "Daily digest for {} ({}), {}.",
        d.name, d.school_id, d.date
    ));
    lines.push(String::new());
    lines.push(format!("Devices:                   {}", d.devices.total));
    lines.push(format!("Healthy:                   {}", d.devices.healthy));
    lines.push(format!("Failing:                   {}", d.devices.failing));
    lines.push(format!("Silent:                    {}", d.devices.silent));
    lines.push(String::new());
    let yesterday = format!("Yesterday ({}):", d.yesterday.date);
    lines.push(format!("{yesterday:<27}{}", day_line(d)));
    lines.push(format!(
        "Held back (24 hours):      {} notices recorded but not sent (backlogs, flapping devices)",
        d.unpublished
    ));
    for (title, devices, total) in [
        (
            "Failing devices, longest run of failures first",
            &d.failing,
            d.devices.failing,
        ),
        (
            "Silent devices, longest silence first",
            &d.silent,
            d.devices.silent,
        ),
    ] {
        if devices.is_empty() {
            continue;
        }
        lines.push(String::new());
        lines.push(format!("{title}:"));
        lines.extend(devices.iter().map(|device| format!("  {device}")));
        let more = total.saturating_sub(devices.len() as u64);
        if more > 0 {
            lines.push(format!("  … and {more} more"));
        }
    }
}

/// `120 syncs, 6 failed (5.0 %)`
fn day_line(d: &SchoolDigest) -> String {
    format!(
        "{} syncs, {} failed ({:.1} %)",
        d.yesterday.syncs,
        d.yesterday.failures,
        d.yesterday.failure_rate * 100.0
    )
}

/// The dashboard page of the notice's device; the dashboard itself for a school's
/// digest.
pub fn dashboard_link(dashboard: &str, notice: &Notice) -> String {
    let base = dashboard.trim_end_matches('#');
    // Device ids are A-Z a-z 0-9 _ - . : — all safe in a URL fragment.
    match notice.device_id() {
        Some(device) => format!("{base}#/device/{}", DeviceId::as_str(device)),
        None => format!("{base}#/"),
    }
}

/// `2025-05-07 10:30:00 UTC`
fn human(t: EventTime) -> String {
    let text = t.to_string();
    format!("{} {} UTC", &text[..10], &text[11..19])
}

/// `2025-05-07 10:30 UTC`
fn minute(t: EventTime) -> String {
    let text = t.to_string();
    format!("{} {} UTC", &text[..10], &text[11..16])
}

/// A silent period in the largest whole unit: `48 hours`, `90 minutes`, `45 seconds`.
fn period(hours: f64) -> String {
    let seconds = (hours * 3600.0).round() as u64;
    let (n, unit) = if seconds % 3600 == 0 {
        (seconds / 3600, "hour")
    } else if seconds % 60 == 0 {
        (seconds / 60, "minute")
    } else {
        (seconds, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max - 1).collect();
    clipped.push('…');
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_use_the_largest_whole_unit() {
        assert_eq!(period(48.0), "48 hours");
        assert_eq!(period(1.0), "1 hour");
        assert_eq!(period(1.5), "90 minutes");
        assert_eq!(period(90.0 / 3600.0), "90 seconds");
    }

    #[test]
    fn clipping_keeps_the_limit() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
    }
}
