//! proxy-wasm ABI 0.2.1 constants and the header-map wire format. The enumerations are the
//! ABI's whole tables (values a guest may pass), not only the ones this host acts on.

/// `proxy_result_t` / Envoy's `WasmResult`.
pub mod status {
    pub const OK: u32 = 0;
    pub const NOT_FOUND: u32 = 1;
    pub const BAD_ARGUMENT: u32 = 2;
    pub const SERIALIZATION_FAILURE: u32 = 3;
    pub const PARSE_FAILURE: u32 = 4;
    pub const BAD_EXPRESSION: u32 = 5;
    pub const INVALID_MEMORY_ACCESS: u32 = 6;
    pub const EMPTY: u32 = 7;
    pub const CAS_MISMATCH: u32 = 8;
    pub const RESULT_MISMATCH: u32 = 9;
    pub const INTERNAL_FAILURE: u32 = 10;
    pub const BROKEN_CONNECTION: u32 = 11;
    pub const UNIMPLEMENTED: u32 = 12;

    pub fn status_name(s: u32) -> &'static str {
        match s {
            OK => "Ok",
            NOT_FOUND => "NotFound",
            BAD_ARGUMENT => "BadArgument",
            SERIALIZATION_FAILURE => "SerializationFailure",
            PARSE_FAILURE => "ParseFailure",
            BAD_EXPRESSION => "BadExpression",
            INVALID_MEMORY_ACCESS => "InvalidMemoryAccess",
            EMPTY => "Empty",
            CAS_MISMATCH => "CasMismatch",
            RESULT_MISMATCH => "ResultMismatch",
            INTERNAL_FAILURE => "InternalFailure",
            BROKEN_CONNECTION => "BrokenConnection",
            UNIMPLEMENTED => "Unimplemented",
            _ => "(outside the enum)",
        }
    }
}

/// WASI errno values the host returns.
pub mod errno {
    pub const SUCCESS: u32 = 0;
    pub const BADF: u32 = 8;
    pub const FAULT: u32 = 21;
    pub const INVAL: u32 = 28;
    pub const NOENT: u32 = 44;
    pub const NOSYS: u32 = 52;
    pub const NOTSUP: u32 = 58;
}

pub mod map_type {
    pub const HTTP_REQUEST_HEADERS: u32 = 0;
    pub const HTTP_REQUEST_TRAILERS: u32 = 1;
    pub const HTTP_RESPONSE_HEADERS: u32 = 2;
    pub const HTTP_RESPONSE_TRAILERS: u32 = 3;
    pub const GRPC_RECEIVE_INITIAL_METADATA: u32 = 4;
    pub const GRPC_RECEIVE_TRAILING_METADATA: u32 = 5;
    pub const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
    pub const HTTP_CALL_RESPONSE_TRAILERS: u32 = 7;
    pub const MAX: u32 = 7;
}

pub mod buffer_type {
    pub const HTTP_REQUEST_BODY: u32 = 0;
    pub const HTTP_RESPONSE_BODY: u32 = 1;
    pub const DOWNSTREAM_DATA: u32 = 2;
    pub const UPSTREAM_DATA: u32 = 3;
    pub const HTTP_CALL_RESPONSE_BODY: u32 = 4;
    pub const GRPC_RECEIVE_BUFFER: u32 = 5;
    pub const VM_CONFIGURATION: u32 = 6;
    pub const PLUGIN_CONFIGURATION: u32 = 7;
    pub const CALL_DATA: u32 = 8;
    pub const MAX: u32 = 8;
}

pub mod stream_type {
    pub const HTTP_REQUEST: u32 = 0;
    pub const HTTP_RESPONSE: u32 = 1;
    pub const DOWNSTREAM: u32 = 2;
    pub const UPSTREAM: u32 = 3;
    pub const MAX: u32 = 3;
}

pub mod metric_type {
    pub const COUNTER: u32 = 0;
    pub const GAUGE: u32 = 1;
    pub const HISTOGRAM: u32 = 2;
}

/// `proxy_on_request_headers` & co. return values.
pub mod action {
    pub const CONTINUE: u32 = 0;
    pub const PAUSE: u32 = 1;
}

pub mod log_level {
    pub const TRACE: u32 = 0;
    pub const DEBUG: u32 = 1;
    pub const INFO: u32 = 2;
    pub const WARN: u32 = 3;
    pub const ERROR: u32 = 4;
    pub const CRITICAL: u32 = 5;
}

/// A header map as the host holds it: raw bytes, duplicates allowed, in order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The ABI serialization: u32 LE count, count × (u32 LE name length, u32 LE value length), then
/// each name and value followed by a NUL.
pub fn serialize_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// The host side of [`serialize_pairs`], like proxy-wasm-cpp-host's `PairsUtil::toPairs`:
/// malformed input (a guest bug) gives `None`. Empty input is an empty map.
pub fn parse_pairs(bytes: &[u8]) -> Option<Pairs> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let count = word(0)?;
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    if data > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let kl = word(4 + i * 8)?;
        let vl = word(8 + i * 8)?;
        let k = bytes.get(data..data.checked_add(kl)?)?.to_vec();
        data += kl;
        if bytes.get(data) != Some(&0) {
            return None;
        }
        data += 1;
        let v = bytes.get(data..data.checked_add(vl)?)?.to_vec();
        data += vl;
        if bytes.get(data) != Some(&0) {
            return None;
        }
        data += 1;
        out.push((k, v));
    }
    Some(out)
}

/// Envoy's `LowerCaseString`: ASCII lower-casing of a header name.
pub fn lower(name: &[u8]) -> Vec<u8> {
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn round_trip() {
        let pairs: Pairs = vec![
            (b"a".to_vec(), b"\xff".to_vec()),
            (b"".to_vec(), b"".to_vec()),
            (b"a".to_vec(), b"x\0y".to_vec()),
        ];
        let bytes = serialize_pairs(&pairs);
        assert_eq!(parse_pairs(&bytes).unwrap(), pairs);
        for cut in 1..bytes.len() {
            assert!(parse_pairs(&bytes[..cut]).is_none(), "cut {cut}");
        }
        assert!(parse_pairs(&[0xff, 0xff, 0xff, 0xff]).is_none());
    }
}
