//! JWS compact serialization (RFC 7515 §7.1): three base64url segments, nothing else.

use crate::b64;
use crate::json::{parse_object, Object};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsError {
    /// Longer than the configured cap (checked before any decoding).
    TooLarge,
    /// Not three segments, bad base64url, empty signature.
    Malformed,
    /// Header is not a strict JSON object.
    HeaderJson,
}

/// A split compact JWS. The payload is left undecoded as JSON: callers choose how to read it.
#[derive(Debug)]
pub struct CompactJws<'a> {
    pub header: Object,
    pub payload: Vec<u8>,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: the bytes that were signed.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

/// Splits a compact JWS into its three base64url segments (header, payload, signature),
/// checking only the shape: exactly two dots, non-empty header and signature.
pub fn split(input: &str, max_len: usize) -> Result<(&str, &str, &str), JwsError> {
    if input.len() > max_len {
        return Err(JwsError::TooLarge);
    }
    let mut parts = input.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    if h.is_empty() || s.is_empty() {
        return Err(JwsError::Malformed);
    }
    Ok((h, p, s))
}

impl<'a> CompactJws<'a> {
    pub fn parse(input: &'a str, max_len: usize) -> Result<CompactJws<'a>, JwsError> {
        let (h, p, s) = split(input, max_len)?;
        let header_bytes = b64::decode(h).ok_or(JwsError::Malformed)?;
        let payload = b64::decode(p).ok_or(JwsError::Malformed)?;
        let signature = b64::decode(s).ok_or(JwsError::Malformed)?;
        let header = parse_object(&header_bytes).ok_or(JwsError::HeaderJson)?;
        let signing_input = input
            .get(..h.len() + 1 + p.len())
            .ok_or(JwsError::Malformed)?;
        Ok(CompactJws {
            header,
            payload,
            signing_input,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        assert_eq!(
            CompactJws::parse("a.b", 100).unwrap_err(),
            JwsError::Malformed
        );
        assert_eq!(
            CompactJws::parse("a.b.c.d", 100).unwrap_err(),
            JwsError::Malformed
        );
        assert_eq!(
            CompactJws::parse("eyJ9.e30.", 100).unwrap_err(),
            JwsError::Malformed
        );
        assert_eq!(
            CompactJws::parse(&"a".repeat(101), 100).unwrap_err(),
            JwsError::TooLarge
        );
        // {"a":1}.{}.AA
        let j = CompactJws::parse("eyJhIjoxfQ.e30.AA", 100).unwrap();
        assert_eq!(j.signing_input, "eyJhIjoxfQ.e30");
        assert_eq!(j.signature, vec![0]);
        assert_eq!(
            CompactJws::parse("W10.e30.AA", 100).unwrap_err(),
            JwsError::HeaderJson
        );
    }
}
