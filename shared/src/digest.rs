//! Bytes and digests as text: tokens, keys, idempotency keys, ETags.

use sha2::{Digest, Sha256};

/// Lowercase hex, written into one string (detection keys every device batch's day
/// addition with a hexed digest: no string per byte).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The first 128 bits of `data`'s SHA-256 in hex (32 characters): a short name that
/// stays the same for the same data.
pub fn short_sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_sha256_is_the_digests_first_half_in_hex() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(short_sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223");
    }
}
