//! The BUILT wasm (`make wasm`; `DPOP_GUARD_WASM` to choose another) in the proxy-wasm
//! emulator (crates/wasm-host-test): arbitrary header maps, jwt_authn metadata and time, one
//! request each. The guest must never trap, and its action must equal
//! `dpop_guard::authn::decide_headers` on the same facts.
//!
//! Input: byte 0 picks the configuration, byte 1 the jwt_authn metadata, byte 2 the time
//! offset; then header lines `name=value` separated by `\n` (raw bytes; the first `=` splits).
//! In values, `@token` becomes an access token bound to the client key, `@other` one bound to
//! another key, and `@proof` a proof valid for the request's method and target URI (with
//! `ath` when a token is in the request) — so the fuzzer reaches the signed paths.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proxy_wasm_emu::dpop::{bound_token, Case, Differential, JwtMetadata, Key, ProofClaims};
use proxy_wasm_emu::{Pairs, Wasm};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

const NOW: i64 = 1_700_000_000;

const CONFIGS: &[&str] = &[
    r#"{"required": true, "routes": [{"prefix": "/auth/agent/request_temp_token", "policy": "proof_only"},
        {"prefix": "/public", "policy": "optional"}, {"prefix": "/healthz", "policy": "off"}],
        "replay": {"store": "local", "capacity": 100000}}"#,
    r#"{"trust_forwarded_proto": true, "replay": {"store": "off"}}"#,
    r#"{"required": true, "access_token": {"verify": "jwt_authn"}, "replay": {"store": "off"}}"#,
    r#"{"required": true, "public_origin": "https://api.example.com", "forward_jkt_header": "x-client-jkt"}"#,
    r#"{"required": true, "replay": {"store": "remote", "cluster": "replay"}}"#,
    r#"{"required": true, "nonce": {"secret": "0123456789abcdef"}, "replay": {"store": "off"}}"#,
];

fn wasm() -> &'static Wasm {
    static W: OnceLock<Wasm> = OnceLock::new();
    W.get_or_init(|| match Wasm::load_default() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("glue fuzz target: {e}");
            std::process::exit(2);
        }
    })
}

thread_local! {
    /// One VM, a root context per configuration (the VM-wide warm-up is paid once).
    static DIFF: RefCell<Option<Differential<'static>>> = const { RefCell::new(None) };
}

fn replace(v: &[u8], pat: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i..].starts_with(pat) {
            out.extend_from_slice(with);
            i += pat.len();
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    out
}

fn first<'a>(h: &'a [(Vec<u8>, Vec<u8>)], name: &[u8]) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

fn decode(data: &[u8], cfg: &dpop_guard::config::Config) -> Option<Case> {
    let (&jwt_sel, rest) = data.split_first()?;
    let (&time, rest) = rest.split_first()?;
    let now = NOW + i64::from(time as i8) * 7;
    let mut h: Pairs = rest
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .take(64)
        .map(|line| match line.iter().position(|b| *b == b'=') {
            Some(i) => (line[..i].to_vec(), line[i + 1..].to_vec()),
            None => (line.to_vec(), Vec::new()),
        })
        .collect();

    let key = Key::new(1);
    let other = Key::new(2);
    let token = bound_token(&key.jkt());
    let has_token = h.iter().any(|(_, v)| v.windows(6).any(|w| w == b"@token"));
    if h.iter().any(|(_, v)| v.windows(6).any(|w| w == b"@proof")) {
        let method = first(&h, b":method").unwrap_or("GET").to_owned();
        let target = dpop_guard::authn::target_uri(
            cfg,
            &method,
            first(&h, b":scheme"),
            first(&h, b"x-forwarded-proto"),
            first(&h, b":authority").unwrap_or(""),
            dpop_guard::authn::path_only(first(&h, b":path").unwrap_or("/")),
        );
        let nonce = cfg
            .nonce
            .as_ref()
            .map(|n| dpop_guard::nonce::issue(n, &key.jkt(), now));
        for (_, v) in h.iter_mut() {
            while let Some(pos) = v.windows(6).position(|w| w == b"@proof") {
                // a fresh jti for each proof: the replay store is modelled, not fought
                static N: AtomicU64 = AtomicU64::new(0);
                let jti = format!("f{}", N.fetch_add(1, Ordering::Relaxed));
                let p = key.proof(&ProofClaims {
                    htm: &method,
                    htu: &target,
                    iat: now,
                    jti: &jti,
                    token: has_token.then_some(token.as_str()),
                    nonce: nonce.as_deref(),
                });
                v.splice(pos..pos + 6, p.into_bytes());
            }
        }
    }
    for (_, v) in h.iter_mut() {
        *v = replace(v, b"@token", token.as_bytes());
        *v = replace(v, b"@other", bound_token(&other.jkt()).as_bytes());
    }

    let jwt = (cfg.access_token.verify == dpop_guard::config::VerifyMode::JwtAuthn).then(|| {
        let payload = Some(b"\x0a\x03sub".to_vec());
        match jwt_sel % 6 {
            0 => JwtMetadata::default(),
            1 => JwtMetadata { payload, jkt: None },
            2 => JwtMetadata {
                payload,
                jkt: Some(other.jkt().into_bytes()),
            },
            3 => JwtMetadata {
                payload,
                jkt: Some(vec![0xff, jwt_sel]),
            },
            4 => JwtMetadata {
                payload: Some(Vec::new()),
                jkt: Some(key.jkt().into_bytes()),
            },
            _ => JwtMetadata {
                payload,
                jkt: Some(key.jkt().into_bytes()),
            },
        }
    });
    Some(Case {
        headers: h,
        jwt,
        now,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let c = sel as usize % CONFIGS.len();
    DIFF.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            let configs: Vec<&[u8]> = CONFIGS.iter().map(|c| c.as_bytes()).collect();
            *d = Some(Differential::new(wasm(), &configs).unwrap_or_else(|e| panic!("{e}")));
        }
        let Some(diff) = d.as_mut() else {
            return;
        };
        let cfg = diff.plugins[c].cfg.clone();
        let Some(case) = decode(rest, &cfg) else {
            return;
        };
        if let Err(f) = diff.run(c, &case) {
            panic!(
                "config #{c}: {f}\nheaders: {:?}",
                case.headers
                    .iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v)))
                    .collect::<Vec<_>>()
            );
        }
    });
});
