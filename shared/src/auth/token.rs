//! PiSync's own tokens: `pisync_<kind>.<kid>.<payload>.<mac>`, where `payload` is
//! base64url text and `mac` the base64url HMAC-SHA256, under key `kid`, of everything
//! before the last dot.
//!
//! - A device token (`pisync_d`) names its device and carries a random nonce. It has no
//!   expiry (devices stay offline for months and their clocks drift); it stops working
//!   when the device's credential is replaced or revoked.
//! - A local operator token (`pisync_o`) names a scope, an expiry, the schools it
//!   reaches (`*`: the district) and a subject; the local runner issues them (in AWS
//!   operators sign in through Cognito instead).
//!
//! Parsing never panics and does bounded work: a token longer than [`MAX_TOKEN_LEN`]
//! is refused before anything is decoded, and the MAC is checked in constant time
//! (`hmac`'s `verify_slice`, which compares with `subtle`) before the payload is read.

use super::keys::{valid_kid, SigningKeys};
use super::{Operator, Reach, Scope};
use crate::digest::hex;
use crate::domain::school::SchoolId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use sha2::{Digest, Sha256};

/// Longest token accepted (a device token with a 128-character id is about 260; an
/// operator token for [`MAX_OPERATOR_SCHOOLS`] schools of 64 characters about 2,300).
pub const MAX_TOKEN_LEN: usize = 3072;
/// Most schools one operator token reaches.
pub const MAX_OPERATOR_SCHOOLS: usize = 25;
/// A local operator's subject when the token command names none.
pub const DEFAULT_SUBJECT: &str = "local-operator";

const DEVICE: &str = "pisync_d";
const OPERATOR: &str = "pisync_o";

/// Whether `token` is written as a local operator token (not whether it is valid).
pub fn is_operator_token(token: &str) -> bool {
    token
        .strip_prefix(OPERATOR)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// What a verified token says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claims {
    Device { device_id: String },
    Operator { operator: Operator, expires_at: i64 },
}

/// Why a token was refused. Every variant is a 401; the variant is for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a PiSync token")]
    Malformed,
    #[error("signed with a key that is not in the key set")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("expired")]
    Expired,
}

/// A new token for `device_id`, signed with the current key.
pub fn sign_device(keys: &SigningKeys, device_id: &str) -> Result<String, getrandom::Error> {
    Ok(sign(keys, DEVICE, &format!("{device_id} {}", nonce()?)))
}

/// A new local operator token for `operator`, valid until `expires_at` (Unix
/// seconds). The subject is kept to the characters [`valid_subject`] allows.
pub fn sign_operator(
    keys: &SigningKeys,
    operator: &Operator,
    expires_at: i64,
) -> Result<String, getrandom::Error> {
    let reach = match &operator.reads {
        Reach::District => "*".to_owned(),
        Reach::Schools(ids) => ids.iter().map(SchoolId::as_str).collect::<Vec<_>>().join(","),
    };
    let subject = if valid_subject(&operator.subject) {
        operator.subject.as_str()
    } else {
        DEFAULT_SUBJECT
    };
    Ok(sign(
        keys,
        OPERATOR,
        &format!(
            "{} {expires_at} {} {reach} {subject}",
            operator.scope().as_str(),
            nonce()?
        ),
    ))
}

/// A local operator's name: 1–64 characters of `A-Z a-z 0-9 _ - . @`.
pub fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= 64
        && subject
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

fn parse_reach(text: &str) -> Option<Reach> {
    if text == "*" {
        return Some(Reach::District);
    }
    let ids: Option<Vec<SchoolId>> = text.split(',').map(SchoolId::parse).collect();
    let ids = ids?;
    (!ids.is_empty() && ids.len() <= MAX_OPERATOR_SCHOOLS).then(|| Reach::of(ids))
}

/// The SHA-256 of a token: what the credential store keeps instead of the token, so
/// nothing stored can be replayed.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The claims of `token` if `keys` signed it and, for an operator token, it has not
/// expired at `now` (Unix seconds).
pub fn verify(keys: &SigningKeys, token: &str, now: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
        return Err(TokenError::Malformed);
    }
    let (signed, mac) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut parts = signed.split('.');
    let (Some(kind), Some(kid), Some(payload), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if (kind != DEVICE && kind != OPERATOR) || !valid_kid(kid) {
        return Err(TokenError::Malformed);
    }
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| TokenError::Malformed)?;
    let mut expected = keys.mac(kid).ok_or(TokenError::UnknownKey)?;
    expected.update(signed.as_bytes());
    expected
        .verify_slice(&mac)
        .map_err(|_| TokenError::BadSignature)?;
    // Signed by us: the payload is one we wrote, but it is still parsed defensively.
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
    let fields: Vec<&str> = payload.split(' ').collect();
    match (kind, fields.as_slice()) {
        (DEVICE, [device_id, _nonce]) if !device_id.is_empty() => Ok(Claims::Device {
            device_id: (*device_id).to_owned(),
        }),
        (OPERATOR, [scope, expires_at, _nonce, rest @ ..]) => {
            let scope = Scope::parse(scope).ok_or(TokenError::Malformed)?;
            let expires_at: i64 = expires_at.parse().map_err(|_| TokenError::Malformed)?;
            // Tokens from before schools name neither: the district, a default subject.
            let (reach, subject) = match rest {
                [] => (Reach::District, DEFAULT_SUBJECT),
                [reach, subject] if valid_subject(subject) => {
                    (parse_reach(reach).ok_or(TokenError::Malformed)?, *subject)
                }
                _ => return Err(TokenError::Malformed),
            };
            if now >= expires_at {
                return Err(TokenError::Expired);
            }
            Ok(Claims::Operator {
                operator: Operator::of(scope, reach, subject),
                expires_at,
            })
        }
        _ => Err(TokenError::Malformed),
    }
}

fn sign(keys: &SigningKeys, kind: &str, payload: &str) -> String {
    let kid = keys.current_kid();
    let signed = format!("{kind}.{kid}.{}", URL_SAFE_NO_PAD.encode(payload));
    // The current key is always in the set (SigningKeys::new checks it).
    let mac = keys
        .mac(kid)
        .map(|mut mac| {
            mac.update(signed.as_bytes());
            mac.finalize().into_bytes().to_vec()
        })
        .unwrap_or_default();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
}

fn nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

#[cfg(test)]
mod tests;
