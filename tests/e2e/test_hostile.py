"""Hostile requests against a real Envoy with the built wasm: the shipped listeners' hardening,
bytes that are not UTF-8, forged thumbprint headers (x_dpop_jkt and other spellings), and their
neighbours (header casing, whitespace, encoded slashes, Envoy's header size limit, one proof used
100 times at once).

Every case names the defect class it guards. A filter rejection must always be a problem
document with a `WWW-Authenticate: DPoP algs="..."` challenge (harness.assert_problem); an Envoy
rejection (400/431) must not have reached the upstream (the echo's JSON is never in it).
The Authorization and route-path differentials are in test_hostile_authz.py, end-of-life replay
and unbounded work in test_hostile_limits.py; shared helpers in hostile.py.
"""
import concurrent.futures
import os

import pytest

from craft import PyKey, proof
from harness import ROOT, Envoy, build_request, load_yaml, wasm_filters
from hostile import (BAD, REPLAYED, allow_underscores, assert_envoy_refused, assert_refused, cfg_from, echo,
                     gateway_hcms, no_normalization, send, thumbprint)


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
