//! Times `verify_proof` per algorithm. The same loop runs natively (`verify-bench` binary) and
//! inside Envoy's V8 (this crate as a bootstrap wasm service, clock from the host), so the
//! cost of wasm crypto is measured where it runs.
//!
//! Input (JSON): `{"iterations": N, "now": T, "cases": [{"alg": "EdDSA", "proof": "...",
//! "htm": "GET", "htu": "https://..."}]}` — proofs made by `dpop proof --iat T`.
//!
//! With `"token_case"` in the input, [`tokens`] also times the two token modes' decision.
//!
//! The second mode, `{"mode": "wycheproof", ...}` ([`wycheproof`]), is not a benchmark: a
//! differential run of Wycheproof vectors, Envoy's `verify_signature` against our verifiers.

pub mod tokens;
pub mod wycheproof;

use dpop_guard::jose::{Alg, AlgSet};
use dpop_guard::proof::{verify_proof, ProofPolicy, RequestFacts};

pub struct Case {
    pub alg: String,
    pub proof: String,
    pub htm: String,
    pub htu: String,
}

pub struct Input {
    pub iterations: u32,
    pub now: i64,
    pub cases: Vec<Case>,
    /// A bound token and its proof, for [`tokens::run_token_modes`] (optional).
    pub token_case: Option<tokens::TokenCase>,
}

pub fn parse_input(bytes: &[u8]) -> Result<Input, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    parse_value(&v)
}

/// [`parse_input`] of an already parsed input.
pub fn parse_value(v: &serde_json::Value) -> Result<Input, String> {
    let s = |c: &serde_json::Value, k: &str| {
        c.get(k)
            .and_then(|x| x.as_str())
            .map(str::to_owned)
            .ok_or(format!("missing {k}"))
    };
    let mut cases = Vec::new();
    for c in v
        .get("cases")
        .and_then(|c| c.as_array())
        .ok_or("missing cases")?
    {
        cases.push(Case {
            alg: s(c, "alg")?,
            proof: s(c, "proof")?,
            htm: s(c, "htm")?,
            htu: s(c, "htu")?,
        });
    }
    Ok(Input {
        iterations: v.get("iterations").and_then(|x| x.as_u64()).unwrap_or(200) as u32,
        now: v.get("now").and_then(|x| x.as_i64()).ok_or("missing now")?,
        cases,
        token_case: tokens::parse_token_case(v)?,
    })
}

/// Runs every case `iterations` times (after a warm-up) and returns `(alg, µs per verify)`.
/// `clock_ns` is the host's clock; a case that does not verify is reported, not timed.
pub fn run(input: &Input, clock_ns: &dyn Fn() -> u64) -> Vec<(String, Result<f64, String>)> {
    let policy = ProofPolicy {
        algorithms: Alg::ALL.into_iter().collect::<AlgSet>(),
        ..ProofPolicy::default()
    };
    input
        .cases
        .iter()
        .map(|c| {
            let facts = RequestFacts {
                method: &c.htm,
                uri: &c.htu,
                access_token: None,
                now: input.now,
            };
            if let Err(r) = verify_proof(&c.proof, &facts, &policy) {
                return (
                    c.alg.clone(),
                    Err(format!("does not verify: {}", r.stat_name())),
                );
            }
            for _ in 0..(input.iterations / 10).max(5) {
                let _ = verify_proof(&c.proof, &facts, &policy);
            }
            let start = clock_ns();
            for _ in 0..input.iterations {
                let _ = std::hint::black_box(verify_proof(
                    std::hint::black_box(&c.proof),
                    &facts,
                    &policy,
                ));
            }
            let elapsed = clock_ns().saturating_sub(start);
            (
                c.alg.clone(),
                Ok(elapsed as f64 / 1000.0 / f64::from(input.iterations.max(1))),
            )
        })
        .collect()
}

/// The filter's real path: `verify_proof_cached` with a warm key cache (a client reuses its
/// key), split into the signature check alone and everything else.
pub fn run_cached(input: &Input, clock_ns: &dyn Fn() -> u64) -> Vec<(String, Result<f64, String>)> {
    use dpop_guard::proof::{check_header, verify_proof_cached, KeyCache};
    let policy = ProofPolicy {
        algorithms: Alg::ALL.into_iter().collect::<AlgSet>(),
        ..ProofPolicy::default()
    };
    let n = input.iterations.max(1);
    let per = |ns: u64| ns as f64 / 1000.0 / f64::from(n);
    let mut out = Vec::new();
    for c in &input.cases {
        let facts = RequestFacts {
            method: &c.htm,
            uri: &c.htu,
            access_token: None,
            now: input.now,
        };
        let mut cache = KeyCache::new(16);
        if verify_proof_cached(&c.proof, &facts, &policy, &mut cache).is_err() {
            out.push((
                format!("{} cached", c.alg),
                Err("does not verify".to_owned()),
            ));
            continue;
        }
        let start = clock_ns();
        for _ in 0..n {
            let _ = std::hint::black_box(verify_proof_cached(
                std::hint::black_box(&c.proof),
                &facts,
                &policy,
                &mut cache,
            ));
        }
        let total = per(clock_ns().saturating_sub(start));
        out.push((format!("{} cached (whole check)", c.alg), Ok(total)));
        let Ok((h, p, s)) = dpop_guard::jose::jws::split(&c.proof, 8192) else {
            continue;
        };
        let header = dpop_guard::b64::decode(h)
            .and_then(|b| dpop_guard::json::parse_object(&b))
            .and_then(|o| check_header(&o, &policy).ok());
        let (Some(header), Some(sig)) = (header, dpop_guard::b64::decode(s)) else {
            continue;
        };
        let input_len = h.len() + 1 + p.len();
        let signing_input = c.proof.get(..input_len).unwrap_or("").as_bytes();
        let start = clock_ns();
        for _ in 0..n {
            let _ = std::hint::black_box(header.jwk.verify(
                header.alg,
                std::hint::black_box(signing_input),
                &sig,
            ));
        }
        let sig_us = per(clock_ns().saturating_sub(start));
        out.push((format!("{} cached: signature only", c.alg), Ok(sig_us)));
        out.push((
            format!("{} cached: all but signature", c.alg),
            Ok(total - sig_us),
        ));
    }
    out
}

/// A named piece of per-proof work, timed in rotation.
pub(crate) type Step<'a> = (&'a str, &'a dyn Fn(&str) -> usize);

/// Cases of one algorithm in rotation through one shared key cache: every verification
/// sees a different proof (fresh R, s, jti), as in a load test, instead of the same one.
pub fn run_rotation(
    input: &Input,
    clock_ns: &dyn Fn() -> u64,
) -> Vec<(String, Result<f64, String>)> {
    use dpop_guard::proof::{verify_proof_cached, KeyCache};
    let policy = ProofPolicy {
        algorithms: Alg::ALL.into_iter().collect::<AlgSet>(),
        ..ProofPolicy::default()
    };
    let mut algs: Vec<&str> = input.cases.iter().map(|c| c.alg.as_str()).collect();
    algs.dedup();
    let mut out = Vec::new();
    for alg in algs {
        let cases: Vec<&Case> = input.cases.iter().filter(|c| c.alg == alg).collect();
        if cases.len() < 2 {
            continue;
        }
        let mut cache = KeyCache::new(16);
        let run = |c: &Case, cache: &mut KeyCache| {
            let facts = RequestFacts {
                method: &c.htm,
                uri: &c.htu,
                access_token: None,
                now: input.now,
            };
            verify_proof_cached(std::hint::black_box(&c.proof), &facts, &policy, cache).is_ok()
        };
        for c in &cases {
            run(c, &mut cache);
            run(c, &mut cache);
        }
        let n = (input.iterations as usize).max(cases.len() * 10);
        let start = clock_ns();
        let mut ok = 0usize;
        for i in 0..n {
            if let Some(c) = cases.get(i % cases.len()) {
                ok += usize::from(run(c, &mut cache));
            }
        }
        let ns = clock_ns().saturating_sub(start);
        out.push((
            format!("{alg} rotation of {} proofs ({ok}/{n} ok)", cases.len()),
            Ok(ns as f64 / 1000.0 / n as f64),
        ));
        // the signature check alone, same rotation
        let parts: Vec<_> = cases
            .iter()
            .filter_map(|c| {
                let (h, p, s) = dpop_guard::jose::jws::split(&c.proof, 8192).ok()?;
                let header = dpop_guard::b64::decode(h)
                    .and_then(|b| dpop_guard::json::parse_object(&b))
                    .and_then(|o| dpop_guard::proof::check_header(&o, &policy).ok())?;
                let sig = dpop_guard::b64::decode(s)?;
                Some((
                    header,
                    c.proof.get(..h.len() + 1 + p.len())?.as_bytes().to_vec(),
                    sig,
                ))
            })
            .collect();
        if let Some((h0, _, _)) = parts.first() {
            for (_, m, s) in &parts {
                h0.jwk.verify(h0.alg, m, s);
            }
            let start = clock_ns();
            let mut ok = 0usize;
            for i in 0..n {
                if let Some((_, m, s)) = parts.get(i % parts.len()) {
                    ok += usize::from(h0.jwk.verify(h0.alg, std::hint::black_box(m), s));
                }
            }
            let ns = clock_ns().saturating_sub(start);
            out.push((
                format!("{alg} rotation, signature only ({ok}/{n} ok)"),
                Ok(ns as f64 / 1000.0 / n as f64),
            ));
            // the non-signature work per proof: payload decoding and parsing, htu, replay key
            let payloads: Vec<&str> = cases
                .iter()
                .filter_map(|c| c.proof.split('.').nth(1))
                .collect();
            let uri = cases.first().map_or("", |c| c.htu.as_str());
            let steps: [Step; 4] = [
                ("b64 payload", &|p| {
                    dpop_guard::b64::decode(p).map_or(0, |v| v.len())
                }),
                ("b64+json payload", &|p| {
                    dpop_guard::b64::decode(p)
                        .and_then(|v| dpop_guard::json::parse_object(&v))
                        .map_or(0, |o| usize::from(o.contains("jti")))
                }),
                ("htu normalize x2", &|p| {
                    dpop_guard::htu::normalize(uri).map_or(0, |u| u.len())
                        + dpop_guard::htu::normalize(p.get(..0).unwrap_or(uri))
                            .map_or(0, |u| u.len())
                }),
                ("replay key", &|p| {
                    dpop_guard::proof::replay_key(p, "some-jti-value-1234").len()
                }),
            ];
            for (name, f) in steps {
                let start = clock_ns();
                let mut acc = 0usize;
                for i in 0..n {
                    if let Some(p) = payloads.get(i % payloads.len()) {
                        acc += f(std::hint::black_box(p));
                    }
                }
                let ns = clock_ns().saturating_sub(start);
                std::hint::black_box(acc);
                out.push((
                    format!("{alg} rotation, {name}"),
                    Ok(ns as f64 / 1000.0 / n as f64),
                ));
            }
        }
    }
    out
}

/// Costs of the Ed25519 building blocks (field multiplication, squaring, point decoding,
/// SHA-512 of a typical proof) — what the verification is made of.
pub fn run_ed25519_parts(clock_ns: &dyn Fn() -> u64) -> Vec<(String, Result<f64, String>)> {
    use jose_verify::ed25519::bench::{decompress, signed_digits, Fe};
    use std::hint::black_box;
    let mut out = Vec::new();
    let mut time = |name: &str, n: u32, f: &mut dyn FnMut()| {
        let start = clock_ns();
        for _ in 0..n {
            f();
        }
        let ns = clock_ns().saturating_sub(start);
        out.push((
            format!("ed25519 part {name}"),
            Ok(ns as f64 / 1000.0 / f64::from(n)),
        ));
    };
    let mut a = Fe::from_bytes(&[7u8; 32]);
    let b = Fe::from_bytes(&[9u8; 32]);
    time("fe mul x1000", 200, &mut || {
        for _ in 0..1000 {
            a = black_box(a.mul(&b));
        }
    });
    time("fe square x1000", 200, &mut || {
        for _ in 0..1000 {
            a = black_box(a.square());
        }
    });
    // the base point's encoding: 0x58 followed by 0x66 bytes
    let mut enc = [0x66u8; 32];
    enc[0] = 0x58;
    time("decompress", 2000, &mut || {
        let _ = black_box(decompress(black_box(&enc)));
    });
    let wide = [0x5au8; 64];
    time("scalar reduce wide", 2000, &mut || {
        let _ = black_box(curve25519_dalek::Scalar::from_bytes_mod_order_wide(
            black_box(&wide),
        ));
    });
    let mut sb = [0x5au8; 32];
    sb[31] = 0x0a;
    time("scalar from_canonical", 2000, &mut || {
        let _ = black_box(curve25519_dalek::Scalar::from_canonical_bytes(black_box(
            sb,
        )));
    });
    time("signed digits w8 + w5", 2000, &mut || {
        let _ = black_box(signed_digits(black_box(&sb), 8));
        let _ = black_box(signed_digits(black_box(&sb), 5));
    });
    let msg = [0x41u8; 400];
    time("sha512 464 bytes", 2000, &mut || {
        use sha2::Digest;
        let _ = black_box(sha2::Sha512::digest(black_box(&msg[..])));
    });
    out
}

/// The fastest of many short batches: on a busy machine (other builds, other benchmarks)
/// a batch that was never preempted is the honest cost, where a mean over one long loop
/// carries every preemption. Ed25519 only: the first proof of a key (`verify_proof`, no
/// cache), a reused key's signature check (its tables built), field multiplication and
/// squaring.
pub fn run_fastest(
    input: &Input,
    clock_ns: &dyn Fn() -> u64,
) -> Vec<(String, Result<f64, String>)> {
    use dpop_guard::proof::check_header;
    use jose_verify::ed25519::bench::Fe;
    use std::hint::black_box;
    const BATCHES: u32 = 40;
    const PER: u32 = 10;
    let fastest = |f: &mut dyn FnMut()| {
        let mut best = u64::MAX;
        for _ in 0..BATCHES {
            let start = clock_ns();
            for _ in 0..PER {
                f();
            }
            best = best.min(clock_ns().saturating_sub(start));
        }
        best as f64 / 1000.0 / f64::from(PER)
    };
    let policy = ProofPolicy {
        algorithms: Alg::ALL.into_iter().collect::<AlgSet>(),
        ..ProofPolicy::default()
    };
    let mut out = Vec::new();
    let mut first = f64::MAX;
    let mut cached = f64::MAX;
    let mut ours_once = f64::MAX;
    let mut dalek_once = f64::MAX;
    for c in input.cases.iter().filter(|c| c.alg == "EdDSA") {
        let facts = RequestFacts {
            method: &c.htm,
            uri: &c.htu,
            access_token: None,
            now: input.now,
        };
        first = first.min(fastest(&mut || {
            let _ = black_box(verify_proof(black_box(&c.proof), &facts, &policy));
        }));
        let Ok((h, p, s)) = dpop_guard::jose::jws::split(&c.proof, 8192) else {
            continue;
        };
        let header = dpop_guard::b64::decode(h)
            .and_then(|b| dpop_guard::json::parse_object(&b))
            .and_then(|o| check_header(&o, &policy).ok());
        let (Some(header), Some(sig)) = (header, dpop_guard::b64::decode(s)) else {
            continue;
        };
        let msg = c
            .proof
            .get(..h.len() + 1 + p.len())
            .unwrap_or("")
            .as_bytes();
        for _ in 0..100 {
            let _ = header.jwk.verify(header.alg, msg, &sig); // builds the key's tables
        }
        cached = cached.min(fastest(&mut || {
            let _ = black_box(header.jwk.verify(header.alg, black_box(msg), &sig));
        }));
        // the signature alone for a key used once: ours (decoding A, one-shot wNAF) against
        // ed25519-dalek's VerifyingKey::from_bytes + verify_strict
        let pk: Option<[u8; 32]> = dpop_guard::b64::decode(h)
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.pointer("/jwk/x")?.as_str().map(str::to_owned))
            .and_then(|x| dpop_guard::b64::decode(&x))
            .and_then(|x| x.try_into().ok());
        let (Some(pk), Ok(sig64)) = (pk, <[u8; 64]>::try_from(sig.as_slice())) else {
            continue;
        };
        let dalek_ok = ed25519_dalek::VerifyingKey::from_bytes(&pk).is_ok_and(|k| {
            k.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig64))
                .is_ok()
        });
        let ours_ok = jose_verify::ed25519::Ed25519VerifyingKey::from_bytes(&pk)
            .is_some_and(|k| k.verify(msg, &sig64));
        if !(dalek_ok && ours_ok) {
            out.push((
                "EdDSA fastest: one-shot key".to_owned(),
                Err(format!("does not verify: ours {ours_ok}, dalek {dalek_ok}")),
            ));
            continue;
        }
        ours_once = ours_once.min(fastest(&mut || {
            let k = jose_verify::ed25519::Ed25519VerifyingKey::from_bytes(black_box(&pk));
            let _ = black_box(k.is_some_and(|k| k.verify(msg, &sig64)));
        }));
        dalek_once = dalek_once.min(fastest(&mut || {
            let k = ed25519_dalek::VerifyingKey::from_bytes(black_box(&pk));
            let s = ed25519_dalek::Signature::from_bytes(&sig64);
            let _ = black_box(k.is_ok_and(|k| k.verify_strict(msg, &s).is_ok()));
        }));
    }
    if first < f64::MAX {
        out.push(("EdDSA fastest: first proof".to_owned(), Ok(first)));
        out.push((
            "EdDSA fastest: cached signature only".to_owned(),
            Ok(cached),
        ));
        out.push((
            "EdDSA fastest: one-shot key, signature only (ours)".to_owned(),
            Ok(ours_once),
        ));
        out.push((
            "EdDSA fastest: one-shot key, ed25519-dalek verify_strict".to_owned(),
            Ok(dalek_once),
        ));
    }
    let mut a = Fe::from_bytes(&[7u8; 32]);
    let b = Fe::from_bytes(&[9u8; 32]);
    let mul = fastest(&mut || {
        for _ in 0..100 {
            a = black_box(a.mul(&b));
        }
    });
    let square = fastest(&mut || {
        for _ in 0..100 {
            a = black_box(a.square());
        }
    });
    // µs per 100 operations ×10 = ns per operation
    out.push(("ed25519 fastest: fe mul, ns".to_owned(), Ok(mul * 10.0)));
    out.push((
        "ed25519 fastest: fe square, ns".to_owned(),
        Ok(square * 10.0),
    ));
    out
}

pub fn report(results: &[(String, Result<f64, String>)], env: &str) -> String {
    results
        .iter()
        .map(|(alg, r)| match r {
            // small values (the token rows' pieces) with one more digit
            Ok(us) if us.abs() < 10.0 => format!("verify-bench {env} {alg}: {us:.2} us/verify"),
            Ok(us) => format!("verify-bench {env} {alg}: {us:.1} us/verify"),
            Err(e) => format!("verify-bench {env} {alg}: ERROR {e}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use proxy_wasm::traits::{Context, RootContext};
    use proxy_wasm::types::LogLevel;

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Bench) });
    }}

    struct Bench;
    impl Context for Bench {}
    impl RootContext for Bench {
        fn on_configure(&mut self, _: usize) -> bool {
            let cfg = self.get_plugin_configuration().unwrap_or_default();
            let clock = || {
                proxy_wasm::hostcalls::get_current_time()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as u64)
            };
            let input = serde_json::from_slice::<serde_json::Value>(&cfg);
            match input {
                Ok(v) if super::wycheproof::is_wycheproof(&v) => wycheproof(&v, &clock),
                Ok(v) => bench(&v, &clock),
                Err(e) => bad_input(&e.to_string()),
            }
            true
        }
    }

    fn warn(line: &str) {
        let _ = proxy_wasm::hostcalls::log(LogLevel::Warn, line);
    }

    fn bad_input(e: &str) {
        let _ =
            proxy_wasm::hostcalls::log(LogLevel::Error, &format!("verify-bench: bad input: {e}"));
    }

    fn bench(v: &serde_json::Value, clock: &dyn Fn() -> u64) {
        match super::parse_value(v) {
            Ok(input) => {
                let mut results = super::run(&input, clock);
                results.extend(super::run_cached(&input, clock));
                results.extend(super::run_ed25519_parts(clock));
                results.extend(super::run_rotation(&input, clock));
                results.extend(super::run_fastest(&input, clock));
                results.extend(super::tokens::run_token_modes(&input, clock));
                for line in super::report(&results, "wasm-v8").lines() {
                    warn(line);
                }
                warn("verify-bench done");
            }
            Err(e) => bad_input(&e),
        }
    }

    /// Envoy's `verify_signature` through the SDK, as src/host/crypto.rs calls it in the
    /// filter: a status other than Ok, or an answer that is not a `VerifySignatureResult`, is
    /// an error (counted by the caller, never a verdict).
    fn envoy_verify(spki: &[u8], signature: &[u8], text: &[u8]) -> Result<bool, u32> {
        use dpop_guard::jose::host_crypto;
        /// `PARSE_FAILURE`, as the filter's glue reports an answer it cannot read.
        const PARSE_FAILURE: u32 = 4;
        let args = host_crypto::verify_arguments(spki, signature, text);
        match proxy_wasm::hostcalls::call_foreign_function(
            host_crypto::FOREIGN_FUNCTION,
            Some(&args),
        ) {
            // An empty answer (all defaults: result = false) comes back as no buffer.
            Ok(out) => host_crypto::verify_result(&out.unwrap_or_default()).ok_or(PARSE_FAILURE),
            Err(status) => Err(status as u32),
        }
    }

    fn wycheproof(v: &serde_json::Value, clock: &dyn Fn() -> u64) {
        use super::wycheproof as w;
        let cases = match w::parse_value(v) {
            Ok(c) => c,
            Err(e) => return bad_input(&e),
        };
        let probe = w::probe_text(envoy_verify);
        warn(&format!("verify-bench wycheproof probe: {probe}"));
        let start = clock();
        let mut summary = w::run(&cases, Some(envoy_verify));
        summary.ms = clock().saturating_sub(start) / 1_000_000;
        summary.probe = probe;
        warn(&summary.line());
    }
}
