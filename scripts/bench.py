#!/usr/bin/env python3
"""`make bench` (via scripts/bench.sh): a load benchmark against a real Envoy on loopback.

For each scenario: generate an Envoy config from the shipped envoy/*.yaml (the route to the
demo upstream becomes `direct_response: 200`, the echo listener is dropped, ports are free ones,
the wasm path is absolute), start Envoy with `--concurrency 1` pinned to CPU 0, run
target/release/dpop-bench pinned to CPU 1 (same concurrency and duration every time), and
collect req/s, p50/p99 latency and Envoy CPU µs per request (utime+stime of the Envoy process
over the measured window / requests completed in it). Writes a markdown table to stdout and
between the `<!-- bench:begin -->` / `<!-- bench:end -->` markers of BENCHMARKS.md.

Rounds: the machine's speed drifts by tens of percent over minutes (shared host), so every
scenario runs BENCH_ROUNDS times (3), the scenarios in rotation, and each row reports the round
with the median Envoy CPU µs/req; every round's value is listed under the table.

Worst case per input class (issue 11, defect 8; the classes live in
crates/dpop-bench/src/worst/, `dpop-bench worst-classes` lists them): for each kind of input
an attacker controls, the most expensive request the filter still reads, sent at the same
concurrency by the same client (`dpop-bench run --worst ID`). A class may change the plugin
configuration (e.g. `max_proof_bytes: 65536`); refused requests must get exactly the class's
refusal (status, problem detail, and the matching `dpop_guard.denied.<reason>` counter), and
anything else is an error. Each class is also timed natively, without Envoy
(`dpop-bench worst-native`: `decide_headers_cached` on the same requests, pinned to CPU 0 once
Envoy has stopped). They run BENCH_WORST_SECONDS (3) each, in the first round only unless
BENCH_ROUNDS is set; the ratio column divides by the EdDSA scenario's Envoy CPU µs/req of the
same round. Their table goes between `<!-- bench-worst:begin -->` / `<!-- bench-worst:end -->`.

Environment: BENCH_SECONDS (10), BENCH_WARMUP (1), BENCH_CONCURRENCY (16), BENCH_KEYS (4), BENCH_ROUNDS (3),
BENCH_MAX_PROOFS (200000: cap of the per-scenario proof pool), BENCH_ONLY (comma-separated
scenario ids or shell patterns, e.g. "plain,eddsa" or "eddsa,worst_*"; "worst" selects every
worst-case class), BENCH_WORST_SECONDS (3), BENCH_NATIVE_SECONDS (1: native timing per class),
BENCH_NO_WRITE=1 (do not touch BENCHMARKS.md), ENVOY.

Same-process comparison (scripts/benchlib/paired.py; after a full run, or alone with
`scripts/bench.sh --paired` = `make bench-paired`): every variant a listener of one Envoy, short
windows in rotation; BENCH_PAIRED_PASSES (6; 0 skips it after a full run), BENCH_PAIRED_SECONDS
(3), BENCH_PAIRED_ONLY (variant ids; plain and jwt_authn always run). Its table goes between
`<!-- bench-paired:begin -->` / `<!-- bench-paired:end -->`.
Exit status: 0 when every scenario ran with zero errors (a worst-case class's expected refusals
are not errors), else 1.

The code is in scripts/benchlib/: settings.py (paths, these knobs, the scenario list),
envoy_config.py (configs generated from envoy/*.yaml), procs.py (the processes started),
scenario.py (one measured run, native timing, rounds), report.py and worst_report.py (the
BENCHMARKS.md tables), main.py (the run).
"""
from benchlib.main import entry  # scripts/ is on sys.path: this file's directory

if __name__ == "__main__":
    entry()
