//! The pure request pipeline natively, with coverage guidance: arbitrary header pairs (raw
//! bytes, duplicates, any order) through `headers::gather` and `authn::decide_headers` under
//! a few configurations. Never a panic; a thumbprint only with a decision to allow; every
//! forged-jkt name found is a spelling of the configured header. (The `glue` target runs the
//! same through the built wasm.)
#![no_main]
use dpop_guard::authn::{decide_headers, Decision, JwtAuthnView};
use dpop_guard::config::Config;
use dpop_guard::headers::{gather, same_header_name};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn configs() -> &'static [Config] {
    static CFGS: OnceLock<Vec<Config>> = OnceLock::new();
    CFGS.get_or_init(|| {
        [
            &br#"{"required": true, "routes": [{"prefix": "/public", "policy": "off"}, {"prefix": "/token", "policy": "proof_only"}]}"#[..],
            br#"{"access_token": {"verify": "jwt_authn"}, "public_origin": "https://api.example.com"}"#,
            br#"{"enabled": false}"#,
        ]
        .iter()
        .map(|c| Config::parse(c).expect("fuzz config"))
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // pairs: name \0 value \n ... (names and values are any other bytes)
    let pairs: Vec<(&[u8], &[u8])> = rest
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let mut it = line.splitn(2, |b| *b == 0);
            Some((it.next()?, it.next().unwrap_or_default()))
        })
        .collect();
    let cfg = &configs()[usize::from(selector) % configs().len()];
    let h = gather(&pairs, &cfg.forward_jkt_header);
    for name in &h.forged_jkt {
        assert!(same_header_name(name.as_bytes(), &cfg.forward_jkt_header));
    }
    let jwt = (selector & 0x80 != 0).then(|| JwtAuthnView {
        payload_present: true,
        jkt: (selector & 0x40 != 0).then(|| "x".repeat(43)),
    });
    match decide_headers(cfg, &pairs, jwt.as_ref(), 1_700_000_000) {
        Decision::Allow {
            replay_key: Some(_),
            replay_ttl,
            ..
        } => assert!(replay_ttl >= 1),
        Decision::Pass
        | Decision::Allow { .. }
        | Decision::Deny(_)
        | Decision::Metadata(_)
        | Decision::Introspect(_)
        | Decision::RefreshJwks => {}
    }
});
