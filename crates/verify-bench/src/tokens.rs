//! The two token modes' per-request decision, timed (issue 13: "introspection mode's added CPU
//! per request with a warm cache within 10 µs of `upstream` mode"). The load benchmark is too
//! noisy to show a difference of a few µs; this times the pure pipeline the glue runs on each
//! request, [`check_gathered`], with warm caches and the same request every iteration:
//!
//! - `upstream`: the token's payload decoded for `cnf.jkt` ([`inspect_unverified`]);
//! - `introspection` with a warm cache: SHA-256 of the token, the cached answer's `cnf.jkt`.
//!
//! Both then verify the same proof (its `ath` is SHA-256 of the token again). The two modes
//! run alternately in blocks so clock drift and preemption hit both alike.
//!
//! Input: `"token_case": {"token": "...", "proof": "...", "jkt": "..."}` — a bound token, a
//! proof for `GET https://api.example.com/bench` with `ath`, the proof key's thumbprint.

use dpop_guard::authn::{check_gathered, Decision};
use dpop_guard::config::Config;
use dpop_guard::introspection::{self, Answer, IntrospectionView, TokenCache};
use dpop_guard::proof::{ath_for, KeyCache};
use std::hint::black_box;

/// A bound access token and a proof for it.
pub struct TokenCase {
    pub token: String,
    pub proof: String,
    /// The proof key's thumbprint (the token's `cnf.jkt`).
    pub jkt: String,
}

/// The `token_case` of an input, if any.
pub fn parse_token_case(v: &serde_json::Value) -> Result<Option<TokenCase>, String> {
    let Some(c) = v.get("token_case") else {
        return Ok(None);
    };
    let s = |k: &str| {
        c.get(k)
            .and_then(|x| x.as_str())
            .map(str::to_owned)
            .ok_or(format!("token_case: missing {k}"))
    };
    Ok(Some(TokenCase {
        token: s("token")?,
        proof: s("proof")?,
        jkt: s("jkt")?,
    }))
}

/// The plugin configuration of envoy/envoy.yaml with this `access_token` section.
fn config(access_token: &str) -> Result<Config, String> {
    let json = format!(
        r#"{{"required": true, "proof_ttl": 120, "clock_skew": 60,
            "algorithms": ["EdDSA", "ES256", "RS256"],
            "routes": [
              {{"prefix": "/auth/agent/request_temp_token", "policy": "proof_only"}},
              {{"prefix": "/public", "policy": "optional"}},
              {{"prefix": "/healthz", "policy": "off"}}],
            "access_token": {access_token},
            "replay": {{"store": "local", "capacity": 100000}}}}"#
    );
    Config::parse(json.as_bytes()).map_err(|e| format!("config: {e}"))
}

/// Result rows, as the other modes report them.
type Rows = Vec<(String, Result<f64, String>)>;

/// Blocks per mode; each mode runs `iterations / BLOCKS` decisions per block, A then B.
const BLOCKS: u32 = 10;

/// Times both modes' decision and its pieces; nothing when the input has no `token_case`.
pub fn run_token_modes(
    input: &crate::Input,
    clock_ns: &dyn Fn() -> u64,
) -> Vec<(String, Result<f64, String>)> {
    let Some(case) = &input.token_case else {
        return Vec::new();
    };
    match run_case(case, input.now, input.iterations, clock_ns) {
        Ok(rows) => rows,
        Err(e) => vec![("token modes".to_owned(), Err(e))],
    }
}

fn run_case(
    case: &TokenCase,
    now: i64,
    iterations: u32,
    clock_ns: &dyn Fn() -> u64,
) -> Result<Rows, String> {
    let upstream = config(r#"{"verify": "upstream"}"#)?;
    let intro = config(r#"{"verify": "introspection", "introspection": {"cluster": "as"}}"#)?;
    let authorization = format!("DPoP {}", case.token);
    let pairs: [(&[u8], &[u8]); 9] = [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"api.example.com"),
        (b":path", b"/bench"),
        (b"user-agent", b"verify-bench/1"),
        (b"accept", b"*/*"),
        (b"x-request-id", b"6f1c1a3e-6a43-4a0e-9a8b-2f4b0f3c9d11"),
        (b"authorization", authorization.as_bytes()),
        (b"dpop", case.proof.as_bytes()),
    ];
    // the glue gathers the headers once per request in either mode: not timed
    let h_up = dpop_guard::headers::gather(&pairs, &upstream.forward_jkt_header);
    let h_in = dpop_guard::headers::gather(&pairs, &intro.forward_jkt_header);

    let icfg = intro
        .access_token
        .introspection
        .as_ref()
        .ok_or("introspection config missing")?;
    let mut tokens = TokenCache::new(icfg.cache_entries);
    let hash = introspection::token_hash(&case.token);
    let answer = Answer::Active {
        jkt: Some(case.jkt.clone()),
        exp: None,
    };
    tokens.insert(icfg, hash, &answer, now);

    let mut keys_up = KeyCache::new(16);
    let mut keys_in = KeyCache::new(16);
    let decide_up = |keys: &mut KeyCache| {
        check_gathered(&upstream, black_box(&h_up), None, None, None, now, keys)
    };
    let decide_in = |keys: &mut KeyCache| {
        let view = IntrospectionView {
            cache: &tokens,
            fresh: None,
        };
        check_gathered(&intro, black_box(&h_in), None, Some(view), None, now, keys)
    };

    let mut out = Vec::new();
    let first_up = decide_up(&mut keys_up);
    let first_in = decide_in(&mut keys_in);
    let up_ok = matches!(first_up.decision, Decision::Allow { .. });
    let in_ok =
        matches!(first_in.decision, Decision::Allow { .. }) && first_in.introspection_cache_hit;
    if !up_ok {
        out.push((
            "token upstream: decision".to_owned(),
            Err(format!("not allowed: {:?}", first_up.decision)),
        ));
    }
    if !in_ok {
        out.push((
            "token introspection warm: decision".to_owned(),
            Err(format!(
                "not allowed from the cache: {:?} (cache hit {})",
                first_in.decision, first_in.introspection_cache_hit
            )),
        ));
    }

    if up_ok && in_ok {
        let per_block = (iterations / BLOCKS).max(10);
        for _ in 0..per_block {
            black_box(decide_up(&mut keys_up));
            black_box(decide_in(&mut keys_in));
        }
        let (mut total_up, mut total_in) = (0u64, 0u64);
        let (mut best_up, mut best_in) = (u64::MAX, u64::MAX);
        for _ in 0..BLOCKS {
            let start = clock_ns();
            for _ in 0..per_block {
                black_box(decide_up(&mut keys_up));
            }
            let mid = clock_ns();
            for _ in 0..per_block {
                black_box(decide_in(&mut keys_in));
            }
            let end = clock_ns();
            let (a, b) = (mid.saturating_sub(start), end.saturating_sub(mid));
            total_up += a;
            total_in += b;
            best_up = best_up.min(a);
            best_in = best_in.min(b);
        }
        let us = |ns: u64, n: u32| ns as f64 / 1000.0 / f64::from(n);
        let n = per_block * BLOCKS;
        let (up, inn) = (us(total_up, n), us(total_in, n));
        let (fast_up, fast_in) = (us(best_up, per_block), us(best_in, per_block));
        let label = format!("{BLOCKS}x{per_block} alternating");
        out.push((format!("token upstream: decision ({label})"), Ok(up)));
        out.push((
            format!("token introspection warm: decision ({label})"),
            Ok(inn),
        ));
        out.push((
            "token introspection warm - upstream: decision".to_owned(),
            Ok(inn - up),
        ));
        out.push((
            "token upstream: decision, fastest block".to_owned(),
            Ok(fast_up),
        ));
        out.push((
            "token introspection warm: decision, fastest block".to_owned(),
            Ok(fast_in),
        ));
        out.push((
            "token introspection warm - upstream: fastest blocks".to_owned(),
            Ok(fast_in - fast_up),
        ));
    }

    // the pieces that differ between the modes (both verify the same proof, ath included)
    let n = iterations.max(100);
    let token = case.token.as_str();
    let view = IntrospectionView {
        cache: &tokens,
        fresh: None,
    };
    let steps: [crate::Step; 4] = [
        ("sha256 of the token (token_hash)", &|t| {
            usize::from(introspection::token_hash(t)[0])
        }),
        ("ath_for (sha256 + b64)", &|t| ath_for(t).len()),
        ("upstream: inspect_unverified", &|t| {
            dpop_guard::token::inspect_unverified(t).map_or(0, |i| i.jkt.map_or(1, |j| j.len()))
        }),
        (
            "introspection: lookup (sha256 + cache get)",
            &|t| match introspection::lookup(&view, t, now) {
                Some(Answer::Active { jkt, .. }) => jkt.map_or(1, |j| j.len()),
                _ => 0,
            },
        ),
    ];
    for (name, f) in steps {
        for _ in 0..n / 10 {
            black_box(f(black_box(token)));
        }
        let start = clock_ns();
        let mut acc = 0usize;
        for _ in 0..n {
            acc = acc.wrapping_add(f(black_box(token)));
        }
        let ns = clock_ns().saturating_sub(start);
        black_box(acc);
        out.push((
            format!("token piece {name}, {} byte token", token.len()),
            Ok(ns as f64 / 1000.0 / f64::from(n)),
        ));
    }
    Ok(out)
}
