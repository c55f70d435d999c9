"""One measured run: Envoy (and dpop-replay for the remote store, or a second Envoy as the
introspection endpoint) started with a generated configuration, `dpop-bench run` against it,
Envoy's counters and log checked; the native timing of a worst-case class (`dpop-bench
worst-native`); the median of rounds."""

import copy
import json
import os
import subprocess
import sys

import yaml

from .envoy_config import (
    GRPC_OVERRIDES, HTTP_OVERRIDES, filter_config, gateway, h2_cluster, introspection_cluster, merge, introspection_plugin_overrides, introspection_server,
    jwt_authn_filter, pool_size, router_only, walk,
)
from .procs import free_port, http_get, spawn, stop, tail, wait_http
from .settings import (
    CLIENT, CLIENT_CPU, CONCURRENCY, ENVOY, ENVOY_CPU, KEYS, MAX_PROOFS, NATIVE_SECONDS, OUT,
    PANIC_MARKERS, PATH, PIN, REPLAY, ROOT, SECONDS, REMOTE_KINDS, TOKEN_KINDS, WARMUP, WORST_SECONDS, log, pinned,
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


def add_error(res, msg):
    res["errors"] += 1
    res["first_error"] = (res.get("first_error") or "") + f" [{msg}]"


def client_key(alg):
    """A seed for `dpop-bench run --key-seed` and its thumbprint."""
    r = subprocess.run([CLIENT, "client-key", "--alg", alg], check=True, capture_output=True, text=True)
    k = json.loads(r.stdout)
    return k["seed"], k["jkt"]


def run_scenario(sid, label, kind, alg, concurrency=None, worst=None):
    concurrency = concurrency or CONCURRENCY
    admin_port, port = free_port(), free_port()
    extra = {}
    replay = None  # a process on the client's CPU serving the filter's callouts
    client_args = []
    keys = KEYS
    pool = pool_size(alg, sid) if alg else 0
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
    elif kind == "filter_disabled":
        # The wasm filter's own cost: every VM callback, the header map and the filter state,
        # no proof (the client sends none).
        b, hcm = gateway("envoy.yaml", admin_port, port)
        filter_config(hcm, 1000, {"enabled": False})
    elif kind == "filter_wasm":
        # The fallback: every signature verified by dpop-guard's own verifiers.
        b, hcm = gateway("envoy.yaml", admin_port, port)
        filter_config(hcm, pool, {"crypto": "wasm"})
    elif kind in REMOTE_KINDS:
        b, hcm = gateway("envoy-redis.yaml", admin_port, port)
        over = {"remote_single": {"replay": {"max_batch": 1}},
                "remote_mif2": {"replay": {"max_in_flight": 2}}}.get(kind, {})
        over = GRPC_OVERRIDES if kind == "remote_grpc" else merge(copy.deepcopy(HTTP_OVERRIDES), over)
        pc = filter_config(hcm, pool, over)
        assert pc["replay"]["store"] == "remote", pc
        for c in b["static_resources"]["clusters"]:
            if c.get("name") == "dpop_replay":
                # HTTP/1.1 keep-alive for the callout rows (as measured before the stream)
                h2_cluster(c, http2=kind in ("remote_h2", "remote_grpc"))
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
    elif kind in TOKEN_KINDS:
        # One client key, known before the run: its thumbprint is in the tokens (upstream) or
        # the introspection endpoint's fixed answer.
        seed, jkt = client_key(alg)
        keys = 1
        client_args += [f"--key-seed={seed}",  # base64url: may start with '-'
                        "--dpop-token", "unique" if kind == "introspection_miss" else "shared"]
        b, hcm = gateway("envoy.yaml", admin_port, port)
        if kind == "token_upstream":
            pc = filter_config(hcm, pool)
            assert pc["access_token"]["verify"] == "upstream", pc
        else:
            pc = filter_config(hcm, pool, introspection_plugin_overrides())
            as_admin, as_port = free_port(), free_port()
            b["static_resources"].setdefault("clusters", []).append(introspection_cluster(as_port))
            as_cfg = os.path.join(OUT, f"{sid}.introspection-envoy.yaml")
            with open(as_cfg, "w") as f:
                yaml.safe_dump(introspection_server(as_admin, as_port, jkt), f, sort_keys=False)
            alog = f"{sid}.introspection-envoy.log"
            replay = spawn(pinned(CLIENT_CPU, [ENVOY, "-c", as_cfg, "--concurrency", "1",
                                               "--disable-hot-restart", "-l", "warn"]), alog)
            wait_http(replay, as_admin, "/ready", "introspection envoy", os.path.join(OUT, alog))
        with open(os.path.join(OUT, f"{sid}.plugin.json"), "w") as f:
            json.dump(pc, f)
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
            cmd += ["--alg", alg, "--keys", str(keys), "--pool", str(pool)]
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
                        if k.startswith("dpop_guard.") or ".jwt_authn." in k
                        or k.startswith("cluster.introspection.upstream_")}
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
        if kind in ("introspection_warm", "introspection_miss"):
            # the row is what it claims: every request answered from the cache (one callout per
            # worker for the one token, plus the preflight's), or every request a callout
            calls = stats.get("dpop_guard.introspection.requests", 0)
            hits = stats.get("dpop_guard.introspection.cache_hits", 0)
            if stats.get("dpop_guard.introspection.errors", 0):
                add_error(res, f"dpop_guard.introspection.errors={stats['dpop_guard.introspection.errors']}")
            if kind == "introspection_warm" and (calls > 4 or hits < res["requests"]):
                add_error(res, f"introspection.requests={calls}, cache_hits={hits}: cache not warm")
            if kind == "introspection_miss" and calls < res["requests"]:
                add_error(res, f"introspection.requests={calls} < requests {res['requests']}")
            # keep-alive to the endpoint, as with a real authorization server: a new connection
            # per callout would measure TCP setup instead
            cx = stats.get("cluster.introspection.upstream_cx_total", 0)
            if cx > max(32, calls // 10):
                add_error(res, f"cluster.introspection.upstream_cx_total={cx} for {calls} callouts: "
                               "connections not reused")
            res["introspection_calls"] = calls
            res["introspection_connections"] = cx
            res["introspection_cache_hits"] = hits
        if kind in REMOTE_KINDS:
            # the row is what it claims: coalesced (mean batch size recorded) or one per request
            batches = stats.get("dpop_guard.replay.batches", 0)
            batched = stats.get("dpop_guard.replay.batched", 0)
            if kind == "remote_single" and batches:
                add_error(res, f"replay.batches={batches} with max_batch 1")
            # coalesced: a check finding the worker idle goes out alone (not in a batch), so
            # one connection never batches; many connections must
            if kind != "remote_single" and concurrency > 1 and not batches:
                add_error(res, f"replay.batches=0 with {concurrency} connections")
            res["replay_batches"] = batches
            res["replay_mean_batch"] = (batched / batches) if batches else None
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
