"""Hostile requests against a real Envoy with the built wasm: bytes that are not UTF-8, the
Authorization shapes jwt_authn and the filter might read differently, paths whose route depends
on who normalizes them, proofs replayed at the end of their life, forged thumbprint headers,
and inputs sized to make the filter work hard.

Every case names the defect class it guards. A filter rejection must always be a problem
document with a `WWW-Authenticate: DPoP algs="..."` challenge (harness.assert_problem); an Envoy
rejection (400/431) must not have reached the upstream (the echo's JSON is never in it).
Timings of the "unbounded work" cases go to target/e2e-logs/hostile-timings.json.
"""
import concurrent.futures
import hashlib
import json
import os
import shutil
import statistics
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from craft import PyKey, jws, proof
from harness import (LOG_DIR, ROOT, Envoy, Key, assert_problem, ath, b64u, build_request, dpop, load_yaml,
                     plugin_config_of, walk, wasm_filters)
from services import Redis, Replay, remote_patch

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


# ---- the shipped listeners --------------------------------------------------------------------

SHIPPED = sorted(f for f in os.listdir(os.path.join(ROOT, "envoy")) if f.endswith(".yaml"))


@pytest.mark.parametrize("yaml_name", SHIPPED)
def test_shipped_listeners_are_hardened(yaml_name):
    """Every listener that runs the filter normalizes the path before it (filter and upstream see
    one path), refuses encoded slashes and header names with '_', and fails closed."""
    hcms = gateway_hcms(load_yaml(yaml_name))
    assert hcms, f"{yaml_name}: no http_connection_manager runs dpop_guard"
    for hcm in hcms:
        tc = hcm["typed_config"]
        assert tc.get("normalize_path") is True
        assert tc.get("merge_slashes") is True
        assert tc.get("path_with_escaped_slashes_action") in ("REJECT_REQUEST", "UNESCAPE_AND_REDIRECT")
        assert tc["common_http_protocol_options"]["headers_with_underscores_action"] == "REJECT_REQUEST"
        for f in wasm_filters(hcm):
            assert f["typed_config"]["config"]["failure_policy"] == "FAIL_CLOSED"


# ---- 1. bytes that are not UTF-8 --------------------------------------------------------------

def _req(e, path, headers):
    return build_request("GET", path, headers, authority=f"127.0.0.1:{e.port}")


@pytest.mark.parametrize("enabled", [True, False], ids=["enabled", "disabled"])
def test_non_utf8_header_value_does_not_kill_the_vm(enabled):
    """`X-Anything: \\xff\\xfe` is legal HTTP (obs-text); the filter must neither panic on it
    nor take the worker's VM down: the request and 20 more on the same connection (same worker)
    succeed."""
    with Envoy(cfg_from(enabled=enabled), concurrency=1, name=f"utf8-{enabled}") as e:
        k = PyKey("EdDSA")
        url = e.origin + "/api/x"
        with e.raw_connection() as c:
            r = c.send(_req(e, "/api/x", [("DPoP", proof(k, "GET", url)), ("X-Anything", BAD),
                                          ("x-dpop-jkt", b"forged\xff")]))
            first = echo(r)
            assert first["x-dpop-jkt"] == (thumbprint(k.jwk) if enabled else None)
            for i in range(20):
                r = c.send(_req(e, "/api/x", [("DPoP", proof(k, "GET", url)), ("X-Other", b"caf\xe9")]))
                assert r.status == 200, (i, r.status, r.body[:300])
        if enabled:  # still enforcing, on a new connection too
            assert_refused(send(e, "/api/x"), "dpop-required")
            assert_refused(send(e, "/api/x", [("X-Anything", BAD)]), "dpop-required")
        else:
            assert echo(send(e, "/api/x", [("X-Anything", BAD)]))["x-dpop-jkt"] is None


def test_non_utf8_in_credentials_is_refused():
    """A proof or an Authorization value with a byte that is not UTF-8 is refused with the
    problem for that header, and the VM keeps answering."""
    with Envoy(concurrency=1, name="utf8-creds") as e:
        k = PyKey("ES256")
        url = e.origin + "/api/x"
        r = send(e, "/api/x", [("DPoP", proof(k, "GET", url).encode() + b"\xff")])
        assert_refused(r, "dpop-invalid")
        r = send(e, "/api/x", [("DPoP", b"\xff" + proof(k, "GET", url).encode())])
        assert_refused(r, "dpop-invalid")
        r = send(e, "/api/x", [("Authorization", b"Bearer abc\xff"), ("DPoP", proof(k, "GET", url))])
        assert_refused(r, "token-invalid")
        r = send(e, "/api/x", [("Authorization", b"DPoP \xc3\x28"), ("DPoP", proof(k, "GET", url))])
        assert_refused(r, "token-invalid")
        # an off route still strips a forged thumbprint made of bad bytes
        assert echo(send(e, "/healthz", [("x-dpop-jkt", BAD)]))["x-dpop-jkt"] is None
        for _ in range(5):
            assert send(e, "/api/x", [("DPoP", proof(k, "GET", url))]).status == 200


def test_non_utf8_on_both_workers():
    """concurrency=2, one connection per request: both workers' VMs see the bad bytes, and
    every request before and after is answered by the filter."""
    with Envoy(concurrency=2, name="utf8-workers") as e:
        k = PyKey("EdDSA")
        url = e.origin + "/api/x"

        def bad(_):
            return send(e, "/api/x", [("DPoP", proof(k, "GET", url)), ("X-Anything", BAD)]).status

        def good(_):
            return send(e, "/api/x", [("DPoP", proof(k, "GET", url))]).status

        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            assert list(ex.map(bad, range(60))) == [200] * 60
            assert list(ex.map(good, range(60))) == [200] * 60
            unauth = list(ex.map(lambda _: send(e, "/api/x", [("X-Anything", BAD)]).status, range(40)))
        assert unauth == [401] * 40
        assert e.stats()["dpop_guard.allowed"] >= 120


# ---- 2. jwt_authn and the filter reading Authorization differently ----------------------------

def authorization_shapes(t):
    """Authorization headers carrying token t that jwt_authn (value_prefix "Bearer "/"DPoP ",
    found anywhere in the value) or an upstream app may read, but are not one clean credential."""
    return {
        "basic-comma-bearer": [("Authorization", f"Basic Zm9v, Bearer {t}")],
        "bearer-comma-basic": [("Authorization", f"Bearer {t}, Basic Zm9v")],
        "basic-comma-dpop": [("Authorization", f"Basic Zm9v,DPoP {t}")],
        "two-headers-basic-bearer": [("Authorization", "Basic Zm9v"), ("Authorization", f"Bearer {t}")],
        "two-headers-bearer-basic": [("Authorization", f"Bearer {t}"), ("Authorization", "Basic Zm9v")],
        "two-headers-bearer-bearer": [("Authorization", f"Bearer {t}"), ("Authorization", f"Bearer {t}")],
        "x-dpop": [("Authorization", f"X DPoP {t}")],
        "xbearer": [("Authorization", f"XBearer {t}")],
        "other-scheme-then-bearer": [("Authorization", f"Token Bearer {t}")],
        "bearer-tab": [("Authorization", f"Bearer\t{t}")],
        "dpop-tab": [("Authorization", f"DPoP\t{t}")],
        "bearer-two-spaces": [("Authorization", f"Bearer  {t}")],
        "bearer-extra": [("Authorization", f"Bearer {t} extra")],
        "bearer-trailing-comma": [("Authorization", f"Bearer {t},")],
        "bearer-lower": [("Authorization", f"bearer {t}")],
        "bearer-upper": [("Authorization", f"BEARER {t}")],
        "dpop-lower": [("Authorization", f"dpop {t}")],
        "dpop-upper": [("Authorization", f"DPOP {t}")],
    }


SHAPES = list(authorization_shapes("T"))


@pytest.fixture(scope="module")
def jwt_envoy():
    with Envoy(yaml_name="envoy-jwt-authn.yaml", concurrency=2, name="hostile-jwt") as e:
        yield e


@pytest.fixture(scope="module")
def victim():
    """A client key, a token the demo issuer bound to it (jwt_authn mode) and one bound by HS256
    (upstream mode), and an attacker's own key."""
    v = PyKey("EdDSA")
    jkt = thumbprint(v.jwk)
    return {"key": v, "jkt": jkt, "demo_token": mint_demo(jkt), "hs_token": mint_hs(jkt),
            "attacker": PyKey("ES256")}


def test_jwt_authn_clean_shapes_work(jwt_envoy, victim):
    """Positive control: the victim's own proof with the token as `Bearer`/`DPoP` passes."""
    e, t = jwt_envoy, victim["demo_token"]
    url = e.origin + "/api/x"
    for scheme in ("Bearer", "DPoP"):
        r = send(e, "/api/x", [("Authorization", f"{scheme} {t}"),
                               ("DPoP", proof(victim["key"], "GET", url, claims_extra={"ath": ath(t)}))])
        assert echo(r)["x-dpop-jkt"] == victim["jkt"]


@pytest.mark.parametrize("proof_by", ["none", "attacker"])
@pytest.mark.parametrize("shape", SHAPES)
def test_jwt_authn_stolen_token_in_odd_authorization(jwt_envoy, victim, shape, proof_by):
    """A stolen DPoP-bound token in any Authorization shape: jwt_authn may verify it and put its
    cnf.jkt in metadata while the filter parses the header otherwise. Never 200."""
    e, t = jwt_envoy, victim["demo_token"]
    headers = authorization_shapes(t)[shape]
    if proof_by == "attacker":
        headers = headers + [("DPoP", proof(victim["attacker"], "GET", e.origin + "/api/x",
                                            claims_extra={"ath": ath(t)}))]
    r = send(e, "/api/x", headers)
    assert_refused(r, "token-invalid", "dpop-required", "dpop-binding-mismatch")


@pytest.mark.parametrize("shape", SHAPES)
def test_jwt_authn_stolen_token_on_optional_route(jwt_envoy, victim, shape):
    """The same on an `optional` route (/public), where no proof is needed without a token."""
    e, t = jwt_envoy, victim["demo_token"]
    r = send(e, "/public/x", authorization_shapes(t)[shape])
    assert_refused(r, "token-invalid", "dpop-required", "dpop-binding-mismatch")


def _x_token_header(bootstrap, _envoy):
    for n in walk(bootstrap):
        if isinstance(n.get("providers"), dict):
            for p in n["providers"].values():
                p["from_headers"].append({"name": "x-token"})


def test_jwt_authn_token_from_another_header(victim):
    """jwt_authn reads the token from `x-token` too: the filter never sees it in Authorization,
    but jwt_authn's metadata says the request carries a token bound to the victim's key."""
    with Envoy(yaml_name="envoy-jwt-authn.yaml", name="jwt-xtoken", patch=_x_token_header) as e:
        t = victim["demo_token"]
        attacker_proof = lambda path: proof(victim["attacker"], "GET", e.origin + path)  # noqa: E731
        assert_refused(send(e, "/api/x", [("x-token", t)]), "dpop-required")
        assert_refused(send(e, "/public/x", [("x-token", t)]), "dpop-required")
        assert_refused(send(e, "/api/x", [("x-token", t), ("DPoP", attacker_proof("/api/x"))]),
                       "dpop-binding-mismatch", "token-invalid", "dpop-invalid")
        assert_refused(send(e, "/public/x", [("x-token", t), ("DPoP", attacker_proof("/public/x"))]),
                       "dpop-binding-mismatch", "token-invalid", "dpop-invalid")


# ---- 3. route policy on the raw vs the normalized path ----------------------------------------

ROUTES_CFG = {
    "required": True,
    "routes": [{"prefix": "/public", "policy": "off"}, {"prefix": "/opt", "policy": "optional"},
               {"prefix": "/token", "policy": "proof_only"}],
    "access_token": {"verify": "upstream"},
}

# (id, request target, has an encoded slash or backslash that the shipped config refuses)
TRAVERSALS = [
    ("public-dotdot", "/public/../api/x", False),
    ("public-pct2e", "/public/%2e%2e/api/x", False),
    ("public-pct2E", "/public/%2E%2E/api/x", False),
    ("public-dot-pct2e", "/public/.%2e/api/x", False),
    ("opt-dotdot", "/opt/../api/x", False),
    ("token-dotdot", "/token/../api/x", False),
    ("public-dotdot-pct2F", "/public/..%2Fapi/x", True),
    ("public-pct2F-dotdot", "/public%2F..%2Fapi/x", True),
    ("public-pct2f-lower", "/public/..%2fapi/x", True),
    ("public-pct5C", "/public/..%5Capi/x", True),
    ("opt-pct2F", "/opt/..%2Fapi/x", True),
    ("token-pct2F", "/token/..%2Fapi/x", True),
    ("double-slash", "//public/../api/x", False),
    ("dot-then-dotdot", "/public/./../api/x", False),
    ("backslash", "/public\\..\\api\\x", False),
    ("query-dotdot", "/public/../api/x?a=/public", False),
]


@pytest.fixture(scope="module", params=["normalizing", "raw"])
def route_envoy(request):
    """normalizing: the shipped listener; raw: without normalize_path/merge_slashes/escaped
    slash handling, so the filter alone must choose the policy of the path the upstream serves."""
    patch = None if request.param == "normalizing" else no_normalization
    with Envoy(ROUTES_CFG, concurrency=1, name=f"routes-{request.param}", patch=patch) as e:
        e.mode = request.param
        yield e


def test_route_policies_positive_control(route_envoy, victim):
    e = route_envoy
    assert echo(send(e, "/public/x"))["x-dpop-jkt"] is None
    assert echo(send(e, "/opt/x"))["x-dpop-jkt"] is None
    a = victim["attacker"]
    r = send(e, "/token/x", [("DPoP", proof(a, "GET", e.origin + "/token/x"))], method="GET")
    assert echo(r)["x-dpop-jkt"] == thumbprint(a.jwk)
    t = victim["hs_token"]
    r = send(e, "/api/x", [("Authorization", f"Bearer {t}"),
                           ("DPoP", proof(victim["key"], "GET", e.origin + "/api/x", claims_extra={"ath": ath(t)}))])
    assert echo(r)["x-dpop-jkt"] == victim["jkt"]
    assert_refused(send(e, "/api/x"), "dpop-required")


@pytest.mark.parametrize("creds", ["none", "stolen-token+attacker-proof"])
@pytest.mark.parametrize("case", TRAVERSALS, ids=[c[0] for c in TRAVERSALS])
def test_route_policy_follows_the_normalized_path(route_envoy, victim, case, creds):
    """A path that names /api/x through an off/optional/proof_only prefix never reaches the
    upstream without what /api/x requires (a proof, bound to the token's key)."""
    e = route_envoy
    _, target, escaped = case
    headers = []
    if creds != "none":
        t = victim["hs_token"]
        headers = [("Authorization", f"Bearer {t}"),
                   ("DPoP", proof(victim["attacker"], "GET", e.origin + target, claims_extra={"ath": ath(t)}))]
    r = send(e, target, headers)
    if e.mode == "normalizing" and escaped:
        assert_envoy_refused(r, 400)  # path_with_escaped_slashes_action: REJECT_REQUEST
    else:
        assert_refused(r, "dpop-required", "dpop-binding-mismatch", "dpop-invalid", "token-invalid")


@pytest.mark.parametrize("target", ["/public/../api/x", "/token/../api/x", "/public/%2e%2e/api/x"])
def test_route_policy_absolute_form(route_envoy, target):
    """`GET http://host/public/../api/x HTTP/1.1` (absolute-form request target)."""
    e = route_envoy
    host = f"127.0.0.1:{e.port}"
    r = e.raw(build_request("GET", f"http://{host}{target}", [], authority=host))
    if r.status == 400:
        assert_envoy_refused(r, 400)
    else:
        assert_refused(r, "dpop-required")


# ---- 4. end-of-life replay --------------------------------------------------------------------

def _status_detail(r):
    if r.status == 200:
        return (200, None)
    body = assert_problem(r, slug_of(r), status=r.status)
    return (r.status, slug_of(r), body["detail"])


def _replay_until(e, p, path, until, out, label):
    while time.time() < until:
        out.append((f"{label} at {time.time():.2f}", _status_detail(send(e, path, [("DPoP", p)]))))
        time.sleep(0.1)


def _eol_past(e, key):
    """iat = now: first use at once, replays through iat+2 (the last second the proof is young
    enough) and past it."""
    path = "/api/eol-past"
    iat = int(time.time())
    p = key.proof("GET", e.origin + path, iat=iat)
    first = _status_detail(send(e, path, [("DPoP", p)]))
    out = []
    _replay_until(e, p, path, iat + 4, out, f"replay (iat={iat})")
    return first, out


def _eol_late_first_use(e, key):
    """First use one and a half seconds into the proof's life, replays to its end and past."""
    path = "/api/eol-late"
    iat = int(time.time())
    p = key.proof("GET", e.origin + path, iat=iat)
    time.sleep(max(0.0, iat + 1.5 - time.time()))
    first = _status_detail(send(e, path, [("DPoP", p)]))
    out = []
    _replay_until(e, p, path, iat + 4, out, f"replay (iat={iat})")
    return first, out


def _eol_future(e, key, skew=60):
    """iat = now + clock_skew (accepted), used once, replayed until past iat + proof_ttl."""
    path = "/api/eol-future"
    iat = int(time.time()) + skew
    p = key.proof("GET", e.origin + path, iat=iat)
    first = _status_detail(send(e, path, [("DPoP", p)]))
    out = [("replay at once", _status_detail(send(e, path, [("DPoP", p)])))]
    time.sleep(max(0.0, iat + 1 - time.time()))
    _replay_until(e, p, path, iat + 4, out, f"replay (iat={iat})")
    return first, out


@pytest.fixture(scope="module")
def eol_runs():
    """Four Envoys (local/remote store x clock_skew 0/60, proof_ttl 2) running every end-of-life
    scenario at once, in threads: the tests below each wait for one."""
    redis = Redis().start() if shutil.which("redis-server") else None
    replay = Replay("redis", redis).start() if redis else Replay("memory").start()
    envoys = {}
    try:
        for store in ("local", "remote"):
            for skew in (0, 60):
                if store == "local":
                    e = Envoy(cfg_from(proof_ttl=2, clock_skew=skew), name=f"eol-local-{skew}")
                else:
                    e = Envoy(cfg_from("envoy-redis.yaml", proof_ttl=2, clock_skew=skew), yaml_name="envoy-redis.yaml",
                              name=f"eol-remote-{skew}", patch=remote_patch(replay.port))
                envoys[(store, skew)] = e.start()
        key = Key("EdDSA")
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            runs = {}
            for store in ("local", "remote"):
                runs[(store, "past")] = ex.submit(_eol_past, envoys[(store, 0)], key)
                runs[(store, "late-first-use")] = ex.submit(_eol_late_first_use, envoys[(store, 0)], key)
                runs[(store, "future-iat")] = ex.submit(_eol_future, envoys[(store, 60)], key)
            yield runs
    finally:
        for e in envoys.values():
            e.stop()
        replay.stop()
        if redis:
            redis.stop()
        for e in envoys.values():
            e.assert_no_panic()


@pytest.mark.parametrize("scenario", ["past", "late-first-use", "future-iat"])
@pytest.mark.parametrize("store", ["local", "remote"])
def test_end_of_life_replay(eol_runs, store, scenario):
    """proof_ttl 2: a proof is young enough while now - iat <= 2, so its jti must be remembered at
    least that long (from iat, not from first use). Every replay is refused: as a replay, or as too
    old once the clock has passed its life; never 200."""
    first, replays = eol_runs[(store, scenario)].result(timeout=240)
    assert first == (200, None), first
    assert replays, "no replay was sent"
    bad = [(label, res) for label, res in replays
           if not (res[0] == 401 and res[1] == "dpop-invalid" and res[2] in (REPLAYED, TOO_OLD))]
    assert not bad, bad
    assert any(res[2] == REPLAYED for _, res in replays)


# ---- 5./6. several or malformed Authorization values ------------------------------------------

MULTIPLE = {
    "two-headers-bearer-bearer": lambda t: [("Authorization", f"Bearer {t}"), ("Authorization", f"Bearer {t}")],
    "two-headers-basic-bearer": lambda t: [("Authorization", "Basic Zm9v"), ("Authorization", f"Bearer {t}")],
    "two-headers-bearer-basic": lambda t: [("Authorization", f"Bearer {t}"), ("Authorization", "Basic Zm9v")],
    "two-headers-dpop-bearer": lambda t: [("Authorization", f"DPoP {t}"), ("Authorization", f"Bearer {t}")],
    "comma-bearer-bearer": lambda t: [("Authorization", f"Bearer {t}, Bearer {t}")],
    "comma-basic-bearer": lambda t: [("Authorization", f"Basic Zm9v, Bearer {t}")],
    "comma-bearer-basic": lambda t: [("Authorization", f"Bearer {t}, Basic Zm9v")],
}

MALFORMED = {
    "bearer-tab": lambda t: f"Bearer\t{t}",
    "bearer-two-spaces": lambda t: f"Bearer  {t}",
    "bearer-extra": lambda t: f"Bearer {t} extra",
    "dpop-tab": lambda t: f"DPoP\t{t}",
    "dpop-two-spaces": lambda t: f"DPoP  {t}",
    "bearer-no-space": lambda t: f"Bearer{t}",
    "bearer-quoted": lambda t: f'Bearer "{t}"',
    "bearer-only": lambda t: "Bearer",
    "bearer-space-only": lambda t: "Bearer ",
    "dpop-semicolon": lambda t: f"DPoP {t};",
}


@pytest.mark.parametrize("proof_by", ["victim", "attacker", "none"])
@pytest.mark.parametrize("shape", sorted(MULTIPLE))
def test_several_authorization_values(demo_envoy, victim, shape, proof_by):
    """Two Authorization headers, or one joined with ',': token-invalid, whoever signed."""
    e, t = demo_envoy, victim["hs_token"]
    headers = MULTIPLE[shape](t)
    if proof_by != "none":
        k = victim["key"] if proof_by == "victim" else victim["attacker"]
        headers.append(("DPoP", proof(k, "GET", e.origin + "/api/x", claims_extra={"ath": ath(t)})))
    r = send(e, "/api/x", headers)
    if proof_by == "victim":
        assert_refused(r, "token-invalid")
    else:
        assert_refused(r, "token-invalid", "dpop-required", "dpop-binding-mismatch")


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_malformed_authorization(demo_envoy, victim, shape):
    """Not exactly `<scheme> SP <token68>`: token-invalid (authorization_malformed), even with
    the victim's own valid proof, and never forwarded."""
    e, t = demo_envoy, victim["hs_token"]
    before = e.stats().get("dpop_guard.denied.authorization_malformed", 0)
    r = send(e, "/api/x", [("Authorization", MALFORMED[shape](t)),
                           ("DPoP", proof(victim["key"], "GET", e.origin + "/api/x", claims_extra={"ath": ath(t)}))])
    assert_refused(r, "token-invalid")
    assert e.stats().get("dpop_guard.denied.authorization_malformed", 0) == before + 1


def test_authorization_surrounding_whitespace_is_not_malformed(demo_envoy, victim):
    """Leading/trailing whitespace around a header value is not part of it (RFC 9110 OWS; Envoy
    trims it): the clean credential inside is accepted."""
    e, t = demo_envoy, victim["hs_token"]
    for value in (f"  Bearer {t}", f"Bearer {t}  ", f"\tDPoP {t}\t"):
        r = send(e, "/api/x", [("Authorization", value),
                               ("DPoP", proof(victim["key"], "GET", e.origin + "/api/x", claims_extra={"ath": ath(t)}))])
        assert echo(r)["x-dpop-jkt"] == victim["jkt"], repr(value)


# ---- 7. a forged x_dpop_jkt -------------------------------------------------------------------

UNDERSCORE_NAMES = ["x_dpop_jkt", "X_DPOP_JKT", "x-dpop_jkt", "x_dpop-jkt"]


@pytest.mark.parametrize("name", UNDERSCORE_NAMES)
@pytest.mark.parametrize("path", ["/api/x", "/healthz"])
def test_underscore_jkt_refused_by_shipped_listener(demo_envoy, name, path):
    e = demo_envoy
    k = PyKey("EdDSA")
    r = send(e, path, [("DPoP", proof(k, "GET", e.origin + path)), (name, "forged")])
    assert_envoy_refused(r, 400)


@pytest.fixture(scope="module")
def underscore_envoys():
    with Envoy(name="underscore-on", patch=allow_underscores) as on, \
            Envoy({"enabled": False}, name="underscore-off", patch=allow_underscores) as off:
        yield {"enabled": on, "disabled": off}


@pytest.mark.parametrize("name", UNDERSCORE_NAMES)
@pytest.mark.parametrize("where", ["required", "off-route", "disabled"])
def test_underscore_jkt_never_reaches_upstream(underscore_envoys, name, where):
    """Without Envoy's underscore check, the filter itself strips every header a WSGI app would
    read as the thumbprint: the upstream sees only the one the filter set (or none)."""
    e = underscore_envoys["disabled" if where == "disabled" else "enabled"]
    k = PyKey("EdDSA")
    path = "/healthz" if where == "off-route" else "/api/x"
    r = send(e, path, [("DPoP", proof(k, "GET", e.origin + path)), (name, "forged"), ("x-dpop-jkt", "forged2")])
    got = echo(r)
    assert got["x_dpop_jkt"] is None, got
    expected = [thumbprint(k.jwk)] if where == "required" else []
    assert got["jkt_like"] == expected, got
    assert got["x-dpop-jkt"] == (expected[0] if expected else None)


# ---- 8. unbounded work ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_envoy():
    with Envoy(cfg_from(max_proof_bytes=65536), name="big") as e:
        yield e


def _members(n, prefix="m"):
    return {f"{prefix}{i}": i for i in range(n)}


def _many_member_proof(k, url, where, target_len=55_000):
    """A signed proof whose header or claims carry thousands of members, ~target_len bytes."""
    n = target_len // 13
    while True:
        extra = _members(n)
        hdr = {"typ": "dpop+jwt", "alg": k.alg, "jwk": k.jwk}
        claims = {"jti": os.urandom(12).hex(), "htm": "GET", "htu": url, "iat": int(time.time())}
        (hdr if where == "header" else claims).update(extra)
        p = jws(hdr, claims, k)
        if len(p) <= target_len:
            return p, n
        n = int(n * target_len / len(p)) - 1


def _duplicate_member_proof(k, url, target_len=55_000):
    members = ",".join(['"m":0'] * (target_len // 8))
    raw = '{"typ":"dpop+jwt","alg":"EdDSA","jwk":' + json.dumps(k.jwk, separators=(",", ":")) + "," + members + "}"
    claims = {"jti": os.urandom(12).hex(), "htm": "GET", "htu": url, "iat": int(time.time())}
    return jws(None, claims, k, raw_header=raw)


def _timed(e, path, build, n=15):
    times, responses = [], []
    for _ in range(n):
        headers = build()
        t0 = time.perf_counter()
        r = send(e, path, headers)
        times.append(time.perf_counter() - t0)
        responses.append(r)
    return times, responses


@pytest.mark.parametrize("where", ["header", "claims", "duplicates"])
def test_huge_proof_with_thousands_of_members(big_envoy, where):
    """max_proof_bytes 65536 lets a ~55 KB DPoP header reach the parser: refused, quickly."""
    e = big_envoy
    k = PyKey("EdDSA")
    url = e.origin + "/api/x"

    def build():
        p = _duplicate_member_proof(k, url) if where == "duplicates" else _many_member_proof(k, url, where)[0]
        assert 50_000 <= len(p) <= 56_000, len(p)
        return [("DPoP", p)]

    times, responses = _timed(e, "/api/x", build)
    stats = record_timing(f"55KB proof, thousands of members in {where}", times)
    for r in responses:
        assert_refused(r, "dpop-invalid")
    assert statistics.median(times) < 0.050, stats


@pytest.mark.parametrize("dup", [False, True], ids=["unique", "duplicates"])
def test_large_unsigned_token_with_many_members(demo_envoy, victim, dup):
    """A ~15 KB bearer token (upstream mode decodes its payload) with many members and no cnf."""
    e = demo_envoy
    h = b64u(b'{"alg":"HS256","typ":"JWT"}')
    if dup:
        payload = ("{" + ",".join(['"m":0'] * 1800) + "}").encode()
    else:
        payload = json.dumps(_members(1100), separators=(",", ":")).encode()
    t = h + "." + b64u(payload) + "." + b64u(b"not-a-signature")
    assert 14_000 <= len(t) <= 16_500, len(t)
    k = victim["key"]

    def build():
        return [("Authorization", f"Bearer {t}"), ("DPoP", proof(k, "GET", e.origin + "/api/x", claims_extra={"ath": ath(t)}))]

    times, responses = _timed(e, "/api/x", build, n=10)
    record_timing(f"15KB bearer token, many members ({'duplicates' if dup else 'unique'})", times)
    for r in responses:
        assert_refused(r, "token-invalid", "token-not-dpop-bound")


@pytest.fixture(scope="module")
def rsa_keys():
    """RS256 keys the filter must refuse as proof keys: 8192-bit n, and e = 3."""
    out = {}
    for name, bits, e in (("n8192", 8192, 65537), ("e3", 2048, 3)):
        k = PyKey.__new__(PyKey)
        k.alg = "RS256"
        k.sk = rsa.generate_private_key(public_exponent=e, key_size=bits)
        pn = k.sk.public_key().public_numbers()
        k.jwk = {"kty": "RSA", "n": b64u(pn.n.to_bytes((pn.n.bit_length() + 7) // 8, "big")),
                 "e": b64u(pn.e.to_bytes((pn.e.bit_length() + 7) // 8, "big"))}
        out[name] = k
    return out


@pytest.mark.parametrize("which", ["n8192", "e3"])
def test_rsa_proof_key_limits(big_envoy, rsa_keys, which):
    """Proof keys are limited to e = 65537 and at most 4096 bits: a validly signed proof by
    anything else is dpop-invalid (and costs no big modular exponentiation)."""
    e, k = big_envoy, rsa_keys[which]
    times, responses = _timed(e, "/api/x", lambda: [("DPoP", proof(k, "GET", e.origin + "/api/x"))], n=8)
    record_timing(f"RS256 proof, {which}", times)
    for r in responses:
        assert_refused(r, "dpop-invalid")


def test_rsa_proof_key_4096_still_accepted(big_envoy):
    """Neighbour of the limit: a 4096-bit key with e = 65537 is an ordinary proof key."""
    k = PyKey.__new__(PyKey)
    k.alg = "RS256"
    k.sk = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    pn = k.sk.public_key().public_numbers()
    k.jwk = {"kty": "RSA", "n": b64u(pn.n.to_bytes(512, "big")), "e": "AQAB"}
    e = big_envoy
    times, responses = _timed(e, "/api/x", lambda: [("DPoP", proof(k, "GET", e.origin + "/api/x"))], n=5)
    record_timing("RS256 proof, 4096-bit key (accepted)", times)
    for r in responses:
        assert echo(r)["x-dpop-jkt"] == thumbprint(k.jwk)


# ---- neighbours -------------------------------------------------------------------------------

def test_header_name_casing(demo_envoy):
    e = demo_envoy
    k = PyKey("EdDSA")
    url = e.origin + "/api/x"
    for name in ("dPoP", "DPOP", "dpop"):
        assert echo(send(e, "/api/x", [(name, proof(k, "GET", url))]))["x-dpop-jkt"] == thumbprint(k.jwk)
    # two spellings of one header are two DPoP headers
    r = send(e, "/api/x", [("dPoP", proof(k, "GET", url)), ("DPoP", proof(k, "GET", url))])
    assert_refused(r, "dpop-invalid")
    # and the forged thumbprint in any casing is replaced
    assert echo(send(e, "/api/x", [("DPoP", proof(k, "GET", url)), ("X-DPoP-JKT", "forged")]))["jkt_like"] == [thumbprint(k.jwk)]


def test_whitespace_around_and_inside_dpop_value(demo_envoy):
    e = demo_envoy
    k = PyKey("ES256")
    url = e.origin + "/api/x"
    for pad in ("   {}   ", "\t{}\t", " \t{}"):
        r = send(e, "/api/x", [("DPoP", pad.format(proof(k, "GET", url)))])
        assert r.status == 200, (repr(pad), r.body[:300])
    for bad in ("{} x", "{}\tx", "{}, {}"):
        p = proof(k, "GET", url)
        assert_refused(send(e, "/api/x", [("DPoP", bad.format(p, p))]), "dpop-invalid")


@pytest.mark.parametrize("target", ["/api%2Fx", "/api%2fx", "/api%5Cx", "/healthz%2F..%2Fapi"])
def test_encoded_slash_refused_by_shipped_listener(demo_envoy, target):
    r = send(demo_envoy, target, [("DPoP", proof(PyKey("EdDSA"), "GET", demo_envoy.origin + target))])
    assert_envoy_refused(r, 400)


def test_encoded_slash_without_normalization():
    """The filter alone: %2F does not move /api/x to another rule, so the proof is checked as
    usual; /healthz%2F..%2Fapi would leave the `off` rule once decoded, so it is `required`."""
    with Envoy(name="pct2f-raw", patch=no_normalization) as e:
        k = PyKey("EdDSA")
        r = send(e, "/api%2Fx", [("DPoP", proof(k, "GET", e.origin + "/api%2Fx"))])
        assert echo(r)["x-dpop-jkt"] == thumbprint(k.jwk)
        assert_refused(send(e, "/healthz%2F..%2Fapi"), "dpop-required")
        assert_refused(send(e, "/healthz/..%2Fapi"), "dpop-required")


def test_headers_near_envoys_limit(demo_envoy):
    """Envoy's default max_request_headers_kb is 60: just under it the filter answers as usual;
    over it Envoy answers 431 and nothing reaches the filter or the upstream."""
    e = demo_envoy
    k = PyKey("EdDSA")
    url = e.origin + "/api/x"
    r = send(e, "/api/x", [("X-Filler", "a" * 55_000), ("DPoP", proof(k, "GET", url))])
    assert r.status == 200, r.body[:300]
    r = send(e, "/api/x", [("X-Filler", "a" * 62_000), ("DPoP", proof(k, "GET", url))])
    assert_envoy_refused(r, 431)
    # a DPoP header just under the limit is over max_proof_bytes (8192): refused before decoding
    r = send(e, "/api/x", [("DPoP", proof(k, "GET", url) + "A" * 58_000)])
    assert_refused(r, "dpop-invalid")
    # a huge Authorization value
    r = send(e, "/api/x", [("Authorization", "Bearer " + "a" * 58_000), ("DPoP", proof(k, "GET", url))])
    assert_refused(r, "token-invalid", "dpop-invalid")


def test_one_proof_100_concurrent_uses(demo_envoy):
    """concurrency=2: 100 simultaneous requests with one proof, exactly one accepted."""
    e = demo_envoy
    k = PyKey("EdDSA")
    p = proof(k, "GET", e.origin + "/api/race100")
    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        responses = list(ex.map(lambda _: send(e, "/api/race100", [("DPoP", p)]), range(100)))
    statuses = [r.status for r in responses]
    assert statuses.count(200) == 1, statuses
    for r in responses:
        if r.status != 200:
            assert_refused(r, "dpop-invalid", detail_in=(REPLAYED,))
