//! The replay-check wire contract between the dpop-guard filter and the `dpop-replay` service
//! (README "Replay service"), defined once and used by both sides:
//!
//! - the key: `dpop:jti:` + base64url(SHA-256(jkt + "." + jti)), 52 ASCII bytes;
//! - the request: `POST /v1/replay` with `{"key": "<key>", "ttl": <seconds>}`;
//! - the answer: 201 first use, 409 seen before, 400 bad input, 503 store down.
//!
//! Both sides test against this crate: the filter's body parses on the service, the service's
//! key check accepts the filter's keys.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Prefix of every replay key.
pub const KEY_PREFIX: &str = "dpop:jti:";
/// Length of the unpadded base64url SHA-256 digest after the prefix.
pub const KEY_HASH_LEN: usize = 43;
/// Total key length in bytes.
pub const KEY_LEN: usize = KEY_PREFIX.len() + KEY_HASH_LEN;

/// Default path of the check.
pub const PATH: &str = "/v1/replay";

/// Answer status codes.
pub mod status {
    /// First use: recorded.
    pub const FRESH: u16 = 201;
    /// Seen before, still live: a replay.
    pub const REPLAYED: u16 = 409;
    /// Malformed request; nothing stored.
    pub const BAD_REQUEST: u16 = 400;
    /// The store could not answer.
    pub const UNAVAILABLE: u16 = 503;
}

/// The replay key of a proof: its key thumbprint and `jti`.
pub fn replay_key(jkt: &str, jti: &str) -> String {
    let mut h = Sha256::new();
    h.update(jkt.as_bytes());
    h.update(b".");
    h.update(jti.as_bytes());
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(KEY_PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(h.finalize(), &mut key);
    key
}

const fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether `key` has the shape of a replay key (`^dpop:jti:[A-Za-z0-9_-]{43}$`).
pub fn is_key(key: &str) -> bool {
    key.len() == KEY_LEN
        && key.starts_with(KEY_PREFIX)
        && key.bytes().skip(KEY_PREFIX.len()).all(is_b64url)
}

/// The request body: `{"key":"<key>","ttl":<ttl>}`. The key is ASCII without quotes or
/// backslashes (see [`is_key`]), so it needs no escaping.
pub fn request_body(key: &str, ttl: i64) -> String {
    format!("{{\"key\":\"{key}\",\"ttl\":{ttl}}}")
}

/// What an answer's status means to the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Fresh,
    Replayed,
    /// Any other status, or none: the check could not be made.
    Error,
}

/// Reads the `:status` of the service's answer (bytes, as the proxy hands them over):
/// exactly three digits, nothing else.
pub fn answer(status: Option<&[u8]>) -> Answer {
    let code = match status {
        Some([a, b, c]) if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Answer::Error,
    };
    match code {
        status::FRESH => Answer::Fresh,
        status::REPLAYED => Answer::Replayed,
        _ => Answer::Error,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys() {
        let k = replay_key("jkt", "jti");
        assert_eq!(k.len(), KEY_LEN);
        assert!(is_key(&k));
        assert_ne!(k, replay_key("jkt", "jti2"));
        // the separator keeps (jkt, jti) pairs apart
        // known answer (Python: hashlib + base64.urlsafe_b64encode, padding stripped)
        assert_eq!(
            replay_key("jkt", "jti"),
            "dpop:jti:Ese9gL7dRQP-nYUyLB__EKvxRM-zvKXM0XYjhpdmfWU"
        );
        assert!(!is_key("dpop:jti:short"));
        assert!(!is_key(&k.replace("dpop", "DPOP")));
        assert!(!is_key(&format!("{}\"", &k[..KEY_LEN - 1])));
    }

    #[test]
    fn answers_and_body() {
        assert_eq!(answer(Some(b"201")), Answer::Fresh);
        assert_eq!(answer(Some(b"409")), Answer::Replayed);
        for other in [
            &b"200"[..],
            b"400",
            b"503",
            b"",
            b"\xff",
            b"0201",
            b"+201",
            b"201 ",
        ] {
            assert_eq!(answer(Some(other)), Answer::Error, "{other:?}");
        }
        assert_eq!(answer(None), Answer::Error);
        assert_eq!(request_body("k", 5), r#"{"key":"k","ttl":5}"#);
    }
}
