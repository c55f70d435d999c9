//! The floor of issue 16's "ES256 on the host path ≤ 1.0× jwt_authn": a proxy-wasm filter that
//! does only what no DPoP enforcer on Envoy's host crypto can skip, and none of the DPoP checks.
//! Not a product and never shipped: `make bench-paired` compares it (variant `floor`) with
//! dpop-guard and jwt_authn in one Envoy (BENCHMARKS.md, "The floor").
//!
//! Per request, as dpop-guard does for an allowed ES256 proof: the header map read, the
//! client-sent `x-dpop-jkt` removed when present, the proof key looked up by its header segment
//! (a per-VM cache; on a miss `x` and `y` are cut out of the JSON without parsing it), the
//! signature turned into DER and checked by `verify_signature` (BoringSSL), one shared-data get
//! and compare-and-swap set (a replay-store bucket), three filter-state values and the
//! `x-dpop-jkt` header. Left out: JSON parsing, `typ`/`alg`/`crit` checks, the thumbprint,
//! `jti`/`htm`/`htu`/`iat`/`ath`/`nonce`, the replay key's digest, stats, problem replies.
//!
//! Knock-outs, to price each piece: the plugin configuration's string member `"floor_skip"`
//! lists what to leave out — `verify` (the foreign call), `store` (shared data), `state` (the
//! filter-state values), `header` (`x-dpop-jkt`).
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

// The encodings and the protobuf message are dpop-guard's own (host_crypto.rs): the floor
// sends Envoy exactly the bytes the filter sends.
use dpop_guard::b64;
use dpop_guard::jose::host_crypto::p256_spki;
#[cfg(target_arch = "wasm32")]
use dpop_guard::jose::host_crypto::{es256_der_signature, verify_arguments, verify_result};

/// What a floor variant leaves out (`"floor_skip"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Skip {
    verify: bool,
    store: bool,
    state: bool,
    header: bool,
}

impl Skip {
    fn from_config(config: &[u8]) -> Skip {
        let list = std::str::from_utf8(config)
            .ok()
            .and_then(|c| member(c, "floor_skip"))
            .unwrap_or("");
        let has = |name: &str| list.split(',').any(|s| s.trim() == name);
        Skip {
            verify: has("verify"),
            store: has("store"),
            state: has("state"),
            header: has("header"),
        }
    }
}

/// The JSON string value of `"name": "…"` in `json`, found by a plain search (no parsing;
/// whitespace around the colon allowed, escapes not).
fn member<'a>(json: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\"");
    let rest = json.get(json.find(&key)? + key.len()..)?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    rest.get(..rest.find('"')?)
}

/// The DER SPKI of the ES256 key in a protected header segment.
fn spki_of(header_b64: &str) -> Option<Vec<u8>> {
    let json = String::from_utf8(b64::decode(header_b64)?).ok()?;
    let x: [u8; 32] = b64::decode(member(&json, "x")?)?.try_into().ok()?;
    let y: [u8; 32] = b64::decode(member(&json, "y")?)?.try_into().ok()?;
    Some(p256_spki(&x, &y))
}

#[cfg(target_arch = "wasm32")]
mod filter {
    use super::*;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};
    use std::cell::RefCell;

    /// A fixed stand-in for the thumbprint (the floor computes none).
    const JKT: &str = "floor-floor-floor-floor-floor-floor-floor-f";

    /// The filter-state names dpop-guard publishes (SPEC.md), one `set_property` each.
    const STATE: [(&str, &str); 3] = [
        ("dpop_guard.outcome", "allow"),
        ("dpop_guard.jkt", JKT),
        ("dpop_guard.alg", "ES256"),
    ];

    extern "C" {
        fn proxy_get_header_map_pairs(
            map_type: u32,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> u32;
    }

    /// The request header map as one serialized buffer, as dpop-guard reads it (one host
    /// allocation, parsed in place by `dpop_guard::headers::parse_map`), not the SDK's
    /// `get_http_request_headers_bytes` (a String and a Vec per header).
    fn request_header_map() -> Option<Vec<u8>> {
        let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
        // SAFETY: on success the host wrote a buffer it allocated through this module's
        // proxy_on_memory_allocate (the SDK's: a Vec<u8> of exactly `size` bytes, forgotten).
        unsafe {
            if proxy_get_header_map_pairs(0, &mut data, &mut size) != 0 {
                return None;
            }
            Some(if data.is_null() {
                Vec::new()
            } else {
                Vec::from_raw_parts(data, size, size)
            })
        }
    }

    thread_local! {
        // (header segment, SPKI): the bench's clients use four keys per algorithm.
        static KEYS: RefCell<Vec<(String, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
    }

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root(Skip::default())) });
    }}

    struct Root(Skip);
    impl Context for Root {}
    impl RootContext for Root {
        fn on_configure(&mut self, _: usize) -> bool {
            self.0 = Skip::from_config(&self.get_plugin_configuration().unwrap_or_default());
            true
        }
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
        fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Floor(self.0)))
        }
    }

    struct Floor(Skip);
    impl Context for Floor {}

    impl Floor {
        fn deny(&self) -> Action {
            self.send_http_response(401, vec![], None);
            Action::Pause
        }

        fn check(&self) -> Option<bool> {
            let map = request_header_map()?;
            let mut proof = None;
            for (name, value) in dpop_guard::headers::parse_map(&map)? {
                if name == b"x-dpop-jkt" {
                    self.set_http_request_header("x-dpop-jkt", None);
                } else if name == b"dpop" {
                    proof = Some(value);
                }
            }
            let proof = std::str::from_utf8(proof?).ok()?;
            let mut parts = proof.splitn(3, '.');
            let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
            let sig = es256_der_signature(&b64::decode(s)?)?;
            let text = proof.get(..h.len() + 1 + p.len())?;
            // The key is looked up on every request; the arguments (only when the call is made)
            // are built where the cached key is borrowed, without a copy of it.
            let args = |spki: &[u8]| match self.0.verify {
                true => Vec::new(),
                false => verify_arguments(spki, &sig, text.as_bytes()),
            };
            let args = KEYS.with(|k| {
                let mut keys = k.borrow_mut();
                if !keys.iter().any(|(seg, _)| seg == h) {
                    let spki = spki_of(h)?;
                    if keys.len() >= 8 {
                        return Some(args(&spki));
                    }
                    keys.push((h.to_owned(), spki));
                }
                let (_, spki) = keys.iter().find(|(seg, _)| seg == h)?;
                Some(args(spki))
            })?;
            if !self.0.verify {
                let out =
                    proxy_wasm::hostcalls::call_foreign_function("verify_signature", Some(&args))
                        .ok()??;
                if verify_result(&out) != Some(true) {
                    return Some(false);
                }
            }
            // A replay-store bucket: get, then compare-and-swap set (value: the signature's
            // first bytes, standing in for the entries of dpop-guard's 384-byte bucket).
            if !self.0.store {
                let bucket = format!("floor:{}", sig.get(5).copied().unwrap_or(0));
                let (_, cas) = self.get_shared_data(&bucket);
                self.set_shared_data(&bucket, sig.get(..32), cas).ok()?;
            }
            if !self.0.state {
                for (name, value) in STATE {
                    self.set_property(vec![name], Some(value.as_bytes()));
                }
            }
            if !self.0.header {
                self.set_http_request_header("x-dpop-jkt", Some(JKT));
            }
            Some(true)
        }
    }

    impl HttpContext for Floor {
        fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
            match self.check() {
                Some(true) => Action::Continue,
                _ => self.deny(),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_cut_out_of_the_header() {
        let x = b64::encode(&[1u8; 32]);
        let y = b64::encode(&[2u8; 32]);
        let header = format!(
            r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}"}}}}"#
        );
        let spki = spki_of(&b64::encode(header.as_bytes())).unwrap();
        assert_eq!(spki.len(), 91);
        assert_eq!(&spki[27..59], &[1u8; 32]);
        assert_eq!(&spki[59..], &[2u8; 32]);
        assert!(spki_of(&b64::encode(br#"{"x":"AA","y":"AA"}"#)).is_none());
    }

    #[test]
    fn knock_outs_come_from_the_configuration() {
        assert_eq!(Skip::from_config(b"{}"), Skip::default());
        let s = Skip::from_config(br#"{"required": true, "floor_skip": "verify, state"}"#);
        assert!(s.verify && s.state && !s.store && !s.header);
    }
}
