"""Issue 15: server nonces and RFC 9728 discovery with a real third-party client. panva's
oauth4webapi (npm, pinned in tests/e2e/node/package-lock.json; `make node-deps`) discovers the
resource, then makes 50 DPoP requests across a nonce window boundary, retrying once on
`use_dpop_nonce` as it documents; nonces are bound to the proof key; allowed responses that hand
out a nonce are not cacheable."""
import concurrent.futures
import json
import os
import shutil
import subprocess
import time

import pytest

from harness import ENVOY, ROOT, Envoy, Key, assert_problem, wasm_filters

NODE_DIR = os.path.join(ROOT, "tests", "e2e", "node")
NODE = shutil.which("node")
AS = "https://as.example"
WELL_KNOWN = "/.well-known/oauth-protected-resource"
TOKEN_SECRET = "node-client-hs256-secret-0123456789abcdef"
ROTATION, REFRESH = 10, 3


def nonce_config(origin):
    return {
        "required": False,
        "algorithms": ["EdDSA", "ES256"],
        "access_token": {"verify": "keys", "hs256_secret": TOKEN_SECRET},
        "nonce": {"secret": "nonce-secret-0123456789abcdef", "rotation_seconds": ROTATION, "refresh_seconds": REFRESH},
        "resource_metadata": {"authorization_servers": [AS], "scopes_supported": ["items:read"]},
        "routes": [{"prefix": "/api", "policy": "required", "resource": origin + "/api"}],
    }


@pytest.fixture(scope="module")
def nonce_envoy():
    e = Envoy({}, name="nonce-client")
    for f in wasm_filters(e.bootstrap):  # the config names the port, known only now
        f["typed_config"]["config"]["configuration"]["value"] = json.dumps(nonce_config(e.origin))
    with e:
        yield e


def test_oauth4webapi_discovery_and_nonce_retry(nonce_envoy):
    """50 calls over ~15 s (1.5 nonce windows): every call succeeds, and the client is told
    `use_dpop_nonce` once — on its first call, which has no nonce yet."""
    e = nonce_envoy
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "oauth4webapi")):
        pytest.fail("tests/e2e/node/node_modules missing: run `make node-deps` (make e2e does it)")
    assert NODE, "node not found"
    resource = e.origin + "/api"
    before = e.stats()
    r = subprocess.run(
        [NODE, "nonce_client.mjs", "--resource", resource, "--url", e.origin + "/api/items",
         "--secret", TOKEN_SECRET, "--count", "50", "--interval-ms", "300"],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    after = e.stats()
    summary = {k: out[k] for k in ("successes", "failures", "nonce_errors", "http_requests",
                                   "nonce_handouts", "handed_out", "elapsed_ms")}
    print(json.dumps(summary))

    # discovery: the client found the metadata at the RFC 9728 §3.1 URL and accepted it
    assert out["discovery_url"] == e.origin + WELL_KNOWN + "/api"
    m = out["metadata"]
    assert m["resource"] == resource
    assert m["authorization_servers"] == [AS]
    assert m["scopes_supported"] == ["items:read"]
    assert m["bearer_methods_supported"] == ["header"]
    assert m["dpop_signing_alg_values_supported"] == ["EdDSA", "ES256"]
    assert m["dpop_bound_access_tokens_required"] is True

    # 50 successes, at most one use_dpop_nonce (the first call: the client had no nonce yet)
    assert out["successes"] == 50, summary
    assert out["failures"] == [], summary
    assert len(out["nonce_errors"]) <= 1, summary
    assert [n["call"] for n in out["nonce_errors"]] == [0], summary
    assert out["nonces_sent"][0] is None and all(out["nonces_sent"][1:]), out["nonces_sent"]
    assert out["echo_jkt_mismatch"] == 0
    first = out["nonce_errors"][0]
    assert first["status"] == 401
    assert first["dpop_nonce"], first
    assert 'error="use_dpop_nonce"' in first["www_authenticate"], first
    assert f'resource_metadata="{e.origin}{WELL_KNOWN}/api"' in first["www_authenticate"], first
    assert first["cache_control"] == "no-store", first

    # the run crossed a window boundary: the client moved on to a newer nonce it was handed on a
    # 200, every such 200 was marked no-store
    assert out["elapsed_ms"] >= 1.4 * ROTATION * 1000, summary
    assert len({n for n in out["nonces_sent"] if n}) >= 2, out["nonces_sent"]
    assert out["nonce_handouts"] >= 1, summary
    assert out["handouts_without_no_store"] == 0, summary

    # the filter agrees: 51 checked proofs, 50 allowed, one nonce refusal
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert delta.get("dpop_guard.allowed") == 50, delta
    nonce_denials = delta.get("dpop_guard.denied.nonce_missing", 0) + delta.get("dpop_guard.denied.nonce_invalid", 0)
    assert nonce_denials == 1, delta


def test_metadata_of_the_default_route(nonce_envoy):
    """Paths no rule covers get the top-level default (required: false → optional) and the
    request's origin as resource."""
    e = nonce_envoy
    r = e.request("GET", WELL_KNOWN)
    assert r.status == 200, r.body
    m = r.json()
    assert m["resource"].rstrip("/") == e.origin
    assert m["dpop_bound_access_tokens_required"] is False
    assert m["dpop_signing_alg_values_supported"] == ["EdDSA", "ES256"]
    # the well-known path of a resource that does not exist is not metadata
    r = e.request("GET", WELL_KNOWN + "/nope")
    if r.status == 200:  # passed on to the demo upstream (optional route, no proof)
        assert "resource" not in r.json(), r.body


def get_nonce(e, key, path="/api/x"):
    """A proof without nonce → 401 use_dpop_nonce carrying the nonce for this key."""
    r = e.request("GET", path, [("DPoP", key.proof("GET", e.origin + path))])
    assert_problem(r, "use-dpop-nonce", error="use_dpop_nonce")
    assert r.header("dpop-nonce"), r.headers_list
    return r.header("dpop-nonce")


def call(e, key, nonce, path="/api/x"):
    return e.request("GET", path, [("DPoP", key.proof("GET", e.origin + path, nonce=nonce))])


def test_nonce_is_bound_to_the_key(nonce_envoy):
    e = nonce_envoy
    k1, k2 = Key("EdDSA"), Key("ES256")
    n1 = get_nonce(e, k1)
    assert call(e, k1, n1).status == 200
    # key 2 presents key 1's nonce
    r = call(e, k2, n1)
    assert_problem(r, "use-dpop-nonce", error="use_dpop_nonce")
    n2 = r.header("dpop-nonce")
    assert n2 and n2 != n1
    r = call(e, k2, n2)
    assert r.status == 200, r.body
    assert r.json()["x-dpop-jkt"] == k2.jkt
    # and the other way round
    assert_problem(call(e, k1, n2), "use-dpop-nonce", error="use_dpop_nonce")
    # a made-up nonce
    assert_problem(call(e, k1, "A" * len(n1)), "use-dpop-nonce", error="use_dpop_nonce")


def wait_for_phase(lo, hi):
    """Sleep until `time % ROTATION` is in [lo, hi) (the filter's clock is this machine's)."""
    t = time.time() % ROTATION
    if not lo <= t < hi:
        time.sleep((lo - t) % ROTATION)


def test_nonce_handout_is_no_store(nonce_envoy):
    """A 200 carries `DPoP-Nonce` + `cache-control: no-store` only when the client needs a new
    nonce: its nonce is from the previous window, or the current window ends within
    refresh_seconds (then the next window's nonce, already accepted)."""
    e = nonce_envoy
    k = Key("EdDSA")

    def allowed(nonce):
        r = call(e, k, nonce)
        assert r.status == 200, r.body
        return r

    # early in window W: the current nonce, nothing handed out
    wait_for_phase(0.3, ROTATION - REFRESH - 1.5)
    n_cur = get_nonce(e, k)
    r = allowed(n_cur)
    assert r.header("dpop-nonce") is None, r.headers_list
    # the last refresh_seconds of W: the next window's nonce, not cacheable
    wait_for_phase(ROTATION - REFRESH + 0.3, ROTATION - 0.5)
    r = allowed(n_cur)
    n_next = r.header("dpop-nonce")
    assert n_next and n_next != n_cur, r.headers_list
    assert r.header("cache-control") == "no-store", r.headers_list
    allowed(n_next)  # the next window's nonce is accepted before its window starts
    # window W+1: n_cur is now the previous window's, still accepted, and the response hands out
    # the current one (n_next)
    wait_for_phase(0.3, ROTATION - REFRESH - 1.5)
    r = allowed(n_cur)
    assert r.header("dpop-nonce") == n_next, r.headers_list
    assert r.header("cache-control") == "no-store", r.headers_list
    r = allowed(n_next)
    assert r.header("dpop-nonce") is None, r.headers_list


def test_secret_rotation_and_global_scope():
    """`secrets`: the first signs, all verify — a nonce signed with the old secret is still
    taken after the new one is put first, and refused once the old one is dropped.
    `scope: global`: a nonce is not tied to a key."""
    s_old, s_new = "old-nonce-secret-0123456789", "new-nonce-secret-9876543210"

    def cfg(**nonce):
        return {"required": True, "nonce": dict(nonce, scope="global")}

    before = Envoy(cfg(secret=s_old), name="nonce-old")
    during = Envoy(cfg(secrets=[s_new, s_old]), name="nonce-both")
    after = Envoy(cfg(secrets=[s_new]), name="nonce-new")
    k1, k2 = Key("EdDSA"), Key("ES256")
    with before, during, after:
        # wait_for_phase: all four requests in one window, so only the secret decides
        wait_for_phase(0.3, ROTATION - REFRESH - 2)
        n_old = get_nonce(before, k1)
        assert call(before, k2, n_old).status == 200  # global: another key may use it
        r = call(during, k1, n_old)
        assert r.status == 200, r.body
        n_new = get_nonce(during, k2)
        assert n_new != n_old
        # the old secret's nonce is replaced on that success (README "Nonces"), not cacheable
        assert r.header("dpop-nonce") == n_new, r.headers_list
        assert r.header("cache-control") == "no-store", r.headers_list
        assert call(after, k1, n_new).status == 200
        assert_problem(call(after, k1, n_old), "use-dpop-nonce", error="use_dpop_nonce")


CONFIG_ERRORS = [
    ({"nonce": {"secret": "0123456789abcdef", "rotation_seconds": 9}}, "rotation_seconds"),
    ({"nonce": {"secret": "0123456789abcdef", "rotation_seconds": 10, "refresh_seconds": 11}}, "refresh_seconds"),
    ({"nonce": {"secret": "0123456789abcdef", "refresh_seconds": -1}}, "refresh_seconds"),
    ({"nonce": {"secret": "0123456789abcdef", "scope": "client"}}, "scope"),
    ({"nonce": {"secrets": []}}, "secrets"),
    ({"nonce": {"secrets": ["0123456789abcdef", "too-short"]}}, "secrets"),
    ({"nonce": {"enabled": False}}, "secret"),
    ({"routes": [{"prefix": "/n", "nonce": True}]}, "nonce"),  # nonce: true without a nonce section
    ({"resource_metadata": {"scopes_supported": ["a"]}}, "authorization_servers"),
    # proof settings on a rule that checks nothing
    ({"routes": [{"prefix": "/x", "policy": "off", "algorithms": ["ES256"]}]}, "routes[0]"),
]


def test_nonce_and_metadata_config_errors():
    def validate(cfg):
        e = Envoy(cfg, name="validate-nonce")
        r = subprocess.run([ENVOY, "--mode", "validate", "-c", e.write_config(), "--disable-hot-restart", "-l", "error"],
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout + r.stderr

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(lambda c: validate(c[0]), CONFIG_ERRORS))
    for (cfg, key), (rc, log) in zip(CONFIG_ERRORS, results):
        lines = [l for l in log.splitlines() if "dpop_guard: invalid configuration:" in l]
        assert rc != 0 and lines, (cfg, log[-1500:])
        assert key in lines[0], (cfg, lines[0])
