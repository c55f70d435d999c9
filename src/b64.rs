//! base64url without padding (RFC 7515 §2), strict: non-canonical encodings are rejected so
//! that one byte string has exactly one accepted spelling (thumbprints and `ath` compare text).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Decodes strict base64url (no padding, canonical trailing bits).
pub fn decode(input: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(input.as_bytes()).ok()
}

/// Encodes as base64url without padding.
pub fn encode(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        assert_eq!(encode(b"\xfb\xff"), "-_8");
        assert_eq!(decode("-_8").as_deref(), Some(&b"\xfb\xff"[..]));
        // padding, standard alphabet and non-canonical trailing bits are all rejected
        assert!(decode("-_8=").is_none());
        assert!(decode("+/8").is_none());
        assert!(decode("-_9").is_none());
        assert!(decode("A").is_none());
        assert!(decode("ab c").is_none());
        assert_eq!(decode("").as_deref(), Some(&b""[..]));
    }
}
