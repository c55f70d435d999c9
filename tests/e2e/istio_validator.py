"""The Istio WasmPlugin validator of the deploy tests: the CRD's OpenAPI schema (jsonschema)
plus what the API server adds — the CEL rules (x-kubernetes-validations, implemented here by
hand), list-map key uniqueness, int32, object names — and the manifest loaders."""
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

ISTIO_DIR = os.path.join(ROOT, "envoy", "istio")
# The in-repo copy (tests/vectors/istio, see its README); SHARED_DIR=<dir> uses <dir>/istio.
SHARED_DIR = os.environ.get("SHARED_DIR") or os.path.join(ROOT, "tests", "vectors")
SCHEMA_PATH = os.path.join(SHARED_DIR, "istio", "wasmplugin_v1alpha1.json")
CRD_PATH = os.path.join(SHARED_DIR, "istio", "wasmplugin-crd.yaml")
MAKE_IMAGE = os.path.join(ROOT, "scripts", "make-image.sh")
OCI_DIR = os.path.join(ROOT, "target", "oci")

MANIFEST_FILES = sorted(glob.glob(os.path.join(ISTIO_DIR, "*.yaml")))


def load_docs(path):
    # PyYAML reads YAML 1.1 like Kubernetes (sigs.k8s.io/yaml): a bare `off` is a boolean there too.
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def all_docs():
    return [(os.path.basename(p), i, d) for p in MANIFEST_FILES for i, d in enumerate(load_docs(p))]


def wasmplugins():
    return [(f, i, d) for f, i, d in all_docs() if d.get("kind") == "WasmPlugin"]


def plugin_ids():
    return [f"{f}#{i}:{d['metadata']['name']}" for f, i, d in wasmplugins()]


# ---- Go's net/url.ParseRequestURI, which CEL's isURL()/url() use in Kubernetes -------------

def _go_get_scheme(raw):
    for i, c in enumerate(raw):
        if "a" <= c <= "z" or "A" <= c <= "Z":
            continue
        if "0" <= c <= "9" or c in "+-.":
            if i == 0:
                return "", raw
            continue
        if c == ":":
            if i == 0:
                raise ValueError("missing protocol scheme")
            return raw[:i], raw[i + 1:]
        return "", raw
    return "", raw


_HEX = set("0123456789abcdefABCDEF")
_HOST_OK = set("!$&'()*+,;=:[]<>\"-_.~")
_USERINFO_OK = set("-._:~!$&'()*+,;=%@")


def _go_unescape(s, host=False):
    i = 0
    while i < len(s):
        c = s[i]
        if c == "%":
            pair = s[i + 1:i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise ValueError("invalid URL escape")
            if host and int(pair[0], 16) < 8 and s[i:i + 3] != "%25":
                raise ValueError("invalid URL escape")
            i += 3
            continue
        if host and ord(c) < 0x80 and not (c.isascii() and c.isalnum()) and c not in _HOST_OK:
            raise ValueError("invalid character in host name")
        i += 1


def _go_valid_optional_port(port):
    return port == "" or (port[0] == ":" and all("0" <= b <= "9" for b in port[1:]))


def _go_parse_host(host):
    if host.startswith("["):
        i = host.rfind("]")
        if i < 0:
            raise ValueError("missing ']' in host")
        if not _go_valid_optional_port(host[i + 1:]):
            raise ValueError("invalid port")
    else:
        i = host.rfind(":")
        if i != -1 and not _go_valid_optional_port(host[i:]):
            raise ValueError("invalid port after host")
    _go_unescape(host, host=True)


def _go_parse_authority(authority):
    i = authority.rfind("@")
    _go_parse_host(authority if i < 0 else authority[i + 1:])
    if i >= 0:
        userinfo = authority[:i]
        if not all((c.isascii() and c.isalnum()) or c in _USERINFO_OK for c in userinfo):
            raise ValueError("invalid userinfo")
        _go_unescape(userinfo)


def go_parse_request_uri(raw):
    """Port of net/url.ParseRequestURI: returns the (lower-cased) scheme or raises ValueError."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise ValueError("invalid control character in URL")
    if raw == "":
        raise ValueError("empty url")
    if raw == "*":
        return ""
    scheme, rest = _go_get_scheme(raw)
    scheme = scheme.lower()
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.split("?", 1)[0]
    if not rest.startswith("/"):
        if scheme:
            return scheme  # opaque
        raise ValueError("invalid URI for request")
    if scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        _go_parse_authority(authority)
    _go_unescape(rest)
    return scheme


def cel_is_url(s):
    try:
        go_parse_request_uri(s)
        return True
    except ValueError:
        return False


def cel_url_scheme_rule(s):
    allowed = ["", "http", "https", "oci", "file"]
    if cel_is_url(s):
        return go_parse_request_uri(s) in allowed
    return cel_is_url("http://" + s) and go_parse_request_uri("http://" + s) in allowed


def _has(obj, field):
    return isinstance(obj, dict) and obj.get(field) is not None


# Every CEL rule of the WasmPlugin CRD, keyed by its text with whitespace collapsed. A rule the
# CRD gains later fails test_every_cel_rule_is_implemented until it is added here.
CEL_RULES = {
    '!self.contains("*")': lambda v: "*" not in v,
    'self.all(key, !key.contains("*"))': lambda m: all("*" not in k for k in m),
    "self.all(key, key.size() != 0)": lambda m: all(len(k) != 0 for k in m),
    "self.size() == 0": lambda v: len(v) == 0,
    '(has(self.valueFrom) ? self.valueFrom : "") != "HOST" || !has(self.value)':
        lambda e: (e["valueFrom"] if _has(e, "valueFrom") else "") != "HOST" or not _has(e, "value"),
    "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1":
        lambda s: sum(_has(s, f) for f in ("selector", "targetRef", "targetRefs")) <= 1,
    'isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : '
    '(isURL("http://" + self) && url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])':
        cel_url_scheme_rule,
}


def norm_rule(rule):
    return " ".join(rule.split())


def schema_rules(node, out=None):
    out = set() if out is None else out
    if isinstance(node, dict):
        for r in node.get("x-kubernetes-validations", []):
            out.add(norm_rule(r["rule"]))
        for v in node.values():
            schema_rules(v, out)
    elif isinstance(node, list):
        for v in node:
            schema_rules(v, out)
    return out


DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def k8s_checks(schema, value, path, errors):
    """What the API server checks beyond the OpenAPI schema jsonschema sees."""
    if value is None:
        return
    for v in schema.get("x-kubernetes-validations", []):
        rule = norm_rule(v["rule"])
        fn = CEL_RULES.get(rule)
        if fn is None:
            errors.append(f"{path}: CEL rule not implemented by this test: {rule}")
        elif not fn(value):
            errors.append(f"{path}: {v['message']}")
    if schema.get("format") == "int32" and isinstance(value, int) and not -2**31 <= value < 2**31:
        errors.append(f"{path}: {value} is not an int32")
    if isinstance(value, list):
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen = set()
            for item in value:
                k = tuple(item.get(key) if isinstance(item, dict) else None for key in keys)
                if k in seen:
                    errors.append(f"{path}: duplicate entry for key {dict(zip(keys, k))}")
                seen.add(k)
        for i, item in enumerate(value):
            if "items" in schema:
                k8s_checks(schema["items"], item, f"{path}[{i}]", errors)
    elif isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                k8s_checks(props[k], v, f"{path}.{k}", errors)
            elif isinstance(extra, dict):
                k8s_checks(extra, v, f"{path}.{k}", errors)


@pytest.fixture(scope="module")
def schema():
    if not os.path.exists(SCHEMA_PATH):
        pytest.fail(f"{SCHEMA_PATH} missing (tests/vectors/istio in the repository, or SHARED_DIR)")
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def validate_wasmplugin(schema, doc):
    """All errors the API server would report for this WasmPlugin (empty list: accepted)."""
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        errors.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    ns = meta.get("namespace")
    if ns is not None and (not isinstance(ns, str) or len(ns) > 63 or not DNS1123_LABEL.match(ns)):
        errors.append(f"metadata.namespace: {ns!r} is not a DNS-1123 label")
    k8s_checks(schema, doc, "", errors)
    return errors


# ---- the manifests --------------------------------------------------------------------------
