"""Issue 4: access tokens and key binding — DPoP/Bearer schemes, cnf.jkt, downgrade protection,
and the three ways to trust a token (upstream, keys, jwt_authn), through a real Envoy."""
import json
import os
import time

import pytest

from craft import PyKey, jws, proof
from harness import ROOT, Envoy, Key, assert_problem, b64u, dpop

SECRET = "arcp-demo-hs256-secret-0123456789abcdef"
TOKEN_PATH = "/auth/agent/request_temp_token"


def mint(*args):
    return dpop("token", *args)


def call(e, key, path, token, scheme="Bearer", method="GET", proof_token=None, extra=()):
    url = e.origin + path
    headers = [("Authorization", f"{scheme} {token}")]
    if key is not None:
        headers.append(("DPoP", key.proof(method, url, token=proof_token or token)))
    return e.request(method, path, headers + list(extra))


@pytest.fixture(scope="module")
def upstream_envoy():
    with Envoy(concurrency=2, name="tokens-upstream") as e:
        yield e


def test_arcp_three_phase_flow(upstream_envoy):
    e = upstream_envoy
    agent = Key("EdDSA")
    # 1. proof-only token request: no access token; the jkt goes upstream for binding
    r = e.request("POST", TOKEN_PATH, [("DPoP", agent.proof("POST", e.origin + TOKEN_PATH))], body=b"{}")
    assert r.status == 200, r.body
    jkt = r.json()["x-dpop-jkt"]
    assert jkt == agent.jkt
    # 2. the issuer (here: the test, with the CLI) mints a token bound to that jkt
    token = mint("--secret", SECRET, "--jkt", jkt, "--sub", "agent-1")
    # 3. protected calls with both schemes
    for scheme in ("Bearer", "DPoP", "dpop", "BEARER"):
        r = call(e, agent, "/api/agents/me", token, scheme)
        assert r.status == 200, (scheme, r.body)
        assert r.json()["x-dpop-jkt"] == agent.jkt
    # same token, proof by another key
    assert_problem(call(e, Key("ES256"), "/api/agents/me", token), "dpop-binding-mismatch", error="invalid_token")
    # same token, no proof: downgrade refused under either scheme
    for scheme in ("Bearer", "DPoP"):
        r = call(e, None, "/api/agents/me", token, scheme)
        assert_problem(r, "dpop-required", error="invalid_token")
    # unbound token + proof on a required route
    unbound = mint("--secret", SECRET, "--no-cnf", "--sub", "agent-1")
    assert_problem(call(e, agent, "/api/agents/me", unbound), "token-not-dpop-bound", error="invalid_token")
    # ath for another token, and no ath at all
    other = mint("--secret", SECRET, "--jkt", jkt, "--sub", "agent-2")
    assert_problem(call(e, agent, "/api/agents/me", token, proof_token=other), "dpop-invalid", error="invalid_dpop_proof")
    no_ath = agent.proof("GET", e.origin + "/api/agents/me")
    r = e.request("GET", "/api/agents/me", [("Authorization", f"Bearer {token}"), ("DPoP", no_ath)])
    body = assert_problem(r, "dpop-invalid")
    assert "ath" in body["detail"]


def test_token_endpoint_ignores_authorization(upstream_envoy):
    e = upstream_envoy
    k = Key("ES256")
    r = e.request("POST", TOKEN_PATH, [("DPoP", k.proof("POST", e.origin + TOKEN_PATH)),
                                       ("Authorization", "Basic Y2xpZW50OnNlY3JldA==")], body=b"")
    assert r.status == 200 and r.json()["x-dpop-jkt"] == k.jkt


def test_authorization_header_defects(upstream_envoy):
    e = upstream_envoy
    k = Key("EdDSA")
    token = mint("--secret", SECRET, "--bind-key", k.path)
    url = e.origin + "/api/x"
    r = e.request("GET", "/api/x", [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}"),
                                    ("DPoP", k.proof("GET", url, token=token))])
    assert_problem(r, "token-invalid", error="invalid_token")
    r = e.request("GET", "/api/x", [("Authorization", "Bearer a b c"), ("DPoP", k.proof("GET", url))])
    assert_problem(r, "token-invalid")
    r = e.request("GET", "/api/x", [("Authorization", "Bearer not-a-jwt"), ("DPoP", k.proof("GET", url, token="not-a-jwt"))])
    assert_problem(r, "token-invalid")


def test_extra_cnf_members_tolerated(upstream_envoy):
    e = upstream_envoy
    k = Key("RS256")
    token = mint("--secret", SECRET, "--jkt", k.jkt, "--claim", "cnf=" + json.dumps({"jkt": k.jkt, "x5t#S256": "abc"}))
    assert call(e, k, "/api/x", token).status == 200


def test_optional_route_binding_still_enforced(upstream_envoy):
    """Even where proofs are optional, a DPoP-bound token is never accepted without its proof."""
    e = upstream_envoy
    k = Key("EdDSA")
    token = mint("--secret", SECRET, "--bind-key", k.path)
    assert_problem(call(e, None, "/public/x", token), "dpop-required", error="invalid_token")
    assert call(e, k, "/public/x", token).status == 200
    # an unbound Bearer token without a proof passes an optional route (upstream decides)
    unbound = mint("--secret", SECRET, "--no-cnf")
    assert call(e, None, "/public/x", unbound).status == 200


# ---- keys mode ---------------------------------------------------------------------------

ISSUER = "https://issuer.demo.local"


@pytest.fixture(scope="module")
def issuer_key():
    return Key("EdDSA")


@pytest.fixture(scope="module")
def keys_envoy(issuer_key):
    pub = json.loads(dpop("pubkey", "--key", issuer_key.path))
    pub["kid"] = "is-1"
    cfg = {"required": True,
           "routes": [{"prefix": TOKEN_PATH, "policy": "proof_only"}],
           "access_token": {"verify": "keys", "hs256_secret": SECRET, "jwks": {"keys": [pub]},
                            "issuer": ISSUER, "audiences": ["api", "other"]}}
    with Envoy(cfg, name="tokens-keys") as e:
        yield e


def test_keys_mode_accepts_valid_tokens(keys_envoy, issuer_key):
    e = keys_envoy
    k = Key("ES256")
    hs = mint("--secret", SECRET, "--bind-key", k.path, "--iss", ISSUER, "--aud", "api")
    assert call(e, k, "/api/x", hs).status == 200
    ed = mint("--key", issuer_key.path, "--kid", "is-1", "--bind-key", k.path, "--iss", ISSUER, "--aud", "x", "--aud", "other")
    assert call(e, k, "/api/x", ed, scheme="DPoP").status == 200


def test_keys_mode_rejects_bad_tokens(keys_envoy, issuer_key):
    e = keys_envoy
    k = Key("EdDSA")
    base = ["--bind-key", k.path, "--iss", ISSUER, "--aud", "api"]
    bad = {
        "expired": mint("--secret", SECRET, *base, "--ttl", "-3600"),
        "not yet valid": mint("--secret", SECRET, *base, "--nbf-in", "3600"),
        "wrong issuer": mint("--secret", SECRET, "--bind-key", k.path, "--iss", "https://evil", "--aud", "api"),
        "wrong audience": mint("--secret", SECRET, "--bind-key", k.path, "--iss", ISSUER, "--aud", "nope"),
        "bad signature": mint("--secret", SECRET + "x", *base),
        "unknown kid": mint("--key", issuer_key.path, "--kid", "is-2", *base),
        "other issuer key": mint("--key", Key("EdDSA").path, "--kid", "is-1", *base),
    }
    hs = mint("--secret", SECRET, *base)
    h, p, _ = hs.split(".")
    bad["alg none"] = b64u(b'{"alg":"none","typ":"JWT"}') + "." + p + "." + b64u(b"x")
    bad["alg none empty sig"] = b64u(b'{"alg":"none","typ":"JWT"}') + "." + p + "."
    bad["tampered payload"] = h + "." + b64u(json.dumps({"cnf": {"jkt": k.jkt}, "iss": ISSUER, "aud": "api", "exp": 9999999999}).encode()) + "." + hs.split(".")[2]
    for name, token in bad.items():
        r = call(e, k, "/api/x", token)
        assert_problem(r, "token-invalid", error="invalid_token"), name
    e.assert_no_panic()


def test_keys_mode_binding(keys_envoy):
    e = keys_envoy
    k = Key("EdDSA")
    tok = mint("--secret", SECRET, "--bind-key", k.path, "--iss", ISSUER, "--aud", "api")
    assert_problem(call(e, Key("EdDSA"), "/api/x", tok), "dpop-binding-mismatch")
    assert_problem(call(e, None, "/api/x", tok), "dpop-required", error="invalid_token")


# ---- jwt_authn mode ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def jwt_envoy():
    with Envoy(yaml_name="envoy-jwt-authn.yaml", concurrency=2, name="tokens-jwt") as e:
        yield e


DEMO_ISSUER = os.path.join(ROOT, "envoy", "demo-issuer-key.json")


def test_jwt_authn_chain(jwt_envoy):
    e = jwt_envoy
    k = Key("EdDSA")
    good = mint("--key", DEMO_ISSUER, "--bind-key", k.path, "--iss", "https://issuer.demo.local", "--aud", "dpop-demo")
    for scheme in ("DPoP", "Bearer"):
        r = call(e, k, "/api/x", good, scheme)
        assert r.status == 200, (scheme, r.body)
        assert r.json()["x-dpop-jkt"] == k.jkt
    # binding read from jwt_authn's metadata
    assert_problem(call(e, Key("ES256"), "/api/x", good), "dpop-binding-mismatch")
    assert_problem(call(e, None, "/api/x", good), "dpop-required", error="invalid_token")
    # a token jwt_authn refused (wrong audience, other signer) never gets through
    wrong_aud = mint("--key", DEMO_ISSUER, "--bind-key", k.path, "--iss", "https://issuer.demo.local", "--aud", "other")
    assert_problem(call(e, k, "/api/x", wrong_aud), "token-invalid")
    forged = mint("--key", Key("ES256").path, "--kid", "demo-issuer-1", "--bind-key", k.path,
                  "--iss", "https://issuer.demo.local", "--aud", "dpop-demo")
    assert_problem(call(e, k, "/api/x", forged), "token-invalid")
    # unbound but valid token + proof on a required route
    unbound = mint("--key", DEMO_ISSUER, "--no-cnf", "--iss", "https://issuer.demo.local", "--aud", "dpop-demo")
    assert_problem(call(e, k, "/api/x", unbound), "token-not-dpop-bound")
    # no token at all: the proof alone is checked (required route)
    r = e.request("GET", "/api/x", [("DPoP", k.proof("GET", e.origin + "/api/x"))])
    assert r.status == 200
