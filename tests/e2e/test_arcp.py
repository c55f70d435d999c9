"""Issue 18: ARCP 2.1.2 (PyPI arcp-py, FastAPI, with its Redis) behind Envoy + dpop-guard with the
shipped profile envoy/envoy-arcp.yaml. Our own client (tests/e2e/arcp_client.py, proofs from the
dpop CLI) walks ARCP's documented agent flow through the gateway to a registered agent; then the
gateway's protections on the same deployment, each next to what ARCP alone does:

- the same proof 50x at once: exactly one gets through (ARCP alone: a few, the rest 500);
- a proof for https:// sent over http://: refused (ARCP alone accepts it);
- the replay store's Redis down: 503 (ARCP alone fails open and takes a replayed proof);
- a proof on an agent route ARCP does not check (GET /agents/{id}): required;
- a bound token with another key's proof: dpop-binding-mismatch.

ARCP runs from its own venv (`make arcp-venv`, target/arcp-venv) with DPOP_REQUIRED=true, so it
re-checks every proof the gateway let through: the two agree on htu (Host, x-forwarded-proto).
"""
import base64
import concurrent.futures
import json

import pytest

from arcp_client import AgentHealth, ArcpAgent
from arcp_stack import AGENT_KEY, AGENT_TYPE, JWT_SECRET, ArcpStack, cluster_ports
from harness import Envoy, Key, access_log, assert_problem, dpop, load_yaml, plugin_config_of
from services import Redis

AGENT_ID = "dpop-guard-e2e-agent"
N = 50


@pytest.fixture(scope="module")
def stack():
    with ArcpStack() as s:
        yield s


@pytest.fixture(scope="module")
def key():
    return Key("EdDSA")


@pytest.fixture(scope="module")
def health():
    h = AgentHealth(AGENT_ID)
    yield h
    h.stop()


@pytest.fixture(scope="module")
def flow(stack, key, health):
    """ARCP's agent flow, every request through the gateway with a fresh proof."""
    agent = ArcpAgent(stack.envoy.origin, key.path)
    result = agent.walk(AGENT_ID, AGENT_TYPE, AGENT_KEY, health.endpoint)
    result["sent"] = list(agent.sent)
    return result


def via_gateway(stack, key):
    return ArcpAgent(stack.envoy.origin, key.path)


def direct(stack, key, htu_origin=None):
    """A client talking to ARCP itself, bypassing the gateway (for comparison only)."""
    return ArcpAgent(stack.arcp.origin, key.path, htu_origin=htu_origin)


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def validate_body():
    return {"agent_id": AGENT_ID, "agent_type": AGENT_TYPE, "endpoint": "http://127.0.0.1:9",
            "capabilities": ["echo"]}


def fire(agent, path, body, token, proof, n=N):
    """The same request, same proof, n times at once."""
    def one(_):
        return agent.call("POST", path, body, token=token, proof=proof)
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
        return list(ex.map(one, range(n)))


# ---- the agent flow --------------------------------------------------------------------------

def test_agent_flow_through_the_gateway(stack, key, flow):
    assert flow["agent"]["agent_id"] == AGENT_ID
    steps = [(m, p.split("?")[0].rsplit("/", 1)[0] if "validation/" in p else p.split("?")[0], s)
             for m, p, s in flow["sent"]]
    assert steps[0] == ("POST", "/auth/agent/request_temp_token", 200)
    assert steps[1] == ("POST", "/auth/agent/validate_compliance", 202)
    assert all(s == ("GET", "/auth/agent/validation", 200) for s in steps[2:-2]) and len(steps) >= 5
    assert steps[-2:] == [("POST", "/agents/register", 200), ("GET", f"/agents/{AGENT_ID}", 200)]
    # every one of them went through the filter and was allowed with this key's proof
    log = access_log(stack.envoy, count=len(flow["sent"]))
    for method, path, _ in flow["sent"]:
        entries = [e for e in log if e["method"] == method and e["path"] == path.split("?")[0]]
        assert entries and all(e["dpop_outcome"] == "allow" and e["dpop_jkt"] == key.jkt for e in entries), \
            (method, path, entries)
    # ARCP 2.1.2 fact (README): none of its tokens is DPoP-bound, hence require_bound_token: false
    for name in ("temp_token", "validated_token", "access_token"):
        assert "cnf" not in claims(flow[name]), name
    assert claims(flow["validated_token"])["aud"] == "arcp:register"


def test_default_policy_stops_arcp_at_validate_compliance(stack, key, flow):
    """envoy/envoy.yaml's policy (proof_only token endpoint, everything else required with bound
    tokens) in front of the same ARCP: step two fails, as reported in the issue."""
    default = plugin_config_of(load_yaml("envoy.yaml"))
    with Envoy(default, yaml_name="envoy-arcp.yaml", name="arcp-default-policy",
               patch=cluster_ports(arcp=stack.arcp.port, dpop_replay=stack.replay.port)) as e:
        agent = ArcpAgent(e.origin, key.path)
        r = agent.call("POST", "/auth/agent/validate_compliance", validate_body(), token=flow["temp_token"])
        assert_problem(r, "token-not-dpop-bound", error="invalid_token")


# ---- what the gateway adds ---------------------------------------------------------------------

def test_same_proof_concurrently_exactly_one(stack, key, flow):
    agent = via_gateway(stack, key)
    before = stack.envoy.stats().get("dpop_guard.replay.detected", 0)
    proof = agent.proof("POST", "/auth/agent/validate_compliance", flow["temp_token"])
    replies = fire(agent, "/auth/agent/validate_compliance", validate_body(), flow["temp_token"], proof)
    statuses = [r.status for r in replies]
    assert statuses.count(202) == 1, statuses          # the one ARCP saw and accepted
    assert statuses.count(401) == N - 1, statuses
    for r in replies:
        if r.status == 401:
            assert_problem(r, "dpop-invalid", detail="DPoP jti already used (replay attack)")
    assert stack.envoy.stats()["dpop_guard.replay.detected"] - before == N - 1


def test_arcp_alone_same_proof_concurrently(stack, key, flow):
    """For comparison: ARCP's own check (exists, then setex) races, and answers a refused replay
    with 500 (its ProblemException is caught by the handler's catch-all)."""
    agent = direct(stack, key)
    proof = agent.proof("POST", "/auth/agent/validate_compliance", flow["temp_token"])
    replies = fire(agent, "/auth/agent/validate_compliance", validate_body(), flow["temp_token"], proof)
    statuses = [r.status for r in replies]
    print(f"ARCP alone: {statuses.count(202)} of {N} concurrent uses of one proof accepted")
    assert set(statuses) <= {202, 500}, statuses
    assert statuses.count(202) >= 1 and 500 in statuses
    refused = next(r for r in replies if r.status == 500)
    assert "replay" in refused.json()["detail"]


def test_https_proof_over_http_refused(stack, key, flow):
    gw = ArcpAgent(stack.envoy.origin, key.path, htu_origin=f"https://127.0.0.1:{stack.envoy.port}")
    r = gw.call("POST", "/auth/agent/validate_compliance", validate_body(), token=flow["temp_token"])
    assert_problem(r, "dpop-invalid", detail="DPoP proof htu does not match the request URI")
    # ARCP alone treats http and https as the same scheme
    alone = direct(stack, key, htu_origin=f"https://127.0.0.1:{stack.arcp.port}")
    r = alone.call("POST", "/auth/agent/validate_compliance", validate_body(), token=flow["temp_token"])
    assert r.status == 202, r.body


def test_agent_routes_need_a_proof(stack, key, flow):
    """ARCP checks DPoP on three route groups (validate_compliance, /agents/register,
    /security/...); the gateway on every agent route."""
    token = flow["access_token"]
    gw = via_gateway(stack, key)
    for path in (f"/agents/{AGENT_ID}", "/agents"):
        assert_problem(gw.call("GET", path, token=token, proof=None), "dpop-required")
        r = gw.call("GET", path, token=token)
        assert r.status == 200, r.body
        # ARCP alone serves it on the Bearer token, no proof asked
        assert direct(stack, key).call("GET", path, token=token, proof=None).status == 200
    # a proof is single-use on routes ARCP never checks as well
    proof = gw.proof("GET", f"/agents/{AGENT_ID}", token)
    assert gw.call("GET", f"/agents/{AGENT_ID}", token=token, proof=proof).status == 200
    assert_problem(gw.call("GET", f"/agents/{AGENT_ID}", token=token, proof=proof), "dpop-invalid")
    # public routes (policy off / optional) need nothing
    for path in ("/health", "/docs", "/openapi.json", "/public/agent_types"):
        r = gw.call("GET", path, proof=None)
        assert r.status == 200, (path, r.status, r.body[:200])


def test_bound_token_with_another_keys_proof(stack, key, flow):
    """ARCP never binds its tokens, so a bound one is minted here with ARCP's own HS256 secret
    (ARCP accepts it as its own): the gateway checks the binding on an agent route."""
    other = Key("EdDSA")
    bound = dpop("token", "--secret", JWT_SECRET, "--bind-key", key.path, "--sub", AGENT_ID,
                 "--claim", f'agent_id="{AGENT_ID}"', "--claim", 'role="agent"')
    path = f"/agents/{AGENT_ID}"
    thief = ArcpAgent(stack.envoy.origin, other.path)
    assert_problem(thief.call("GET", path, token=bound), "dpop-binding-mismatch", error="invalid_token")
    # ARCP alone compares cnf.jkt with the proof only on its RequireSecureAgent routes
    assert direct(stack, other).call("GET", path, token=bound).status == 200
    gw = via_gateway(stack, key)
    assert_problem(gw.call("GET", path, token=bound, proof=None), "dpop-required", error="invalid_token")
    r = gw.call("GET", path, token=bound)
    assert r.status == 200 and r.json()["agent_id"] == AGENT_ID, r.body
    # RFC 9449's scheme works too: the gateway hands ARCP `Bearer` (upstream.authorization)
    r = gw.call("GET", path, token=bound, scheme="DPoP")
    assert r.status == 200, r.body


def test_replay_store_down_refuses(stack, key, flow):
    """Last: stops the Redis that ARCP and dpop-replay share, then brings it back."""
    gw = via_gateway(stack, key)
    alone = direct(stack, key)
    stack.redis.stop()
    try:
        r = gw.call("GET", f"/agents/{AGENT_ID}", token=flow["access_token"])
        assert_problem(r, "replay-check-unavailable", status=503)
        # ARCP alone fails open: without Redis it cannot remember a jti, and accepts a replay
        proof = alone.proof("POST", "/auth/agent/validate_compliance", flow["temp_token"])
        for _ in range(2):
            r = alone.call("POST", "/auth/agent/validate_compliance", validate_body(),
                           token=flow["temp_token"], proof=proof)
            assert r.status == 202, r.body
    finally:
        stack.redis = Redis(port=stack.redis.port).start()
