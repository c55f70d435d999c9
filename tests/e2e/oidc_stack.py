"""A real OAuth 2.0 authorization server for the e2e tests: panva's oidc-provider
(tests/e2e/oidc/as.mjs, npm versions pinned in tests/e2e/oidc/package-lock.json; `make oidc-deps`)
on 127.0.0.1, plain http, in memory — plus the oauth4webapi client of tests/e2e/oidc/client.mjs
and the Envoy pieces that point at it (a cluster, jwt_authn's remote_jwks).

The AS has DPoP, client_credentials, introspection (`/token/introspection`), revocation
(`/token/revocation`) and resource indicators with two resources: JWT_RESOURCE (ES256 JWT access
tokens, `kid` = the AS's `kid`) and OPAQUE_RESOURCE (opaque tokens; `cnf.jkt` in the
introspection answer). Every start makes a new signing key: `restart(kid=...)` is a key rotation.

Run it alone: `.venv/bin/python tests/e2e/oidc_stack.py [PORT]` (Ctrl-C stops it)."""
import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import LOG_DIR, ROOT, LoggedProcess, free_port, walk  # noqa: E402

OIDC_DIR = os.path.join(ROOT, "tests", "e2e", "oidc")
NODE = shutil.which("node")

CLIENT_ID, CLIENT_SECRET = "dpop-app", "dpop-app-secret-0123456789abcdef"
RS_ID, RS_SECRET = "dpop-guard-rs", "dpop-guard-rs-secret-0123456789ab"
JWT_RESOURCE = "https://api.example/jwt"
OPAQUE_RESOURCE = "https://api.example/opaque"
INTROSPECTION_PATH = "/token/introspection"
CLUSTER = "oidc_as"


def node_deps_missing():
    """A reason string when the npm packages are not installed, else None."""
    if not NODE:
        return "node not found (install Node.js >= 20)"
    for pkg in ("oidc-provider", "oauth4webapi"):
        if not os.path.isdir(os.path.join(OIDC_DIR, "node_modules", pkg)):
            return f"tests/e2e/oidc/node_modules/{pkg} missing: run `make oidc-deps` (make e2e does it)"
    return None


class OidcAS(LoggedProcess):
    """oidc-provider on 127.0.0.1:`port` (a free one by default). Context manager."""

    def __init__(self, port=None, kid="as-key-1", ttl=600, name="oidc-as"):
        self.port = port or free_port()
        self.kid = kid
        self.ttl = ttl
        self.name = name
        self.proc = None
        self.logf = None
        self.info = None
        self.starts = 0

    @property
    def issuer(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def authority(self):
        return f"127.0.0.1:{self.port}"

    @property
    def jwks_uri(self):
        return self.issuer + "/jwks"

    def start(self, timeout=20):
        os.makedirs(LOG_DIR, exist_ok=True)
        self.starts += 1
        self.log_path = os.path.join(LOG_DIR, f"{self.name}-{self.port}-{self.starts}.log")
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [NODE, "as.mjs", "--port", str(self.port), "--kid", self.kid, "--ttl", str(self.ttl),
             "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
             "--rs-id", RS_ID, "--rs-secret", RS_SECRET,
             "--jwt-resource", JWT_RESOURCE, "--opaque-resource", OPAQUE_RESOURCE],
            cwd=OIDC_DIR, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in self.log().splitlines():
                if line.startswith('{"ready":true'):
                    self.info = json.loads(line)
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"oidc-provider exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("oidc-provider not ready:\n" + self.log()[-3000:])

    def restart(self, kid=None):
        """Stop and start again on the same port; a new signing key (`kid`: its new kid).
        Tokens issued before are forgotten (in-memory storage)."""
        self.stop()
        if kid:
            self.kid = kid
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the client side (oauth4webapi) --
    def _client(self, *args, timeout=30):
        r = subprocess.run([NODE, "client.mjs", *args, "--issuer", self.issuer,
                            "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET],
                           cwd=OIDC_DIR, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"client.mjs {args[0]} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def token(self, resource, call=None):
        """A DPoP-bound token from the token endpoint (client_credentials, resource=...), asked
        by oauth4webapi with a fresh ES256 key of its own. {access_token, jkt, private_jwk, ...}
        plus `key_path` (the private JWK in a file, for `dpop proof --key`); with `call`, the
        client also GETs that URL with the token and its own proof: out["call"] = {status, body}."""
        args = ["token", "--resource", resource]
        if call:
            args += ["--call", call]
        out = self._client(*args)
        out["key_path"] = os.path.join(LOG_DIR, f"oidc-client-key-{out['jkt'][:12]}.json")
        with open(out["key_path"], "w") as f:
            json.dump(out["private_jwk"], f)
        return out

    def revoke(self, token):
        """RFC 7009 revocation by the token's client (oauth4webapi)."""
        return self._client("revoke", "--token", token)

    # -- direct calls (what a resource server sees) --
    def introspect(self, token, client_id=RS_ID, client_secret=RS_SECRET):
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        req = urllib.request.Request(
            self.issuer + INTROSPECTION_PATH, data=urllib.parse.urlencode({"token": token}).encode(),
            headers={"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def jwks(self):
        with urllib.request.urlopen(self.jwks_uri, timeout=5) as r:
            return json.loads(r.read())


# ---- Envoy pieces -----------------------------------------------------------------------------

def as_cluster(oidc_as, name=CLUSTER):
    """A STATIC Envoy cluster for the AS (plain http/1.1)."""
    return {
        "name": name,
        "connect_timeout": "1s",
        "type": "STATIC",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": oidc_as.port}}}}]}]},
    }


def add_as_cluster(oidc_as, name=CLUSTER):
    """An Envoy(patch=...) function adding the AS cluster to the bootstrap."""
    def patch(bootstrap, _envoy=None):
        bootstrap["static_resources"]["clusters"].append(as_cluster(oidc_as, name))
    return patch


def jwt_authn_remote_jwks(oidc_as, audiences=(JWT_RESOURCE,), name=CLUSTER):
    """An Envoy(patch=...) for envoy/envoy-jwt-authn.yaml: its provider trusts the AS (issuer,
    audiences) with the keys fetched from the AS's jwks_uri (remote_jwks over the AS cluster)
    instead of the inline demo key."""
    def patch(bootstrap, _envoy=None):
        add_as_cluster(oidc_as, name)(bootstrap)
        n = 0
        for f in walk(bootstrap):
            if f.get("name") == "envoy.filters.http.jwt_authn":
                for provider in f["typed_config"]["providers"].values():
                    provider.pop("local_jwks", None)
                    provider["issuer"] = oidc_as.issuer
                    provider["audiences"] = list(audiences)
                    provider["remote_jwks"] = {
                        "http_uri": {"uri": oidc_as.jwks_uri, "cluster": name, "timeout": "2s"},
                        "cache_duration": "300s",
                    }
                    n += 1
        assert n == 1, "expected one jwt_authn provider"
    return patch


if __name__ == "__main__":
    missing = node_deps_missing()
    if missing:
        sys.exit(missing)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    with OidcAS(port=port) as a:
        print(json.dumps(a.info, indent=2))
        print(f"token:  cd tests/e2e/oidc && node client.mjs token --issuer {a.issuer} "
              f"--resource {OPAQUE_RESOURCE} --client-id {CLIENT_ID} --client-secret {CLIENT_SECRET}")
        print(f"introspect: curl -u {RS_ID}:{RS_SECRET} -d token=... {a.issuer}{INTROSPECTION_PATH}")
        try:
            a.proc.wait()
        except KeyboardInterrupt:
            pass
