//! Opaque, tamper-evident page cursors.
//!
//! A cursor is `base64url(position) . base64url(tag)`, where the tag is an HMAC-SHA256
//! (truncated to 128 bits) over the position *and* the query it belongs to. A cursor
//! edited by hand, or replayed against another device or other bounds, fails the check.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const TAG_LEN: usize = 16;
/// Cursors longer than this are rejected before any decoding work.
const MAX_CURSOR_LEN: usize = 1024;

#[derive(Clone)]
pub struct CursorKey([u8; 32]);

/// Never prints the key.
impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(…)")
    }
}

impl CursorKey {
    /// Derives a key from secret material of any length.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    pub fn seal(&self, context: &str, position: &str) -> String {
        let tag = self.tag(context, position);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(position),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        )
    }

    /// The position inside `cursor`, if it was sealed by this key for `context`.
    pub fn open(&self, context: &str, cursor: &str) -> Option<String> {
        if cursor.len() > MAX_CURSOR_LEN {
            return None;
        }
        let (position, tag) = cursor.split_once('.')?;
        let position = String::from_utf8(URL_SAFE_NO_PAD.decode(position).ok()?).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != TAG_LEN {
            return None;
        }
        // Constant-time comparison of the tag's first TAG_LEN bytes.
        self.mac(context, &position).verify_truncated_left(&tag).ok()?;
        Some(position)
    }

    fn mac(&self, context: &str, position: &str) -> HmacSha256 {
        // Length-prefix the context so (context, position) pairs cannot collide.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(&(context.len() as u64).to_be_bytes());
        mac.update(context.as_bytes());
        mac.update(position.as_bytes());
        mac
    }

    fn tag(&self, context: &str, position: &str) -> [u8; 32] {
        self.mac(context, position).finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
