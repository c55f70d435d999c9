"""Shared by the hostile-request suites (test_hostile.py, test_hostile_authz.py,
test_hostile_limits.py): the demo secrets and issuer, refusal details, checks of a filter or an
Envoy rejection, the timings file, bootstrap patches (no path normalization, underscores
allowed), token minting, `send`, and the `victim` fixture (import it into a test module to use
it; it is module-scoped, as it was in the single file).
"""
import hashlib
import json
import os
import statistics

import pytest

from craft import PyKey
from harness import LOG_DIR, ROOT, assert_problem, b64u, dpop, load_yaml, plugin_config_of, walk, wasm_filters

SECRET = "arcp-demo-hs256-secret-0123456789abcdef"
DEMO_ISSUER = os.path.join(ROOT, "envoy", "demo-issuer-key.json")
ISS, AUD = "https://issuer.demo.local", "dpop-demo"
REPLAYED = "DPoP jti already used (replay attack)"
TOO_OLD = "DPoP proof is too old"
BAD = b"\xff\xfe"
TIMINGS_PATH = os.path.join(LOG_DIR, "hostile-timings.json")

# ---- helpers ----------------------------------------------------------------------------------

def cfg_from(yaml_name="envoy.yaml", **overrides):
    cfg = json.loads(plugin_config_of(load_yaml(yaml_name)))
    cfg.update(overrides)
    return cfg


def thumbprint(jwk):
    members = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    canon = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    return b64u(hashlib.sha256(canon.encode()).digest())


def slug_of(resp):
    try:
        return resp.json().get("type", "").rsplit("/", 1)[-1]
    except ValueError:
        return None


def assert_refused(resp, *slugs, status=401, detail_in=None):
    """A rejection by the filter: `status`, a problem document whose slug is one of `slugs`,
    the DPoP challenge; `detail_in`: the detail is one of these."""
    assert resp.status == status, (resp.status, resp.body[:400])
    slug = slug_of(resp)
    assert slug in slugs, (slug, resp.body[:400])
    body = assert_problem(resp, slug, status=status)
    if detail_in is not None:
        assert body["detail"] in detail_in, body
    return body


def assert_envoy_refused(resp, status=400):
    """A rejection by Envoy itself, before any filter: the upstream never saw the request."""
    assert resp.status == status, (resp.status, resp.body[:400])
    assert b'"method"' not in resp.body


def echo(resp):
    assert resp.status == 200, (resp.status, resp.body[:400])
    return resp.json()


def record_timing(name, seconds):
    os.makedirs(LOG_DIR, exist_ok=True)
    data = {}
    if os.path.exists(TIMINGS_PATH):
        with open(TIMINGS_PATH) as f:
            data = json.load(f)
    data[name] = {"median_ms": round(statistics.median(seconds) * 1000, 2),
                  "max_ms": round(max(seconds) * 1000, 2), "n": len(seconds)}
    with open(TIMINGS_PATH, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    return data[name]


def gateway_hcms(bootstrap):
    """The http_connection_managers whose filter chain runs dpop_guard."""
    return [n for n in walk(bootstrap)
            if n.get("name") == "envoy.filters.network.http_connection_manager" and wasm_filters(n)]


def no_normalization(bootstrap, _envoy):
    """The gateway without Envoy's path normalization: the filter alone decides on the raw path."""
    for hcm in gateway_hcms(bootstrap):
        tc = hcm["typed_config"]
        for k in ("normalize_path", "merge_slashes", "path_with_escaped_slashes_action"):
            tc.pop(k, None)


def allow_underscores(bootstrap, _envoy):
    """The gateway with Envoy's default for header names with '_' (ALLOW)."""
    for hcm in gateway_hcms(bootstrap):
        hcm["typed_config"].pop("common_http_protocol_options", None)


def mint_hs(jkt=None):
    return dpop("token", "--secret", SECRET, *(["--jkt", jkt] if jkt else ["--no-cnf"]))


def mint_demo(jkt):
    return dpop("token", "--key", DEMO_ISSUER, "--jkt", jkt, "--iss", ISS, "--aud", AUD)


def send(e, path, headers=(), method="GET"):
    return e.raw_get(path, list(headers), method=method)


@pytest.fixture(scope="module")
def victim():
    """A client key, a token the demo issuer bound to it (jwt_authn mode) and one bound by HS256
    (upstream mode), and an attacker's own key."""
    v = PyKey("EdDSA")
    jkt = thumbprint(v.jwk)
    return {"key": v, "jkt": jkt, "demo_token": mint_demo(jkt), "hs_token": mint_hs(jkt),
            "attacker": PyKey("ES256")}
