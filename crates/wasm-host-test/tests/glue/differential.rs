//! The built wasm against the pure core: random header maps (raw bytes, non-UTF-8, duplicates,
//! comma-joined values, tabs, valid proofs and tokens some of the time) under several
//! configurations; the guest's action (upstream with which thumbprint, or local reply status
//! and problem slug) must equal `decide_headers` on the same facts. Deterministic: a fixed
//! seed (`GLUE_DIFF_SEED`), `GLUE_DIFF_ITERS` iterations (default 2000).

use crate::common::*;
use proxy_wasm_emu::dpop::{
    bound_token, upstream_token, Case, Differential, Failure, JwtMetadata, Key, ProofClaims,
};
use proxy_wasm_emu::Pairs;

/// xorshift64*: small, seeded, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// true with probability `p` percent
    pub fn pct(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n)
            .map(|_| match self.below(4) {
                0 => 0x80 + self.below(0x80) as u8,
                1 => b"\t ,;=\"\\"[self.below(7)],
                _ => 0x21 + self.below(0x5e) as u8,
            })
            .collect()
    }
}

pub const CONFIGS: &[&str] = &[
    "demo",
    r#"{"required": false, "trust_forwarded_proto": true, "replay": {"store": "off"},
        "routes": [{"prefix": "/tok", "policy": "proof_only"}, {"prefix": "/req", "policy": "required"},
                   {"prefix": "/healthz", "policy": "off"}]}"#,
    r#"{"required": true, "access_token": {"verify": "jwt_authn"}, "replay": {"store": "off"},
        "routes": [{"prefix": "/public", "policy": "optional"}]}"#,
    r#"{"required": true, "public_origin": "https://api.example.com", "forward_jkt_header": "x-client-jkt",
        "require_ath": false}"#,
    r#"{"required": true, "replay": {"store": "remote", "cluster": "replay"}}"#,
    r#"{"required": true, "nonce": {"secret": "0123456789abcdef"}, "replay": {"store": "off"}}"#,
    r#"{"enabled": false}"#,
];

pub fn config_text(i: usize) -> String {
    match CONFIGS[i] {
        "demo" => demo_config(),
        c => c.to_owned(),
    }
}

/// Maybe absent (`None`), maybe garbage, usually one of `good`.
fn value(rng: &mut Rng, good: &[&str]) -> Option<Vec<u8>> {
    match rng.below(20) {
        0 => None,
        1 => Some(rng.bytes(12)),
        2 => Some(Vec::new()),
        3 => Some(format!("{}\t", rng.pick(good)).into_bytes()),
        _ => Some(rng.pick(good).as_bytes().to_vec()),
    }
}

fn text(v: &Option<Vec<u8>>) -> Option<&str> {
    v.as_deref().and_then(|b| std::str::from_utf8(b).ok())
}

/// One random request for configuration `cfg` (its parsed form gives the htu the filter will
/// compute, so that proofs are valid often enough to reach the deep paths).
pub fn random_case(rng: &mut Rng, cfg: &dpop_guard::config::Config) -> Case {
    let now = NOW + rng.below(3) as i64;
    let method = value(rng, &["GET", "GET", "POST", "get", "DELETE"]);
    let path = value(
        rng,
        &[
            "/api/x",
            "/api/x?q=1",
            "/public/page",
            "/healthz",
            "/auth/agent/request_temp_token",
            "/tok",
            "/req/a",
            "/hello",
            "//api",
            "/api/%2e%2e/public",
            "*",
        ],
    );
    let authority = value(
        rng,
        &[
            AUTHORITY,
            AUTHORITY,
            "api.example.com",
            "API.example.com:443",
            "h:1",
        ],
    );
    let scheme = value(rng, &["http", "http", "https", "HTTP"]);
    let fwd = if rng.pct(30) {
        value(rng, &["https", "http", "https, http", " HTTPS "])
    } else {
        None
    };

    let htm = text(&method).unwrap_or("GET").to_owned();
    let target = dpop_guard::authn::target_uri(
        cfg,
        &htm,
        text(&scheme),
        text(&fwd),
        text(&authority).unwrap_or(""),
        dpop_guard::authn::path_only(text(&path).unwrap_or("/")),
    );
    let key = Key::new(100 + rng.below(3) as u64);
    let other = Key::new(200);

    // the access token
    let token = match rng.below(10) {
        0..=3 => None,
        4..=6 => Some(bound_token(&key.jkt())),
        7 => Some(bound_token(&other.jkt())),
        8 => Some(upstream_token(r#"{"sub":"x"}"#)),
        _ => Some("not-a-jwt".to_owned()),
    };
    let nonce = cfg.nonce.as_ref().and_then(|n| match rng.below(4) {
        0 => None,
        1 => Some("stale-nonce".to_owned()),
        _ => Some(dpop_guard::nonce::issue(n, &key.jkt(), now)),
    });
    let make_proof = |rng: &mut Rng| -> Vec<u8> {
        let htu = match rng.below(10) {
            0 => "https://elsewhere.example/x".to_owned(),
            1 => format!("{target}?ignored=1"),
            _ => target.clone(),
        };
        let iat = match rng.below(12) {
            0 => now - 10_000,
            1 => now + 10_000,
            _ => now - rng.below(30) as i64,
        };
        let ath_token = if rng.pct(85) { token.as_deref() } else { None };
        let p = key.proof(&ProofClaims {
            htm: if rng.pct(95) { &htm } else { "PUT" },
            htu: &htu,
            iat,
            jti: &jti(),
            token: ath_token,
            nonce: nonce.as_deref(),
        });
        match rng.below(20) {
            0 => format!(" {p}\t").into_bytes(),
            1 => p.replace('.', "..").into_bytes(),
            _ => p.into_bytes(),
        }
    };

    let mut h: Pairs = Vec::new();
    let push = |h: &mut Pairs, rng: &mut Rng, name: &str, v: Option<Vec<u8>>| {
        if let Some(v) = v {
            let name = if rng.pct(3) {
                name.to_ascii_uppercase()
            } else {
                name.to_owned()
            };
            h.push((name.clone().into_bytes(), v.clone()));
            if rng.pct(3) {
                h.push((name.into_bytes(), v)); // duplicated
            }
        }
    };
    push(&mut h, rng, ":authority", authority);
    push(&mut h, rng, ":path", path);
    push(&mut h, rng, ":method", method);
    push(&mut h, rng, ":scheme", scheme);
    push(&mut h, rng, "x-forwarded-proto", fwd);
    // the proof(s)
    let dpop: Vec<Vec<u8>> = match rng.below(20) {
        0..=5 => vec![],
        6..=16 => vec![make_proof(rng)],
        17 => vec![make_proof(rng), make_proof(rng)],
        18 => {
            let (a, b) = (make_proof(rng), make_proof(rng));
            vec![[a, b", ".to_vec(), b].concat()]
        }
        _ => vec![match rng.below(4) {
            0 => rng.bytes(40),
            1 => b"eyJhbGciOiJFZERTQSJ9.e30.c2ln".to_vec(),
            2 => b"\xff\xfe".to_vec(),
            _ => Vec::new(),
        }],
    };
    for p in dpop {
        push(&mut h, rng, "dpop", Some(p));
    }
    // the Authorization header(s)
    if let Some(t) = &token {
        let scheme = *rng.pick(&["DPoP", "Bearer", "dpop", "bearer", "Basic"]);
        let v = match rng.below(12) {
            0 => format!("{scheme}  {t}").into_bytes(),
            1 => format!("{scheme}\t{t}").into_bytes(),
            2 => [format!("{scheme} ").into_bytes(), b"\xff".to_vec()].concat(),
            _ => format!("{scheme} {t}").into_bytes(),
        };
        push(&mut h, rng, "authorization", Some(v.clone()));
        if rng.pct(4) {
            push(&mut h, rng, "authorization", Some(v));
        }
    } else if rng.pct(10) {
        let v = rng.bytes(20);
        push(&mut h, rng, "authorization", Some(v));
    }
    // forged thumbprints, ids, noise
    for name in [
        "x-dpop-jkt",
        "x_dpop_jkt",
        "X-DPoP-JKT",
        "x-client-jkt",
        "x_client_jkt",
    ] {
        if rng.pct(8) {
            let v = if rng.pct(50) {
                other.jkt().into_bytes()
            } else {
                rng.bytes(10)
            };
            push(&mut h, rng, name, Some(v));
        }
    }
    if rng.pct(60) {
        let v = match rng.below(4) {
            0 => rng.bytes(16),
            1 => vec![b'a'; 300],
            _ => b"6c9a0a7b-3211-412f".to_vec(),
        };
        push(&mut h, rng, "x-request-id", Some(v));
    }
    for _ in 0..rng.below(3) {
        let (n, v) = (rng.bytes(8), rng.bytes(16));
        h.push((n, v));
    }
    if rng.pct(25) {
        // any order
        for i in (1..h.len()).rev() {
            let j = rng.below(i + 1);
            h.swap(i, j);
        }
    }

    let jwt = (cfg.access_token.verify == dpop_guard::config::VerifyMode::JwtAuthn).then(|| {
        let payload = || Some(b"\x0a\x03sub\x12\x01x".to_vec());
        match rng.below(10) {
            0 => JwtMetadata::default(),
            1 => JwtMetadata {
                payload: payload(),
                jkt: None,
            },
            2 => JwtMetadata {
                payload: payload(),
                jkt: Some(other.jkt().into_bytes()),
            },
            3 => JwtMetadata {
                payload: payload(),
                jkt: Some(b"\xff\xfe".to_vec()),
            },
            4 => JwtMetadata {
                payload: Some(Vec::new()),
                jkt: Some(key.jkt().into_bytes()),
            },
            5 => JwtMetadata {
                payload: None,
                jkt: Some(key.jkt().into_bytes()),
            },
            _ => JwtMetadata {
                payload: payload(),
                jkt: Some(key.jkt().into_bytes()),
            },
        }
    });
    Case {
        headers: h,
        jwt,
        now,
    }
}

#[test]
fn guest_equals_core_on_random_requests() {
    let seed: u64 = std::env::var("GLUE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00d0_9e1e);
    let iters: usize = std::env::var("GLUE_DIFF_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let texts: Vec<String> = (0..CONFIGS.len()).map(config_text).collect();
    let refs: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    let t = std::time::Instant::now();
    let mut diff = Differential::new(wasm(), &refs).unwrap_or_else(|e| panic!("{e}"));
    let setup = t.elapsed();
    let mut rng = Rng::new(seed);
    let mut failures = Vec::new();
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..iters {
        let c = i % CONFIGS.len();
        let cfg = diff.plugins[c].cfg.clone();
        let case = random_case(&mut rng, &cfg);
        match diff.run(c, &case) {
            Ok(ex) => {
                let v =
                    proxy_wasm_emu::dpop::observed_verdict(&ex.outcome, &cfg.forward_jkt_header);
                let key = match v {
                    proxy_wasm_emu::dpop::Verdict::Upstream { jkt } if jkt.is_empty() => {
                        "upstream".into()
                    }
                    proxy_wasm_emu::dpop::Verdict::Upstream { .. } => "upstream+jkt".into(),
                    other => other.to_string(),
                };
                *tally.entry(key).or_default() += 1;
            }
            Err(f) => {
                let trapped = matches!(f, Failure::Trap(_));
                failures.push(format!(
                    "iteration {i} (seed {seed:#x}), config #{c}, now {}, jwt {:?}\n  headers: {}\n  {f}",
                    case.now,
                    case.jwt,
                    show(&case.headers)
                ));
                if trapped {
                    diff.restart().unwrap();
                }
            }
        }
        if failures.len() >= 20 {
            break;
        }
    }
    eprintln!(
        "differential: VM with {} plugins in {setup:?}, {iters} requests in {:?}, outcomes: {tally:?}",
        CONFIGS.len(),
        t.elapsed() - setup
    );
    assert!(
        failures.is_empty(),
        "{} disagreements between the wasm and decide_headers:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // the generator reaches the deep paths
    assert!(
        tally.get("upstream+jkt").copied().unwrap_or(0) > iters / 20,
        "{tally:?}"
    );
}
