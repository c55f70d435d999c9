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
crates/dpop-bench/src/worst.rs, `dpop-bench worst-classes` lists them): for each kind of input
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
Exit status: 0 when every scenario ran with zero errors (a worst-case class's expected refusals
are not errors), else 1.
"""
import copy
import datetime
import fnmatch
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "target", "bench")
ENVOY = os.path.abspath(os.environ.get("ENVOY") or os.path.join(ROOT, ".venv", "bin", "envoy"))
WASM = os.path.join(ROOT, "target", "wasm32-wasip1", "release", "dpop_guard.wasm")
REPLAY = os.path.join(ROOT, "target", "release", "dpop-replay")
CLIENT = os.path.join(ROOT, "target", "release", "dpop-bench")
BENCHMARKS = os.path.join(ROOT, "BENCHMARKS.md")
PIDFILE = os.path.join(OUT, "pids")

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
KEYS = int(os.environ.get("BENCH_KEYS", "4"))
MAX_PROOFS = int(os.environ.get("BENCH_MAX_PROOFS", "200000"))
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
WORST_SECONDS = float(os.environ.get("BENCH_WORST_SECONDS", "3"))
WORST_ROUNDS = ROUNDS if os.environ.get("BENCH_ROUNDS") else 1
NATIVE_SECONDS = float(os.environ.get("BENCH_NATIVE_SECONDS", "1"))
SIGNING_ALLOWANCE = 300  # seconds a proof pool may take to sign (see filter_config)
ENVOY_CPU, CLIENT_CPU = 0, 1
PATH = "/bench"

# Upper estimates of what one pinned Envoy worker can verify per second; the proof pool is
# rate x (warm-up + duration), capped by BENCH_MAX_PROOFS. A faster Envoy just ends the run
# early (the measured window is then shorter, and reported).
EXPECTED_RATE = {"EdDSA": 12000, "ES256": 8000, "RS256": 4000}

PANIC_MARKERS = ("panicked at", "wasm trap", "Function: proxy_on", "failed: uncaught", "unreachable")

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
SECTION = "## Load benchmark (`make bench`)"
WORST_BEGIN, WORST_END = "<!-- bench-worst:begin -->", "<!-- bench-worst:end -->"
WORST_SECTION = "## Worst case per input class (`make bench`)"

SCENARIOS = [
    # id, label, kind, alg
    ("plain", "1. plain Envoy (router → direct_response 200)", "plain", None),
    ("jwt_authn", "2. Envoy jwt_authn, ES256 JWT (Bearer)", "jwt_authn", None),
    ("eddsa", "3. dpop-guard, EdDSA proofs, local store", "filter", "EdDSA"),
    ("es256", "4. dpop-guard, ES256 proofs, local store", "filter", "ES256"),
    ("rs256", "5. dpop-guard, RS256 proofs, local store", "filter", "RS256"),
    ("remote", "6. dpop-guard, EdDSA proofs, remote store (dpop-replay, memory)", "remote", "EdDSA"),
]

# Unloaded latency: one connection, one request at a time (same configs as above).
UNLOADED = [
    ("plain_c1", "plain Envoy, 1 connection", "plain", None),
    ("eddsa_c1", "dpop-guard EdDSA (local store), 1 connection", "filter", "EdDSA"),
]

procs = []


def selected(sid):
    """BENCH_ONLY: ids or shell patterns; "worst" stands for every worst-case class."""
    if not ONLY:
        return True
    return any(fnmatch.fnmatchcase(sid, pat) or (pat == "worst" and sid.startswith("worst_"))
               for pat in ONLY)


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def ncpu():
    return os.cpu_count() or 1


PIN = shutil.which("taskset") is not None and ncpu() >= 2


def pinned(cpu, cmd):
    return (["taskset", "-c", str(cpu)] + cmd) if PIN else cmd


# ---- processes --------------------------------------------------------------------------

def spawn(cmd, logname):
    logf = open(os.path.join(OUT, logname), "w")
    p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
    p._logf = logf
    procs.append(p)
    with open(PIDFILE, "a") as f:
        f.write(f"{p.pid}\n")
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    p._logf.close()
    if p in procs:
        procs.remove(p)
    with open(PIDFILE, "w") as f:
        f.writelines(f"{q.pid}\n" for q in procs)


def stop_all():
    for p in list(procs):
        stop(p)


def http_get(port, path, timeout=1):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def wait_http(p, port, path, what, logpath, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"{what} exited ({p.returncode}):\n{tail(logpath)}")
        try:
            if http_get(port, path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout}s:\n{tail(logpath)}")


def tail(path, n=3000):
    try:
        with open(path) as f:
            return f.read()[-n:]
    except OSError:
        return ""


# ---- Envoy configs ----------------------------------------------------------------------

def load_yaml(name):
    with open(os.path.join(ROOT, "envoy", name)) as f:
        return yaml.safe_load(f)


def gateway(yaml_name, admin_port, port):
    """The shipped config reduced to the gateway listener answering direct_response 200."""
    b = copy.deepcopy(load_yaml(yaml_name))
    b["admin"]["address"]["socket_address"]["port_value"] = admin_port
    sr = b["static_resources"]
    listeners = [l for l in sr["listeners"] if l["name"] == "dpop_gateway"]
    assert len(listeners) == 1, f"{yaml_name}: no dpop_gateway listener"
    sr["listeners"] = listeners
    listeners[0]["address"]["socket_address"]["port_value"] = port
    sr["clusters"] = [c for c in sr.get("clusters", []) if c["name"] != "demo_upstream"]
    if not sr["clusters"]:
        del sr["clusters"]
    hcm = [n for n in walk(listeners[0]) if n.get("name") == "envoy.filters.network.http_connection_manager"]
    assert len(hcm) == 1
    hcm = hcm[0]["typed_config"]
    routes = [r for vh in hcm["route_config"]["virtual_hosts"] for r in vh["routes"]]
    for r in routes:
        r.pop("route", None)
        r["direct_response"] = {"status": 200}
    return b, hcm


def wasm_filter(hcm):
    fs = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm"]
    assert len(fs) == 1, "expected one wasm filter"
    return fs[0]


def router_only(hcm):
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.router"]
    assert len(hcm["http_filters"]) == 1


def merge(base, over):
    """Deep merge of plugin configuration overrides (objects merge, anything else replaces)."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def filter_config(hcm, pool, overrides=None, seconds=None):
    """Absolute wasm path; the shipped plugin config (plus a worst-case class's overrides) with
    room for every proof of the run."""
    seconds = SECONDS if seconds is None else seconds
    f = wasm_filter(hcm)
    cfg = f["typed_config"]["config"]
    cfg["vm_config"]["code"]["local"]["filename"] = WASM
    pc = merge(json.loads(cfg["configuration"]["value"]), overrides or {})
    if pc.get("replay", {}).get("store", "local") == "local":
        # A bucket of the local store holds 16 entries and a full one refuses: keep the
        # table 4x larger than the pool so the random spread never fills a bucket.
        pc.setdefault("replay", {})["capacity"] = min(10_000_000, max(100_000, 4 * (pool + 1000)))
    # Proofs are signed before the run with iat = their signing time: the first ones are as old
    # as the signing took when the run starts. Signing an RS256 pool takes a minute on an idle
    # machine and more than two on a busy one (the shipped 120 s then refused the preflight),
    # so proof_ttl covers SIGNING_ALLOWANCE + the run. The check's cost does not depend on it.
    need = int(WARMUP + seconds) + SIGNING_ALLOWANCE
    if need > int(pc.get("proof_ttl", 120)):
        pc["proof_ttl"] = -(-need // 60) * 60
    cfg["configuration"]["value"] = json.dumps(pc)
    return pc


def jwt_authn_filter(jwks):
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                "bench": {
                    "issuer": "https://issuer.bench.local",
                    "local_jwks": {"inline_string": jwks},
                    "forward": True,
                    # default token location: Authorization: Bearer <token>; no jwt_cache_config
                    # (Envoy's default: every request's signature is verified)
                }
            },
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        },
    }


def pool_size(alg):
    return int(min(MAX_PROOFS, EXPECTED_RATE[alg] * (WARMUP + SECONDS)))


# ---- one scenario -----------------------------------------------------------------------

def envoy_stats(admin_port):
    try:
        _, text = http_get(admin_port, "/stats", timeout=5)
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        k, _, v = line.rpartition(":")
        try:
            out[k.strip().removeprefix("wasmcustom.")] = int(v.strip())
        except ValueError:
            pass
    return out


def run_scenario(sid, label, kind, alg, concurrency=None, worst=None):
    concurrency = concurrency or CONCURRENCY
    admin_port, port = free_port(), free_port()
    extra = {}
    replay = None
    client_args = []
    pool = pool_size(alg) if alg else 0
    seconds = SECONDS
    if worst:
        seconds = WORST_SECONDS
        if worst["unique"]:
            pool = int(min(MAX_PROOFS, worst["rate"] * (WARMUP + seconds)))
            client_args += ["--pool", str(pool)]
        client_args += ["--worst", sid]
    if kind == "worst":
        b, hcm = gateway("envoy.yaml", admin_port, port)
        if worst["filter"]:
            pc = filter_config(hcm, pool, worst["config"], seconds)
            with open(os.path.join(OUT, f"{sid}.plugin.json"), "w") as f:
                json.dump(pc, f)
        else:
            router_only(hcm)
    elif kind == "plain":
        b, hcm = gateway("envoy.yaml", admin_port, port)
        router_only(hcm)
    elif kind == "jwt_authn":
        b, hcm = gateway("envoy.yaml", admin_port, port)
        router_only(hcm)
        issued = json.loads(subprocess.run([CLIENT, "issuer"], check=True, capture_output=True, text=True).stdout)
        hcm["http_filters"].insert(0, jwt_authn_filter(issued["jwks"]))
        client_args += ["--bearer", issued["token"]]
    elif kind == "filter":
        b, hcm = gateway("envoy.yaml", admin_port, port)
        filter_config(hcm, pool)
    elif kind == "remote":
        b, hcm = gateway("envoy-redis.yaml", admin_port, port)
        pc = filter_config(hcm, pool)
        assert pc["replay"]["store"] == "remote", pc
        replay_port = free_port()
        n = 0
        for node in walk(b["static_resources"]["clusters"]):
            sa = node.get("socket_address")
            if isinstance(sa, dict) and sa.get("port_value") == 8081:
                sa["port_value"] = replay_port
                n += 1
        assert n == 1, "envoy-redis.yaml: expected one dpop-replay endpoint on port 8081"
        rlog = f"{sid}.dpop-replay.log"
        replay = spawn(pinned(CLIENT_CPU, [REPLAY, "--listen", f"127.0.0.1:{replay_port}", "--backend", "memory"]), rlog)
        wait_http(replay, replay_port, "/healthz", "dpop-replay", os.path.join(OUT, rlog))
        extra["replay_pid"] = replay.pid
    else:
        raise ValueError(kind)

    cfg_path = os.path.join(OUT, f"{sid}.yaml")
    with open(cfg_path, "w") as f:
        yaml.safe_dump(b, f, sort_keys=False)
    elog = f"{sid}.envoy.log"
    envoy = spawn(pinned(ENVOY_CPU, [ENVOY, "-c", cfg_path, "--concurrency", "1",
                                     "--disable-hot-restart", "-l", "warn"]), elog)
    try:
        wait_http(envoy, admin_port, "/ready", "envoy", os.path.join(OUT, elog))
        cmd = [CLIENT, "run", "--addr", f"127.0.0.1:{port}", "--path", PATH,
               "--concurrency", str(concurrency), "--duration", str(seconds),
               "--warmup", str(WARMUP), "--envoy-pid", str(envoy.pid)] + client_args
        if alg:
            cmd += ["--alg", alg, "--keys", str(KEYS), "--pool", str(pool)]
        if replay:
            cmd += ["--extra-pid", str(replay.pid)]
        if PIN:
            cmd += ["--pin-cpu", str(CLIENT_CPU), "--watch-cpu", str(ENVOY_CPU)]
        log(f"{label}: running ({'pool ' + str(pool) + ' requests, ' if pool else ''}{WARMUP:g}+{seconds:g} s)")
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        sys.stderr.write(r.stderr)
        lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
        if not lines:
            raise RuntimeError(f"dpop-bench failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
        res = json.loads(lines[-1])
        stats = envoy_stats(admin_port)
        res["stats"] = {k: v for k, v in stats.items()
                        if k.startswith("dpop_guard.") or ".jwt_authn." in k}
        if alg and stats.get("dpop_guard.allowed", 0) < res["requests"]:
            res["errors"] += 1
            res["first_error"] = (res.get("first_error") or "") + \
                f" [dpop_guard.allowed={stats.get('dpop_guard.allowed')} < requests {res['requests']}]"
        if kind == "jwt_authn" and stats.get("http.gateway.jwt_authn.allowed", 0) < res["requests"]:
            res["errors"] += 1
            res["first_error"] = (res.get("first_error") or "") + " [jwt_authn.allowed < requests]"
        if worst and worst["expect_stat"]:
            # the filter's own count of this class's answer, as well as the client's check
            stat = "dpop_guard." + worst["expect_stat"]
            if stats.get(stat, 0) < res["requests"]:
                res["errors"] += 1
                res["first_error"] = (res.get("first_error") or "") + \
                    f" [{stat}={stats.get(stat)} < requests {res['requests']}]"
    finally:
        stop(envoy)
        if replay:
            stop(replay)
    text = tail(os.path.join(OUT, elog), 10**7)
    for m in PANIC_MARKERS:
        if m in text:
            res["errors"] += 1
            res["first_error"] = (res.get("first_error") or "") + f" [{m!r} in {elog}]"
    return res


# ---- report -----------------------------------------------------------------------------

def cmd_out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def envoy_version():
    v = cmd_out([ENVOY, "--version"]).split("version:", 1)[-1].strip()
    parts = v.split("/")  # <sha>/<version>/<state>/<build type>/<ssl>
    if len(parts) >= 3:
        return f"{parts[1]} ({parts[0][:12]}, {'/'.join(parts[2:])})"
    return v or "?"


def fmt(v, digits=0):
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def per_round_added(results, sid):
    """(added µs vs plain, ratio to jwt_authn's added) in each round — both rows of a pair
    come from the same round, so machine drift between rounds cancels — and their medians."""
    cpu = lambda s: results.get(s, {}).get("rounds_cpu") or []
    plain, jwt, mine = cpu("plain"), cpu("jwt_authn"), cpu(sid)
    added = [m - p for m, p in zip(mine, plain)]
    ratios = [(m - p) / (j - p) for m, p, j in zip(mine, plain, jwt) if j - p > 0]
    med = lambda xs: sorted(xs)[(len(xs) - 1) // 2] if xs else None
    return added, ratios, med(added), med(ratios)


def table(results):
    plain = results.get("plain", {}).get("envoy_cpu_us_per_req")
    jwt = results.get("jwt_authn", {}).get("envoy_cpu_us_per_req")
    jwt_added = (jwt - plain) if (jwt is not None and plain is not None) else None
    rows = ["| scenario | req/s | p50 µs | p99 µs | Envoy CPU µs/req | added µs vs plain | "
            "added / jwt_authn added | Envoy core busy | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sid, label, _, _ in SCENARIOS:
        r = results.get(sid)
        if r is None:
            continue
        if "failed" in r:
            rows.append(f"| {label} | FAILED | | | | | | | {r['failed'][:80]} |")
            continue
        cpu = r.get("envoy_cpu_us_per_req")
        added = (cpu - plain) if (cpu is not None and plain is not None and sid != "plain") else None
        ratio = (added / jwt_added) if (added is not None and jwt_added and jwt_added > 0) else None
        if sid != "plain" and len(r.get("rounds_cpu", [])) > 1:
            _, _, added, ratio = per_round_added(results, sid)
            if sid == "jwt_authn":
                ratio = 1.0
        secs = r["seconds"]
        rps = fmt(r["rps"])
        if r.get("pool_exhausted"):
            rps += f" ({secs:.1f} s)"
        errs = r["errors"]
        rows.append("| {} | {} | {} | {} | {} | {} | {} | {}% | {} |".format(
            label, rps, fmt(r["p50_us"]), fmt(r["p99_us"]), fmt(cpu, 1),
            ("+" + fmt(added, 1)) if added is not None else "—",
            (fmt(ratio, 2) + "×") if ratio is not None else "—",
            fmt(r.get("envoy_busy_pct")), f"**{errs}**" if errs else "0"))
    return "\n".join(rows)


def median_round(rs):
    """The round with the median Envoy CPU µs/req; a failed round fails the scenario and
    errors of every round are summed."""
    failed = [r for r in rs if "failed" in r]
    if failed:
        return failed[0]
    key = "p50_us" if rs and rs[0].get("concurrency") == 1 else "envoy_cpu_us_per_req"
    ok = sorted(rs, key=lambda r: r[key])
    pick = dict(ok[(len(ok) - 1) // 2])
    pick["errors"] = sum(r["errors"] for r in rs)
    pick["first_error"] = next((r.get("first_error") for r in rs if r.get("first_error")), None)
    pick["rounds_cpu"] = [r["envoy_cpu_us_per_req"] for r in rs]
    return pick


def report(results, meta):
    wasm_bytes = meta["wasm_bytes"]
    kib = wasm_bytes / 1024
    goal = "within" if kib <= 400 else "OVER"
    lines = [
        f"Run {meta['date']} — machine: {meta['cpu']}, nproc {meta['nproc']}, load average at start "
        f"{meta['loadavg']}; Envoy {meta['envoy']} (`--concurrency 1`, pinned to CPU {ENVOY_CPU}); "
        f"client `dpop-bench` pinned to CPU {CLIENT_CPU}{'' if PIN else ' (NOT pinned: taskset missing or < 2 CPUs)'}; "
        f"{meta['rustc']}; `dpop_guard.wasm` {wasm_bytes:,} bytes ({kib:.0f} KiB, {goal} the 400 KiB goal).",
        "",
        f"Same client for every scenario ({ROUNDS} round{'s' if ROUNDS > 1 else ''}): {CONCURRENCY} keep-alive HTTP/1.1 connections (one thread "
        f"each, closed loop), {WARMUP:g} s warm-up, then {SECONDS:g} s measured; `GET {PATH}` answered by "
        "`direct_response: 200`. Filter scenarios: the shipped plugin configuration "
        "(envoy/envoy.yaml, envoy/envoy-redis.yaml for the remote store; `proof_ttl` raised to "
        f"{-(-(int(WARMUP + SECONDS) + SIGNING_ALLOWANCE) // 60) * 60} s because proofs are signed "
        "before the run), every request carries a unique "
        f"proof (fresh `jti`, `iat` = signing time, {KEYS} client keys per algorithm, no access token). "
        "Envoy CPU µs/req = utime+stime of the Envoy process over the measured window ÷ requests "
        "completed in it; \"added\" columns compare that with the plain Envoy row; \"Envoy core busy\" "
        "near 100% means Envoy's single worker was the bottleneck.",
        "",
        table(results),
    ]
    c1 = [results.get(sid) for sid, _, _, _ in UNLOADED]
    if all(r and "failed" not in r for r in c1):
        base, dg = c1
        lines += [
            "",
            "Unloaded latency (one connection, one request at a time, same configurations; the "
            "round with the median p50):",
            "",
            "| scenario | req/s | p50 µs | p99 µs | p50 added by the filter |",
            "|---|---:|---:|---:|---:|",
            f"| {UNLOADED[0][1]} | {fmt(base['rps'])} | {fmt(base['p50_us'])} | {fmt(base['p99_us'])} | — |",
            f"| {UNLOADED[1][1]} | {fmt(dg['rps'])} | {fmt(dg['p50_us'])} | {fmt(dg['p99_us'])} | "
            f"+{fmt(dg['p50_us'] - base['p50_us'])} µs |",
        ]
    notes = []
    per_round = [f"{sid} {'/'.join(f'{c:.1f}' for c in r['rounds_cpu'])}"
                 for sid, r in results.items() if len(r.get("rounds_cpu", [])) > 1]
    if per_round:
        notes.append(f"{ROUNDS} rounds, scenarios in rotation. req/s, latency and CPU columns: the round "
                     "with the median Envoy CPU µs/req; the two \"added\" columns: the median over rounds "
                     "of each round's own difference and ratio (pairs from the same round). Envoy CPU "
                     "µs/req in every round: " + ", ".join(per_round) + ".")
        ratio_rounds = [f"{sid} {'/'.join(f'{x:.2f}' for x in per_round_added(results, sid)[1])}"
                        for sid, _, _, _ in SCENARIOS
                        if sid not in ("plain", "jwt_authn") and sid in results and per_round_added(results, sid)[1]]
        if ratio_rounds:
            notes.append("Added / jwt_authn added, per round: " + ", ".join(ratio_rounds) + ".")
    rem = results.get("remote")
    if rem and rem.get("extra_cpu_us_per_req") is not None:
        notes.append(f"dpop-replay (memory backend, on the client's CPU) used "
                     f"{rem['extra_cpu_us_per_req']:.1f} CPU µs per request in scenario 6, not counted above.")
    other = [f"{sid} {max(0.0, r['watched_cpu_busy_pct'] - r['envoy_busy_pct']):.0f}%"
             for sid, r in results.items() if r.get("watched_cpu_busy_pct") is not None]
    noisy = [sid for sid, r in results.items() if r.get("watched_cpu_busy_pct") is not None
             and r["watched_cpu_busy_pct"] - r["envoy_busy_pct"] > 10]
    if noisy:
        notes.append(f"**Noisy run**: other processes took more than 10% of CPU {ENVOY_CPU} during "
                     f"{', '.join(noisy)}; absolute numbers there are inflated (rerun on an idle machine).")
    if other:
        notes.append(f"CPU {ENVOY_CPU} time taken by other processes (and hypervisor steal) during each "
                     "measured window — noise indicator, ideally ~0%: " + ", ".join(other) + ".")
    short = [f"{sid} ({r['seconds']:.1f} s)" for sid, r in results.items() if r.get("pool_exhausted")]
    if short:
        notes.append("Proof pool ran out before the planned duration (measured window shown): " + ", ".join(short) + ".")
    errs = {sid: r for sid, r in results.items() if r.get("errors") or "failed" in r}
    for sid, r in errs.items():
        notes.append(f"**{sid}: {r.get('errors', '')} errors** — {r.get('first_error') or r.get('failed')}")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    lines += ["", f"Reproduce: `make bench` (`BENCH_SECONDS={SECONDS:g}`; logs and configs in `target/bench/`)."]
    return "\n".join(lines)


def write_benchmarks(text, begin=BEGIN, end=END, section=SECTION):
    with open(BENCHMARKS) as f:
        doc = f.read()
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc and doc.index(begin) < doc.index(end):
        i, j = doc.index(begin), doc.index(end) + len(end)
        doc = doc[:i] + block + doc[j:]
    else:
        doc = doc.rstrip("\n") + f"\n\n{section}\n\n{block}\n"
    with open(BENCHMARKS, "w") as f:
        f.write(doc)


# ---- worst case per input class ----------------------------------------------------------

def worst_classes():
    """The classes from crates/dpop-bench/src/worst.rs (Envoy scenarios and native-only refs)."""
    r = subprocess.run([CLIENT, "worst-classes"], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(r.stdout)


def shipped_plugin_config():
    """The shipped plugin configuration as filter_config makes it (for the native reference)."""
    _, hcm = gateway("envoy.yaml", 0, 0)
    return filter_config(hcm, 0, None, WORST_SECONDS)


def run_native(sid, plugin_path):
    """µs per call of the filter's pure pipeline on the class's requests (no Envoy), pinned to
    Envoy's CPU (Envoy has stopped by then)."""
    cmd = [CLIENT, "worst-native", "--class", sid, "--seconds", str(NATIVE_SECONDS),
           "--plugin-config", plugin_path, "--merged"]
    if PIN:
        cmd += ["--pin-cpu", str(ENVOY_CPU)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"worst-native {sid} failed ({r.returncode}): {r.stderr.strip()[-1500:]}")
    return json.loads(lines[-1])["native_us_per_call"]


def worst_ratio(wr, eddsa):
    """Median over rounds of (class CPU µs/req ÷ EdDSA CPU µs/req of the same round), and the
    per-round values."""
    mine, base = wr.get("rounds_cpu") or [], (eddsa or {}).get("rounds_cpu") or []
    ratios = [m / b for m, b in zip(mine, base) if b]
    return (sorted(ratios)[(len(ratios) - 1) // 2] if ratios else None), ratios


def worst_report(wresults, natives, results, classes, same_rounds, meta):
    """`same_rounds`: each normal scenario's median over the rounds the worst-case classes ran
    in (the reference row and the "over plain Envoy" figures); the ratios pair rounds."""
    eddsa = results.get("eddsa")
    if eddsa and "failed" in eddsa:
        eddsa = None
    ref = same_rounds.get("eddsa")
    ref_native = natives.get("ref_eddsa")
    ref_native = ref_native if isinstance(ref_native, float) else None
    rows = ["| class | configuration | answer | req/s | p50 µs | Envoy CPU µs/req | × EdDSA | "
            "native µs/call | × EdDSA native | errors |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    if eddsa and ref:
        rows.append(f"| R. EdDSA scenario (normal proof, 4 keys), same round | shipped | 200 | "
                    f"{fmt(ref['rps'])} | {fmt(ref['p50_us'])} | {fmt(ref['envoy_cpu_us_per_req'], 1)} | "
                    f"1.00× | {fmt(ref_native, 1)} | {'1.00×' if ref_native else '—'} | — |")
    for c in classes:
        sid = c["id"]
        r = wresults.get(sid)
        if r is None:
            continue
        if "failed" in r:
            rows.append(f"| {c['label']} | {c['config_note']} | {c['expect']} | FAILED | | | | | | "
                        f"{r['failed'][:80]} |")
            continue
        ratio, _ = worst_ratio(r, eddsa)
        nat = natives.get(sid)
        nat_ratio = (nat / ref_native) if (isinstance(nat, float) and ref_native) else None
        rps = fmt(r["rps"]) + (f" ({r['seconds']:.1f} s)" if r.get("pool_exhausted") else "")
        errs = r["errors"]
        rows.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            c["label"], c["config_note"], c["expect"], rps, fmt(r["p50_us"]),
            fmt(r["envoy_cpu_us_per_req"], 1), (fmt(ratio, 1) + "×") if ratio is not None else "—",
            fmt(nat, 1) if isinstance(nat, float) else "—",
            (fmt(nat_ratio, 1) + "×") if nat_ratio is not None else "—",
            f"**{errs}**" if errs else "0"))
    rounds = max((len(r.get("rounds_cpu", [])) for r in wresults.values()), default=1)
    lines = [
        f"Run {meta['date']} — load average at start {meta['loadavg']}; Envoy {meta['envoy']}; "
        f"`dpop_guard.wasm` {meta['wasm_bytes']:,} bytes.",
        "",
        f"Same client, concurrency ({CONCURRENCY} connections) and Envoy as the scenarios above; "
        f"{WARMUP:g} s warm-up, then {WORST_SECONDS:g} s measured, {rounds} round{'s' if rounds > 1 else ''} "
        "(in the first round of the run, right after the normal scenarios). Requests with a valid "
        "proof are each sent once; refused ones cycle through 1,024 distinct requests (more than "
        "the filter's 256-entry proof-header cache, so a key is never found cached unless the "
        "class says so). \"× EdDSA\": Envoy CPU µs/req ÷ the EdDSA scenario's, same round. "
        "\"native\": `dpop-bench worst-native`, the filter's pure pipeline "
        "(`authn::decide_headers_cached` with a 256-entry header cache) on the same requests, "
        "natively, thread CPU time per call, no Envoy; its EdDSA reference is the normal request of "
        "scenario 3.",
        "",
        "\n".join(rows),
        "",
    ]
    notes = ["Requests: " + "; ".join(f"**{c['label'].split('. ')[0]}** {c['what']}"
                                     for c in classes if c["id"] in wresults) + "."]
    per_round = [f"{sid} {'/'.join(f'{x:.2f}' for x in worst_ratio(r, eddsa)[1])}"
                 for sid, r in wresults.items() if len(worst_ratio(r, eddsa)[1]) > 1]
    if per_round:
        notes.append("× EdDSA per round: " + ", ".join(per_round) + ".")
    def cpu_of(sid):
        r = wresults.get(sid) or same_rounds.get(sid)
        return r.get("envoy_cpu_us_per_req") if r and "failed" not in r else None
    shares = []
    for c in classes:
        mine, base = cpu_of(c["id"]), cpu_of(c.get("baseline") or "")
        if c["id"] in wresults and mine is not None and base is not None:
            shares.append(f"{c['label'].split('. ')[0]} {mine - base:+,.0f}")
    if shares:
        notes.append("Envoy CPU µs/req over plain Envoy with the same request (B1 for the 60 KB DPoP "
                     "values, B2 for 7a/7b) or, for requests of at most 17 KB, over scenario 1 (plain "
                     "Envoy, same round): " + ", ".join(shares) + ".")
    other = [f"{sid} {max(0.0, r['watched_cpu_busy_pct'] - r['envoy_busy_pct']):.0f}%"
             for sid, r in wresults.items() if r.get("watched_cpu_busy_pct") is not None]
    noisy = [sid for sid, r in wresults.items() if r.get("watched_cpu_busy_pct") is not None
             and r["watched_cpu_busy_pct"] - r["envoy_busy_pct"] > 10]
    if noisy:
        notes.append(f"**Noisy run**: other processes took more than 10% of CPU {ENVOY_CPU} during "
                     f"{len(noisy)} of {len(wresults)} classes; absolute numbers are inflated, ratios "
                     "less so (rerun on an idle machine).")
    if other:
        notes.append(f"CPU {ENVOY_CPU} time taken by other processes during each measured window "
                     "(noise indicator, ideally ~0%): " + ", ".join(other) + ".")
    short = [f"{sid} ({r['seconds']:.1f} s)" for sid, r in wresults.items() if r.get("pool_exhausted")]
    if short:
        notes.append("Request pool ran out before the planned duration (measured window shown): "
                     + ", ".join(short) + ".")
    for sid, r in wresults.items():
        if r.get("errors") or "failed" in r:
            notes.append(f"**{sid}: {r.get('errors', '')} errors** — {r.get('first_error') or r.get('failed')}")
    for sid, n in natives.items():
        if isinstance(n, str):
            notes.append(f"**{sid}: native timing failed** — {n[:300]}")
    lines += [f"- {n}" for n in notes]
    lines += ["", f"Reproduce: `BENCH_ONLY=eddsa,worst make bench` (`BENCH_WORST_SECONDS={WORST_SECONDS:g}`; "
              "configs in `target/bench/worst_*.yaml`, plugin configurations in `target/bench/*.plugin.json`)."]
    return "\n".join(lines)


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
    if bad:
        log(f"ERRORS in: {', '.join(bad)}")
        return 1
    return 0


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    finally:
        stop_all()
