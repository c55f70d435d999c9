"""Real redis-server and dpop-replay processes for the remote-store e2e tests."""
import http.client
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time

from harness import LOG_DIR, ROOT, free_port

REPLAY_BIN = os.environ.get("DPOP_REPLAY_BIN") or os.path.join(ROOT, "target/release/dpop-replay")


def wait_port(port, timeout=15, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening")


class Redis:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.proc = None

    def start(self):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not installed (make e2e installs the Debian package)")
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"


class Replay:
    """The dpop-replay service (release binary)."""

    def __init__(self, backend="memory", redis=None, port=None, extra=()):
        self.port = port or free_port()
        self.backend = backend
        self.redis = redis
        self.extra = list(extra)
        self.proc = None

    def start(self):
        args = [REPLAY_BIN, "--listen", f"127.0.0.1:{self.port}", "--backend", self.backend, *self.extra]
        if self.redis is not None:
            args += ["--redis-url", self.redis.url]
        os.makedirs(LOG_DIR, exist_ok=True)
        self.log = open(os.path.join(LOG_DIR, f"dpop-replay-{self.port}.log"), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()


class SlowServer:
    """Answers 201 after `delay` seconds: a replay service slower than the filter's timeout."""

    def __init__(self, delay):
        delay_s = delay

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                time.sleep(delay_s)
                try:
                    self.send_response(201)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()


def remote_patch(replay_port, http2=True):
    """Patch envoy-redis.yaml's dpop_replay cluster to the given port; `http2=False` makes it
    HTTP/1.1 (the shipped cluster is HTTP/2, which the gRPC transport needs)."""
    from harness import walk

    def patch(bootstrap, envoy):
        for n in walk(bootstrap):
            if n.get("name") == "dpop_replay" and "load_assignment" in n:
                for ep in walk(n["load_assignment"]):
                    sa = ep.get("socket_address")
                    if sa:
                        sa["port_value"] = replay_port
                opts = n["typed_extension_protocol_options"][
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                opts["explicit_http_config"] = (
                    {"http2_protocol_options": {}} if http2 else {"http_protocol_options": {}})
    return patch


def with_transport(cfg, transport):
    """envoy-redis.yaml's plugin config for replay.transport `transport` ("grpc", as shipped:
    one gRPC stream per worker; "http": a callout per check or batch, HTTP/1.1 cluster). The
    matching cluster: `remote_patch(port, http2=transport == "grpc")`."""
    cfg["replay"]["transport"] = transport
    if transport == "grpc":
        cfg["replay"].pop("path", None)
    return cfg
