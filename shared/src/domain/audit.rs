//! The audit trail: every admin action (credentials issued or revoked, a school
//! created, replaced or deleted, a device assigned) as one entry: when, who (the
//! operator's subject, never a token), what, to what, and the request it came with.
//! An entry about a school's device or the school itself carries the school, so that
//! school admins see their schools' entries and no others.

use crate::domain::school::SchoolId;
use crate::domain::time::EventTime;
use serde::{Deserialize, Serialize};

/// How long entries are kept, at least (the contract's 400 days, and a margin).
pub const AUDIT_RETENTION_DAYS: i64 = 400;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    #[serde(rename = "credentials.issued")]
    CredentialsIssued,
    #[serde(rename = "credentials.revoked")]
    CredentialsRevoked,
    #[serde(rename = "school.created")]
    SchoolCreated,
    #[serde(rename = "school.replaced")]
    SchoolReplaced,
    #[serde(rename = "school.deleted")]
    SchoolDeleted,
    #[serde(rename = "device.assigned")]
    DeviceAssigned,
}

/// One admin action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: EventTime,
    /// The operator's subject (`anyone (authentication off)` with `--no-auth`).
    pub actor: String,
    pub action: AuditAction,
    /// The device or school acted on.
    pub target: String,
    /// The school the action concerns: the school itself, or the device's school
    /// (after an assignment, the new one; before a revocation, the current one).
    pub school_id: Option<SchoolId>,
    /// For an assignment that moved a device out of a school: that school, whose
    /// admins see the entry too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_school_id: Option<SchoolId>,
    pub request_id: String,
}

impl AuditEntry {
    /// The entry's place in the trail: newest first by `at`, ties by request id.
    /// Fixed width, so that text order is time order.
    pub fn key(&self) -> String {
        format!(
            "{:015}#{}#{}",
            self.at.millis().max(0),
            self.request_id,
            serde_json::to_value(self.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        )
    }

    /// The schools whose admins see this entry.
    pub fn schools(&self) -> impl Iterator<Item = &SchoolId> {
        self.school_id.iter().chain(self.previous_school_id.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, request: &str) -> AuditEntry {
        AuditEntry {
            at: EventTime::from_millis(at).unwrap(),
            actor: "ana".into(),
            action: AuditAction::CredentialsIssued,
            target: "dev-1".into(),
            school_id: None,
            previous_school_id: None,
            request_id: request.into(),
        }
    }

    #[test]
    fn keys_sort_as_time_does() {
        let (early, late) = (entry(999, "b"), entry(1_000, "a"));
        assert!(early.key() < late.key());
        assert_eq!(late.key(), "000000000001000#a#credentials.issued");
    }

    #[test]
    fn actions_have_dotted_names() {
        let json = serde_json::to_value(entry(0, "r")).unwrap();
        assert_eq!(json["action"], "credentials.issued");
        assert!(json.get("previous_school_id").is_none());
    }
}
