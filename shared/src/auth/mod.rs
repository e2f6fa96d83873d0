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
    let token = token::sign_device(&keys.current(), device_id.as_str())
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

/// The authenticated caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is turned off (`--no-auth`): every route is open.
    Anyone,
    /// A device, by its own credential.
    Device(String),
    /// An operator with a scope.
    Operator(Scope),
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
            (Access::Admin, Caller::Operator(scope)) => *scope == Scope::Admin,
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
            Caller::Operator(Scope::Read),
            Caller::Operator(Scope::Admin),
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
        assert!(!Caller::Operator(Scope::Admin).may_record("a"));
        assert!(Caller::Anyone.may_record("a"));
    }
}
