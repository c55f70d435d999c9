"""The run: every selected scenario in BENCH_ROUNDS rounds, the worst-case classes in the first
round(s), then the reports, results.json and BENCHMARKS.md. Exit status as in scripts/bench.py."""

import datetime
import json
import os
import signal
import subprocess
import sys

from .procs import stop_all
from .report import cmd_out, cpu_model, envoy_version, report, write_benchmarks
from .scenario import median_round, run_native, run_scenario, shipped_plugin_config, worst_classes
from .settings import (
    CLIENT, CONCURRENCY, ENVOY, ONLY, OUT, PIDFILE, PIN, REPLAY, ROUNDS, SCENARIOS, UNLOADED, WASM,
    WORST_BEGIN, WORST_END, WORST_ROUNDS, WORST_SECTION, log, ncpu, selected,
)
from .worst_report import worst_report


def main():
    os.makedirs(OUT, exist_ok=True)
    open(PIDFILE, "w").close()
    for path, what in ((ENVOY, "Envoy (make venv)"), (WASM, "dpop_guard.wasm (make build)"),
                       (REPLAY, "dpop-replay (make build)"), (CLIENT, "dpop-bench")):
        if not os.path.exists(path):
            log(f"missing {path}: {what}")
            return 2
    if not PIN:
        log("WARNING: not pinning (taskset missing or fewer than 2 CPUs)")
    with open("/proc/loadavg") as f:
        loadavg = " ".join(f.read().split()[:3])
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(), "nproc": ncpu(), "loadavg": loadavg,
        "envoy": envoy_version(), "rustc": cmd_out(["rustc", "--version"]),
        "wasm_bytes": os.path.getsize(WASM),
    }
    classes = [c for c in worst_classes() if not c["native_only"] and selected(c["id"])]
    rounds, wrounds, natives = {}, {}, {}
    for rnd in range(ROUNDS):
        for sid, label, kind, alg, conc in [s + (None,) for s in SCENARIOS] + [u + (1,) for u in UNLOADED]:
            if not selected(sid):
                continue
            try:
                r = run_scenario(sid, label, kind, alg, conc)
            except (RuntimeError, subprocess.CalledProcessError, AssertionError, OSError) as e:
                log(f"{label}: FAILED: {e}")
                r = {"failed": str(e).splitlines()[0] if str(e) else repr(e), "errors": 1}
            stop_all()
            r["concurrency"] = conc or CONCURRENCY
            rounds.setdefault(sid, []).append(r)
            if "failed" not in r:
                log(f"[round {rnd + 1}/{ROUNDS}] {label}: {r['rps']:.0f} req/s, p50 {r['p50_us']:.0f} µs, "
                    f"p99 {r['p99_us']:.0f} µs, Envoy {r['envoy_cpu_us_per_req']:.1f} CPU µs/req, errors {r['errors']}")
        if rnd >= WORST_ROUNDS:
            continue
        for c in classes:
            sid, label = c["id"], c["label"]
            try:
                r = run_scenario(sid, label, "worst", None, None, worst=c)
            except (RuntimeError, subprocess.CalledProcessError, AssertionError, OSError) as e:
                log(f"{label}: FAILED: {e}")
                r = {"failed": str(e).splitlines()[0] if str(e) else repr(e), "errors": 1}
            stop_all()
            r["concurrency"] = CONCURRENCY
            wrounds.setdefault(sid, []).append(r)
            if "failed" not in r:
                log(f"[round {rnd + 1}/{WORST_ROUNDS}] {label}: {r['rps']:.0f} req/s, p50 {r['p50_us']:.0f} µs, "
                    f"Envoy {r['envoy_cpu_us_per_req']:.1f} CPU µs/req, errors {r['errors']}")
            if c["filter"] and sid not in natives:
                try:
                    natives[sid] = run_native(sid, os.path.join(OUT, f"{sid}.plugin.json"))
                    log(f"{label}: {natives[sid]:.1f} µs per call natively")
                except (RuntimeError, OSError) as e:
                    log(f"{label}: native timing FAILED: {e}")
                    natives[sid] = str(e)
    if classes:
        ref = os.path.join(OUT, "ref_eddsa.plugin.json")
        try:
            with open(ref, "w") as f:
                json.dump(shipped_plugin_config(), f)
            natives["ref_eddsa"] = run_native("ref_eddsa", ref)
        except (RuntimeError, OSError, AssertionError) as e:
            log(f"native EdDSA reference FAILED: {e}")
            natives["ref_eddsa"] = str(e)
    results = {sid: median_round(rs) for sid, rs in rounds.items()}
    wresults = {sid: median_round(rs) for sid, rs in wrounds.items()}
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "worst": wresults, "native": natives}, f, indent=1)
    text = report(results, meta)
    print(text)
    bad = [sid for sid, r in results.items() if r.get("errors") or "failed" in r]
    wbad = [sid for sid, r in wresults.items() if r.get("errors") or "failed" in r] + \
        [sid for sid, n in natives.items() if isinstance(n, str)]
    if os.environ.get("BENCH_NO_WRITE") or ONLY:
        log("BENCHMARKS.md load table not updated (BENCH_NO_WRITE or BENCH_ONLY set)")
    elif bad:
        log("BENCHMARKS.md not updated: scenarios with errors")
    else:
        write_benchmarks(text)
        log("BENCHMARKS.md load table updated")
    if wresults:
        def median_of(rs):
            ok = sorted((r for r in rs if "failed" not in r), key=lambda r: r["envoy_cpu_us_per_req"])
            return ok[(len(ok) - 1) // 2] if ok else None
        same = {sid: median_of(rs[:WORST_ROUNDS]) for sid, rs in rounds.items()}
        wtext = worst_report(wresults, natives, results, classes, same, meta)
        print("\n" + WORST_SECTION + "\n\n" + wtext)
        every = {c["id"] for c in worst_classes() if not c["native_only"]}
        complete = every <= set(wresults) and "eddsa" in results
        if os.environ.get("BENCH_NO_WRITE"):
            pass
        elif not complete:
            log("BENCHMARKS.md worst-case table not updated (not every class, or no EdDSA scenario, ran)")
        elif wbad or "eddsa" in bad:
            log("BENCHMARKS.md worst-case table not updated: errors")
        else:
            write_benchmarks(wtext, WORST_BEGIN, WORST_END, WORST_SECTION)
            log("BENCHMARKS.md worst-case table updated")
    bad += wbad
    # the same-process comparison (paired.py) closes a full run: its paired differences are
    # what decides targets of a few µs that the rounds above cannot resolve
    if not ONLY and os.environ.get("BENCH_PAIRED_PASSES", "6") != "0":
        from .paired import main as paired_main
        if paired_main():
            bad.append("paired")
    if bad:
        log(f"ERRORS in: {', '.join(bad)}")
        return 1
    return 0


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


def entry():
    """Runs main() and stops every started process on the way out (SIGTERM included)."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if "--paired" in sys.argv[1:]:
            from .paired import main as paired_main
            sys.exit(paired_main())
        sys.exit(main())
    finally:
        stop_all()
