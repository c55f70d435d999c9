#!/usr/bin/env python3
"""`make bench-perf`: where Envoy's worker thread spends its CPU per request, per load scenario
of `make bench` — the native side the filter's own profile build cannot see (BoringSSL behind
`verify_signature`, V8's runtime, Envoy's hostcall implementations, the kernel).

Each scenario runs alone (`BENCH_ONLY=<id> BENCH_ROUNDS=1 BENCH_NO_WRITE=1 scripts/bench.sh`)
while `perf record -e cpu-clock -C <Envoy's CPU>` samples that CPU. The worker thread's
samples (comm `wrk:worker_0`) are split into: the kernel, wasm code compiled by V8 (`[JIT]`),
and the Envoy binary (stripped: code is grouped by 64 KiB region of the file). Regions that
plain Envoy (scenario `plain`, always run first) does not execute are new code — jwt_authn,
BoringSSL's P-256 or RSA, V8's wasm runtime — and are listed per region, so one region can be
followed across scenarios (e.g. the P-256 verify in both jwt_authn and dpop-guard ES256).

µs/request = the sampled CPU time ÷ the requests the worker served in the run (warm-up
included). Needs `perf` (linux-perf) and root or perf_event_paranoid ≤ 0 for `-C`; samples are
`cpu-clock` (no hardware counters in most VMs). Knobs: BENCH_PERF_ONLY (scenario ids,
default plain,disabled,jwt_authn,eddsa,es256,rs256), BENCH_SECONDS (default 14), BENCH_WASM.
"""

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib.settings import ENVOY_CPU, OUT, ROOT  # noqa: E402  (the bench's own paths and CPU)

WORKER = "wrk:worker_0"


def run(sid):
    data = os.path.join(OUT, f"perf-{sid}.data")
    perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-C", str(ENVOY_CPU),
                             "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, BENCH_ONLY=sid, BENCH_ROUNDS="1", BENCH_NO_WRITE="1",
               BENCH_SECONDS=os.environ.get("BENCH_SECONDS", "14"))
    try:
        r = subprocess.run([os.path.join(ROOT, "scripts", "bench.sh")], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    if r.returncode != 0:
        sys.exit(f"bench-perf: scenario {sid} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    with open(os.path.join(OUT, "results.json")) as f:
        res = json.load(f)["results"][sid]
    return data, res


def buckets(data):
    """ns of the worker's samples per bucket: kernel, JIT, other libraries, envoy regions."""
    out = subprocess.run(["perf", "report", "-i", data, "--comms", WORKER, "--sort", "dso,sym",
                          "-F", "period,dso,sym", "--stdio"], capture_output=True, text=True,
                         check=True).stdout
    got = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+(\[JIT\] tid \d+|\S+)\s+\[(.)\]\s+(.*)$", line)
        if not m:
            continue
        period, dso, sym = int(m.group(1)), m.group(2), m.group(4).strip()
        if dso.startswith("[JIT]") or dso.startswith("perf-"):
            key = "wasm code (V8 JIT)"
        elif dso == "[kernel.kallsyms]":
            key = "kernel"
        elif dso == "envoy":
            a = re.match(r"0x([0-9a-f]+)", sym)
            key = f"envoy {int(a.group(1), 16) >> 16 << 16:#09x}" if a else f"envoy {sym}"
        else:
            key = "other libraries"
        got[key] += period
    return got


def main():
    if not shutil.which("perf"):
        sys.exit("bench-perf: perf not found (Debian: apt-get install linux-perf)")
    ids = [s for s in os.environ.get("BENCH_PERF_ONLY", "plain,disabled,jwt_authn,eddsa,es256,rs256").split(",") if s]
    if "plain" not in ids:
        ids.insert(0, "plain")
    table = {}
    for sid in ids:
        print(f"bench-perf: {sid} ...", file=sys.stderr, flush=True)
        data, res = run(sid)
        ns = buckets(data)
        n = max(1, res.get("total_requests") or res["requests"])
        table[sid] = ({k: v / n / 1000 for k, v in ns.items()}, res)
    plain = table["plain"][0]
    plain_regions = {k for k, v in plain.items() if k.startswith("envoy ") and v >= 0.05}

    def split(us):
        envoy_known = sum(v for k, v in us.items() if k in plain_regions)
        new = {k: v for k, v in us.items() if k.startswith("envoy ") and k not in plain_regions}
        return envoy_known, new

    cols = list(table)
    lines = ["| worker thread, µs/request | " + " | ".join(cols) + " |",
             "|---|" + "---:|" * len(cols)]

    def row(name, f):
        lines.append(f"| {name} | " + " | ".join(f"{f(table[c][0], table[c][1]):.1f}" for c in cols) + " |")

    row("Envoy CPU µs/req (whole process, measured window: `make bench`)", lambda us, r: r["envoy_cpu_us_per_req"])
    row("worker thread, sampled", lambda us, r: sum(us.values()))
    row("kernel", lambda us, r: us.get("kernel", 0))
    row("Envoy code plain Envoy also runs", lambda us, r: split(us)[0])
    row("Envoy code plain Envoy does not run", lambda us, r: sum(split(us)[1].values()))
    row("wasm code (V8 JIT)", lambda us, r: us.get("wasm code (V8 JIT)", 0))
    row("other libraries (libc, vdso)", lambda us, r: us.get("other libraries", 0))
    new_total = collections.Counter()
    for c in cols:
        for k, v in split(table[c][0])[1].items():
            new_total[k] += v
    lines += ["", "Envoy regions plain Envoy does not run (µs/request; ≥ 1 µs somewhere):", "",
              "| region of the envoy binary | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for k, _ in new_total.most_common():
        vals = [split(table[c][0])[1].get(k, 0) for c in cols]
        if max(vals) >= 1.0:
            lines.append(f"| `{k.split()[1]}` | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    text = "\n".join(lines)
    with open(os.path.join(OUT, "perf-breakdown.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
