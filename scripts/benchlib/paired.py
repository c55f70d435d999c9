"""Same-process comparison (`BENCH_PAIRED`, `make bench-paired`): every variant is a listener of
ONE Envoy (one worker pinned to CPU 0, one V8 VM shared by the plugin configurations), and the
load client visits the listeners in short windows, in rotation, reversing the order every other
window. Each window's Envoy CPU µs/req is compared with the other variants' in the same pass
only seconds apart, in the same process (same JIT state, same memory layout): the separate-
process rounds of `make bench` drift by 10–30 % between minutes and Envoy starts, which hides
differences of a few µs. Ratios and differences are the median over passes of each pass's own.
"""

import copy
import json
import os
import statistics
import subprocess
import sys

import yaml

from .envoy_config import (
    GRPC_OVERRIDES, HTTP_OVERRIDES, filter_config, gateway, h2_cluster, introspection_cluster, introspection_plugin_overrides, introspection_server,
    jwt_authn_filter, router_only, walk,
)
from .procs import free_port, http_get, spawn, stop, stop_all, tail, wait_http
from .scenario import client_key, envoy_stats
from .settings import (
    CLIENT, CLIENT_CPU, CONCURRENCY, ENVOY, ENVOY_CPU, EXPECTED_RATE, FLOOR_WASM, KEYS, OUT, PANIC_MARKERS, PATH, PIN,
    REPLAY, ROOT, WASM, log, pinned,
)

PASSES = max(2, int(os.environ.get("BENCH_PAIRED_PASSES", "6")))
WINDOW = float(os.environ.get("BENCH_PAIRED_SECONDS", "3"))
WARM = 0.5

# id, label, kind, alg (kinds as in settings.SCENARIOS)
VARIANTS = [
    ("plain", "plain Envoy", "plain", None),
    ("jwt_authn", "jwt_authn, ES256 JWT", "jwt_authn", None),
    # the price of the wasm filter itself: VM callbacks, the header map, filter state; no proof
    ("disabled", "dpop-guard with `enabled: false` (reads the headers, passes; no proof sent)",
     "filter_disabled", None),
    ("eddsa", "EdDSA proofs, local store", "filter", "EdDSA"),
    ("es256", "ES256 proofs, local store (host crypto)", "filter", "ES256"),
    # issue 16's floor (crates/bench-floor): the header map, verify_signature, a shared-data
    # get + CAS set, three filter-state values and x-dpop-jkt, and none of the DPoP checks
    ("floor", "floor: the hostcalls an ES256 proof needs + BoringSSL, no DPoP checks (crates/bench-floor)",
     "floor", "ES256"),
    # knock-outs of the floor (BENCH_PAIRED_ONLY=floor_*): what each piece of it costs
    ("floor_noverify", "floor without the foreign call (verify_signature)", "floor", "ES256"),
    ("floor_nostore", "floor without the shared-data get + CAS set", "floor", "ES256"),
    ("floor_nostate", "floor without the three filter-state values", "floor", "ES256"),
    ("floor_noheader", "floor without x-dpop-jkt", "floor", "ES256"),
    ("rs256", "RS256 proofs, local store (host crypto)", "filter", "RS256"),
    ("remote", "EdDSA proofs, remote store, coalesced HTTP callouts (transport http)", "remote", "EdDSA"),
    ("remote_mif2", "EdDSA proofs, remote store, coalesced, max_in_flight 2", "remote_mif2", "EdDSA"),
    ("remote_single", "EdDSA proofs, remote store, one callout per request (max_batch 1)", "remote_single", "EdDSA"),
    ("remote_grpc", "EdDSA proofs, remote store, coalesced, gRPC stream (transport grpc, as shipped)", "remote_grpc", "EdDSA"),
    ("upstream", "EdDSA proof + DPoP token, `upstream`", "token_upstream", "EdDSA"),
    ("introspection_warm", "EdDSA proof + DPoP token, `introspection`, warm cache", "introspection_warm", "EdDSA"),
]
# (label, a, b): b − a per pass, in µs of Envoy CPU per request
DIFFS = [
    # issue 16: what a proof check adds over a wasm filter that only reads the headers
    ("EdDSA − disabled filter", "disabled", "eddsa"),
    ("ES256 (host) − disabled filter", "disabled", "es256"),
    ("RS256 (host) − disabled filter", "disabled", "rs256"),
    ("ES256 (host) − RS256 (host): the two BoringSSL verifies", "rs256", "es256"),
    ("floor − disabled filter: BoringSSL's P-256 and the contract's hostcalls", "disabled", "floor"),
    ("ES256 (host) − floor: dpop-guard's DPoP checks beyond the floor", "floor", "es256"),
    ("floor − floor without verify_signature", "floor_noverify", "floor"),
    ("floor − floor without the shared-data get + set", "floor_nostore", "floor"),
    ("floor − floor without filter state", "floor_nostate", "floor"),
    ("floor − floor without x-dpop-jkt", "floor_noheader", "floor"),
    ("introspection warm − upstream (issue 13: ≤ +10 µs)", "upstream", "introspection_warm"),
    ("remote HTTP callouts coalesced − local", "eddsa", "remote"),
    ("remote max_in_flight 2 − local", "eddsa", "remote_mif2"),
    ("remote one callout per request − local", "eddsa", "remote_single"),
    ("remote gRPC stream − local (issue 17: ≤ +15 µs)", "eddsa", "remote_grpc"),
]
REMOTE_OVERRIDES = {"remote": HTTP_OVERRIDES,
                    "remote_mif2": {"replay": {**HTTP_OVERRIDES["replay"], "max_in_flight": 2}},
                    "remote_single": {"replay": {**HTTP_OVERRIDES["replay"], "max_batch": 1}},
                    # its own HTTP/2 cluster (clusters are shared by name across listeners)
                    "remote_grpc": {"replay": {**GRPC_OVERRIDES["replay"], "cluster": "dpop_replay_h2"}}}


# BENCH_PAIRED_ALT_WASM: another build of the filter, compared with this one in the same process.
# Every selected variant of kind filter/filter_disabled gets a twin "<id>_alt" running that build
# in its own VM (its own vm_id), and the differences table gets "alt build − this build" rows:
# what a change to the filter costs or saves, paired within each pass.
ALT_WASM = os.environ.get("BENCH_PAIRED_ALT_WASM")
ALT_KINDS = ("filter", "filter_disabled")


def selected_variants():
    only = [s for s in os.environ.get("BENCH_PAIRED_ONLY", "").split(",") if s]
    # the floor's knock-outs run only when named
    chosen = [v for v in VARIANTS if v[0] in only or v[0] in ("plain", "jwt_authn")
              or (not only and not v[0].startswith("floor_"))]
    if ALT_WASM:
        chosen += [(f"{sid}_alt", f"{label} — alt build", kind, alg)
                   for sid, label, kind, alg in chosen if kind in ALT_KINDS]
    return chosen


def diffs(variants):
    ids = {v[0] for v in variants}
    alt = [(f"{sid}: alt build − this build", sid, f"{sid}_alt") for sid, *_ in variants
           if f"{sid}_alt" in ids]
    return DIFFS + alt


def pool_for(alg):
    return int(EXPECTED_RATE[alg] * (WARM + WINDOW))


def local_store(variants):
    """The local replay store is one per VM (shared data), used by every local-store variant,
    and its entries outlive a window (proof_ttl): room for every proof of every pass, twice
    over (a full bucket refuses, see envoy_config.filter_config)."""
    total = PASSES * sum(pool_for(alg) for _, _, kind, alg in variants
                         if alg and not kind.startswith("remote"))
    return {"replay": {"capacity": min(10_000_000, max(100_000, 2 * total))}}


def build(variants):
    """One bootstrap: a listener per variant (its own HCM and plugin configuration)."""
    admin = free_port()
    base, _ = gateway("envoy.yaml", admin, 0)
    listeners, clusters, client = [], {}, {}
    issued = json.loads(subprocess.run([CLIENT, "issuer"], check=True, capture_output=True, text=True).stdout)
    seed, jkt = client_key("EdDSA")
    need_replay = need_as = False
    ports = {"replay": free_port(), "as": free_port(), "as_admin": free_port()}
    for sid, _, kind, alg in variants:
        port = free_port()
        args = []
        yaml_name = "envoy-redis.yaml" if kind.startswith("remote") else "envoy.yaml"
        b, hcm = gateway(yaml_name, admin, port)
        if kind == "plain":
            router_only(hcm)
        elif kind == "jwt_authn":
            router_only(hcm)
            hcm["http_filters"].insert(0, jwt_authn_filter(issued["jwks"]))
            args += ["--bearer", issued["token"]]
        elif kind == "filter":
            filter_config(hcm, pool_for(alg), local_store(variants), WINDOW)
        elif kind == "floor":
            skip = sid.removeprefix("floor").removeprefix("_no")
            filter_config(hcm, pool_for(alg), {"floor_skip": skip, **local_store(variants)}, WINDOW)
        elif kind == "filter_disabled":
            filter_config(hcm, 1000, {"enabled": False, **local_store(variants)}, WINDOW)
        elif kind.startswith("remote"):
            pc = filter_config(hcm, pool_for(alg), REMOTE_OVERRIDES.get(kind), WINDOW)
            assert pc["replay"]["store"] == "remote", pc
            need_replay = True
            for node in walk(b["static_resources"]["clusters"]):
                sa = node.get("socket_address")
                if isinstance(sa, dict) and sa.get("port_value") == 8081:
                    sa["port_value"] = ports["replay"]
            for c in b["static_resources"]["clusters"]:
                if c["name"] == "dpop_replay":
                    # the callout variants: HTTP/1.1 keep-alive (as measured before the stream)
                    h2_cluster(c, http2=False)
                    if kind == "remote_grpc":
                        h2 = h2_cluster(copy.deepcopy(c))
                        h2["name"] = "dpop_replay_h2"
                        clusters[h2["name"]] = h2
        elif kind in ("token_upstream", "introspection_warm"):
            args += [f"--key-seed={seed}", "--dpop-token", "shared"]
            if kind == "token_upstream":
                pc = filter_config(hcm, pool_for(alg), local_store(variants), WINDOW)
                assert pc["access_token"]["verify"] == "upstream", pc
            else:
                filter_config(hcm, pool_for(alg), {**introspection_plugin_overrides(), **local_store(variants)},
                              WINDOW)
                clusters["introspection"] = introspection_cluster(ports["as"])
                need_as = True
        else:
            raise ValueError(kind)
        for f in hcm["http_filters"]:
            if f["name"] == "envoy.filters.http.wasm":
                # a plugin per listener (its own root context); one VM for all of them
                f["typed_config"]["config"]["name"] = f"dpop_guard_{sid}"
                if kind == "floor":
                    vm = f["typed_config"]["config"]["vm_config"]
                    vm["code"]["local"]["filename"] = FLOOR_WASM
                    vm["vm_id"] = "bench_floor"
                elif sid.endswith("_alt"):
                    vm = f["typed_config"]["config"]["vm_config"]
                    vm["code"]["local"]["filename"] = os.path.abspath(ALT_WASM)
                    vm["vm_id"] = "dpop_guard_alt"
        lst = b["static_resources"]["listeners"][0]
        lst["name"] = f"bench_{sid}"
        hcm["stat_prefix"] = f"bench_{sid}"
        listeners.append(lst)
        for c in b["static_resources"].get("clusters", []):
            clusters.setdefault(c["name"], c)
        keys = 1 if "--key-seed" in " ".join(args) else KEYS
        if alg:
            args += ["--alg", alg, "--keys", str(keys), "--pool", str(pool_for(alg))]
        client[sid] = (port, args)
    base["static_resources"]["listeners"] = listeners
    if clusters:
        base["static_resources"]["clusters"] = list(clusters.values())
    return base, admin, client, need_replay, need_as, ports, jkt


def run():
    variants = selected_variants()
    os.makedirs(OUT, exist_ok=True)
    b, admin, client, need_replay, need_as, ports, jkt = build(variants)
    cfg_path = os.path.join(OUT, "paired.yaml")
    with open(cfg_path, "w") as f:
        yaml.safe_dump(b, f, sort_keys=False)
    sides = []
    if need_replay:
        p = spawn(pinned(CLIENT_CPU, [REPLAY, "--listen", f"127.0.0.1:{ports['replay']}", "--backend", "memory"]),
                  "paired.dpop-replay.log")
        wait_http(p, ports["replay"], "/healthz", "dpop-replay", os.path.join(OUT, "paired.dpop-replay.log"))
        sides.append(p)
    if need_as:
        as_cfg = os.path.join(OUT, "paired.introspection-envoy.yaml")
        with open(as_cfg, "w") as f:
            yaml.safe_dump(introspection_server(ports["as_admin"], ports["as"], jkt), f, sort_keys=False)
        p = spawn(pinned(CLIENT_CPU, [ENVOY, "-c", as_cfg, "--concurrency", "1",
                                      "--disable-hot-restart", "-l", "warn"]), "paired.introspection-envoy.log")
        wait_http(p, ports["as_admin"], "/ready", "introspection envoy",
                  os.path.join(OUT, "paired.introspection-envoy.log"))
        sides.append(p)
    envoy = spawn(pinned(ENVOY_CPU, [ENVOY, "-c", cfg_path, "--concurrency", "1",
                                     "--disable-hot-restart", "-l", "warn"]), "paired.envoy.log")
    cpu = {sid: [] for sid, *_ in variants}
    errors = []
    try:
        wait_http(envoy, admin, "/ready", "envoy", os.path.join(OUT, "paired.envoy.log"))
        for n in range(PASSES):
            order = variants if n % 2 == 0 else list(reversed(variants))
            for sid, label, kind, alg in order:
                port, args = client[sid]
                before = envoy_stats(admin).get("dpop_guard.allowed", 0)
                cmd = [CLIENT, "run", "--addr", f"127.0.0.1:{port}", "--path", PATH,
                       "--concurrency", str(CONCURRENCY), "--duration", str(WINDOW),
                       "--warmup", str(WARM), "--envoy-pid", str(envoy.pid)] + args
                if PIN:
                    cmd += ["--pin-cpu", str(CLIENT_CPU)]
                r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
                if not lines:
                    errors.append(f"{sid} pass {n + 1}: dpop-bench failed: {r.stderr.strip()[-500:]}")
                    continue
                res = json.loads(lines[-1])
                allowed = envoy_stats(admin).get("dpop_guard.allowed", 0) - before
                if res.get("errors"):
                    errors.append(f"{sid} pass {n + 1}: {res['errors']} errors: {res.get('first_error')}")
                # (the floor keeps no stats; a refused proof is a client error above)
                if alg and kind != "floor" and allowed < res["requests"]:
                    errors.append(f"{sid} pass {n + 1}: dpop_guard.allowed +{allowed} < {res['requests']} requests")
                cpu[sid].append(res["envoy_cpu_us_per_req"])
                log(f"[pass {n + 1}/{PASSES}] {label}: {res['rps']:.0f} req/s, "
                    f"Envoy {res['envoy_cpu_us_per_req']:.1f} CPU µs/req")
        stats = envoy_stats(admin)
    finally:
        stop(envoy)
        for p in sides:
            stop(p)
        stop_all()
    text = tail(os.path.join(OUT, "paired.envoy.log"), 10**7)
    errors += [f"{m!r} in paired.envoy.log" for m in PANIC_MARKERS if m in text]
    return report(variants, cpu, stats, errors), errors


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def report(variants, cpu, stats, errors):
    ok = all(len(v) == PASSES for v in cpu.values())
    lines = [f"{PASSES} passes × {WINDOW:g} s per variant (+{WARM:g} s warm-up), {CONCURRENCY} connections, "
             "one Envoy (`--concurrency 1`, CPU 0) with a listener per variant; order reversed every other pass.",
             "",
             "| variant | Envoy CPU µs/req (median) | added vs plain (median of passes) | ÷ jwt_authn added, median (min–max) |",
             "|---|---:|---:|---:|"]
    plain, jwt = cpu.get("plain", []), cpu.get("jwt_authn", [])
    for sid, label, _, _ in variants:
        xs = cpu[sid]
        if not xs:
            lines.append(f"| {label} | — | — | — |")
            continue
        added = [x - p for x, p in zip(xs, plain)]
        ratios = [a / (j - p) for a, j, p in zip(added, jwt, plain) if j - p > 0]
        r = (f"{med(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"
             if ratios and sid not in ("plain", "jwt_authn") else ("1.00×" if sid == "jwt_authn" else "—"))
        a = f"+{med(added):.1f}" if sid != "plain" else "—"
        lines.append(f"| {label} | {med(xs):.1f} | {a} | {r} |")
    lines += ["", "| difference (same pass, same process) | median | per pass |", "|---|---:|---|"]
    for label, a, b in diffs(variants):
        if cpu.get(a) and cpu.get(b):
            d = [y - x for x, y in zip(cpu[a], cpu[b])]
            lines.append(f"| {label} | {med(d):+.1f} µs | {' / '.join(f'{x:+.1f}' for x in d)} |")
    batches, batched = stats.get("dpop_guard.replay.batches", 0), stats.get("dpop_guard.replay.batched", 0)
    if batches:
        lines.append(f"\nReplay batches over the whole run (all remote variants): {batches}, "
                     f"mean size {batched / batches:.1f}; lone checks {stats.get('dpop_guard.replay.alone', 0)}.")
    lines.append("Envoy CPU µs/req per pass: " + "; ".join(
        f"{sid} {'/'.join(f'{x:.0f}' for x in cpu[sid])}" for sid, *_ in variants if cpu[sid]) + ".")
    if errors or not ok:
        lines.append("\n**Errors**: " + "; ".join(errors or ["missing passes"]))
    return "\n".join(lines)


PAIRED_BEGIN, PAIRED_END = "<!-- bench-paired:begin -->", "<!-- bench-paired:end -->"
PAIRED_SECTION = "## Same-process comparison (`make bench-paired`)"


def main():
    import datetime
    from .report import envoy_version, write_benchmarks
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text, errors = run()
    text = f"Run {date}; Envoy {envoy_version()}; `dpop_guard.wasm` {os.path.getsize(WASM):,} bytes.\n\n" + text
    if ALT_WASM:
        text = f"Alt build: `{ALT_WASM}` ({os.path.getsize(ALT_WASM):,} bytes).\n" + text
    print("\n" + PAIRED_SECTION + "\n\n" + text)
    if errors:
        log("BENCHMARKS.md not updated: errors")
        return 1
    if os.environ.get("BENCH_NO_WRITE") or os.environ.get("BENCH_PAIRED_ONLY") or ALT_WASM:
        log("BENCHMARKS.md not updated (BENCH_NO_WRITE, BENCH_PAIRED_ONLY or BENCH_PAIRED_ALT_WASM set)")
    else:
        write_benchmarks(text, PAIRED_BEGIN, PAIRED_END, PAIRED_SECTION)
        log("BENCHMARKS.md same-process table updated")
    return 0
