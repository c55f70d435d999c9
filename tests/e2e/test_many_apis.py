"""Issue 15: many APIs behind one gateway — route rules by host, method and path prefix with
their own settings (algorithms, public_origin, proof_ttl, nonce), a public_origin with a path
prefix behind a prefix-stripping front proxy, RFC 9728 metadata per API, and unreachable rules
refused at start. Real Envoy (and a plain Envoy as the front proxy), the built wasm, proofs
from the `dpop` CLI."""
import concurrent.futures
import json
import subprocess
import time

import pytest

from harness import ENVOY, Envoy, Key, assert_problem, dpop, wasm_filters

AS = "https://as.example"
WELL_KNOWN = "/.well-known/oauth-protected-resource"


def set_plugin_config(envoy, cfg):
    """Replace the filter configuration of a not yet started Envoy (ports are known by then)."""
    for f in wasm_filters(envoy.bootstrap):
        f["typed_config"]["config"]["configuration"]["value"] = json.dumps(cfg)


def algs_of(resp):
    www = resp.header("www-authenticate")
    assert www and www.startswith('DPoP algs="'), www
    return www[len('DPoP algs="'):].split('"', 1)[0]


def param(resp, name):
    """A quoted auth-param of the DPoP challenge (`name="value"`), or None."""
    www = resp.header("www-authenticate") or ""
    key = f'{name}="'
    i = www.find(key)
    if i < 0:
        return None
    return www[i + len(key):].split('"', 1)[0]


def stat(e, name):
    return e.stats().get(f"dpop_guard.{name}", 0)


def metadata(e, path, authority=None):
    r = e.request("GET", path, [("Accept", "application/json")], authority=authority)
    assert r.status == 200, (path, authority, r.status, r.body)
    assert r.header("content-type").split(";")[0].strip() == "application/json", r.headers_list
    return r.json()


def same_url(a, b):
    return a.rstrip("/") == b.rstrip("/")


# ---- 1. two hosts, two origins, two algorithm sets ------------------------------------------

HOSTS_CONFIG = {
    "required": True,
    "resource_metadata": {"authorization_servers": [AS]},
    "routes": [
        {"hosts": ["a.example"], "public_origin": "https://api-a.example", "algorithms": ["EdDSA"]},
        {"hosts": ["b.example", "*.b.example"], "public_origin": "https://api-b.example", "algorithms": ["ES256"]},
        {"hosts": ["*.w.example"], "algorithms": ["RS256"]},
    ],
}
DEFAULT_ALGS = "EdDSA ES256 RS256"


@pytest.fixture(scope="module")
def hosts_envoy():
    with Envoy(HOSTS_CONFIG, name="many-hosts") as e:
        yield e


@pytest.fixture(scope="module")
def keys():
    return {alg: Key(alg) for alg in ("EdDSA", "ES256", "RS256")}


def test_host_a_accepts_its_origin_and_algorithm(hosts_envoy, keys):
    e = hosts_envoy
    k = keys["EdDSA"]
    r = e.request("GET", "/items?x=1", [("DPoP", k.proof("GET", "https://api-a.example/items"))], authority="a.example")
    assert r.status == 200, r.body
    assert r.json()["x-dpop-jkt"] == k.jkt
    # the host is matched without its port, ASCII-case-insensitively
    r = e.request("GET", "/items", [("DPoP", k.proof("GET", "https://api-a.example/items"))], authority="A.Example:8443")
    assert r.status == 200, r.body


def test_host_b_refuses_host_a_algorithm(hosts_envoy, keys):
    e = hosts_envoy
    before = stat(e, "denied.proof_alg_not_allowed")
    r = e.request("GET", "/items", [("DPoP", keys["EdDSA"].proof("GET", "https://api-b.example/items"))], authority="b.example")
    assert_problem(r, "dpop-invalid", error="invalid_dpop_proof")
    assert stat(e, "denied.proof_alg_not_allowed") == before + 1
    assert algs_of(r) == "ES256"
    assert param(r, "resource_metadata") == "https://api-b.example" + WELL_KNOWN  # on every 401
    # and b's own algorithm passes on b, with b's origin
    k = keys["ES256"]
    r = e.request("POST", "/items", [("DPoP", k.proof("POST", "https://api-b.example/items"))], body=b"{}", authority="b.example")
    assert r.status == 200, r.body
    assert r.json()["x-dpop-jkt"] == k.jkt
    # ... which host a refuses (EdDSA only there)
    r = e.request("POST", "/items", [("DPoP", k.proof("POST", "https://api-a.example/items"))], body=b"{}", authority="a.example")
    assert_problem(r, "dpop-invalid")
    assert algs_of(r) == "EdDSA"


def test_challenge_algs_differ_per_host(hosts_envoy):
    e = hosts_envoy
    for host, algs in [("a.example", "EdDSA"), ("b.example", "ES256"), ("x.b.example", "ES256"),
                       ("deep.x.b.example", "ES256"), ("x.w.example", "RS256"), ("a.b.w.example", "RS256"),
                       ("w.example", DEFAULT_ALGS),      # *.w.example does not cover w.example
                       ("xw.example", DEFAULT_ALGS),     # nor a name that merely ends in "w.example"
                       ("c.example", DEFAULT_ALGS), ("a.example.evil", DEFAULT_ALGS)]:
        r = e.request("GET", "/items", authority=host)
        assert_problem(r, "dpop-required", error=False)
        assert algs_of(r) == algs, (host, r.header("www-authenticate"))


def test_htu_for_the_other_origin_is_refused(hosts_envoy, keys):
    e = hosts_envoy
    k = keys["EdDSA"]
    for htu in ("https://api-b.example/items",             # b's origin, sent to a
                "http://a.example/items",                  # the authority this proxy sees
                "http://api-a.example/items",              # http, not https
                "https://api-a.example/other"):            # another path
        before = stat(e, "denied.proof_htu_mismatch")
        r = e.request("GET", "/items", [("DPoP", k.proof("GET", htu))], authority="a.example")
        assert_problem(r, "dpop-invalid", error="invalid_dpop_proof")
        assert stat(e, "denied.proof_htu_mismatch") == before + 1, htu


def test_resource_metadata_per_host(hosts_envoy):
    """RFC 9728: each host's API describes itself at the well-known path of its own resource
    (the rule's public_origin, or the request's origin for the default)."""
    e = hosts_envoy
    for host, resource, algs in [("a.example", "https://api-a.example", ["EdDSA"]),
                                 ("b.example", "https://api-b.example", ["ES256"]),
                                 ("c.example", "http://c.example", DEFAULT_ALGS.split())]:
        m = metadata(e, WELL_KNOWN, authority=host)
        assert same_url(m["resource"], resource), (host, m)
        assert m["authorization_servers"] == [AS], m
        assert m["bearer_methods_supported"] == ["header"], m
        assert m["dpop_signing_alg_values_supported"] == algs, m
        assert m["dpop_bound_access_tokens_required"] is True, m
        assert "scopes_supported" not in m, m
        # and every challenge of that host points at it (RFC 9728 §5.1)
        r = e.request("GET", "/items", authority=host)
        assert param(r, "resource_metadata") == resource.rstrip("/") + WELL_KNOWN, (host, r.header("www-authenticate"))


# ---- 2. a prefix-stripping front proxy --------------------------------------------------------

def front_proxy_bootstrap(front, sidecar_port):
    """A plain Envoy (no wasm): /svc2/... → the sidecar as /..., and the RFC 9728 well-known
    URL of the /svc2 resource passed through unchanged."""
    router = {"name": "envoy.filters.http.router",
              "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "front",
        "use_remote_address": True,
        "route_config": {"virtual_hosts": [{"name": "front", "domains": ["*"], "routes": [
            {"match": {"path": WELL_KNOWN + "/svc2"}, "route": {"cluster": "sidecar"}},
            {"match": {"prefix": "/svc2/"}, "route": {"cluster": "sidecar", "prefix_rewrite": "/"}},
        ]}]},
        "http_filters": [router],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": front.admin_port}}},
        "static_resources": {
            "listeners": [{"name": "front",
                           "address": {"socket_address": {"address": "127.0.0.1", "port_value": front.port}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                           "typed_config": hcm}]}]}],
            "clusters": [{"name": "sidecar", "connect_timeout": "1s", "type": "STATIC",
                          "load_assignment": {"cluster_name": "sidecar", "endpoints": [{"lb_endpoints": [
                              {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                                           "port_value": sidecar_port}}}}]}]}}],
        },
    }


@pytest.fixture(scope="module")
def front_and_sidecar():
    sidecar = Envoy({}, name="svc2-sidecar")
    front = Envoy(name="svc2-front",
                  patch=lambda b, f: (b.clear(), b.update(front_proxy_bootstrap(f, sidecar.port))))
    assert not wasm_filters(front.bootstrap)
    public = f"http://127.0.0.1:{front.port}/svc2"
    set_plugin_config(sidecar, {
        "required": True,
        "public_origin": public,
        "resource_metadata": {"authorization_servers": [AS], "scopes_supported": ["svc2"]},
    })
    with sidecar, front:
        yield front, sidecar, public


def test_front_proxy_public_url_accepted(front_and_sidecar, keys):
    front, sidecar, public = front_and_sidecar
    k = keys["EdDSA"]
    r = front.request("GET", "/svc2/items?page=2", [("DPoP", k.proof("GET", public + "/items"))])
    assert r.status == 200, r.body
    echo = r.json()
    assert echo["path"] == "/items?page=2"  # the sidecar (and its upstream) saw the stripped path
    assert echo["x-dpop-jkt"] == k.jkt
    r = front.request("POST", "/svc2/a/b", [("DPoP", k.proof("POST", public + "/a/b"))], body=b"{}")
    assert r.status == 200, r.body


def test_front_proxy_rewritten_url_refused(front_and_sidecar, keys):
    front, sidecar, public = front_and_sidecar
    k = keys["EdDSA"]
    origin = f"http://127.0.0.1:{front.port}"
    for htu in (origin + "/items",               # the URL the sidecar sees (prefix stripped)
                sidecar.origin + "/items",       # the sidecar's own address
                origin + "/svc2/svc2/items",     # the prefix twice
                origin + "/svc3/items"):         # another prefix
        before = stat(sidecar, "denied.proof_htu_mismatch")
        r = front.request("GET", "/svc2/items", [("DPoP", k.proof("GET", htu))])
        assert_problem(r, "dpop-invalid", error="invalid_dpop_proof")
        assert stat(sidecar, "denied.proof_htu_mismatch") == before + 1, htu


def test_front_proxy_resource_metadata(front_and_sidecar):
    """The resource is the public origin with its path (RFC 9728 §3.1: the well-known segment
    goes between host and path), reachable through the front proxy."""
    front, sidecar, public = front_and_sidecar
    origin = f"http://127.0.0.1:{front.port}"
    served = stat(sidecar, "metadata.served")
    m = metadata(front, WELL_KNOWN + "/svc2")
    assert stat(sidecar, "metadata.served") == served + 1
    assert m["resource"] == public, m
    assert m["authorization_servers"] == [AS]
    assert m["scopes_supported"] == ["svc2"]
    assert m["dpop_signing_alg_values_supported"] == DEFAULT_ALGS.split()
    assert m["dpop_bound_access_tokens_required"] is True
    r = front.request("GET", "/svc2/items")
    assert_problem(r, "dpop-required")
    assert param(r, "resource_metadata") == origin + WELL_KNOWN + "/svc2", r.header("www-authenticate")


# ---- 3. method-specific rules and per-rule settings ---------------------------------------------

NONCE_SECRET = "per-route-nonce-secret-0123"

RULES_CONFIG = {
    "nonce": {"secret": NONCE_SECRET, "enabled": False},
    "routes": [
        {"prefix": "/docs", "methods": ["GET"], "policy": "off"},
        {"prefix": "/docs", "policy": "required"},
        {"prefix": "/short", "policy": "required", "proof_ttl": 5, "clock_skew": 0},
        {"prefix": "/noath", "policy": "required", "require_ath": False},
        {"prefix": "/n", "policy": "required", "nonce": True},
    ],
}


@pytest.fixture(scope="module")
def rules_envoy():
    with Envoy(RULES_CONFIG, name="many-rules") as e:
        yield e


def test_method_specific_rules(rules_envoy, keys):
    e = rules_envoy
    assert e.request("GET", "/docs/readme").status == 200
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        r = e.request(method, "/docs/readme", body=b"{}" if method in ("POST", "PUT") else None)
        assert r.status == 401, (method, r.status)
        if method != "HEAD":
            assert_problem(r, "dpop-required")
    k = keys["EdDSA"]
    r = e.request("POST", "/docs/readme", [("DPoP", k.proof("POST", e.origin + "/docs/readme"))], body=b"{}")
    assert r.status == 200, r.body
    # the top-level default (required: false → optional) elsewhere
    assert e.request("POST", "/other", body=b"{}").status == 200


def test_rule_overrides_proof_ttl_and_skew(rules_envoy, keys):
    e = rules_envoy
    k = keys["ES256"]
    old = int(time.time()) - 30
    assert e.request("GET", "/other", [("DPoP", k.proof("GET", e.origin + "/other", iat=old))]).status == 200
    before = stat(e, "denied.proof_iat_too_old")
    r = e.request("GET", "/short", [("DPoP", k.proof("GET", e.origin + "/short", iat=old))])
    assert_problem(r, "dpop-invalid")
    assert stat(e, "denied.proof_iat_too_old") == before + 1
    future = int(time.time()) + 30  # within the default clock_skew (60), not the rule's 0
    assert e.request("GET", "/other", [("DPoP", k.proof("GET", e.origin + "/other", iat=future))]).status == 200
    before = stat(e, "denied.proof_iat_in_future")
    assert_problem(e.request("GET", "/short", [("DPoP", k.proof("GET", e.origin + "/short", iat=future))]), "dpop-invalid")
    assert stat(e, "denied.proof_iat_in_future") == before + 1
    assert e.request("GET", "/short", [("DPoP", k.proof("GET", e.origin + "/short"))]).status == 200


def test_rule_overrides_require_ath(rules_envoy, keys):
    """A proof without `ath`, sent with a token bound to its key: `/noath` (require_ath: false)
    takes it, the other required rule refuses it."""
    e = rules_envoy
    k = keys["EdDSA"]
    token = dpop("token", "--secret", "x" * 32, "--bind-key", k.path, "--sub", "s")
    before = stat(e, "denied.proof_ath_missing")
    for path, status in (("/noath/x", 200), ("/docs/x", 401)):
        r = e.request("POST", path, [("Authorization", "DPoP " + token),
                                     ("DPoP", k.proof("POST", e.origin + path))], body=b"{}")
        assert r.status == status, (path, r.status, r.body)
    assert stat(e, "denied.proof_ath_missing") == before + 1


def test_nonce_only_on_the_rule_that_asks(rules_envoy, keys):
    e = rules_envoy
    k = keys["EdDSA"]
    # nonce.enabled = false: other routes take proofs without a nonce
    r = e.request("POST", "/docs/x", [("DPoP", k.proof("POST", e.origin + "/docs/x"))], body=b"{}")
    assert r.status == 200, r.body
    assert r.header("dpop-nonce") is None
    # /n has nonce: true
    r = e.request("GET", "/n/x", [("DPoP", k.proof("GET", e.origin + "/n/x"))])
    assert_problem(r, "use-dpop-nonce", error="use_dpop_nonce")
    nonce = r.header("dpop-nonce")
    assert nonce
    r = e.request("GET", "/n/x", [("DPoP", k.proof("GET", e.origin + "/n/x", nonce=nonce))])
    assert r.status == 200, r.body


# ---- 4. unreachable rules refuse to start -------------------------------------------------------

UNREACHABLE = [
    ("prefix covered", [{"prefix": "/api"}, {"prefix": "/api/v2", "policy": "off"}], 0, 1),
    ("everything covered", [{"prefix": "/x"}, {"policy": "off"}, {"prefix": "/y", "policy": "optional"}], 1, 2),
    ("method covered", [{"prefix": "/docs"}, {"prefix": "/docs", "methods": ["GET"], "policy": "off"}], 0, 1),
    ("method list covered", [{"methods": ["GET", "POST"], "policy": "off"}, {"prefix": "/a", "methods": ["POST"]}], 0, 1),
    ("wildcard host covered", [{"hosts": ["*.example.com"]}, {"hosts": ["a.b.example.com"], "prefix": "/x", "policy": "off"}], 0, 1),
    ("host case", [{"hosts": ["A.Example"]}, {"hosts": ["a.example"], "policy": "off"}], 0, 1),
    # covered by both earlier rules: either may be named
    ("later of three", [{"hosts": ["a.example"]}, {"prefix": "/p", "policy": "off"}, {"prefix": "/p/q", "hosts": ["a.example"]}], (0, 1), 2),
]

# Every rule here can match something: the orders the check must not refuse, in one config
# (RULES_CONFIG, which an Envoy below runs, has "GET rule before its catch-all" too).
REACHABLE = [
    {"hosts": ["a.example.com"], "policy": "off"},
    {"hosts": ["*.example.com"], "prefix": "/h"},                        # after one of its hosts
    {"hosts": ["example.com"], "prefix": "/h"},                          # *.example.com is not the apex
    {"prefix": "/api/v2", "policy": "off"},
    {"prefix": "/api"},                                                  # longer prefix first
    {"prefix": "/m", "methods": ["GET"], "policy": "off"},
    {"prefix": "/m", "methods": ["POST"]},                               # other methods
    {"prefix": "/m", "methods": ["GET", "POST", "PUT"], "policy": "off"},  # PUT is left
    {"prefix": "/"},
]


def validate(rules):
    e = Envoy({"required": True, "routes": rules}, name="validate-routes")
    path = e.write_config()
    r = subprocess.run([ENVOY, "--mode", "validate", "-c", path, "--disable-hot-restart", "-l", "error"],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_unreachable_rules_refuse_to_start():
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        ok = ex.submit(validate, REACHABLE)
        results = list(ex.map(lambda c: validate(c[1]), UNREACHABLE))
    rc, log = ok.result()
    assert rc == 0, log[-2000:]
    for (name, _rules, earlier, later), (rc, log) in zip(UNREACHABLE, results):
        assert rc != 0, f"{name}: envoy --mode validate accepted an unreachable rule"
        lines = [l for l in log.splitlines() if "dpop_guard: invalid configuration:" in l]
        assert lines, (name, log[-2000:])
        earlier = earlier if isinstance(earlier, tuple) else (earlier,)
        assert f"routes[{later}]" in lines[0], (name, lines[0])
        assert any(f"routes[{i}]" in lines[0] for i in earlier), (name, lines[0])


def test_unreachable_rule_stops_a_running_start():
    """Not only `--mode validate`: a real start fails the same way."""
    e = Envoy({"routes": UNREACHABLE[0][1]}, name="unreachable")
    e.start(wait=False)
    try:
        rc = e.proc.wait(30)
    except subprocess.TimeoutExpired:
        e.stop()
        pytest.fail("envoy started with an unreachable route rule")
    e.stop()
    assert rc != 0
    assert "dpop_guard: invalid configuration: routes[1]" in e.log(), e.log()[-2000:]

