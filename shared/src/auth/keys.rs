//! The keys that sign PiSync's own tokens, each with an id so keys can be rotated
//! without downtime: tokens name the key that signed them, new tokens use the current
//! key, and a key stays accepted until it is removed from the set.

use crate::digest::hex;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Shortest accepted signing secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;
/// Longest key id; ids are `A-Z a-z 0-9 _ -`.
pub const MAX_KID_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeysError {
    #[error("the signing keys are not a JSON object of strings")]
    NotAnObject,
    #[error("the signing keys have no \"current\" key id")]
    NoCurrent,
    #[error("the current key id {0:?} has no key")]
    CurrentMissing(String),
    #[error("key id {0:?} must be 1-32 characters of A-Z a-z 0-9 _ -")]
    BadKid(String),
    #[error("key {0:?} is shorter than 32 bytes")]
    ShortSecret(String),
}

/// A set of HMAC-SHA256 keys by id, one of them current.
#[derive(Clone)]
pub struct SigningKeys {
    current: String,
    keys: Vec<(String, Hmac<Sha256>)>,
}

impl std::fmt::Debug for SigningKeys {
    // Never print a secret: only the ids.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SigningKeys")
            .field("current", &self.current)
            .field("ids", &ids)
            .finish()
    }
}

impl SigningKeys {
    /// Keys from `(id, secret)` pairs; `current` signs new tokens.
    pub fn new<'a>(
        current: &str,
        keys: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, KeysError> {
        let mut set = Vec::new();
        for (id, secret) in keys {
            if !valid_kid(id) {
                return Err(KeysError::BadKid(id.to_owned()));
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(KeysError::ShortSecret(id.to_owned()));
            }
            let mac =
                Hmac::<Sha256>::new_from_slice(secret).map_err(|_| KeysError::ShortSecret(id.to_owned()))?;
            set.push((id.to_owned(), mac));
        }
        if !set.iter().any(|(id, _)| id == current) {
            return Err(KeysError::CurrentMissing(current.to_owned()));
        }
        Ok(Self {
            current: current.to_owned(),
            keys: set,
        })
    }

    /// The stored form, as Secrets Manager keeps it and CloudFormation generates it:
    /// `{"current": "k1", "k1": "<secret>", "k0": "<older secret>"}`.
    pub fn from_json(text: &str) -> Result<Self, KeysError> {
        let map: std::collections::BTreeMap<String, String> =
            serde_json::from_str(text).map_err(|_| KeysError::NotAnObject)?;
        let current = map.get("current").ok_or(KeysError::NoCurrent)?;
        Self::new(
            current,
            map.iter()
                .filter(|(id, _)| id.as_str() != "current")
                .map(|(id, secret)| (id.as_str(), secret.as_bytes())),
        )
    }

    /// A new set with one random key, in its stored form.
    pub fn generate_json(kid: &str) -> Result<String, getrandom::Error> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        let secret = hex(&secret);
        Ok(serde_json::json!({ "current": kid, kid: secret }).to_string())
    }

    pub fn current_kid(&self) -> &str {
        &self.current
    }

    /// A MAC ready to take input, keyed with `kid`'s secret.
    pub(crate) fn mac(&self, kid: &str) -> Option<Hmac<Sha256>> {
        self.keys
            .iter()
            .find(|(id, _)| id == kid)
            .map(|(_, mac)| mac.clone())
    }
}

pub fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_stored_form_round_trips() {
        let generated = SigningKeys::generate_json("k1").unwrap();
        let keys = SigningKeys::from_json(&generated).unwrap();
        assert_eq!(keys.current_kid(), "k1");
        assert!(keys.mac("k1").is_some());
        assert!(keys.mac("k2").is_none());
    }

    #[test]
    fn bad_sets_are_refused_by_name() {
        let cases = [
            ("[]", KeysError::NotAnObject),
            (r#"{"k1":"x"}"#, KeysError::NoCurrent),
            (
                &format!(r#"{{"current":"k2","k1":"{SECRET}"}}"#),
                KeysError::CurrentMissing("k2".into()),
            ),
            (
                r#"{"current":"k1","k1":"short"}"#,
                KeysError::ShortSecret("k1".into()),
            ),
            (
                &format!(r#"{{"current":"k 1","k 1":"{SECRET}"}}"#),
                KeysError::BadKid("k 1".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(SigningKeys::from_json(text).unwrap_err(), expected, "{text}");
        }
    }

    #[test]
    fn debug_shows_ids_not_secrets() {
        let keys = SigningKeys::from_json(&format!(r#"{{"current":"k1","k1":"{SECRET}"}}"#)).unwrap();
        let shown = format!("{keys:?}");
        assert!(shown.contains("k1") && !shown.contains(SECRET), "{shown}");
    }
}
