"""Issue 3: the filter in a real Envoy — valid proofs, every rejection, replay across workers,
routes, config errors. Runs the shipped envoy/envoy.yaml with the built wasm."""
import base64
import concurrent.futures
import json
import subprocess
import time
import uuid

import jwt as pyjwt
import pytest
import yaml

from craft import PyKey, jws, proof
from harness import Envoy, Key, assert_problem, b64u, dpop, load_yaml, plugin_config_of, walk

ALGS = ["EdDSA", "ES256", "RS256"]


@pytest.fixture(scope="module")
def keys():
    return {alg: Key(alg) for alg in ALGS}


@pytest.mark.parametrize("alg", ALGS)
def test_valid_proof_forwards_jkt(demo_envoy, keys, alg):
    k = keys[alg]
    url = demo_envoy.origin + "/api/items"
    r = demo_envoy.request("GET", "/api/items", [("DPoP", k.proof("GET", url)), ("x-dpop-jkt", "spoofed")])
    assert r.status == 200, r.body
    echo = r.json()
    assert echo["x-dpop-jkt"] == k.jkt
    assert echo["dpop_present"] is True


@pytest.mark.parametrize("alg", ALGS)
def test_third_party_pyjwt_proof(demo_envoy, alg):
    """Proofs made as ARCP's docs do it: PyJWT + cryptography, not our CLI."""
    k = PyKey(alg)
    url = demo_envoy.origin + "/api/items"
    token = pyjwt.encode(
        {"jti": str(uuid.uuid4()), "htm": "POST", "htu": url, "iat": int(time.time())},
        k.sk, algorithm=alg, headers={"typ": "dpop+jwt", "jwk": k.jwk})
    r = demo_envoy.request("POST", "/api/items", [("DPoP", token)], body=b"{}")
    assert r.status == 200, r.body
    expected = dpop("thumbprint", "--key", json.dumps(k.jwk))
    assert r.json()["x-dpop-jkt"] == expected


def test_query_string_ignored_in_htu(demo_envoy, keys):
    k = keys["EdDSA"]
    r = demo_envoy.request("GET", "/api/items?page=2&q=x", [("DPoP", k.proof("GET", demo_envoy.origin + "/api/items"))])
    assert r.status == 200, r.body
    # and a proof whose htu carries a query matches the same request
    r = demo_envoy.request("GET", "/api/items?page=3", [("DPoP", k.proof("GET", demo_envoy.origin + "/api/items?other=1"))])
    assert r.status == 200, r.body


def test_htu_normalization(demo_envoy, keys):
    k = keys["ES256"]
    htu = f"HTTP://127.0.0.1:{demo_envoy.port}/api/%7Eitems/./x"
    r = demo_envoy.request("GET", "/api/~items/x", [("DPoP", k.proof("GET", htu))])
    assert r.status == 200, r.body


def test_missing_proof(demo_envoy):
    r = demo_envoy.request("GET", "/api/items")
    body = assert_problem(r, "dpop-required", error=False)
    assert body["instance"] == "/api/items"
    assert body["title"] == "DPoP Proof Required"


def test_problem_body_fields(demo_envoy):
    r = demo_envoy.request("GET", "/api/items?secret=1", [("x-request-id", "req-123")])
    body = assert_problem(r, "dpop-required")
    assert body["instance"] == "/api/items"
    # the edge config regenerates x-request-id (Envoy does not trust a client's at the edge)
    assert body["request_id"] and body["request_id"] != "req-123"
    assert body["timestamp"].endswith("Z")
    assert r.header("www-authenticate") == 'DPoP algs="EdDSA ES256 RS256"'


def test_replay_rejected(demo_envoy, keys):
    p = keys["EdDSA"].proof("GET", demo_envoy.origin + "/api/once")
    assert demo_envoy.request("GET", "/api/once", [("DPoP", p)]).status == 200
    r = demo_envoy.request("GET", "/api/once", [("DPoP", p)])
    assert_problem(r, "dpop-invalid", error="invalid_dpop_proof", detail="DPoP jti already used (replay attack)")


def test_replay_across_workers_exactly_once(demo_envoy, keys):
    """--concurrency 2, one connection per request: the same proof is accepted exactly once."""
    k = keys["EdDSA"]
    for _ in range(3):
        p = k.proof("GET", demo_envoy.origin + "/api/race")
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as ex:
            statuses = list(ex.map(lambda _: demo_envoy.request("GET", "/api/race", [("DPoP", p)]).status, range(64)))
        assert statuses.count(200) == 1, statuses
        assert statuses.count(401) == 63, statuses
    stats = demo_envoy.stats()
    assert stats.get("dpop_guard.replay.detected", 0) >= 189


def _htu(e, path="/api/x"):
    return e.origin + path


def _bad_proofs(origin):
    """(name, headers builder, expected stat) for every proof defect a client can send."""
    ed = PyKey("EdDSA")
    es = PyKey("ES256")
    u = origin + "/api/x"
    now = int(time.time())
    good = lambda **kw: proof(ed, "GET", u, **kw)  # noqa: E731
    # an unbound JWT access token (upstream mode only decodes it)
    tok = b64u(b'{"alg":"HS256","typ":"JWT"}') + "." + b64u(b'{"sub":"agent-1"}') + "." + b64u(b"sig")
    cases = [
        ("two DPoP headers", lambda: [("DPoP", good()), ("DPoP", good())], "proof_multiple"),
        ("too large", lambda: [("DPoP", "a" * 9000)], "proof_too_large"),
        ("not a jws", lambda: [("DPoP", "not-a-jwt")], "proof_malformed"),
        ("four segments", lambda: [("DPoP", good() + ".x")], "proof_malformed"),
        ("padding in base64", lambda: [("DPoP", good().replace(".", "=.", 1))], "proof_malformed"),
        ("header not json", lambda: [("DPoP", jws(None, {}, ed, raw_header="nope"))], "proof_header_invalid"),
        ("duplicate header member", lambda: [("DPoP", jws(None, {"jti": "1", "htm": "GET", "htu": u, "iat": now}, ed,
            raw_header='{"typ":"dpop+jwt","alg":"EdDSA","alg":"EdDSA","jwk":' + json.dumps(ed.jwk) + '}'))], "proof_header_invalid"),
        ("typ jwt", lambda: [("DPoP", good(header_extra={"typ": "JWT"}))], "proof_typ_invalid"),
        ("typ missing", lambda: [("DPoP", good(drop=["typ"]))], "proof_typ_invalid"),
        ("alg missing", lambda: [("DPoP", good(drop=["alg"]))], "proof_alg_missing"),
        ("alg none", lambda: [("DPoP", good(header_extra={"alg": "none"}, signature=b"x"))], "proof_alg_unsupported"),
        ("alg HS256", lambda: [("DPoP", good(header_extra={"alg": "HS256"}, signature=b"x" * 32))], "proof_alg_unsupported"),
        ("alg ES384 not allowed", lambda: [("DPoP", good(header_extra={"alg": "ES384"}, signature=b"x" * 96))], "proof_alg_not_allowed"),
        ("crit", lambda: [("DPoP", good(header_extra={"crit": ["exp"]}))], "proof_crit_unsupported"),
        ("jwk missing", lambda: [("DPoP", good(drop=["jwk"]))], "proof_jwk_missing"),
        ("jwk not object", lambda: [("DPoP", good(header_extra={"jwk": "abc"}))], "proof_jwk_invalid"),
        ("jwk short x", lambda: [("DPoP", good(header_extra={"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}}))], "proof_jwk_invalid"),
        ("jwk private", lambda: [("DPoP", good(header_extra={"jwk": dict(ed.jwk, d=b64u(b"\x01" * 32))}))], "proof_jwk_private"),
        ("alg/key mismatch", lambda: [("DPoP", good(header_extra={"alg": "ES256"}))], "proof_alg_key_mismatch"),
        ("bad signature", lambda: [("DPoP", good(signature=b"\x00" * 64))], "proof_signature_invalid"),
        ("signed by another key", lambda: [("DPoP", proof(es, "GET", u, header_extra={"jwk": PyKey("ES256").jwk}))], "proof_signature_invalid"),
        ("claims not json", lambda: [("DPoP", jws({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ed.jwk}, None, ed, raw_claims="[]"))], "proof_claims_invalid"),
        ("jti missing", lambda: [("DPoP", good(drop=["jti"]))], "proof_jti_missing"),
        ("jti too long", lambda: [("DPoP", good(claims_extra={"jti": "j" * 257}))], "proof_jti_invalid"),
        ("htm missing", lambda: [("DPoP", good(drop=["htm"]))], "proof_htm_missing"),
        ("htm lowercase", lambda: [("DPoP", good(claims_extra={"htm": "get"}))], "proof_htm_mismatch"),
        ("htm POST", lambda: [("DPoP", good(claims_extra={"htm": "POST"}))], "proof_htm_mismatch"),
        ("htu missing", lambda: [("DPoP", good(drop=["htu"]))], "proof_htu_missing"),
        ("htu relative", lambda: [("DPoP", good(claims_extra={"htu": "/api/x"}))], "proof_htu_invalid"),
        ("htu https vs http", lambda: [("DPoP", good(claims_extra={"htu": u.replace("http:", "https:")}))], "proof_htu_mismatch"),
        ("htu other path", lambda: [("DPoP", good(claims_extra={"htu": origin + "/api/y"}))], "proof_htu_mismatch"),
        ("htu other host", lambda: [("DPoP", good(claims_extra={"htu": "http://evil.example/api/x"}))], "proof_htu_mismatch"),
        ("iat missing", lambda: [("DPoP", good(drop=["iat"]))], "proof_iat_missing"),
        ("iat string", lambda: [("DPoP", good(claims_extra={"iat": str(now)}))], "proof_iat_missing"),
        ("iat too old", lambda: [("DPoP", good(claims_extra={"iat": now - 600}))], "proof_iat_too_old"),
        ("iat in future", lambda: [("DPoP", good(claims_extra={"iat": now + 600}))], "proof_iat_in_future"),
        ("ath missing with token", lambda: [("DPoP", good()), ("Authorization", "Bearer " + tok)], "proof_ath_missing"),
        ("ath wrong", lambda: [("DPoP", good(claims_extra={"ath": b64u(b"x" * 32)})), ("Authorization", "Bearer " + tok)], "proof_ath_mismatch"),
    ]
    return cases


BAD = _bad_proofs("http://127.0.0.1:0")  # names only, for ids


@pytest.mark.parametrize("idx", range(len(BAD)), ids=[c[0] for c in BAD])
def test_each_proof_defect_is_rejected(demo_envoy, idx):
    name, build, stat = _bad_proofs(demo_envoy.origin)[idx]
    before = demo_envoy.stats().get(f"dpop_guard.denied.{stat}", 0)
    r = demo_envoy.request("GET", "/api/x", build())
    assert_problem(r, "dpop-invalid", error="invalid_dpop_proof")
    assert demo_envoy.stats().get(f"dpop_guard.denied.{stat}", 0) == before + 1, name


@pytest.mark.parametrize("alg", ALGS)
def test_a_client_reusing_its_key(demo_envoy, alg):
    """One key, many proofs, as a real client sends them. In each worker VM the key is verified
    on the one-shot path first, then with its cached tables, and (Ed25519, from the 64th proof)
    with a larger "hot" table: every path must accept each fresh proof and refuse a corrupted
    signature or a replay."""
    k = PyKey(alg)
    url = demo_envoy.origin + "/api/items"
    n = 160 if alg == "EdDSA" else 80  # two workers: each VM sees well over 64 EdDSA proofs
    jkt = dpop("thumbprint", "--key", json.dumps(k.jwk))
    before = demo_envoy.stats().get("dpop_guard.denied.proof_signature_invalid", 0)
    for i in range(n):
        p = proof(k, "GET", url)
        r = demo_envoy.request("GET", "/api/items", [("DPoP", p)])
        assert r.status == 200, (i, r.body)
        assert r.json()["x-dpop-jkt"] == jkt
        if i % 40 == 39:
            h, c, sig = p.split(".")
            raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
            raw[len(raw) // 2] ^= 0x01
            bad = proof(k, "GET", url, signature=bytes(raw))
            assert_problem(demo_envoy.request("GET", "/api/items", [("DPoP", bad)]), "dpop-invalid",
                           error="invalid_dpop_proof")
            replayed = demo_envoy.request("GET", "/api/items", [("DPoP", p)])
            assert_problem(replayed, "dpop-invalid", error="invalid_dpop_proof",
                           detail="DPoP jti already used (replay attack)")
    after = demo_envoy.stats().get("dpop_guard.denied.proof_signature_invalid", 0)
    assert after == before + n // 40
    demo_envoy.assert_no_panic()


def test_garbage_never_5xx(demo_envoy):
    junk = ["", " ", "..", "a.b.c", "\x7f", "e30.e30.e30", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.AA",
            "x" * 8192, ".".join(["e30"] * 50)]
    for j in junk:
        for hdrs in ([("DPoP", j)], [("Authorization", "DPoP " + j)], [("Authorization", j), ("DPoP", j)]):
            try:
                r = demo_envoy.request("GET", "/api/junk", hdrs)
            except Exception:  # http.client refuses some header values; that is the client, not us
                continue
            assert r.status < 500, (j, r.status, r.body)


def test_routes_off_and_optional(demo_envoy, keys):
    r = demo_envoy.request("GET", "/healthz", [("x-dpop-jkt", "spoofed")])
    assert r.status == 200
    assert r.json()["x-dpop-jkt"] is None  # stripped even on an `off` route
    # optional: no proof passes without a jkt; a bad proof is still rejected; a good one is verified
    r = demo_envoy.request("GET", "/public/info")
    assert r.status == 200 and r.json()["x-dpop-jkt"] is None
    r = demo_envoy.request("GET", "/public/info", [("DPoP", "garbage")])
    assert_problem(r, "dpop-invalid")
    k = keys["ES256"]
    r = demo_envoy.request("GET", "/public/info", [("DPoP", k.proof("GET", demo_envoy.origin + "/public/info"))])
    assert r.status == 200 and r.json()["x-dpop-jkt"] == k.jkt


def test_proof_only_route(demo_envoy, keys):
    path = "/auth/agent/request_temp_token"
    k = keys["EdDSA"]
    r = demo_envoy.request("POST", path, [("DPoP", k.proof("POST", demo_envoy.origin + path))], body=b"{}")
    assert r.status == 200 and r.json()["x-dpop-jkt"] == k.jkt
    assert_problem(demo_envoy.request("POST", path, body=b"{}"), "dpop-required")


def test_stats_in_prometheus(demo_envoy):
    text = demo_envoy.prometheus()
    for name in ("dpop_guard_allowed", "dpop_guard_denied", "dpop_guard_denied_proof_missing",
                 "dpop_guard_replay_detected", "dpop_guard_replay_errors", "dpop_guard_replay_local_full"):
        assert f"# TYPE {name} counter" in text, name


def test_enabled_false_passes_everything():
    with Envoy({"enabled": False}, name="disabled") as e:
        r = e.request("GET", "/api/x", [("DPoP", "garbage"), ("x-dpop-jkt", "spoofed")])
        assert r.status == 200
        assert r.json()["x-dpop-jkt"] is None


def test_optional_mode_default():
    """`required: false`: no proof passes; a presented proof is fully verified."""
    with Envoy({}, name="optional") as e:
        assert e.request("GET", "/x").status == 200
        assert_problem(e.request("GET", "/x", [("DPoP", "bad")]), "dpop-invalid")


def test_custom_problem_base_and_algorithms():
    with Envoy({"required": True, "algorithms": ["ES256"], "problem_base_uri": "https://errors.example.com/p/"}, name="custom") as e:
        r = e.request("GET", "/x")
        assert r.json()["type"] == "https://errors.example.com/p/dpop-required"
        assert r.header("www-authenticate") == 'DPoP algs="ES256"'
        k = PyKey("EdDSA")
        r = e.request("GET", "/x", [("DPoP", proof(k, "GET", e.origin + "/x"))])
        assert r.json()["type"] == "https://errors.example.com/p/dpop-invalid"


def test_public_origin_behind_tls_termination():
    cfg = {"required": True, "public_origin": "https://api.example.com"}
    with Envoy(cfg, name="origin") as e:
        k = PyKey("EdDSA")
        ok = e.request("GET", "/v1/x?y", [("DPoP", proof(k, "GET", "https://api.example.com/v1/x"))])
        assert ok.status == 200, ok.body
        bad = e.request("GET", "/v1/x", [("DPoP", proof(k, "GET", e.origin + "/v1/x"))])
        assert_problem(bad, "dpop-invalid")


def _not_edge(bootstrap, envoy):
    """Envoy behind a TLS-terminating proxy: it trusts x-forwarded-proto from that hop."""
    for n in walk(bootstrap):
        if n.get("stat_prefix") == "gateway":
            n["use_remote_address"] = False


def test_trust_forwarded_proto():
    k = PyKey("EdDSA")
    with Envoy({"required": True, "trust_forwarded_proto": True}, name="xfp", patch=_not_edge) as e:
        htu = f"https://127.0.0.1:{e.port}/x"
        r = e.request("GET", "/x", [("DPoP", proof(k, "GET", htu)), ("x-forwarded-proto", "https")])
        assert r.status == 200, r.body
    # The shipped edge config: a client-sent x-forwarded-proto does not change the scheme.
    with Envoy({"required": True, "trust_forwarded_proto": True}, name="edge") as e:
        htu = f"https://127.0.0.1:{e.port}/x"
        r = e.request("GET", "/x", [("DPoP", proof(k, "GET", htu)), ("x-forwarded-proto", "https")])
        assert_problem(r, "dpop-invalid")


@pytest.mark.parametrize("config,key", [
    ('{"replay": {"store": "remote"}}', "replay.cluster"),
    ('{"proof_ttl": -5}', "proof_ttl"),
    ('{"algorithm": ["EdDSA"]}', "algorithm"),
    ('{"routes": [{"prefix": "/x", "policy": "sometimes"}]}', "routes[0].policy"),
    ('not json', "(top level)"),
    ('{"algorithms": ["EdDSA", "ES384"]}', "algorithms"),  # ES384 is opt-in at build time
])
def test_bad_config_refuses_to_start(config, key):
    e = Envoy(config, name="badcfg")
    e.start(wait=False)
    try:
        rc = e.proc.wait(30)
    except subprocess.TimeoutExpired:
        e.stop()
        pytest.fail("envoy started with a bad configuration")
    e.stop()
    assert rc != 0
    log = e.log()
    assert f"dpop_guard: invalid configuration: {key}:" in log, log[-2000:]


def test_shipped_demo_config_is_what_readme_says():
    cfg = json.loads(plugin_config_of(load_yaml("envoy.yaml")))
    assert cfg["required"] is True
    assert {"prefix": "/auth/agent/request_temp_token", "policy": "proof_only"} in cfg["routes"]


def test_local_store_full_refuses_and_never_forgets():
    """capacity 16 → 2 buckets of 16 slots: more live proofs than fit are refused (503), and
    every accepted jti is still remembered."""
    with Envoy({"required": True, "replay": {"store": "local", "capacity": 16}}, name="full") as e:
        k = PyKey("EdDSA")
        accepted, full = [], 0
        for _ in range(60):
            p = proof(k, "GET", e.origin + "/x")
            r = e.request("GET", "/x", [("DPoP", p)])
            if r.status == 200:
                accepted.append(p)
            else:
                assert_problem(r, "replay-check-unavailable", status=503)
                full += 1
        assert full > 0 and len(accepted) <= 32
        assert e.stats()["dpop_guard.replay.local_full"] == full
        for p in accepted:
            assert_problem(e.request("GET", "/x", [("DPoP", p)]), "dpop-invalid",
                           detail="DPoP jti already used (replay attack)")
