//! Who may call what. Devices hold PiSync-signed device tokens (one current credential
//! per device, checked against its stored digest); operators are identified by API
//! Gateway's JWT authorizer in AWS (their groups become scopes) or by PiSync-signed
//! operator tokens in the local runner. No AWS and no HTTP here: the HTTP seam hands
//! in what the request presented ([`Presented`]) and gets a [`Caller`] or a refusal.

mod authenticator;
pub mod keys;
pub mod token;

pub use authenticator::{AuthError, Authenticator, KeyRing, Presented};
pub use keys::{KeysError, SigningKeys};

use crate::domain::school::SchoolId;
use crate::ports::{DeviceCredential, ManageCredentials, StoreError};
use crate::{DeviceId, EventTime};

/// A device credential just issued: the token is here and nowhere else.
#[derive(Debug, serde::Serialize)]
pub struct Issued {
    pub device_id: DeviceId,
    pub token: String,
    pub issued_at: EventTime,
}

/// Signs a new token for `device_id` and makes its digest the device's only
/// credential, so every earlier token stops working (`POST /device/{id}/credentials`
/// and the local runner's `token device`).
pub async fn issue_device_credential(
    keys: &KeyRing,
    credentials: &dyn ManageCredentials,
    device_id: DeviceId,
) -> Result<Issued, StoreError> {
    let signing = keys.for_signing().await;
    let token = token::sign_device(&signing, device_id.as_str())
        .map_err(|e| StoreError::unavailable("OS randomness", std::io::Error::other(e)))?;
    let issued_at = EventTime::now();
    credentials
        .replace(&DeviceCredential {
            device_id: device_id.as_str().to_owned(),
            token_digest: token::digest(&token),
            issued_at,
        })
        .await?;
    Ok(Issued {
        device_id,
        token,
        issued_at,
    })
}

/// An operator's permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every read route.
    Read,
    /// Read, plus device credentials.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// Which schools an operator looks after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The district: every school, and devices in none.
    District,
    /// These schools only (sorted, no duplicates, never empty).
    Schools(Vec<SchoolId>),
}

impl Reach {
    /// The schools given, or the district when none are.
    pub fn of(mut schools: Vec<SchoolId>) -> Self {
        schools.sort();
        schools.dedup();
        if schools.is_empty() {
            Reach::District
        } else {
            Reach::Schools(schools)
        }
    }

    /// Whether a device in `school` (`None`: unassigned) is within reach.
    pub fn covers(&self, school: Option<&SchoolId>) -> bool {
        match (self, school) {
            (Reach::District, _) => true,
            (Reach::Schools(own), Some(school)) => own.contains(school),
            (Reach::Schools(_), None) => false,
        }
    }
}

/// An operator: where they read, where they administer, and who they are (the audit
/// trail's actor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// The schools whose devices they read: the district, or some schools.
    pub reads: Reach,
    /// Where they manage credentials and assignments (within `reads`), if anywhere.
    pub administers: Option<Reach>,
    /// The identity's subject: Cognito's username or `sub`, or a local token's name.
    pub subject: String,
}

impl Operator {
    /// A district operator (today's tokens, and tests).
    pub fn district(scope: Scope) -> Self {
        Self::of(scope, Reach::District, "operator")
    }

    /// An operator with one scope over `reach`.
    pub fn of(scope: Scope, reach: Reach, subject: &str) -> Self {
        Self {
            administers: (scope == Scope::Admin).then(|| reach.clone()),
            reads: reach,
            subject: subject.to_owned(),
        }
    }

    /// `admin` when they administer anywhere (the routes' own check), else `read`.
    pub fn scope(&self) -> Scope {
        if self.administers.is_some() {
            Scope::Admin
        } else {
            Scope::Read
        }
    }
}

/// The authenticated caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is turned off (`--no-auth`): every route is open, as to a
    /// district admin.
    Anyone,
    /// A device, by its own credential.
    Device(String),
    /// An operator, district or school, read or admin.
    Operator(Operator),
    /// A signed-in identity with no PiSync group: may use no route.
    NoRole,
}

impl Caller {
    /// Whether this caller may record an event for `device_id`.
    pub fn may_record(&self, device_id: &str) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Device(own) => own == device_id,
            _ => false,
        }
    }

    /// Which schools this caller reads (`None`: none at all).
    pub fn reach(&self) -> Option<&Reach> {
        static DISTRICT: Reach = Reach::District;
        match self {
            Caller::Anyone => Some(&DISTRICT),
            Caller::Operator(op) => Some(&op.reads),
            _ => None,
        }
    }

    /// Whether this caller may read a device in `school` (`None`: unassigned).
    pub fn sees(&self, school: Option<&SchoolId>) -> bool {
        self.reach().is_some_and(|reach| reach.covers(school))
    }

    /// A district operator with the admin scope (or authentication off).
    pub fn is_district_admin(&self) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Operator(op) => op.administers == Some(Reach::District),
            _ => false,
        }
    }

    /// Whether this caller administers `school`: a district admin, or an admin of it.
    pub fn administers(&self, school: &SchoolId) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Operator(op) => op.administers.as_ref().is_some_and(|r| r.covers(Some(school))),
            _ => false,
        }
    }

    /// Who acted, for the audit trail: an operator's subject, or `anyone` when
    /// authentication is off.
    pub fn actor(&self) -> &str {
        match self {
            Caller::Operator(op) => &op.subject,
            Caller::Device(device) => device,
            Caller::Anyone => "anyone (authentication off)",
            Caller::NoRole => "nobody",
        }
    }
}

/// Who a route is for (the route table says it for each route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credential: files that hold no data (the dashboard's HTML, script, styles).
    Public,
    /// Device tokens, for their own device's events.
    Device,
    /// Operators with `read` or `admin`.
    Read,
    /// Operators with `admin`.
    Admin,
}

impl Access {
    pub fn allows(self, caller: &Caller) -> bool {
        match (self, caller) {
            (Access::Public, _) | (_, Caller::Anyone) => true,
            (Access::Device, Caller::Device(_)) => true,
            (Access::Read, Caller::Operator(_)) => true,
            (Access::Admin, Caller::Operator(op)) => op.scope() == Scope::Admin,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_access_admits_exactly_its_callers() {
        let callers = [
            Caller::Device("d".into()),
            Caller::Operator(Operator::district(Scope::Read)),
            Caller::Operator(Operator::district(Scope::Admin)),
            Caller::NoRole,
            Caller::Anyone,
        ];
        let admitted = |access: Access| -> Vec<bool> { callers.iter().map(|c| access.allows(c)).collect() };
        assert_eq!(admitted(Access::Device), [true, false, false, false, true]);
        assert_eq!(admitted(Access::Read), [false, true, true, false, true]);
        assert_eq!(admitted(Access::Admin), [false, false, true, false, true]);
        assert_eq!(admitted(Access::Public), [true; 5]);
    }

    #[test]
    fn a_device_records_only_its_own_events() {
        assert!(Caller::Device("a".into()).may_record("a"));
        assert!(!Caller::Device("a".into()).may_record("b"));
        assert!(!Caller::Operator(Operator::district(Scope::Admin)).may_record("a"));
        assert!(Caller::Anyone.may_record("a"));
    }

    #[test]
    fn a_school_operator_sees_and_administers_its_schools_only() {
        let id = |s: &str| SchoolId::parse(s).unwrap();
        let op = |scope, schools: &[&str]| {
            Caller::Operator(Operator::of(
                scope,
                Reach::of(schools.iter().map(|s| id(s)).collect()),
                "s",
            ))
        };
        let reader = op(Scope::Read, &["a", "b"]);
        assert!(reader.sees(Some(&id("a"))) && reader.sees(Some(&id("b"))));
        assert!(
            !reader.sees(Some(&id("c"))) && !reader.sees(None),
            "not another's, not unassigned"
        );
        assert!(!reader.administers(&id("a")));
        let admin = op(Scope::Admin, &["a"]);
        assert!(admin.administers(&id("a")) && !admin.administers(&id("b")));
        assert!(!admin.is_district_admin());
        let district = op(Scope::Admin, &[]);
        assert!(district.is_district_admin() && district.sees(None) && district.administers(&id("z")));
        assert!(!op(Scope::Read, &[]).is_district_admin());
        assert!(!Caller::Device("d".into()).sees(None));
    }
}
