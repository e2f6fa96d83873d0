//! Turns what a request presented into a [`Caller`]: the order of checks is the
//! security argument, so it lives here once. A device token's signature is checked
//! before anything is read (a forged or garbled token costs no I/O); only a token we
//! signed is compared, in constant time, with its device's current credential.

use super::token::{self, Claims, TokenError};
use super::{Caller, Operator, Reach, SigningKeys};
use crate::domain::school::SchoolId;
use crate::ports::credentials::{CheckCredentials, DeviceCredential, Freshness};
use crate::ports::keys::LoadKeys;
use crate::ports::StoreError;
use crate::throttle::Throttle;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Cached credentials per process: past this many devices the cache starts over.
const CACHE_CAPACITY: usize = 10_000;
/// An unknown key id reloads the key set at most this often.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// What a request presented, extracted by the HTTP seam.
#[derive(Debug, Default)]
pub struct Presented<'a> {
    /// The `Authorization` header's raw value, if any.
    pub authorization: Option<&'a [u8]>,
    /// The claims API Gateway's JWT authorizer verified, if it ran for this route.
    pub gateway_claims: Option<&'a HashMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 401: no credential, or one that is malformed, forged, expired, revoked or unknown.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// 503: the credential store could not be read.
    #[error("credentials unavailable")]
    Unavailable(#[source] StoreError),
}

/// The signing keys, reloaded when a token names a key id not yet known here.
pub struct KeyRing {
    keys: RwLock<Arc<SigningKeys>>,
    source: Option<Arc<dyn LoadKeys>>,
    last_reload: Throttle,
    /// Reload at most this often before verifying, so that keys removed at the source
    /// (operator tokens revoked by a new key) stop working within it.
    refresh: Option<Duration>,
}

impl KeyRing {
    /// A fixed key set.
    pub fn fixed(keys: SigningKeys) -> Self {
        Self {
            keys: RwLock::new(Arc::new(keys)),
            source: None,
            last_reload: Throttle::default(),
            refresh: None,
        }
    }

    /// Keys from `source`, loaded now and reloaded on an unknown key id.
    pub async fn load(source: Arc<dyn LoadKeys>) -> Result<Self, StoreError> {
        let keys = source.load().await?;
        Ok(Self {
            keys: RwLock::new(Arc::new(keys)),
            source: Some(source),
            last_reload: Throttle::since(Instant::now()),
            refresh: None,
        })
    }

    /// Also reloads from the source before a verification when the keys are older
    /// than `every`: a key retired at the source stops verifying within it.
    pub fn refreshed_every(mut self, every: Duration) -> Self {
        self.refresh = Some(every);
        self
    }

    async fn reload(&self) {
        if let Some(source) = &self.source {
            match source.load().await {
                Ok(keys) => {
                    if let Ok(mut slot) = self.keys.write() {
                        *slot = Arc::new(keys);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "signing keys could not be reloaded"),
            }
        }
    }

    /// The keys to sign a new token with, read from the source first: a key made
    /// current there signs the very next token, however long this process has run
    /// (verifying alone would never learn of it: no token names the new key yet).
    /// Issuing is an operator's act, rare enough for one read each; if the read fails,
    /// the keys held are used.
    pub async fn for_signing(&self) -> Arc<SigningKeys> {
        self.reload().await;
        self.current()
    }

    pub fn current(&self) -> Arc<SigningKeys> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        if let Some(every) = self.refresh {
            if self.may_reload(every) {
                self.reload().await;
            }
        }
        match token::verify(&self.current(), token, now) {
            Err(TokenError::UnknownKey) if self.may_reload(KEY_RELOAD_INTERVAL) => {
                self.reload().await;
                token::verify(&self.current(), token, now)
            }
            other => other,
        }
    }

    fn may_reload(&self, interval: Duration) -> bool {
        self.source.is_some() && self.last_reload.due(Instant::now(), interval)
    }
}

/// Tokens (by digest) found current at the store, and when. Only acceptances are
/// kept: a revoked token is accepted for at most the TTL, and a refusal is never
/// cached, so a newly issued token works at once.
struct VerdictCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

impl VerdictCache {
    fn accepted(&self, digest: &[u8; 32]) -> bool {
        let Ok(entries) = self.entries.lock() else {
            return false;
        };
        entries.get(digest).is_some_and(|at| at.elapsed() < self.ttl)
    }

    fn accept(&self, digest: [u8; 32]) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
            entries.insert(digest, Instant::now());
        }
    }
}

/// Checks device tokens against the device's current credential.
struct DeviceTokens {
    credentials: Arc<dyn CheckCredentials>,
    cache: Option<VerdictCache>,
}

impl DeviceTokens {
    async fn read(
        &self,
        device_id: &str,
        freshness: Freshness,
    ) -> Result<Option<DeviceCredential>, AuthError> {
        self.credentials
            .current(device_id, freshness)
            .await
            .map_err(AuthError::Unavailable)
    }

    async fn check(&self, device_id: &str, token: &str) -> Result<(), AuthError> {
        let presented = token::digest(token);
        if self.cache.as_ref().is_some_and(|c| c.accepted(&presented)) {
            return Ok(());
        }
        // A read that may lag costs half as much and is right for nearly every request;
        // only a mismatch (a token issued or revoked in the last second, or a stale
        // token) is confirmed with a read that cannot lag.
        let is_current = |stored: Option<DeviceCredential>| {
            stored.is_some_and(|c| bool::from(c.token_digest.ct_eq(&presented)))
        };
        let mut ok = is_current(self.read(device_id, Freshness::MayLag).await?);
        if !ok {
            ok = is_current(self.read(device_id, Freshness::Latest).await?);
        }
        if ok {
            if let Some(cache) = &self.cache {
                cache.accept(presented);
            }
            Ok(())
        } else {
            Err(AuthError::Unauthorized("the token was replaced or revoked"))
        }
    }
}

/// Authenticates requests; cheap to clone into each handler's dependencies.
#[derive(Clone)]
pub struct Authenticator(Arc<Mode>);

enum Mode {
    Off,
    On {
        keys: Option<Arc<KeyRing>>,
        /// Local operator tokens' keys, when they are not `keys` (the runner keeps them
        /// apart so that operator tokens can be revoked without touching devices').
        operator_keys: Option<Arc<KeyRing>>,
        devices: Option<DeviceTokens>,
        local_operators: bool,
        /// The claim holding an operator's groups (`cognito:groups` for Cognito).
        gateway_groups_claim: Option<String>,
    },
}

impl Authenticator {
    /// Authentication turned off: every caller is [`Caller::Anyone`].
    pub fn off() -> Self {
        Self(Arc::new(Mode::Off))
    }

    /// The local runner: device tokens checked against the store on every request
    /// (revocation takes effect at once) and PiSync-signed operator tokens.
    pub fn local(keys: Arc<KeyRing>, credentials: Arc<dyn CheckCredentials>) -> Self {
        Self::local_apart(keys.clone(), keys, credentials)
    }

    /// [`Self::local`] with operator tokens signed by keys of their own.
    pub fn local_apart(
        device_keys: Arc<KeyRing>,
        operator_keys: Arc<KeyRing>,
        credentials: Arc<dyn CheckCredentials>,
    ) -> Self {
        Self(Arc::new(Mode::On {
            keys: Some(device_keys),
            operator_keys: Some(operator_keys),
            devices: Some(DeviceTokens {
                credentials,
                cache: None,
            }),
            local_operators: true,
            gateway_groups_claim: None,
        }))
    }

    /// A Lambda device route: device tokens, credentials cached for `cache_ttl`
    /// (the revocation delay).
    pub fn devices(keys: Arc<KeyRing>, credentials: Arc<dyn CheckCredentials>, cache_ttl: Duration) -> Self {
        Self(Arc::new(Mode::On {
            keys: Some(keys),
            operator_keys: None,
            devices: Some(DeviceTokens {
                credentials,
                cache: Some(VerdictCache {
                    ttl: cache_ttl,
                    entries: Mutex::new(HashMap::new()),
                }),
            }),
            local_operators: false,
            gateway_groups_claim: None,
        }))
    }

    /// A Lambda operator route: API Gateway's JWT authorizer verified the token; the
    /// caller is what its groups (in `groups_claim`) say.
    pub fn gateway_operators(groups_claim: &str) -> Self {
        Self(Arc::new(Mode::On {
            keys: None,
            operator_keys: None,
            devices: None,
            local_operators: false,
            gateway_groups_claim: Some(groups_claim.to_owned()),
        }))
    }

    pub fn is_on(&self) -> bool {
        matches!(*self.0, Mode::On { .. })
    }

    /// The caller `presented` proves to be.
    pub async fn authenticate(&self, presented: Presented<'_>) -> Result<Caller, AuthError> {
        let Mode::On {
            keys,
            operator_keys,
            devices,
            local_operators,
            gateway_groups_claim,
        } = &*self.0
        else {
            return Ok(Caller::Anyone);
        };
        if let (Some(claim), Some(claims)) = (gateway_groups_claim, presented.gateway_claims) {
            return Ok(gateway_operator(claims, claim, presented.authorization));
        }
        let token = bearer(presented.authorization)?;
        let keys = match operator_keys {
            Some(operator_keys) if token::is_operator_token(token) => operator_keys,
            _ => match keys {
                Some(keys) => keys,
                None => return Err(AuthError::Unauthorized("not a token this route accepts")),
            },
        };
        let now = chrono::Utc::now().timestamp();
        let claims = keys.verify(token, now).await.map_err(|e| {
            AuthError::Unauthorized(match e {
                TokenError::Malformed => "not a PiSync token",
                TokenError::UnknownKey => "signed with a retired key",
                TokenError::BadSignature => "bad signature",
                TokenError::Expired => "expired",
            })
        })?;
        match claims {
            Claims::Device { device_id } => {
                let Some(devices) = devices else {
                    return Err(AuthError::Unauthorized("not a token this route accepts"));
                };
                devices.check(&device_id, token).await?;
                Ok(Caller::Device(device_id))
            }
            Claims::Operator { operator, .. } if *local_operators => Ok(Caller::Operator(operator)),
            Claims::Operator { .. } => Err(AuthError::Unauthorized("not a token this route accepts")),
        }
    }
}

/// The token in `Authorization: Bearer <token>` (scheme case-insensitive, RFC 7235).
fn bearer(header: Option<&[u8]>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::Unauthorized("no Authorization header"))?;
    let header = std::str::from_utf8(header).map_err(|_| AuthError::Unauthorized("not a Bearer token"))?;
    let (scheme, token) = header
        .split_once(' ')
        .ok_or(AuthError::Unauthorized("not a Bearer token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Unauthorized("not a Bearer token"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Unauthorized("empty token"));
    }
    Ok(token)
}

/// The operator API Gateway's JWT authorizer verified, from their groups: `pisync-read`
/// and `pisync-admin` for the district, `school-<ID>-read` and `school-<ID>-admin`
/// for school `<ID>`; each group matched exactly, the highest scope winning; no such
/// group is no role.
///
/// API Gateway hands the function each claim as text, a list as `[a b c]`, which
/// cannot tell a group named `x pisync-admin` from two groups. So the groups are read
/// from the token itself — the one the authorizer verified, from the same
/// `Authorization` header — as the JSON array it holds, after checking that its
/// subject and issuer are the verified claims'. A token that cannot be read so has no
/// role.
fn gateway_operator(
    claims: &HashMap<String, String>,
    groups_claim: &str,
    authorization: Option<&[u8]>,
) -> Caller {
    let Some(payload) = bearer(authorization).ok().and_then(jwt_payload) else {
        tracing::warn!("the verified token's payload could not be read; no role");
        return Caller::NoRole;
    };
    let verified = |name: &str| claims.get(name).map(String::as_str);
    let in_token = |name: &str| payload.get(name).and_then(serde_json::Value::as_str);
    if verified("sub").is_none() || verified("sub") != in_token("sub") || verified("iss") != in_token("iss") {
        tracing::warn!("the token's subject or issuer is not the verified one; no role");
        return Caller::NoRole;
    }
    let groups: Vec<&str> = match payload.get(groups_claim) {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(serde_json::Value::as_str).collect(),
        Some(serde_json::Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let subject = verified("username")
        .or(verified("email"))
        .or(verified("sub"))
        .unwrap_or("operator");
    operator_from_groups(&groups, subject)
}

/// The decoded payload of a JWT (`header.payload.signature`), unverified: only for a
/// token API Gateway verified.
fn jwt_payload(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The operator `groups` make (exact names), or no role: the district groups give the
/// district; each `school-<ID>-…` group that school; admin where an admin group says so.
pub(crate) fn operator_from_groups(groups: &[&str], subject: &str) -> Caller {
    let (mut district, mut district_admin) = (false, false);
    let (mut reads, mut admin) = (Vec::new(), Vec::new());
    for group in groups {
        match *group {
            "pisync-admin" => (district, district_admin) = (true, true),
            "pisync-read" => district = true,
            other => {
                let Some(rest) = other.strip_prefix("school-") else {
                    continue;
                };
                let (id, is_admin) = match (rest.strip_suffix("-admin"), rest.strip_suffix("-read")) {
                    (Some(id), _) => (id, true),
                    (None, Some(id)) => (id, false),
                    _ => continue,
                };
                let Some(id) = SchoolId::parse(id) else { continue };
                if is_admin {
                    admin.push(id.clone());
                }
                reads.push(id);
            }
        }
    }
    let reads = match (district, reads.is_empty()) {
        (true, _) => Reach::District,
        (false, false) => Reach::of(reads),
        (false, true) => return Caller::NoRole,
    };
    let administers = match (district_admin, admin.is_empty()) {
        (true, _) => Some(Reach::District),
        (false, false) => Some(Reach::of(admin)),
        (false, true) => None,
    };
    Caller::Operator(Operator {
        reads,
        administers,
        subject: subject.to_owned(),
    })
}

#[cfg(test)]
mod tests;
