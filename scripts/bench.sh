#!/usr/bin/env bash
# `make bench`: load benchmark of the filter in a real Envoy on loopback (scenarios, method and
# environment knobs: scripts/bench.py), then the worst case per input class (issue 11: the most
# expensive requests the filter still reads, crates/dpop-bench/src/worst/; select with
# BENCH_ONLY, e.g. "eddsa,worst_*"). Needs `make build venv` (the Makefile target does it).
# Envoy runs with --concurrency 1 on CPU 0, the load client on CPU 1. Exits non-zero when any
# scenario had errors (a worst-case class's expected refusals are not errors).
# Only some scenarios: BENCH_ONLY, e.g. the access-token modes (issue 13) with their references:
#   BENCH_ONLY=plain,jwt_authn,upstream,introspection_* BENCH_SECONDS=3 scripts/bench.sh
# BENCH_WASM=<path> benchmarks another build of the filter than target/wasm32-wasip1/release.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p target/bench
for f in "$PY" "${ENVOY:-.venv/bin/envoy}" target/wasm32-wasip1/release/dpop_guard.wasm target/release/dpop-replay; do
  [ -e "$f" ] || { echo "bench: missing $f — run 'make build venv' first" >&2; exit 2; }
done
cargo build --release -q -p dpop-bench

# bench.py stops what it starts; this catches anything left if it is killed hard.
cleanup() {
  [ -n "${pypid:-}" ] && kill "$pypid" 2>/dev/null && wait "$pypid" 2>/dev/null || true
  if [ -f target/bench/pids ]; then
    while read -r p; do
      # only our own children: an Envoy or dpop-replay started by bench.py
      grep -qaE 'envoy|dpop-replay' "/proc/$p/cmdline" 2>/dev/null && kill "$p" 2>/dev/null || true
    done < target/bench/pids
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PY" scripts/bench.py "$@" &
pypid=$!
rc=0
wait "$pypid" || rc=$?
pypid=
exit "$rc"
