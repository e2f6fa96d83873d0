//! Assigning a device to a school (or to none): load its state — a new one for a
//! device that has not reported yet — move it, and save it with the count changes of
//! both schools, the target school required to exist at that moment (so a school
//! deleted meanwhile never gains a device). The device's threshold changes from its
//! next event, as detection applies it; its silence clock (the new school's open time)
//! from its next silence check, which a device that has reported gets at once.

use crate::domain::detection::{contention_pause, kept_changing};
use crate::domain::device::DeviceState;
use crate::domain::event::DeviceId;
use crate::domain::fleet::count_changes;
use crate::domain::school::SchoolId;
use crate::domain::streak::StreakRule;
use crate::domain::time::EventTime;
use crate::domain::validate::{echo_name, parse_members, FieldError};
use crate::ports::{DeviceStates, Saved, StateWrite, StoreError};
use serde_json::Value;

/// What an assignment did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assigned {
    /// Moved from `from` (`None`: it was in no school).
    Moved { from: Option<SchoolId> },
    /// It was there already: nothing written.
    Unchanged,
    /// The target school does not exist.
    NoSuchSchool,
    /// `may_move_from` refused the device's current school (the caller does not
    /// administer it); nothing written.
    Refused { current: Option<SchoolId> },
}

/// Assigns `device` to `to` (`None`: no school) if `may_move_from` allows moving it out
/// of its current school.
pub async fn assign(
    states: &dyn DeviceStates,
    device: &DeviceId,
    to: Option<&SchoolId>,
    fleet: StreakRule,
    may_move_from: impl Fn(Option<&SchoolId>) -> bool,
    now: EventTime,
) -> Result<Assigned, StoreError> {
    for attempt in 0..10 {
        contention_pause(attempt).await;
        let (mut state, version) = match states.load(device).await? {
            Some(v) => (v.state, v.version),
            None => (DeviceState::new(device.clone()), 0),
        };
        let from = state.school_id.clone();
        if !may_move_from(from.as_ref()) {
            return Ok(Assigned::Refused { current: from });
        }
        if from.as_ref() == to {
            return Ok(Assigned::Unchanged);
        }
        let status = state.listed_status(fleet);
        state.school_id = to.cloned();
        let write = StateWrite {
            state: &state,
            expected: version,
            status,
            failing: state.is_failing(fleet),
            notices: &[],
            counts: count_changes((from.as_ref(), status), (to, status)),
            requires_school: to,
            // Its next check is on the new clock: it may be due sooner than before.
            watch_at: (status.is_some() && state.silent_since.is_none()).then_some(now),
            now,
            days: None,
        };
        match states.save(&write).await? {
            Saved::Written => return Ok(Assigned::Moved { from }),
            Saved::NoSuchSchool => return Ok(Assigned::NoSuchSchool),
            Saved::Stale => {}
        }
    }
    Err(kept_changing(device))
}

/// The body `{"school_id": "…"}` (`null`: no school), every problem at once.
pub fn parse_school_choice(body: &[u8]) -> Result<Option<SchoolId>, Vec<FieldError>> {
    let members = parse_members::<Value>(body)?;
    let mut errors = Vec::new();
    let mut choice = None;
    for (name, value) in members {
        if name != "school_id" {
            errors.push(FieldError::new(echo_name(&name), "unknown field"));
        } else if choice.is_some() {
            errors.push(FieldError::new("school_id", "appears more than once"));
        } else {
            choice = Some(match value {
                Value::Null => None,
                Value::String(text) => match SchoolId::parse(&text) {
                    Some(id) => Some(id),
                    None => {
                        errors.push(FieldError::new("school_id", SchoolId::RULE));
                        None
                    }
                },
                _ => {
                    errors.push(FieldError::new("school_id", "must be a school id or null"));
                    None
                }
            });
        }
    }
    if choice.is_none() && errors.is_empty() {
        errors.push(FieldError::new("school_id", "is required (null: no school)"));
    }
    match errors.is_empty() {
        true => Ok(choice.flatten()),
        false => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_school_choice_is_an_id_or_null_and_nothing_else() {
        assert_eq!(
            parse_school_choice(br#"{"school_id":"north"}"#),
            Ok(SchoolId::parse("north"))
        );
        assert_eq!(parse_school_choice(br#"{"school_id":null}"#), Ok(None));
        let fields = |body: &[u8]| -> Vec<String> {
            parse_school_choice(body)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(br#"{}"#), ["school_id"]);
        assert_eq!(fields(br#"{"school_id":"a b","x":1}"#), ["school_id", "x"]);
        assert_eq!(fields(br#"{"school_id":7}"#), ["school_id"]);
        assert_eq!(fields(br#"{"school_id":"a","school_id":"b"}"#), ["school_id"]);
        assert_eq!(fields(b"[1]"), ["body"]);
    }
}
