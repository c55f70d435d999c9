//! Request headers as the host hands them over — raw bytes, any order, duplicates, values that
//! are not UTF-8 — turned into the facts the decision needs. Pure, so it is fuzzed natively
//! (`fuzz/fuzz_targets/request.rs`) and shared by the glue and the host-emulator tests.
//!
//! Rules (issue 11): a value that is not UTF-8 never stops the filter. In `DPoP` or
//! `Authorization` it is a malformed credential (401, decided in [`crate::authn`]); in any
//! other header it is treated as absent. Header names are compared ASCII-case-insensitively
//! (Envoy hands them over lowercased; other hosts may not).

/// The proxy-wasm header map serialization: u32 LE count, count × (u32 LE name length, u32 LE
/// value length), then each name and value followed by a NUL. `None` when the bytes do not
/// hold exactly that (a host bug; the caller fails closed).
pub fn parse_map(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let sizes = bytes.get(4..4usize.checked_add(count.checked_mul(8)?)?)?;
    let mut data = bytes.get(4 + sizes.len()..)?;
    let mut out = Vec::with_capacity(count.min(1024));
    for pair in sizes.chunks_exact(8) {
        let (n, v) = pair.split_at(4);
        let n = u32::from_le_bytes(n.try_into().ok()?) as usize;
        let v = u32::from_le_bytes(v.try_into().ok()?) as usize;
        let (name, rest) = take_nul_terminated(data, n)?;
        let (value, rest) = take_nul_terminated(rest, v)?;
        data = rest;
        out.push((name, value));
    }
    Some(out)
}

/// The inverse of [`parse_map`] (local reply headers, tests).
pub fn serialize_map(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let data: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (n, v) in pairs {
        out.extend_from_slice(&(n.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (n, v) in pairs {
        out.extend_from_slice(n);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

fn take_nul_terminated(data: &[u8], len: usize) -> Option<(&[u8], &[u8])> {
    let field = data.get(..len)?;
    match data.get(len) {
        Some(0) => Some((field, data.get(len + 1..)?)),
        _ => None,
    }
}

/// Stand-in for a `:path` that is missing or not UTF-8: it cannot be normalized, so it gets the
/// `required` policy and fails the `htu` check.
pub const UNUSABLE_PATH: &str = "%";

/// What the decision needs from the request headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaders<'a> {
    pub method: &'a str,
    /// `:path` with query; [`UNUSABLE_PATH`] when missing or not UTF-8.
    pub path: &'a str,
    pub scheme: Option<&'a str>,
    pub authority: &'a str,
    /// The first `x-forwarded-proto` value.
    pub forwarded_proto: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub dpop: Vec<&'a [u8]>,
    pub authorization: Vec<&'a [u8]>,
    /// Names of client-sent headers that spell `forward_jkt_header` (any case, `_` for `-`):
    /// the glue removes each before anything else.
    pub forged_jkt: Vec<&'a str>,
    /// A `content-type` starts with `application/grpc`: a refusal is a gRPC status.
    pub grpc: bool,
}

/// Does `name` spell `wanted` (ASCII case-insensitive, `_` and `-` the same)? WSGI, CGI and
/// others fold `x_dpop_jkt` into `HTTP_X_DPOP_JKT`, the same variable as `x-dpop-jkt`.
pub fn same_header_name(name: &[u8], wanted: &str) -> bool {
    let fold = |b: u8| {
        if b == b'_' {
            b'-'
        } else {
            b.to_ascii_lowercase()
        }
    };
    name.len() == wanted.len()
        && name
            .iter()
            .zip(wanted.bytes())
            .all(|(a, b)| fold(*a) == fold(b))
}

/// Gathers the facts from the header pairs. `forward_jkt_header` is the configured name of the
/// header the filter sets upstream (lowercase ASCII, validated by the config).
pub fn gather<'a>(pairs: &[(&'a [u8], &'a [u8])], forward_jkt_header: &str) -> RequestHeaders<'a> {
    let text = |v: &'a [u8]| std::str::from_utf8(v).ok();
    let mut h = RequestHeaders {
        path: UNUSABLE_PATH,
        ..RequestHeaders::default()
    };
    let (mut path_seen, mut proto_seen) = (false, false);
    let (mut method_seen, mut authority_seen) = (false, false);
    for (name, value) in pairs {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is(":method") {
            // method and authority pick route rules: a second one (a host bug) is unusable,
            // matching no rule and no proof, never the laxer of two readings
            h.method = if method_seen {
                ""
            } else {
                text(value).unwrap_or("")
            };
            method_seen = true;
        } else if is(":path") {
            // a second :path is a host bug: fail closed on it
            h.path = match (path_seen, text(value)) {
                (false, Some(p)) if !p.is_empty() => p,
                _ => UNUSABLE_PATH,
            };
            path_seen = true;
        } else if is(":scheme") {
            h.scheme = text(value);
        } else if is(":authority") {
            h.authority = if authority_seen {
                ""
            } else {
                text(value).unwrap_or("")
            };
            authority_seen = true;
        } else if is("x-forwarded-proto") {
            // only the first one counts, even when it is unusable
            if !proto_seen {
                h.forwarded_proto = text(value);
                proto_seen = true;
            }
        } else if is("x-request-id") {
            h.request_id = text(value).filter(|v| v.len() <= 256);
        } else if is("dpop") {
            h.dpop.push(value);
        } else if is("authorization") {
            h.authorization.push(value);
        } else if is("content-type") {
            let prefix = b"application/grpc";
            h.grpc |= value
                .get(..prefix.len())
                .is_some_and(|v| v.eq_ignore_ascii_case(prefix));
        } else if same_header_name(name, forward_jkt_header) {
            if let Some(n) = text(name) {
                if !h.forged_jkt.contains(&n) {
                    h.forged_jkt.push(n);
                }
            }
        }
    }
    h
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn map_round_trip_and_garbage() {
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b":path", b"/x"),
            (b"x-a", b"\xff\xfe"),
            (b"dpop", b"a"),
            (b"dpop", b""),
        ];
        let bytes = serialize_map(&pairs);
        assert_eq!(parse_map(&bytes).unwrap(), pairs);
        assert_eq!(parse_map(&[]).unwrap(), vec![]);
        for cut in 1..bytes.len() {
            assert!(parse_map(&bytes[..cut]).is_none(), "cut {cut}");
        }
        let mut no_nul = bytes.clone();
        *no_nul.last_mut().unwrap() = b'x';
        assert!(parse_map(&no_nul).is_none());
        assert!(parse_map(&[0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn non_utf8_is_absent_except_credentials() {
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":path", b"/api"),
            (b":authority", b"a.example"),
            (b"x-anything", b"\xff\xfe"),
            (b"x-request-id", b"\xff"),
            (b"x-forwarded-proto", b"\xff"),
            (b"x-forwarded-proto", b"https"),
            (b"dpop", b"\xff"),
            (b"authorization", b"Bearer \xff"),
        ];
        let h = gather(&pairs, "x-dpop-jkt");
        assert_eq!(
            (h.method, h.path, h.authority),
            ("GET", "/api", "a.example")
        );
        assert_eq!(h.request_id, None);
        assert_eq!(h.forwarded_proto, None);
        assert_eq!(h.dpop, vec![b"\xff".as_slice()]);
        assert_eq!(h.authorization.len(), 1);
    }

    #[test]
    fn bad_or_repeated_path_is_unusable() {
        let h = gather(&[(b":path", b"/a\xff")], "x-dpop-jkt");
        assert_eq!(h.path, UNUSABLE_PATH);
        let h = gather(&[(b":path", b"/public"), (b":path", b"/api")], "x-dpop-jkt");
        assert_eq!(h.path, UNUSABLE_PATH);
        assert_eq!(gather(&[], "x-dpop-jkt").path, UNUSABLE_PATH);
    }

    #[test]
    fn forged_jkt_in_every_spelling() {
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b"x-dpop-jkt", b"a"),
            (b"x_dpop_jkt", b"b"),
            (b"X_Dpop-JKT", b"c"),
            (b"x-dpop-jkt", b"d"),
            (b"x-dpop-jkt2", b"e"),
        ];
        let h = gather(&pairs, "x-dpop-jkt");
        assert_eq!(h.forged_jkt, vec!["x-dpop-jkt", "x_dpop_jkt", "X_Dpop-JKT"]);
    }
}
