"""Envoy configurations for the runs, generated from the shipped envoy/*.yaml: the gateway
listener only, `direct_response: 200` instead of the demo upstream, free ports, the absolute
wasm path, the plugin configuration sized for the run (replay capacity, proof_ttl)."""

import copy
import json
import os

import yaml

import base64

from .settings import (
    EXPECTED_RATE, EXPECTED_RATE_BY_ID, INTROSPECTION_CLIENT, INTROSPECTION_CLUSTER, INTROSPECTION_PATH,
    MAX_PROOFS, ROOT, SECONDS, SIGNING_ALLOWANCE, WARMUP, WASM,
)


def walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def load_yaml(name):
    with open(os.path.join(ROOT, "envoy", name)) as f:
        return yaml.safe_load(f)


def gateway(yaml_name, admin_port, port):
    """The shipped config reduced to the gateway listener answering direct_response 200."""
    b = copy.deepcopy(load_yaml(yaml_name))
    b["admin"]["address"]["socket_address"]["port_value"] = admin_port
    sr = b["static_resources"]
    listeners = [l for l in sr["listeners"] if l["name"] == "dpop_gateway"]
    assert len(listeners) == 1, f"{yaml_name}: no dpop_gateway listener"
    sr["listeners"] = listeners
    listeners[0]["address"]["socket_address"]["port_value"] = port
    sr["clusters"] = [c for c in sr.get("clusters", []) if c["name"] != "demo_upstream"]
    if not sr["clusters"]:
        del sr["clusters"]
    hcm = [n for n in walk(listeners[0]) if n.get("name") == "envoy.filters.network.http_connection_manager"]
    assert len(hcm) == 1
    hcm = hcm[0]["typed_config"]
    # The shipped access log writes a line per request: not what is measured, and the same
    # for every scenario (plain Envoy and jwt_authn included), so it goes.
    hcm.pop("access_log", None)
    routes = [r for vh in hcm["route_config"]["virtual_hosts"] for r in vh["routes"]]
    for r in routes:
        r.pop("route", None)
        r["direct_response"] = {"status": 200}
    return b, hcm


def wasm_filter(hcm):
    fs = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm"]
    assert len(fs) == 1, "expected one wasm filter"
    return fs[0]


def router_only(hcm):
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.router"]
    assert len(hcm["http_filters"]) == 1


def merge(base, over):
    """Deep merge of plugin configuration overrides (objects merge, None deletes, anything else
    replaces)."""
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def filter_config(hcm, pool, overrides=None, seconds=None):
    """Absolute wasm path; the shipped plugin config (plus a worst-case class's overrides) with
    room for every proof of the run."""
    seconds = SECONDS if seconds is None else seconds
    f = wasm_filter(hcm)
    cfg = f["typed_config"]["config"]
    cfg["vm_config"]["code"]["local"]["filename"] = WASM
    pc = merge(json.loads(cfg["configuration"]["value"]), overrides or {})
    if pc.get("replay", {}).get("store", "local") == "local" and \
            "capacity" not in (overrides or {}).get("replay", {}):
        # A bucket of the local store holds 16 entries and a full one refuses: keep the
        # table 4x larger than the pool so the random spread never fills a bucket.
        pc.setdefault("replay", {})["capacity"] = min(10_000_000, max(100_000, 4 * (pool + 1000)))
    # Proofs are signed before the run with iat = their signing time: the first ones are as old
    # as the signing took when the run starts. Signing an RS256 pool takes a minute on an idle
    # machine and more than two on a busy one (the shipped 120 s then refused the preflight),
    # so proof_ttl covers SIGNING_ALLOWANCE + the run. The check's cost does not depend on it.
    need = int(WARMUP + seconds) + SIGNING_ALLOWANCE
    if need > int(pc.get("proof_ttl", 120)):
        pc["proof_ttl"] = -(-need // 60) * 60
    cfg["configuration"]["value"] = json.dumps(pc)
    return pc


def jwt_authn_filter(jwks):
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                "bench": {
                    "issuer": "https://issuer.bench.local",
                    "local_jwks": {"inline_string": jwks},
                    "forward": True,
                    # default token location: Authorization: Bearer <token>; no jwt_cache_config
                    # (Envoy's default: every request's signature is verified)
                }
            },
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        },
    }


def h2_cluster(cluster, http2=True):
    """An Envoy cluster switched to HTTP/2 (h2c, prior knowledge) or HTTP/1.1: dpop-replay
    serves both on one port."""
    opts = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    opts["explicit_http_config"] = {"http2_protocol_options": {}} if http2 else {"http_protocol_options": {}}
    return cluster


# replay.transport = "grpc" (as shipped in envoy-redis.yaml): one gRPC stream per worker, its
# method fixed (no path); "http": a callout per check or batch (the rows before the stream)
GRPC_OVERRIDES = {"replay": {"transport": "grpc", "path": None}}
HTTP_OVERRIDES = {"replay": {"transport": "http"}}


def pool_size(alg, sid=None):
    rate = EXPECTED_RATE_BY_ID.get(sid, EXPECTED_RATE[alg])
    return int(min(MAX_PROOFS, rate * (WARMUP + SECONDS)))


HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def introspection_plugin_overrides():
    cid, secret = INTROSPECTION_CLIENT
    return {"access_token": {"verify": "introspection", "introspection": {
        "cluster": INTROSPECTION_CLUSTER, "path": INTROSPECTION_PATH,
        "client_id": cid, "client_secret": secret,
        # cache_seconds: the default (300). A generous timeout: the default 200 ms is plenty on
        # an idle machine, but a stall on the shared one would turn into 503s (errors).
        "timeout_ms": 2000}}}


def introspection_cluster(port):
    """The measured Envoy's cluster for the introspection endpoint: HTTP/1.1 keep-alive, as the
    dpop_replay cluster of envoy/envoy-redis.yaml."""
    return {
        "name": INTROSPECTION_CLUSTER,
        "connect_timeout": "0.25s",
        "type": "STATIC",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http_protocol_options": {}}}},
        "load_assignment": {"cluster_name": INTROSPECTION_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def introspection_server(admin_port, port, jkt):
    """A second Envoy playing the authorization server's introspection endpoint: `POST
    /introspect` with the bench's Basic credentials answers the same RFC 7662 JSON for every
    token (active, cnf.jkt = the one client key's thumbprint); anything else 401. The measured
    Envoy keeps its connections to it open (`cluster.introspection.upstream_cx_total` stays at
    about the number of concurrent callouts; scenario.py checks)."""
    cid, secret = INTROSPECTION_CLIENT
    basic = "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()
    answer = json.dumps({"active": True, "client_id": "bench-client", "scope": "read write",
                         "token_type": "DPoP", "cnf": {"jkt": jkt}}, separators=(",", ":"))
    exact = lambda name, v: {"name": name, "string_match": {"exact": v}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": [{
            "name": "introspection",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": HCM,
                    "stat_prefix": "introspection",
                    "route_config": {"virtual_hosts": [{"name": "as", "domains": ["*"], "routes": [
                        {"match": {"path": INTROSPECTION_PATH,
                                   "headers": [exact(":method", "POST"), exact("authorization", basic)]},
                         "direct_response": {"status": 200, "body": {"inline_string": answer}},
                         "response_headers_to_add": [{"header": {"key": "content-type",
                                                                 "value": "application/json"}}]},
                        {"match": {"prefix": "/"}, "direct_response": {"status": 401}},
                    ]}]},
                    # Read the whole form before answering: an HTTP/1.1 response sent before the
                    # request's body is read makes Envoy close the connection (Connection: close),
                    # and every callout would then open a new one.
                    "http_filters": [
                        {"name": "envoy.filters.http.buffer", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                            "max_request_bytes": 65536}},
                        ROUTER,
                    ],
                },
            }]}],
        }]},
    }
