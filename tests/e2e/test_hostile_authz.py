"""Hostile requests against a real Envoy with the built wasm, where two readers of the same
request might disagree: Authorization shapes jwt_authn and the filter read differently, paths
whose route policy depends on who normalizes them, several or malformed Authorization values.

A filter rejection must always be a problem document with a `WWW-Authenticate: DPoP
algs="..."` challenge (harness.assert_problem); an Envoy rejection (400) must not have reached
the upstream. Shared helpers and the `victim` fixture are in hostile.py.
"""
import pytest

from craft import proof
from harness import Envoy, ath, build_request, walk
from hostile import assert_envoy_refused, assert_refused, echo, no_normalization, send, thumbprint
from hostile import victim  # noqa: F401 (a fixture)


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
