"""Paths, environment knobs (scripts/bench.py lists them), scenario tables and small helpers
shared by every module of the benchmark."""

import fnmatch
import os
import shutil
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "target", "bench")
ENVOY = os.path.abspath(os.environ.get("ENVOY") or os.path.join(ROOT, ".venv", "bin", "envoy"))
# BENCH_WASM: another build of the filter (e.g. one of a clean checkout while the work tree's
# target/ is being rebuilt by someone else).
WASM = os.path.abspath(os.environ.get("BENCH_WASM")
                       or os.path.join(ROOT, "target", "wasm32-wasip1", "release", "dpop_guard.wasm"))
REPLAY = os.path.join(ROOT, "target", "release", "dpop-replay")
# crates/bench-floor: the paired comparison's "floor" variant (issue 16), `make bench-floor-wasm`
FLOOR_WASM = os.path.join(ROOT, "target", "wasm32-wasip1", "release", "bench_floor.wasm")
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
# Scenarios whose requests are bigger (a token each) or slower (a callout each).
EXPECTED_RATE_BY_ID = {"introspection_miss": 6000}

# Token scenarios (9-11): one client key (seed from `dpop-bench client-key`) so that one fixed
# introspection answer carries its thumbprint; the introspection endpoint is a second Envoy
# (direct_response) on the client's CPU. The credentials are checked by its route.
INTROSPECTION_CLIENT = ("bench", "bench-secret")
INTROSPECTION_PATH = "/introspect"
INTROSPECTION_CLUSTER = "introspection"

PANIC_MARKERS = ("panicked at", "wasm trap", "Function: proxy_on", "failed: uncaught", "unreachable")

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
SECTION = "## Load benchmark (`make bench`)"
WORST_BEGIN, WORST_END = "<!-- bench-worst:begin -->", "<!-- bench-worst:end -->"
WORST_SECTION = "## Worst case per input class (`make bench`)"

SCENARIOS = [
    # id, label, kind, alg
    ("plain", "1. plain Envoy (router → direct_response 200)", "plain", None),
    ("jwt_authn", "2. Envoy jwt_authn, ES256 JWT (Bearer)", "jwt_authn", None),
    ("disabled", "2b. dpop-guard with `enabled: false` (VM callbacks, header map, filter state; no proof)",
     "filter_disabled", None),
    ("eddsa", "3. dpop-guard, EdDSA proofs, local store", "filter", "EdDSA"),
    ("es256", "4. dpop-guard, ES256 proofs, local store (host crypto: BoringSSL)", "filter", "ES256"),
    ("rs256", "5. dpop-guard, RS256 proofs, local store (host crypto: BoringSSL)", "filter", "RS256"),
    ("remote", "6. dpop-guard, EdDSA proofs, remote store (dpop-replay, memory), coalesced HTTP callouts (transport http, max_in_flight 1)", "remote", "EdDSA"),
    # Issue 17's before/after in one round: one callout per request (replay.max_batch 1, the
    # behaviour before coalescing), and coalesced over an HTTP/2 (h2c) cluster.
    ("remote_single", "6b. dpop-guard, EdDSA proofs, remote store, one callout per request (max_batch 1)",
     "remote_single", "EdDSA"),
    ("remote_h2", "6c. dpop-guard, EdDSA proofs, remote store, coalesced, h2c cluster to dpop-replay",
     "remote_h2", "EdDSA"),
    ("remote_mif2", "6d. dpop-guard, EdDSA proofs, remote store, coalesced, two batches in flight (max_in_flight 2)",
     "remote_mif2", "EdDSA"),
    ("remote_grpc", "6e. dpop-guard, EdDSA proofs, remote store, coalesced, one gRPC stream per worker (transport grpc, as shipped)",
     "remote_grpc", "EdDSA"),
    ("es256_wasm", "7. dpop-guard, ES256 proofs, local store, crypto = wasm (fallback)", "filter_wasm", "ES256"),
    ("rs256_wasm", "8. dpop-guard, RS256 proofs, local store, crypto = wasm (fallback)", "filter_wasm", "RS256"),
    # Access-token modes (issue 13): every request also carries `Authorization: DPoP <token>`
    # (a JWT-shaped token bound by cnf.jkt, proof with ath), one client key.
    ("upstream", "9. dpop-guard, EdDSA proof + DPoP token, `upstream` (payload decoded), one token",
     "token_upstream", "EdDSA"),
    ("introspection_warm", "10. dpop-guard, EdDSA proof + DPoP token, `introspection`, warm cache (one token)",
     "introspection_warm", "EdDSA"),
    ("introspection_miss", "11. dpop-guard, EdDSA proof + DPoP token, `introspection`, a new token per request (a callout each)",
     "introspection_miss", "EdDSA"),
]
TOKEN_KINDS = ("token_upstream", "introspection_warm", "introspection_miss")

# Unloaded latency: one connection, one request at a time (same configs as above).
UNLOADED = [
    ("plain_c1", "plain Envoy, 1 connection", "plain", None),
    ("eddsa_c1", "dpop-guard EdDSA (local store), 1 connection", "filter", "EdDSA"),
    ("remote_c1", "dpop-guard EdDSA (remote store, coalesced HTTP callouts), 1 connection", "remote", "EdDSA"),
    ("remote_single_c1", "dpop-guard EdDSA (remote store, max_batch 1), 1 connection", "remote_single", "EdDSA"),
    ("remote_grpc_c1", "dpop-guard EdDSA (remote store, gRPC stream), 1 connection", "remote_grpc", "EdDSA"),
]
REMOTE_KINDS = ("remote", "remote_single", "remote_h2", "remote_mif2", "remote_grpc")


def selected(sid):
    """BENCH_ONLY: ids or shell patterns; "worst" stands for every worst-case class."""
    if not ONLY:
        return True
    return any(fnmatch.fnmatchcase(sid, pat) or (pat == "worst" and sid.startswith("worst_"))
               for pat in ONLY)


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def ncpu():
    return os.cpu_count() or 1


PIN = shutil.which("taskset") is not None and ncpu() >= 2


def pinned(cpu, cmd):
    return (["taskset", "-c", str(cpu)] + cmd) if PIN else cmd
