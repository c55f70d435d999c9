"""One measured run: Envoy (and dpop-replay for the remote store) started with a generated
configuration, `dpop-bench run` against it, Envoy's counters and log checked; the native
timing of a worst-case class (`dpop-bench worst-native`); the median of rounds."""

import json
import os
import subprocess
import sys

import yaml

from .envoy_config import filter_config, gateway, jwt_authn_filter, pool_size, router_only, walk
from .procs import free_port, http_get, spawn, stop, tail, wait_http
from .settings import (
    CLIENT, CLIENT_CPU, CONCURRENCY, ENVOY, ENVOY_CPU, KEYS, MAX_PROOFS, NATIVE_SECONDS, OUT,
    PANIC_MARKERS, PATH, PIN, REPLAY, ROOT, SECONDS, WARMUP, WORST_SECONDS, log, pinned,
)


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
    elif kind == "filter_wasm":
        # The fallback: every signature verified by dpop-guard's own verifiers.
        b, hcm = gateway("envoy.yaml", admin_port, port)
        filter_config(hcm, pool, {"crypto": "wasm"})
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
        if kind in ("filter", "filter_wasm"):
            # the crypto path the row claims is the one the filter chose (README gauge)
            want = 1 if kind == "filter" else 0
            got = stats.get("dpop_guard.crypto.host")
            if got != want:
                res["errors"] += 1
                res["first_error"] = (res.get("first_error") or "") + \
                    f" [dpop_guard.crypto.host={got}, expected {want}]"
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


def worst_classes():
    """The classes from crates/dpop-bench/src/worst/ (Envoy scenarios and native-only refs)."""
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
