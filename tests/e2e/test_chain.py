"""Issue 14: what Envoy does with the filter's decision — the filter state
(wasm.dpop_guard.outcome/reason/jkt/alg) in the shipped access log, RBAC and a per-key local rate
limit on it (envoy/envoy-policy.yaml), the upstream hand-off (`upstream.strip_dpop_header`,
`upstream.authorization`) and shadow mode (top level and per route), all in a real Envoy."""
import json

import pytest

from harness import (Envoy, Key, access_log, all_stats, assert_problem, dpop, echo_all_headers, echoed_headers,
                     load_yaml, plugin_config_of, walk)

SECRET = "arcp-demo-hs256-secret-0123456789abcdef"
PINNED_PLACEHOLDER = "REPLACE_WITH_ADMIN_KEY_THUMBPRINT"


def bound_token(key):
    return dpop("token", "--secret", SECRET, "--bind-key", key.path)


def unbound_token():
    return dpop("token", "--secret", SECRET, "--no-cnf")


def counters(e):
    """dpop_guard counters by full Envoy name (wasmcustom.dpop_guard.*)."""
    return all_stats(e, "dpop_guard")


def delta(before, after, name):
    full = "wasmcustom.dpop_guard." + name
    return after.get(full, 0) - before.get(full, 0)


def by_path(lines, path):
    found = [l for l in lines if l["path"] == path]
    assert len(found) == 1, (path, lines)
    return found[0]


# ---- the shipped access log (envoy/envoy.yaml as is) --------------------------------------------

def test_access_log_shows_the_decision():
    with Envoy(name="chain-aclog") as e:
        k = Key("ES256")
        url = e.origin + "/api/allowed"
        r = e.request("GET", "/api/allowed?secret=s3cr3t", [("DPoP", k.proof("GET", url))])
        assert r.status == 200, r.body
        assert_problem(e.request("GET", "/api/denied"), "dpop-required")
        assert e.request("GET", "/healthz/pass").status == 200
        p = k.proof("GET", e.origin + "/api/replayed")
        assert e.request("GET", "/api/replayed", [("DPoP", p)]).status == 200
        assert_problem(e.request("GET", "/api/replayed", [("DPoP", p)]), "dpop-invalid")
        lines = access_log(e, 5)
        assert len(lines) == 5, lines

        allowed = by_path(lines, "/api/allowed")  # logged without the query string
        assert (allowed["dpop_outcome"], allowed["dpop_reason"], allowed["dpop_jkt"], allowed["dpop_alg"]) == \
            ("allow", None, k.jkt, "ES256"), allowed
        assert allowed["status"] == 200 and allowed["method"] == "GET"
        assert "s3cr3t" not in json.dumps(lines)

        denied = by_path(lines, "/api/denied")
        assert (denied["dpop_outcome"], denied["dpop_reason"], denied["dpop_jkt"]) == ("deny", "proof_missing", None)
        assert denied["status"] == 401

        passed = by_path(lines, "/healthz/pass")
        assert (passed["dpop_outcome"], passed["dpop_reason"], passed["dpop_jkt"]) == ("pass", None, None)

        first, second = [l for l in lines if l["path"] == "/api/replayed"]
        assert first["dpop_outcome"] == "allow"
        # refused after the proof verified: the key is known and published
        assert (second["dpop_outcome"], second["dpop_reason"], second["dpop_jkt"]) == ("deny", "proof_replayed", None)
        assert second["status"] == 401


# ---- upstream hand-off and per-route shadow ---------------------------------------------------

HANDOFF_CFG = {
    "required": True,
    "routes": [
        {"prefix": "/shadow", "policy": "required", "shadow": True},
        {"prefix": "/public", "policy": "optional"},
        {"prefix": "/healthz", "policy": "off"},
    ],
    "upstream": {"strip_dpop_header": True, "authorization": "bearer"},
}


@pytest.fixture(scope="module")
def handoff():
    with Envoy(HANDOFF_CFG, patch=echo_all_headers, name="chain-handoff") as e:
        yield e


def test_strip_dpop_and_bearer_rewrite(handoff):
    e, k = handoff, Key("EdDSA")
    t = bound_token(k)
    r = e.request("GET", "/api/x", [("Authorization", f"DPoP {t}"),
                                    ("DPoP", k.proof("GET", e.origin + "/api/x", token=t))])
    assert r.status == 200, r.body
    h = echoed_headers(r)
    assert "dpop" not in h, h
    assert h["authorization"] == [f"Bearer {t}"]
    assert h["x-dpop-jkt"] == [k.jkt]


def test_handoff_leaves_bearer_and_no_credential_alone(handoff):
    e, k = handoff, Key("EdDSA")
    r = e.request("GET", "/api/none", [("DPoP", k.proof("GET", e.origin + "/api/none"))])
    assert r.status == 200, r.body
    h = echoed_headers(r)
    assert "authorization" not in h and "dpop" not in h, h
    assert h["x-dpop-jkt"] == [k.jkt]
    t = unbound_token()  # a Bearer token, not bound, on an optional route
    r = e.request("GET", "/public/b", [("Authorization", f"Bearer {t}"),
                                       ("DPoP", k.proof("GET", e.origin + "/public/b", token=t))])
    assert r.status == 200, r.body
    h = echoed_headers(r)
    assert h["authorization"] == [f"Bearer {t}"]
    assert "dpop" not in h


def test_route_shadow_refusal_reaches_upstream_unchanged(handoff):
    e, k = handoff, Key("EdDSA")
    t = bound_token(k)
    before = counters(e)
    # a bound token without a proof, and a forged thumbprint header
    r = e.request("GET", "/shadow/a", [("Authorization", f"DPoP {t}"), ("x-dpop-jkt", k.jkt)])
    assert r.status == 200, r.body
    h = echoed_headers(r)
    assert "x-dpop-jkt" not in h, h  # the client's is still stripped, none added
    assert h["authorization"] == [f"DPoP {t}"]  # no upstream rewrite on a refusal
    # a proof that fails (htm): the DPoP header is not stripped either
    bad = k.proof("POST", e.origin + "/shadow/b", token=t)
    r = e.request("GET", "/shadow/b", [("Authorization", f"DPoP {t}"), ("DPoP", bad)])
    assert r.status == 200, r.body
    h = echoed_headers(r)
    assert h["dpop"] == [bad] and h["authorization"] == [f"DPoP {t}"] and "x-dpop-jkt" not in h, h
    after = counters(e)
    assert delta(before, after, "shadow.denied") == 2
    assert delta(before, after, "shadow.denied.bound_token_without_proof") == 1
    assert delta(before, after, "shadow.denied.proof_htm_mismatch") == 1
    assert delta(before, after, "denied") == 0
    assert delta(before, after, "denied.bound_token_without_proof") == 0


def test_route_shadow_allowed_request_is_a_normal_allow(handoff):
    e, k = handoff, Key("ES256")
    t = bound_token(k)
    r = e.request("GET", "/shadow/ok", [("Authorization", f"DPoP {t}"),
                                        ("DPoP", k.proof("GET", e.origin + "/shadow/ok", token=t))])
    assert r.status == 200, r.body
    h = echoed_headers(r)
    assert h["x-dpop-jkt"] == [k.jkt] and h["authorization"] == [f"Bearer {t}"] and "dpop" not in h, h


def test_rule_shadow_does_not_leak_to_other_routes(handoff):
    e = handoff
    before = counters(e)
    assert_problem(e.request("GET", "/api/enforced"), "dpop-required")
    after = counters(e)
    assert delta(before, after, "denied") == 1
    assert delta(before, after, "denied.proof_missing") == 1
    assert delta(before, after, "shadow.denied") == 0


# ---- top-level shadow, defaults of the hand-off -----------------------------------------------

SHADOW_CFG = {
    "required": True,
    "shadow": True,
    "routes": [
        {"prefix": "/strict", "policy": "required", "shadow": False},
        {"prefix": "/healthz", "policy": "off"},
    ],
}


@pytest.fixture(scope="module")
def shadow():
    with Envoy(SHADOW_CFG, patch=echo_all_headers, name="chain-shadow") as e:
        yield e


def test_default_handoff_keeps_dpop_and_authorization(shadow):
    e, k = shadow, Key("EdDSA")
    t = bound_token(k)
    p = k.proof("GET", e.origin + "/api/keep", token=t)
    r = e.request("GET", "/api/keep", [("Authorization", f"DPoP {t}"), ("DPoP", p)])
    assert r.status == 200, r.body
    h = echoed_headers(r)
    assert h["dpop"] == [p] and h["authorization"] == [f"DPoP {t}"] and h["x-dpop-jkt"] == [k.jkt], h


def test_top_level_shadow_missing_proof(shadow):
    e = shadow
    before = counters(e)
    r = e.request("GET", "/api/noproof", [("x-dpop-jkt", "forged")])
    assert r.status == 200, r.body
    h = echoed_headers(r)
    assert "x-dpop-jkt" not in h, h
    assert "www-authenticate" not in {k.lower() for k, _ in r.headers_list}
    after = counters(e)
    assert delta(before, after, "shadow.denied") == 1
    assert delta(before, after, "shadow.denied.proof_missing") == 1
    assert delta(before, after, "denied") == 0
    assert delta(before, after, "denied.proof_missing") == 0
    line = by_path(access_log(e, 1, path="/api/noproof"), "/api/noproof")
    assert (line["dpop_outcome"], line["dpop_reason"], line["dpop_jkt"]) == ("shadow_deny", "proof_missing", None)
    assert line["status"] == 200


def test_top_level_shadow_replay_is_recorded(shadow):
    e, k = shadow, Key("EdDSA")
    p = k.proof("GET", e.origin + "/api/twice")
    before = counters(e)
    first = e.request("GET", "/api/twice", [("DPoP", p)])
    second = e.request("GET", "/api/twice", [("DPoP", p)])
    assert first.status == 200 and second.status == 200
    assert echoed_headers(first)["x-dpop-jkt"] == [k.jkt]
    h = echoed_headers(second)
    assert "x-dpop-jkt" not in h and h["dpop"] == [p], h
    after = counters(e)
    assert delta(before, after, "shadow.denied.proof_replayed") == 1
    assert delta(before, after, "denied") == 0
    lines = access_log(e, 2, path="/api/twice")
    assert [l["dpop_outcome"] for l in lines] == ["allow", "shadow_deny"], lines
    assert lines[1]["dpop_reason"] == "proof_replayed" and lines[1]["dpop_jkt"] is None


def test_rule_can_turn_shadow_off(shadow):
    e = shadow
    before = counters(e)
    assert_problem(e.request("GET", "/strict/x"), "dpop-required")
    after = counters(e)
    assert delta(before, after, "denied.proof_missing") == 1
    assert delta(before, after, "shadow.denied") == 0


def test_shadow_counters_in_prometheus(shadow):
    e = shadow
    e.request("GET", "/api/prom")
    text = e.prometheus()
    lines = [l for l in text.splitlines() if l.startswith("dpop_guard_shadow_denied")]
    assert any(l.startswith("dpop_guard_shadow_denied_proof_missing") and not l.endswith(" 0") for l in lines), lines


# ---- envoy/envoy-policy.yaml: RBAC on the key, rate limit per key ---------------------------------

RL_TOKENS = 3


def policy_patch(pinned_jkt):
    def patch(bootstrap, _envoy):
        pinned = [n for n in walk(bootstrap)
                  if isinstance(n.get("string_match"), dict) and n["string_match"].get("exact") == PINNED_PLACEHOLDER]
        assert len(pinned) == 1 and pinned[0]["key"] == "wasm.dpop_guard.jkt", pinned
        pinned[0]["string_match"]["exact"] = pinned_jkt
        (rl,) = [n for n in walk(bootstrap) if n.get("name") == "envoy.filters.http.local_ratelimit"]
        (desc,) = rl["typed_config"]["descriptors"]
        assert desc["entries"] == [{"key": "dpop_jkt"}]  # no value: one bucket per thumbprint
        desc["token_bucket"] = {"max_tokens": RL_TOKENS, "tokens_per_fill": RL_TOKENS, "fill_interval": "3600s"}
        # /admin/shadow/...: the same RBAC, with the filter in shadow mode there
        (wasm,) = [n for n in walk(bootstrap) if n.get("name") == "envoy.filters.http.wasm"]
        value = wasm["typed_config"]["config"]["configuration"]
        cfg = json.loads(value["value"])
        cfg["routes"].insert(0, {"prefix": "/admin/shadow", "policy": "required", "shadow": True})
        value["value"] = json.dumps(cfg)
    return patch


@pytest.fixture(scope="module")
def admin_key():
    return Key("EdDSA")


@pytest.fixture(scope="module")
def policy(admin_key):
    with Envoy(yaml_name="envoy-policy.yaml", patch=policy_patch(admin_key.jkt), concurrency=2,
               name="chain-policy") as e:
        yield e


def test_policy_yaml_shape():
    b = load_yaml("envoy-policy.yaml")
    (hcm,) = [n for n in walk(b) if n.get("stat_prefix") == "gateway"]
    names = [f["name"] for f in hcm["http_filters"]]
    assert names == ["envoy.filters.http.wasm", "envoy.filters.http.rbac", "envoy.filters.http.local_ratelimit",
                     "envoy.filters.http.router"]
    cfg = json.loads(plugin_config_of(b))
    assert cfg.get("forward_jkt_header", "x-dpop-jkt") == "x-dpop-jkt"
    (rl,) = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.local_ratelimit"]
    (rate_limit,) = rl["typed_config"]["rate_limits"]
    assert rate_limit["actions"] == [{"request_headers": {"header_name": "x-dpop-jkt", "descriptor_key": "dpop_jkt"}}]


def test_rbac_admin_only_for_pinned_key(policy, admin_key):
    e = policy
    r = e.request("GET", "/admin/users", [("DPoP", admin_key.proof("GET", e.origin + "/admin/users"))])
    assert r.status == 200, r.body
    assert r.json()["x-dpop-jkt"] == admin_key.jkt

    other = Key("ES256")
    r = e.request("GET", "/admin/users", [("DPoP", other.proof("GET", e.origin + "/admin/users"))])
    assert r.status == 403, r.body
    assert r.body == b"RBAC: access denied"
    assert r.header("www-authenticate") is None  # RBAC's answer, not the filter's

    assert_problem(e.request("GET", "/admin"), "dpop-required")
    # the same other key is fine everywhere else
    r = e.request("GET", "/api/items", [("DPoP", other.proof("GET", e.origin + "/api/items"))])
    assert r.status == 200, r.body

    # (two workers: lines of sequential requests are not necessarily in order)
    lines = access_log(e, 2, path="/admin/users") + access_log(e, 1, path="/admin")
    seen = sorted((l["status"], l["dpop_outcome"], l["dpop_jkt"] or "") for l in lines)
    assert seen == [(200, "allow", admin_key.jkt), (401, "deny", ""), (403, "allow", other.jkt)], lines
    (rbac,) = [l for l in lines if l["status"] == 403]
    assert rbac["details"].startswith("rbac_access_denied"), rbac


def test_rbac_shadow_refusal_does_not_open_admin(policy, admin_key):
    e = policy
    url = e.origin + "/admin/shadow/x"
    # no proof: the filter lets it through in shadow mode, RBAC refuses it
    r = e.request("GET", "/admin/shadow/x")
    assert r.status == 403, r.body
    p = admin_key.proof("GET", url)
    assert e.request("GET", "/admin/shadow/x", [("DPoP", p)]).status == 200
    # the pinned key's proof replayed: shadow_deny, no key named — still no admin
    r = e.request("GET", "/admin/shadow/x", [("DPoP", p)])
    assert r.status == 403, r.body
    lines = access_log(e, 3, path="/admin/shadow/x")
    seen = sorted((l["dpop_outcome"], l["status"], l["dpop_reason"] or "", l["dpop_jkt"] or "") for l in lines)
    assert seen == [("allow", 200, "", admin_key.jkt), ("shadow_deny", 403, "proof_missing", ""),
                    ("shadow_deny", 403, "proof_replayed", "")], lines


def test_rate_limit_per_key(policy):
    e = policy
    a, b = Key("EdDSA"), Key("EdDSA")

    def get(k):
        return e.request("GET", "/api/rl", [("DPoP", k.proof("GET", e.origin + "/api/rl"))])

    for _ in range(RL_TOKENS):
        r = get(a)
        assert r.status == 200, r.body
    r = get(a)
    assert r.status == 429, r.body
    assert r.body == b"local_rate_limited"
    # key B on the same route still has its own bucket
    for _ in range(RL_TOKENS):
        r = get(b)
        assert r.status == 200, r.body
        assert r.json()["x-dpop-jkt"] == b.jkt
    assert get(b).status == 429
    assert get(a).status == 429
    # a client cannot pick another bucket with its own x-dpop-jkt: the filter replaces it
    r = e.request("GET", "/api/rl", [("DPoP", a.proof("GET", e.origin + "/api/rl")), ("x-dpop-jkt", "fresh-bucket")])
    assert r.status == 429, r.body
    # requests without a key (route off) use the shared default bucket
    for _ in range(RL_TOKENS + 2):
        assert e.request("GET", "/healthz").status == 200
    stats = all_stats(e, "dpop_jkt")
    assert stats.get("dpop_jkt.http_local_rate_limit.rate_limited", 0) >= 4, stats
