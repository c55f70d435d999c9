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

/// Path of the batch check: `POST /v1/replay/batch` (the single path + this suffix).
pub const BATCH_SUFFIX: &str = "/batch";

/// Most entries in one batch.
pub const MAX_BATCH: usize = 256;

/// The batch request body: `{"entries":[{"key":"<key>","ttl":<ttl>},...]}`.
pub fn batch_body<'a>(entries: impl IntoIterator<Item = (&'a str, i64)>) -> String {
    let mut out = String::from("{\"entries\":[");
    for (i, (key, ttl)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&request_body(key, ttl));
    }
    out.push_str("]}");
    out
}

/// The batch answer for `n` entries: `200 {"results":[c1,...,cn]}`, each code read like a
/// single answer's status. Any other status, a body of another shape, or a count other than
/// `n` makes every entry [`Answer::Error`] (the caller applies `on_error` to all).
pub fn batch_answers(status: Option<&[u8]>, body: &[u8], n: usize) -> Vec<Answer> {
    let all_error = || vec![Answer::Error; n];
    if status != Some(b"200") {
        return all_error();
    }
    let Some(codes) = batch_codes(body) else {
        return all_error();
    };
    if codes.len() != n {
        return all_error();
    }
    codes.iter().map(|c| answer(Some(c))).collect()
}

/// The codes of `{"results":[...]}` (whitespace allowed between tokens), as digit strings.
fn batch_codes(body: &[u8]) -> Option<Vec<&[u8]>> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let inner = text.strip_prefix('{')?.strip_suffix('}')?.trim();
    let rest = inner.strip_prefix("\"results\"")?.trim_start();
    let list = rest.strip_prefix(':')?.trim();
    let list = list.strip_prefix('[')?.strip_suffix(']')?.trim();
    if list.is_empty() {
        return Some(Vec::new());
    }
    list.split(',')
        .map(|c| {
            let c = c.trim();
            (c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit())).then_some(c.as_bytes())
        })
        .collect()
}

/// The streaming transport (`replay.transport = "grpc"`): one long-lived gRPC bidi stream per
/// proxy worker, `/dpop.replay.v1.Replay/Check` over HTTP/2. The messages are not protobuf:
/// each is the JSON of a batch with an `id` the filter chooses, and each answer carries the
/// id back (answers may come in any order). Envoy's raw gRPC client frames and unframes them.
pub mod stream {
    use super::{answer, batch_body, batch_codes, Answer};

    /// The gRPC service name (the path is `/<SERVICE>/<METHOD>`).
    pub const SERVICE: &str = "dpop.replay.v1.Replay";
    /// The gRPC method name.
    pub const METHOD: &str = "Check";
    /// Largest message either side accepts.
    pub const MAX_MESSAGE: usize = 64 * 1024;

    /// A request message: `{"id":<id>,"entries":[{"key":"<key>","ttl":<ttl>},...]}`.
    pub fn request<'a>(id: u32, entries: impl IntoIterator<Item = (&'a str, i64)>) -> String {
        // the batch body with the id put first
        let batch = batch_body(entries);
        format!("{{\"id\":{id},{}", batch.get(1..).unwrap_or_default())
    }

    /// An answer message: `{"id":<id>,"results":[c1,...]}`.
    pub fn reply(id: u32, codes: &[u16]) -> String {
        let list: Vec<String> = codes.iter().map(u16::to_string).collect();
        format!("{{\"id\":{id},\"results\":[{}]}}", list.join(","))
    }

    /// Reads an answer message: its id and one answer per result (`None`: not an answer
    /// message — the caller cannot tell which request it was for). The caller checks the count
    /// against the request's (a mismatch makes every entry [`Answer::Error`]).
    pub fn read_reply(body: &[u8]) -> Option<(u32, Vec<Answer>)> {
        let text = std::str::from_utf8(body).ok()?.trim();
        let inner = text.strip_prefix('{')?.trim_start();
        let rest = inner.strip_prefix("\"id\"")?.trim_start();
        let rest = rest.strip_prefix(':')?.trim_start();
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let id: u32 = rest.get(..digits)?.parse().ok()?;
        let rest = rest.get(digits..)?.trim_start().strip_prefix(',')?;
        // what is left is a batch answer without its opening brace
        let batch = format!("{{{rest}");
        let codes = batch_codes(batch.as_bytes())?;
        Some((id, codes.iter().map(|c| answer(Some(c))).collect()))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn messages() {
            assert_eq!(
                request(7, [("a", 1), ("b", 2)]),
                r#"{"id":7,"entries":[{"key":"a","ttl":1},{"key":"b","ttl":2}]}"#
            );
            assert_eq!(
                reply(9, &[201, 409, 400]),
                r#"{"id":9,"results":[201,409,400]}"#
            );
            assert_eq!(
                read_reply(reply(9, &[201, 409, 400, 503]).as_bytes()),
                Some((
                    9,
                    vec![
                        Answer::Fresh,
                        Answer::Replayed,
                        Answer::Error,
                        Answer::Error
                    ]
                ))
            );
            assert_eq!(
                read_reply(b" { \"id\" : 4294967295 , \"results\" : [ 201 ] } "),
                Some((u32::MAX, vec![Answer::Fresh]))
            );
            assert_eq!(read_reply(br#"{"id":1,"results":[]}"#), Some((1, vec![])));
            for bad in [
                &br#"{"id":4294967296,"results":[201]}"#[..],
                br#"{"id":-1,"results":[201]}"#,
                br#"{"id":"1","results":[201]}"#,
                br#"{"results":[201],"id":1}"#,
                br#"{"id":1,"results":[201]"#,
                br#"{"id":1}"#,
                br#"{"id":1,"results":["201"]}"#,
                b"",
                b"\xff",
            ] {
                assert_eq!(read_reply(bad), None, "{bad:?}");
            }
        }
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

    #[test]
    fn batches() {
        assert_eq!(
            batch_body([("a", 1), ("b", 2)]),
            r#"{"entries":[{"key":"a","ttl":1},{"key":"b","ttl":2}]}"#
        );
        let ok = Some(&b"200"[..]);
        assert_eq!(
            batch_answers(ok, br#"{"results":[201,409,400]}"#, 3),
            vec![Answer::Fresh, Answer::Replayed, Answer::Error]
        );
        assert_eq!(
            batch_answers(ok, b" { \"results\" : [ 201 , 201 ] } ", 2),
            vec![Answer::Fresh; 2]
        );
        for (status, body, n) in [
            (ok, &br#"{"results":[201,409]}"#[..], 3),
            (Some(&b"503"[..]), br#"{"results":[201]}"#, 1),
            (None, br#"{"results":[201]}"#, 1),
            (ok, br#"{"results":[201,]}"#, 2),
            (ok, br#"{"results":["201"]}"#, 1),
            (ok, br#"{"results":[2010]}"#, 1),
            (ok, br#"{"other":[201]}"#, 1),
            (ok, b"", 1),
        ] {
            assert_eq!(batch_answers(status, body, n), vec![Answer::Error; n]);
        }
    }
}
