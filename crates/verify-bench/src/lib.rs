//! Times `verify_proof` per algorithm. The same loop runs natively (`verify-bench` binary) and
//! inside Envoy's V8 (this crate as a bootstrap wasm service, clock from the host), so the
//! cost of wasm crypto is measured where it runs.
//!
//! Input (JSON): `{"iterations": N, "now": T, "cases": [{"alg": "EdDSA", "proof": "...",
//! "htm": "GET", "htu": "https://..."}]}` — proofs made by `dpop proof --iat T`.

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
}

pub fn parse_input(bytes: &[u8]) -> Result<Input, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
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

pub fn report(results: &[(String, Result<f64, String>)], env: &str) -> String {
    results
        .iter()
        .map(|(alg, r)| match r {
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
            match super::parse_input(&cfg) {
                Ok(input) => {
                    let out = super::report(&super::run(&input, &clock), "wasm-v8");
                    for line in out.lines() {
                        let _ = proxy_wasm::hostcalls::log(LogLevel::Warn, line);
                    }
                    let _ = proxy_wasm::hostcalls::log(LogLevel::Warn, "verify-bench done");
                }
                Err(e) => {
                    let _ = proxy_wasm::hostcalls::log(
                        LogLevel::Error,
                        &format!("verify-bench: bad input: {e}"),
                    );
                }
            }
            true
        }
    }
}
