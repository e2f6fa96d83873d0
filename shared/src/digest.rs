//! Bytes and digests as text: tokens, keys, idempotency keys, ETags.

use sha2::{Digest, Sha256};

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        assert_eq!(hex(&[0x00, 0x0f, 0xff]), "000fff");
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(short_sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223");
    }
}
