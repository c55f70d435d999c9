"""Issue 13: opaque tokens and remote keys, against a real authorization server. panva's
oidc-provider (tests/e2e/oidc/as.mjs; `make oidc-deps`) issues DPoP-bound tokens by
client_credentials to panva's oauth4webapi client (tests/e2e/oidc/client.mjs), which makes its
own ES256 key and proofs; later proofs of that same key are signed with `dpop proof`.

- `access_token.verify = "introspection"`: opaque tokens checked by RFC 7662 introspection at the
  AS (`cnf.jkt` from its answer), answers cached per VM (`cache_seconds`), revocation seen when
  the cache entry ends, the AS down → 503 `token-check-unavailable`;
- `verify = "keys"` with `jwks_uri`: the AS's ES256 JWT access tokens checked with keys fetched
  from its jwks endpoint, a rotated signing key picked up on the unknown `kid`;
- `verify = "jwt_authn"`: the same JWTs verified by Envoy's jwt_authn with `remote_jwks`."""
import base64
import json
import time
import uuid

import pytest

from harness import PANIC_MARKERS, Envoy, Key, assert_problem, b64u, dpop
from oidc_stack import (CLUSTER, INTROSPECTION_PATH, JWT_RESOURCE, OPAQUE_RESOURCE, RS_ID, RS_SECRET,
                        OidcAS, add_as_cluster, jwt_authn_remote_jwks, node_deps_missing)

CACHE_SECONDS = 2
API = "/api/items"


@pytest.fixture(scope="module")
def oidc_as():
    missing = node_deps_missing()
    if missing:
        pytest.fail(missing)
    with OidcAS(name="oidc-as") as a:
        yield a


def call(e, token, key_path, path=API, method="GET"):
    """`Authorization: DPoP <token>` and a fresh proof signed with the private JWK at key_path."""
    headers = [("Authorization", f"DPoP {token}")]
    if key_path:
        # "--token=<t>": an opaque token may start with "-" (base64url), which the CLI would
        # take for an option in "--token <t>"
        headers.append(("DPoP", dpop("proof", "--key", key_path, "--htm", method, "--htu", e.origin + path,
                                     "--token=" + token)))
    return e.request(method, path, headers)


def jwt_parts(token):
    """(header, payload) of a JWT, decoded without any check."""
    return tuple(json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))) for s in token.split(".")[:2])


# The filter's own warning when the AS does not answer names "unreachable", one of the harness's
# wasm-trap markers: that line (and only it) is not a trap.
FILTER_WARNING = "introspection failed (unreachable, timeout or non-200 answer)"


def assert_no_panic(envoy):
    """Envoy.assert_no_panic, minus the filter's introspection warning."""
    text = "\n".join(l for l in envoy.log().splitlines() if not l.startswith("{") and FILTER_WARNING not in l)
    for m in PANIC_MARKERS:
        assert m not in text, f"{m!r} in envoy log {envoy.log_path}"


def start_or_skip_unknown_key(envoy, what):
    """Start Envoy; skip (naming what is missing) only if the filter refuses a config key."""
    try:
        envoy.start()
    except RuntimeError as err:
        envoy.stop()
        if "unknown key" in str(err):
            line = next((l for l in str(err).splitlines() if "unknown key" in l), "")
            line = line[line.find("invalid configuration"):] if "invalid configuration" in line else line
            pytest.skip(f"{what} not in this build of the filter (Envoy refused the config: {line.strip()})")
        raise
    return envoy


# ---- the AS alone -----------------------------------------------------------------------------

def test_as_issues_dpop_bound_tokens(oidc_as):
    """The AS side of the contract: opaque tokens introspect with cnf.jkt of the client's key, JWT
    tokens carry it and the AS's kid, revocation makes the token inactive."""
    opaque = oidc_as.token(OPAQUE_RESOURCE)
    assert opaque["token_type"].lower() == "dpop"
    assert dpop("thumbprint", "--key", opaque["key_path"]) == opaque["jkt"]
    status, body = oidc_as.introspect(opaque["access_token"])
    assert status == 200 and body["active"] is True, body
    assert body["cnf"] == {"jkt": opaque["jkt"]}, body
    assert body["token_type"] == "DPoP" and body["aud"] == OPAQUE_RESOURCE, body

    jwt = oidc_as.token(JWT_RESOURCE)
    header, payload = jwt_parts(jwt["access_token"])
    assert header["alg"] == "ES256" and header["kid"] == oidc_as.kid, header
    assert payload["cnf"] == {"jkt": jwt["jkt"]} and payload["aud"] == JWT_RESOURCE, payload
    assert payload["iss"] == oidc_as.issuer
    assert [k["kid"] for k in oidc_as.jwks()["keys"]] == [oidc_as.kid]

    oidc_as.revoke(opaque["access_token"])
    assert oidc_as.introspect(opaque["access_token"]) == (200, {"active": False})
    # introspection needs the resource server's credentials
    status, _ = oidc_as.introspect(jwt["access_token"] + "x", client_secret="wrong")
    assert status == 401


# ---- jwt_authn (remote_jwks) + verify: jwt_authn ----------------------------------------------

def test_jwt_authn_remote_jwks(oidc_as):
    """Envoy's jwt_authn fetches the AS's keys (remote_jwks over the AS cluster) and verifies the
    AS's JWT; the filter binds the proof to cnf.jkt from jwt_authn's metadata."""
    with Envoy(yaml_name="envoy-jwt-authn.yaml", patch=jwt_authn_remote_jwks(oidc_as), name="oidc-jwt-authn") as e:
        t = oidc_as.token(JWT_RESOURCE, call=e.origin + API)
        assert t["call"]["status"] == 200, t["call"]
        assert json.loads(t["call"]["body"])["x-dpop-jkt"] == t["jkt"]
        r = call(e, t["access_token"], t["key_path"])
        assert r.status == 200, r.body
        assert r.json()["x-dpop-jkt"] == t["jkt"]
        assert_problem(call(e, t["access_token"], Key("ES256").path), "dpop-binding-mismatch", error="invalid_token")
        assert_problem(call(e, t["access_token"], None), "dpop-required", error="invalid_token")
        # an opaque token is nothing jwt_authn can verify
        o = oidc_as.token(OPAQUE_RESOURCE)
        assert_problem(call(e, o["access_token"], o["key_path"]), "token-invalid")


# ---- introspection ------------------------------------------------------------------------------

def introspection_config(oidc_as, **extra):
    section = {"cluster": CLUSTER, "authority": oidc_as.authority, "path": INTROSPECTION_PATH,
               "client_id": RS_ID, "client_secret": RS_SECRET, "timeout_ms": 1000,
               "cache_seconds": CACHE_SECONDS, "negative_cache_seconds": 1}
    section.update(extra)
    return {"required": True, "access_token": {"verify": "introspection", "introspection": section}}


@pytest.fixture(scope="module")
def intro_envoy(oidc_as):
    # one worker: the answer cache is per VM, and the counts below are those of one cache
    e = Envoy(introspection_config(oidc_as), patch=add_as_cluster(oidc_as), concurrency=1, name="introspection")
    start_or_skip_unknown_key(e, 'access_token.verify = "introspection"')
    try:
        yield e
    finally:
        e.stop()
        assert_no_panic(e)


def intro_stats(e):
    s = e.stats()
    return {k: s.get(f"dpop_guard.introspection.{k}", 0) for k in ("requests", "cache_hits", "errors")}


def test_opaque_token_bound_to_client_key(oidc_as, intro_envoy):
    e = intro_envoy
    t = oidc_as.token(OPAQUE_RESOURCE, call=e.origin + API)
    # oauth4webapi's own request (its key, its proof): allowed, the upstream sees its thumbprint
    assert t["call"]["status"] == 200, t["call"]
    assert json.loads(t["call"]["body"])["x-dpop-jkt"] == t["jkt"]
    # a later proof of the same key
    r = call(e, t["access_token"], t["key_path"])
    assert r.status == 200, r.body
    assert r.json()["x-dpop-jkt"] == t["jkt"]
    # another key's proof with this token
    assert_problem(call(e, t["access_token"], Key("ES256").path), "dpop-binding-mismatch", error="invalid_token")
    assert_problem(call(e, t["access_token"], Key("EdDSA").path), "dpop-binding-mismatch", error="invalid_token")
    # the bound token without a proof
    assert_problem(call(e, t["access_token"], None), "dpop-required", error="invalid_token")
    # a token the AS never issued (shaped like its own, leading "-" included): inactive
    fake = "-" + b64u(uuid.uuid4().bytes * 2)[:42]
    assert_problem(call(e, fake, t["key_path"]), "token-invalid", error="invalid_token")


def test_introspection_answers_cached(oidc_as, intro_envoy):
    e = intro_envoy
    t = oidc_as.token(OPAQUE_RESOURCE)
    # proofs signed up front: the 20 calls fit well inside one cache entry (>= 1 s)
    proofs = [dpop("proof", "--key", t["key_path"], "--htm", "GET", "--htu", e.origin + API,
                   "--token=" + t["access_token"]) for _ in range(20)]
    before = intro_stats(e)
    t0 = time.time()
    for i, p in enumerate(proofs):
        r = e.request("GET", API, [("Authorization", f"DPoP {t['access_token']}"), ("DPoP", p)])
        assert r.status == 200, (i, r.body)
    elapsed = time.time() - t0
    after = intro_stats(e)
    assert elapsed < CACHE_SECONDS - 1, f"20 calls took {elapsed:.2f}s, longer than a cache entry surely lives"
    assert after["requests"] - before["requests"] == 1, (before, after)
    assert after["cache_hits"] - before["cache_hits"] == 19, (before, after)
    assert after["errors"] == before["errors"], (before, after)


def test_revoked_token_refused_when_cache_entry_ends(oidc_as, intro_envoy):
    """Revoked at the AS (RFC 7009, by the client): the filter goes on with its cached answer
    until the entry ends (cache_seconds, whole seconds), then asks again and refuses."""
    e = intro_envoy
    t = oidc_as.token(OPAQUE_RESOURCE)
    before = intro_stats(e)
    assert call(e, t["access_token"], t["key_path"]).status == 200
    seen = time.time()
    oidc_as.revoke(t["access_token"])
    assert oidc_as.introspect(t["access_token"]) == (200, {"active": False})
    timeline = []
    while True:
        r = call(e, t["access_token"], t["key_path"])
        timeline.append((round(time.time() - seen, 2), r.status))
        if r.status != 200 or time.time() > seen + CACHE_SECONDS + 3:
            break
        time.sleep(0.1)
    assert_problem(r, "token-invalid", error="invalid_token")
    # the entry lived at most cache_seconds (it ends on a whole second: at least cache_seconds - 1)
    assert CACHE_SECONDS - 1 <= timeline[-1][0] <= CACHE_SECONDS + 1.5, timeline
    # allowed from the cache in between, never by asking the AS again
    assert all(status == 200 for _, status in timeline[:-1]), timeline
    after = intro_stats(e)
    assert after["requests"] - before["requests"] == 2, (before, after, timeline)
    assert after["cache_hits"] - before["cache_hits"] == len(timeline) - 1, (before, after, timeline)


def test_as_down_is_503(oidc_as, intro_envoy):
    """Last in the introspection group: stops the AS (and starts it again)."""
    e = intro_envoy
    t = oidc_as.token(OPAQUE_RESOURCE)  # never presented yet: nothing cached
    before = intro_stats(e)
    oidc_as.stop()
    try:
        r = call(e, t["access_token"], t["key_path"])
        assert_problem(r, "token-check-unavailable", status=503)
        assert intro_stats(e)["errors"] - before["errors"] == 1
    finally:
        oidc_as.start()
    # the restarted AS forgot the token (in-memory): now it is inactive
    assert_problem(call(e, t["access_token"], t["key_path"]), "token-invalid", error="invalid_token")


# ---- keys mode with jwks_uri ------------------------------------------------------------------

def test_keys_mode_jwks_uri_and_key_rotation(oidc_as):
    cfg = {"required": True,
           "access_token": {"verify": "keys", "jwks_uri": oidc_as.jwks_uri, "jwks_cluster": CLUSTER,
                            "jwks_authority": oidc_as.authority, "issuer": oidc_as.issuer,
                            "audiences": [JWT_RESOURCE]}}
    e = Envoy(cfg, patch=add_as_cluster(oidc_as), concurrency=1, name="oidc-jwks")
    start_or_skip_unknown_key(e, "access_token.jwks_uri (#13 jwks)")
    try:
        t = oidc_as.token(JWT_RESOURCE)
        # the JWKS is fetched at start: wait for it (503 token-check-unavailable until then)
        deadline = time.time() + 5
        while True:
            r = call(e, t["access_token"], t["key_path"])
            if r.status != 503 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert r.status == 200, r.body
        assert r.json()["x-dpop-jkt"] == t["jkt"]
        assert_problem(call(e, t["access_token"], Key("ES256").path), "dpop-binding-mismatch", error="invalid_token")

        # the AS rotates its signing key: a token with the new kid is verified after the filter
        # refreshes the JWKS on the unknown kid
        old_kid = oidc_as.kid
        fetches = e.stats().get("dpop_guard.jwks.fetches", 0)
        oidc_as.restart(kid="as-key-" + uuid.uuid4().hex[:8])
        t2 = oidc_as.token(JWT_RESOURCE, call=e.origin + API)
        assert jwt_parts(t2["access_token"])[0]["kid"] == oidc_as.kid != old_kid
        assert t2["call"]["status"] == 200, t2["call"]
        assert json.loads(t2["call"]["body"])["x-dpop-jkt"] == t2["jkt"]
        r = call(e, t2["access_token"], t2["key_path"])
        assert r.status == 200, r.body
        # one fetch, made for the unknown kid (the periodic refresh is 300 s away)
        assert e.stats().get("dpop_guard.jwks.fetches", 0) == fetches + 1
        # the old key is gone from the AS's JWKS, and from the filter's
        assert_problem(call(e, t["access_token"], t["key_path"]), "token-invalid", error="invalid_token")
        # ... without another fetch: unknown kids refresh at most every 30 s
        stats = e.stats()
        assert stats.get("dpop_guard.jwks.fetches", 0) == fetches + 1, stats
        assert stats.get("dpop_guard.jwks.errors", 0) == 0, stats
    finally:
        e.stop()
        assert_no_panic(e)


def test_keys_mode_jwks_uri_unreachable_is_503(oidc_as):
    """No key set fetched yet (the jwks_uri's server is down): 503 token-check-unavailable."""
    down = OidcAS(name="oidc-as-down")  # a free port, never started
    cfg = {"required": True,
           "access_token": {"verify": "keys", "jwks_uri": down.jwks_uri, "jwks_cluster": "oidc_as_down",
                            "jwks_authority": down.authority, "issuer": oidc_as.issuer, "audiences": [JWT_RESOURCE]}}
    e = Envoy(cfg, patch=add_as_cluster(down, "oidc_as_down"), concurrency=1, name="oidc-jwks-down")
    start_or_skip_unknown_key(e, "access_token.jwks_uri (#13 jwks)")
    try:
        t = oidc_as.token(JWT_RESOURCE)
        assert_problem(call(e, t["access_token"], t["key_path"]), "token-check-unavailable", status=503)
        deadline = time.time() + 5  # the root context fetches on a 1 s tick
        while e.stats().get("dpop_guard.jwks.errors", 0) < 1 and time.time() < deadline:
            time.sleep(0.1)
        stats = e.stats()
        assert stats.get("dpop_guard.jwks.errors", 0) >= 1, stats
        assert_problem(call(e, t["access_token"], t["key_path"]), "token-check-unavailable", status=503)
    finally:
        e.stop()
        assert_no_panic(e)
