//! Opaque, tamper-evident page cursors.
//!
//! A cursor is `kid . base64url(position) . base64url(tag)`, where the tag is an
//! HMAC-SHA256 (truncated to 128 bits), under key `kid`, over the position *and* the
//! query it belongs to. A cursor edited by hand, or replayed against another device or
//! other bounds, fails the check. Keys have ids so the key can be rotated without
//! breaking pages in flight: new cursors use the current key, and every key still in
//! the set opens the cursors it sealed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const TAG_LEN: usize = 16;
/// Cursors longer than this are rejected before any decoding work.
const MAX_CURSOR_LEN: usize = 1024;

/// The cursor keys by id, the current one first.
#[derive(Clone)]
pub struct CursorKey(Vec<(String, [u8; 32])>);

/// Never prints the key.
impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(…)")
    }
}

impl CursorKey {
    /// Keys from secret material: a key set `{"current": "c2", "c1": "…", "c2": "…"}`
    /// (during a rotation), or any other bytes as the one key `k0`.
    pub fn from_secret(secret: &[u8]) -> Self {
        let derive = |material: &[u8]| -> [u8; 32] { Sha256::digest(material).into() };
        let set = std::str::from_utf8(secret)
            .ok()
            .and_then(|text| serde_json::from_str::<std::collections::BTreeMap<String, String>>(text).ok());
        if let Some(set) = set {
            let current = set
                .get("current")
                .filter(|c| set.contains_key(*c) && valid_kid(c));
            if let Some(current) = current {
                let mut keys = vec![(current.clone(), derive(set[current].as_bytes()))];
                keys.extend(
                    set.iter()
                        .filter(|(kid, _)| *kid != "current" && *kid != current && valid_kid(kid))
                        .map(|(kid, key)| (kid.clone(), derive(key.as_bytes()))),
                );
                return Self(keys);
            }
        }
        Self(vec![("k0".to_owned(), derive(secret))])
    }

    pub fn seal(&self, context: &str, position: &str) -> String {
        let (kid, key) = &self.0[0];
        let tag = Self::tag(key, context, position);
        format!(
            "{kid}.{}.{}",
            URL_SAFE_NO_PAD.encode(position),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        )
    }

    /// The position inside `cursor`, if it was sealed by this key for `context`.
    pub fn open(&self, context: &str, cursor: &str) -> Option<String> {
        if cursor.len() > MAX_CURSOR_LEN {
            return None;
        }
        let mut parts = cursor.split('.');
        let (Some(kid), Some(position), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let (_, key) = self.0.iter().find(|(id, _)| id == kid)?;
        let position = String::from_utf8(URL_SAFE_NO_PAD.decode(position).ok()?).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != TAG_LEN {
            return None;
        }
        // Constant-time comparison of the tag's first TAG_LEN bytes.
        Self::mac(key, context, &position)
            .verify_truncated_left(&tag)
            .ok()?;
        Some(position)
    }

    fn mac(key: &[u8; 32], context: &str, position: &str) -> HmacSha256 {
        // Length-prefix the context so (context, position) pairs cannot collide.
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(&(context.len() as u64).to_be_bytes());
        mac.update(context.as_bytes());
        mac.update(position.as_bytes());
        mac
    }

    fn tag(key: &[u8; 32], context: &str, position: &str) -> [u8; 32] {
        Self::mac(key, context, position).finalize().into_bytes().into()
    }
}

fn valid_kid(kid: &str) -> bool {
    crate::auth::keys::valid_kid(kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_keeps_cursors_in_flight_valid() {
        let old = CursorKey::from_secret(br#"{"current":"c1","c1":"first secret"}"#);
        let rotated = CursorKey::from_secret(br#"{"current":"c2","c1":"first secret","c2":"second secret"}"#);
        let in_flight = old.seal("ctx", "p");
        assert!(in_flight.starts_with("c1."));
        assert_eq!(rotated.open("ctx", &in_flight).as_deref(), Some("p"));
        assert!(rotated.seal("ctx", "p").starts_with("c2."));
        let retired = CursorKey::from_secret(br#"{"current":"c2","c2":"second secret"}"#);
        assert_eq!(retired.open("ctx", &in_flight), None);
        // A plain secret is one key, as before key sets existed.
        assert!(CursorKey::from_secret(b"plain")
            .seal("ctx", "p")
            .starts_with("k0."));
    }

    #[test]
    fn round_trip_and_binding() {
        let key = CursorKey::from_secret(b"k");
        let c = key.seal("history:dev:desc", "2025-05-07T10:30:00.000Z");
        assert_eq!(
            key.open("history:dev:desc", &c).as_deref(),
            Some("2025-05-07T10:30:00.000Z")
        );
        assert_eq!(key.open("history:other:desc", &c), None, "bound to its query");
        assert_eq!(
            CursorKey::from_secret(b"other").open("history:dev:desc", &c),
            None
        );
    }

    #[test]
    fn any_edit_is_detected() {
        let key = CursorKey::from_secret(b"k");
        let c = key.seal("ctx", "position");
        for i in 0..c.len() {
            let mut bytes = c.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let edited = String::from_utf8(bytes).unwrap();
            if edited != c {
                assert_eq!(key.open("ctx", &edited), None, "{edited}");
            }
        }
        for junk in ["", ".", "abc", "a.b.c", "!!!.???", &"A".repeat(5000)] {
            assert_eq!(key.open("ctx", junk), None);
        }
        // A truncated tag is not accepted either.
        let short = &c[..c.len() - 4];
        assert_eq!(key.open("ctx", short), None);
    }
}
