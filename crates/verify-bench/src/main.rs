//! Native run of the verify micro-benchmark: `verify-bench < input.json`. An input with
//! `"mode": "wycheproof"` runs the vectors through our verifiers (natively there is no host
//! verifier: both sides are ours) and prints the summary line.
use std::io::Read;
use std::time::Instant;

fn main() {
    let mut buf = Vec::new();
    if std::io::stdin().read_to_end(&mut buf).is_err() {
        eprintln!("verify-bench: cannot read stdin");
        std::process::exit(2);
    }
    let bad_input = |e: String| -> ! {
        eprintln!("verify-bench: bad input: {e}");
        std::process::exit(2);
    };
    let value: serde_json::Value = match serde_json::from_slice(&buf) {
        Ok(v) => v,
        Err(e) => bad_input(e.to_string()),
    };
    let t0 = Instant::now();
    if verify_bench::wycheproof::is_wycheproof(&value) {
        let cases = verify_bench::wycheproof::parse_value(&value).unwrap_or_else(|e| bad_input(e));
        let mut summary = verify_bench::wycheproof::run(&cases, None);
        summary.probe = "no host".to_owned();
        summary.ms = t0.elapsed().as_millis() as u64;
        println!("{}", summary.line());
        return;
    }
    let input = verify_bench::parse_value(&value).unwrap_or_else(|e| bad_input(e));
    let clock = move || t0.elapsed().as_nanos() as u64;
    let mut results = verify_bench::run(&input, &clock);
    results.extend(verify_bench::run_cached(&input, &clock));
    results.extend(verify_bench::run_ed25519_parts(&clock));
    results.extend(verify_bench::run_rotation(&input, &clock));
    results.extend(verify_bench::run_fastest(&input, &clock));
    results.extend(verify_bench::tokens::run_token_modes(&input, &clock));
    println!("{}", verify_bench::report(&results, "native"));
}
