//! What a caller may see: the devices and schools within its reach. A school operator
//! is told about a device or school outside its schools exactly what it would be told
//! about one that does not exist (404), and lists, counts and summaries never include
//! them: every read route narrows through here.

use super::error::ApiError;
use super::request::QueryParams;
use crate::auth::{Caller, Reach};
use crate::domain::assignment::{assign, Assigned};
use crate::domain::device::DeviceState;
use crate::domain::school::{School, SchoolId};
use crate::domain::streak::StreakRule;
use crate::domain::time::EventTime;
use crate::domain::validate::FieldError;
use crate::ports::DeviceStates;
use crate::ports::{ReadSchools, Within};
use crate::DeviceId;

/// The `school` query parameter, if given (a malformed id is a problem).
pub fn school_param(params: &QueryParams<'_>, problems: &mut Vec<FieldError>) -> Option<SchoolId> {
    let text = params.get("school")?;
    let school = SchoolId::parse(text);
    if school.is_none() {
        problems.push(FieldError::new("school", SchoolId::RULE));
    }
    school
}

/// The `{school_id}` path parameter.
pub fn school_path(text: &str) -> Result<SchoolId, ApiError> {
    SchoolId::parse(text)
        .ok_or_else(|| ApiError::invalid_request(vec![FieldError::new("school_id", SchoolId::RULE)]))
}

/// What one read covers.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub within: Within,
    /// The one school asked for (`school=`), as stored.
    pub school: Option<School>,
}

/// What a read covers: everything the caller reaches, or the one school asked for. A
/// school the caller may not see, or that does not exist, is 404 `school_not_found`.
pub async fn within(
    caller: &Caller,
    school: Option<SchoolId>,
    schools: &dyn ReadSchools,
) -> Result<Reading, ApiError> {
    let reach = caller
        .reach()
        .ok_or_else(|| ApiError::forbidden("only an operator may read"))?;
    let within = match (reach, school) {
        (Reach::District, None) => Within::Fleet,
        (Reach::Schools(own), None) => Within::Schools(own.clone()),
        (_, Some(school)) => {
            let school = visible_school(caller, &school, schools).await?;
            return Ok(Reading {
                within: Within::Schools(vec![school.school_id.clone()]),
                school: Some(school),
            });
        }
    };
    Ok(Reading { within, school: None })
}

/// The school, if it exists and the caller may see it; else 404 `school_not_found`.
pub async fn visible_school(
    caller: &Caller,
    school: &SchoolId,
    schools: &dyn ReadSchools,
) -> Result<School, ApiError> {
    if !caller.sees(Some(school)) {
        return Err(ApiError::school_not_found(school.as_str()));
    }
    schools
        .school(school)
        .await?
        .ok_or_else(|| ApiError::school_not_found(school.as_str()))
}

/// The device's state if it has reported and the caller may see it; else 404
/// `device_not_found`, the same answer for either.
pub fn visible_device(
    caller: &Caller,
    device: &DeviceId,
    state: Option<DeviceState>,
) -> Result<DeviceState, ApiError> {
    match state {
        Some(state) if state.seen() && caller.sees(state.school_id.as_ref()) => Ok(state),
        _ => Err(ApiError::device_not_found(device.as_str())),
    }
}

/// A short text naming what a read covers, for page cursors: a cursor belongs to one
/// list, so a cursor from one school's list is refused in another's.
pub fn cursor_scope(within: &Within) -> String {
    match within {
        Within::Fleet => "fleet".into(),
        Within::Schools(ids) => ids.iter().map(SchoolId::as_str).collect::<Vec<_>>().join(","),
    }
}

/// Assigns `device` to `to` (`None`: no school) as `caller` may: an admin of the target
/// school (no school: a district admin) and of the device's current school, if it has
/// one. A device in a school the caller does not see answers as one that does not
/// exist (404 `device_not_found`); a target school it does not see, or that does not
/// exist, 404 `school_not_found`; one it sees but does not administer, 403.
pub async fn assign_as(
    caller: &Caller,
    states: &dyn DeviceStates,
    device: &DeviceId,
    to: Option<&SchoolId>,
    fleet: StreakRule,
) -> Result<Assigned, ApiError> {
    match to {
        Some(school) if !caller.sees(Some(school)) => {
            return Err(ApiError::school_not_found(school.as_str()))
        }
        Some(school) if !caller.administers(school) => {
            return Err(ApiError::forbidden(format!(
                "you do not administer school {school}"
            )))
        }
        None if !caller.is_district_admin() => {
            return Err(ApiError::forbidden(
                "only a district admin may take a device out of its school",
            ))
        }
        _ => {}
    }
    let may_move_from = |current: Option<&SchoolId>| current.is_none_or(|school| caller.administers(school));
    match assign(states, device, to, fleet, may_move_from, EventTime::now()).await? {
        Assigned::NoSuchSchool => Err(ApiError::school_not_found(to.map_or("", SchoolId::as_str))),
        Assigned::Refused { current } if caller.sees(current.as_ref()) => Err(ApiError::forbidden(
            "you do not administer the device's current school",
        )),
        Assigned::Refused { .. } => Err(ApiError::device_not_found(device.as_str())),
        done => Ok(done),
    }
}
