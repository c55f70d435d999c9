//! Native run of the verify micro-benchmark: `verify-bench < input.json`.
use std::io::Read;
use std::time::Instant;

fn main() {
    let mut buf = Vec::new();
    if std::io::stdin().read_to_end(&mut buf).is_err() {
        eprintln!("verify-bench: cannot read stdin");
        std::process::exit(2);
    }
    let input = match verify_bench::parse_input(&buf) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("verify-bench: bad input: {e}");
            std::process::exit(2);
        }
    };
    let t0 = Instant::now();
    let clock = move || t0.elapsed().as_nanos() as u64;
    let mut results = verify_bench::run(&input, &clock);
    results.extend(verify_bench::run_cached(&input, &clock));
    results.extend(verify_bench::run_ed25519_parts(&clock));
    results.extend(verify_bench::run_rotation(&input, &clock));
    println!("{}", verify_bench::report(&results, "native"));
}
