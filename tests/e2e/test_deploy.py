"""Deploying it: the Istio manifests (envoy/istio/) and the OCI image (`make image`).

- Every WasmPlugin validates against Istio's CRD: its OpenAPI schema (jsonschema) plus what the
  API server adds — the CEL rules (x-kubernetes-validations, implemented here by hand, and every
  rule in the CRD must be one we implement), list-map key uniqueness, int32, object names — and
  the validator is shown to refuse broken manifests.
- Every pluginConfig, read the way Kubernetes reads YAML (1.1), passes the real filter in a real
  Envoy (`envoy --mode validate` runs on_configure); a broken one does not.
- The manifests agree with each other (replay cluster name ↔ Service, stats prefix ↔ what Envoy
  really names the counters).
- The image (`make image`) is tested in test_deploy_image.py; the validator lives in
  istio_validator.py.
"""
import copy
import glob
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tomllib

import jsonschema
import pytest
import yaml

from harness import ENVOY, ROOT, WASM, Envoy, walk
from istio_validator import *  # noqa: F401,F403 (validator, loaders and the `schema` fixture)


def test_manifests_found():
    names = {os.path.basename(p) for p in MANIFEST_FILES}
    assert {"wasmplugin-gateway.yaml", "wasmplugin-sidecar.yaml", "wasmplugin-authz-jwt.yaml",
            "dpop-replay.yaml", "proxy-stats.yaml"} <= names
    assert len(wasmplugins()) >= 3


def test_every_document_is_a_kubernetes_object():
    for f, i, d in all_docs():
        assert isinstance(d, dict), f"{f}#{i}"
        assert d.get("apiVersion") and d.get("kind"), f"{f}#{i}: apiVersion/kind"
        name = d.get("metadata", {}).get("name", "")
        assert DNS1123_SUBDOMAIN.match(name), f"{f}#{i}: metadata.name {name!r}"


def test_every_cel_rule_is_implemented(schema):
    with open(CRD_PATH) as f:
        crd = yaml.safe_load(f)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    from_crd = schema_rules(version["schema"]["openAPIV3Schema"])
    from_json = schema_rules(schema)
    assert from_crd == from_json, "the JSON schema and the CRD disagree on CEL rules"
    assert from_json, "no CEL rules found: wrong schema file?"
    missing = from_json - set(CEL_RULES)
    assert not missing, f"CEL rules without an implementation here: {missing}"


@pytest.mark.parametrize("doc", [d for _, _, d in wasmplugins()], ids=plugin_ids())
def test_wasmplugin_validates_against_crd(schema, doc):
    assert validate_wasmplugin(schema, doc) == []


@pytest.mark.parametrize("doc", [d for _, _, d in wasmplugins()], ids=plugin_ids())
def test_wasmplugin_is_safe(doc):
    spec = doc["spec"]
    assert spec["failStrategy"] == "FAIL_CLOSE"
    assert spec["phase"] in ("AUTHN", "AUTHZ")
    assert spec["url"].startswith("oci://") and "dpop-guard" in spec["url"]
    assert isinstance(spec["pluginConfig"], dict)
    # A gateway's listeners are CLIENT-class in Istio: mode SERVER there would match nothing.
    if "istio" in spec.get("selector", {}).get("matchLabels", {}):
        assert all(m.get("mode", "CLIENT_AND_SERVER") in ("CLIENT", "CLIENT_AND_SERVER")
                   for m in spec.get("match", [])), "gateway plugin selects no gateway traffic"
    if spec["pluginConfig"].get("access_token", {}).get("verify") == "jwt_authn":
        assert spec["phase"] == "AUTHZ", "jwt_authn metadata only exists after Istio's AUTHN filters"


def gateway_plugin():
    (doc,) = [d for f, _, d in wasmplugins() if f == "wasmplugin-gateway.yaml"]
    return doc


def _set(path, value):
    def mutate(doc):
        node = doc
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(doc):
        node = doc
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
    return mutate


BROKEN = {
    "phase-typo": (_set(["spec", "phase"], "AUTH"), "is not one of"),
    "envoy-spelling-of-fail-close": (_set(["spec", "failStrategy"], "FAIL_CLOSED"), "is not one of"),
    "pull-policy-typo": (_set(["spec", "imagePullPolicy"], "IfNotPresnt"), "is not one of"),
    "selector-and-targetRefs": (_set(["spec", "targetRefs"], [{"kind": "Gateway", "group": "gateway.networking.k8s.io",
                                                                "name": "api"}]),
                                "only one of targetRefs or selector"),
    "selector-and-targetRef": (_set(["spec", "targetRef"], {"kind": "Gateway", "name": "api"}),
                               "only one of targetRefs or selector"),
    "ftp-url": (_set(["spec", "url"], "ftp://example.com/dpop_guard.wasm"), "url must have schema"),
    "docker-url": (_set(["spec", "url"], "docker://ghcr.io/owner/dpop-guard:0.1.0"), "url must have schema"),
    "registry-port-without-oci-scheme": (_set(["spec", "url"], "localhost:5000/dpop-guard:0.1.0"),
                                         "url must have schema"),
    "missing-url": (_delete(["spec", "url"]), "'url' is a required property"),
    "wildcard-label-value": (_set(["spec", "selector", "matchLabels", "istio"], "ingress*"), "wildcard not allowed"),
    "empty-label-key": (_set(["spec", "selector", "matchLabels", ""], "x"), "key must not be empty"),
    "cross-namespace-targetRef": (lambda d: (d["spec"].pop("selector"), _set(
        ["spec", "targetRefs"], [{"kind": "Gateway", "name": "api", "namespace": "other"}])(d)),
        "cross namespace referencing"),
    "duplicate-port": (_set(["spec", "match"], [{"mode": "CLIENT", "ports": [{"number": 8443}, {"number": 8443}]}]),
                       "duplicate entry"),
    "port-zero": (_set(["spec", "match"], [{"ports": [{"number": 0}]}]), "less than the minimum"),
    "match-mode-typo": (_set(["spec", "match"], [{"mode": "INBOUND"}]), "is not one of"),
    "env-host-with-value": (_set(["spec", "vmConfig"], {"env": [{"name": "X", "valueFrom": "HOST", "value": "y"}]}),
                            "value may only be set when valueFrom is INLINE"),
    "unknown-spec-field": (_set(["spec", "pluginConfigs"], {}), "Additional properties are not allowed"),
    "pluginConfig-not-object": (_set(["spec", "pluginConfig"], "{\"required\": true}"), "is not of type 'object'"),
    "bad-sha256": (_set(["spec", "sha256"], "ABC"), "does not match"),
    "priority-not-int32": (_set(["spec", "priority"], 2**31), "is not an int32"),
    "bad-name": (_set(["metadata", "name"], "DPoP_Guard"), "DNS-1123"),
    "wrong-kind": (_set(["kind"], "WasmPlugins"), "'WasmPlugin' was expected"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validator_refuses_broken_manifest(schema, case):
    mutate, expected = BROKEN[case]
    doc = copy.deepcopy(gateway_plugin())
    assert validate_wasmplugin(schema, doc) == []
    mutate(doc)
    errors = validate_wasmplugin(schema, doc)
    assert errors, f"{case}: accepted"
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize("url,ok", [
    ("oci://ghcr.io/OWNER/dpop-guard:0.1.0", True),
    ("oci://ghcr.io/owner/dpop-guard@sha256:" + "a" * 64, True),
    ("OCI://ghcr.io/owner/dpop-guard:0.1.0", True),
    ("ghcr.io/owner/dpop-guard:0.1.0", True),          # no scheme: Istio assumes oci
    ("oci://localhost:5000/dpop-guard:0.1.0", True),
    ("https://example.com/dpop_guard.wasm", True),
    ("file:///opt/filters/dpop_guard.wasm", True),
    ("localhost:5000/dpop-guard:0.1.0", False),        # parsed as scheme "localhost"
    ("ftp://example.com/dpop_guard.wasm", False),
    ("oci://ghcr.io/owner/dpop guard", True),          # spaces in the path parse (Go allows them)
    (" oci://ghcr.io/x", False),
    ("oci://ghcr io/x", True),                          # the rule's "http://" + self fallback lets it by
    ("oci://ghcr.io/%zz", False),
])
def test_url_rule(url, ok):
    assert cel_url_scheme_rule(url) is ok


# ---- the plugin configs in a real Envoy -----------------------------------------------------

def _with_plugin_config(cfg):
    """An Envoy (harness) running envoy.yaml with `cfg` as the plugin configuration, plus a
    cluster of the name a remote replay store refers to (Istio has one by that name)."""
    def add_cluster(bootstrap, _envoy):
        cluster = (cfg.get("replay") or {}).get("cluster") if isinstance(cfg, dict) else None
        if cluster:
            bootstrap["static_resources"]["clusters"].append({
                "name": cluster, "connect_timeout": "0.25s", "type": "STATIC",
                "load_assignment": {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9}}}}]}]}})
    text = cfg if isinstance(cfg, str) else json.dumps(cfg)
    return Envoy(plugin_config=text, patch=add_cluster, name="deploy-validate")


def envoy_validate(cfg):
    e = _with_plugin_config(cfg)
    path = e.write_config()
    p = subprocess.run([ENVOY, "--mode", "validate", "-c", path, "--disable-hot-restart", "-l", "error"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("doc", [d for _, _, d in wasmplugins()], ids=plugin_ids())
def test_plugin_config_accepted_by_envoy(doc):
    # pluginConfig as Kubernetes stores it (YAML 1.1), as JSON, the way istiod hands it over.
    rc, out = envoy_validate(doc["spec"]["pluginConfig"])
    assert rc == 0, out[-3000:]


def test_broken_plugin_config_refused_by_envoy():
    cfg = copy.deepcopy(gateway_plugin()["spec"]["pluginConfig"])
    cfg["routes"][1]["policy"] = False  # what a bare `off` becomes in YAML 1.1
    rc, out = envoy_validate(cfg)
    assert rc != 0, "Envoy accepted policy: false"
    assert "routes[1].policy" in out, out[-3000:]


def test_yaml_11_booleans_are_quoted():
    """`policy: off` unquoted would reach the filter as false (Kubernetes reads YAML 1.1)."""
    for f, i, d in wasmplugins():
        for node in walk(d["spec"]["pluginConfig"]):
            for k, v in node.items():
                if k in ("policy", "store", "verify", "on_error"):
                    assert isinstance(v, str), f"{f}#{i}: {k} is {v!r}, quote it"


# ---- the manifests agree with each other and with Envoy -------------------------------------

def test_replay_service_admits_what_the_plugins_send():
    """Every remote-store plugin's requests pass the dpop-replay AuthorizationPolicy (method and
    path: the single check, the batch, the gRPC stream) and reach a Service port of the right
    protocol (the gRPC stream needs HTTP/2). A path the policy does not list is a 403, which
    the filter can only treat as "replay check unavailable": every proof refused under load."""
    docs = [d for f, _, d in all_docs() if f == "dpop-replay.yaml"]
    (policy,) = [d for d in docs if d["kind"] == "AuthorizationPolicy"
                 and d["metadata"]["name"] == "dpop-replay-callers"]
    allowed = {(m, p) for rule in policy["spec"]["rules"] for to in rule["to"]
               for m in to["operation"]["methods"] for p in to["operation"]["paths"]}
    (svc,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "dpop-replay"]
    remote = [(f, d["spec"]["pluginConfig"]["replay"]) for f, _, d in wasmplugins()
              if d["spec"]["pluginConfig"].get("replay", {}).get("store") == "remote"]
    assert remote
    for f, cfg in remote:
        port = int(cfg["cluster"].split("|")[1])
        (svc_port,) = [p for p in svc["spec"]["ports"] if p["port"] == port]
        if cfg.get("transport", "http") == "grpc":
            sent = {"/dpop.replay.v1.Replay/Check"}
            assert svc_port.get("appProtocol") in ("http2", "grpc"), (f, svc_port)
        else:
            path = cfg.get("path", "/v1/replay")
            sent = {path} | ({path + "/batch"} if cfg.get("max_batch", 64) > 1 else set())
        missing = {("POST", p) for p in sent} - allowed
        assert not missing, f"{f}: the AuthorizationPolicy refuses {missing}"


def test_replay_cluster_matches_service():
    cfg = gateway_plugin()["spec"]["pluginConfig"]["replay"]
    assert cfg["store"] == "remote"
    m = re.fullmatch(r"outbound\|(\d+)\|\|([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local", cfg["cluster"])
    assert m, f"not an Istio outbound cluster name: {cfg['cluster']}"
    port, name, ns = int(m[1]), m[2], m[3]
    docs = [d for f, _, d in all_docs() if f == "dpop-replay.yaml"]
    (svc,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name]
    assert svc["metadata"]["namespace"] == ns
    (svc_port,) = [p for p in svc["spec"]["ports"] if p["port"] == port]
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    target = svc_port["targetPort"]
    container_port = named[target] if isinstance(target, str) else target
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DPOP_REPLAY_LISTEN"].endswith(f":{container_port}")
    assert env["DPOP_REPLAY_BACKEND"] == "redis"
    redis_host = re.fullmatch(r"redis://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)",
                              env["DPOP_REPLAY_REDIS_URL"])
    assert redis_host
    (redis_svc,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == redis_host[1]]
    assert redis_svc["metadata"]["namespace"] == redis_host[2]
    assert int(redis_host[3]) in [p["port"] for p in redis_svc["spec"]["ports"]]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in ("/readyz", "/healthz")
    (dr,) = [d for d in docs if d["kind"] == "DestinationRule"]
    assert dr["spec"]["host"] == f"{name}.{ns}.svc.cluster.local"
    (redis_dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "redis"]
    args = redis_dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:4] == ["--save", "", "--appendonly", "no"]


def stats_prefixes():
    (op,) = [d for f, _, d in all_docs() if f == "proxy-stats.yaml" and d["kind"] == "IstioOperator"]
    return op["spec"]["meshConfig"]["defaultConfig"]["proxyStatsMatcher"]["inclusionPrefixes"]


def test_stats_prefix_matches_envoys_names():
    """Envoy with the stats matcher proxy-stats.yaml gives Istio (inclusion_list prefixes, which
    is what proxyStatsMatcher.inclusionPrefixes becomes) still shows the filter's counters."""
    prefixes = stats_prefixes()
    assert "wasmcustom.dpop_guard" in prefixes

    def stats_matcher(bootstrap, _envoy):
        bootstrap["stats_config"] = {"stats_matcher": {"inclusion_list": {
            "patterns": [{"prefix": p} for p in prefixes]}}}

    with Envoy(plugin_config={"required": True}, patch=stats_matcher, name="deploy-stats") as e:
        c = http.client.HTTPConnection("127.0.0.1", e.port, timeout=5)
        c.request("GET", "/api/no-proof")
        assert c.getresponse().status == 401

        def admin(path):
            a = http.client.HTTPConnection("127.0.0.1", e.admin_port, timeout=5)
            a.request("GET", path)
            return a.getresponse().read().decode()

        stats = admin("/stats")
        assert "wasmcustom.dpop_guard.denied: 1" in stats, stats[:2000]
        assert "wasmcustom.dpop_guard.allowed: 0" in stats
        # Nothing else passes the matcher: the prefix is what selects our counters.
        assert all(line.startswith("wasmcustom.dpop_guard.") for line in stats.splitlines() if line), stats[:2000]
        prom = admin("/stats/prometheus")
        assert re.search(r"^dpop_guard_denied(\{\})? 1$", prom, re.M), prom[:2000]


def hardening_docs():
    return [d for f, _, d in all_docs() if f == "hardening.yaml"]


def _proto_merge(dst, src):
    """protobuf MergeFrom on JSON-shaped dicts, as an EnvoyFilter MERGE applies: messages merge
    field by field, scalars replace, repeated fields append."""
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _proto_merge(dst[k], v)
        elif isinstance(v, list) and isinstance(dst.get(k), list):
            dst[k] = dst[k] + copy.deepcopy(v)
        else:
            dst[k] = copy.deepcopy(v)


def test_hardening_manifest_targets_the_filters_proxies():
    """mesh-path-normalization.yaml merges slashes mesh-wide; hardening.yaml has one EnvoyFilter per
    place a WasmPlugin here runs the filter (same namespace, same labels, the listener class the
    plugin's traffic goes through)."""
    docs = hardening_docs()
    (op,) = [d for f, _, d in all_docs() if f == "mesh-path-normalization.yaml" and d["kind"] == "IstioOperator"]
    assert op["spec"]["meshConfig"]["pathNormalization"]["normalization"] in ("MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES")
    filters = [d for d in docs if d["kind"] == "EnvoyFilter"]
    for f in filters:
        assert f["apiVersion"] == "networking.istio.io/v1alpha3"
    targets = {(f["metadata"]["namespace"], tuple(sorted(f["spec"]["workloadSelector"]["labels"].items())),
                p["match"]["context"]) for f in filters for p in f["spec"]["configPatches"]}
    for _, _, plugin in wasmplugins():
        labels = tuple(sorted(plugin["spec"]["selector"]["matchLabels"].items()))
        modes = {m.get("mode", "CLIENT_AND_SERVER") for m in plugin["spec"].get("match", [])}
        context = "GATEWAY" if "istio" in dict(labels) else "SIDECAR_INBOUND"
        assert context != "SIDECAR_INBOUND" or modes <= {"SERVER"}, modes
        assert (plugin["metadata"]["namespace"], labels, context) in targets, plugin["metadata"]["name"]


@pytest.mark.parametrize("name", [d["metadata"]["name"] for d in hardening_docs() if d["kind"] == "EnvoyFilter"])
def test_hardening_envoyfilter_works_in_envoy(name):
    """The EnvoyFilter's patch merged into an http_connection_manager as Istio builds it
    (MERGE_SLASHES: normalize_path + merge_slashes, escaped slashes KEEP_UNCHANGED, an idle
    timeout in common_http_protocol_options) gives a listener Envoy accepts, that refuses
    `x_dpop_jkt` and %2F with 400 before the filter, and still runs the filter."""
    (ef,) = [d for d in hardening_docs() if d["kind"] == "EnvoyFilter" and d["metadata"]["name"] == name]
    (cp,) = ef["spec"]["configPatches"]
    assert cp["applyTo"] == "NETWORK_FILTER" and cp["patch"]["operation"] == "MERGE"
    assert cp["match"]["listener"]["filterChain"]["filter"]["name"] == "envoy.filters.network.http_connection_manager"
    value = cp["patch"]["value"]

    def as_istio_builds_it(bootstrap, _envoy):
        for hcm in walk(bootstrap):
            if hcm.get("name") != "envoy.filters.network.http_connection_manager":
                continue
            tc = hcm["typed_config"]
            if tc.get("stat_prefix") != "gateway":
                continue
            for k in ("normalize_path", "merge_slashes", "path_with_escaped_slashes_action",
                      "common_http_protocol_options"):
                tc.pop(k, None)
            tc.update({"normalize_path": True, "merge_slashes": True,
                       "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
                       "common_http_protocol_options": {"idle_timeout": "3600s"}})
            assert value["typed_config"]["@type"] == tc["@type"]
            _proto_merge(hcm, value)
            tc = hcm["typed_config"]
            assert tc["common_http_protocol_options"] == {"idle_timeout": "3600s",
                                                           "headers_with_underscores_action": "REJECT_REQUEST"}

    with Envoy(plugin_config={"required": True}, patch=as_istio_builds_it, name="deploy-hardening") as e:
        rc = subprocess.run([ENVOY, "--mode", "validate", "-c", e.write_config(), "--disable-hot-restart", "-l", "error"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert rc.returncode == 0, rc.stdout + rc.stderr

        def get(path, headers=()):
            c = http.client.HTTPConnection("127.0.0.1", e.port, timeout=5)
            c.request("GET", path, headers=dict(headers))
            r = c.getresponse()
            return r.status, r.read()

        assert get("/api/x", [("x_dpop_jkt", "forged")])[0] == 400
        assert get("/public%2F..%2Fapi/x")[0] == 400
        assert get("/api/x")[0] == 401          # the filter still answers
        status, body = get("/x//y/../z", [("x-forwarded-proto", "https")])
        assert status == 401 and json.loads(body)["instance"] == "/x/z"

