"""ARCP 2.1.2 (PyPI arcp-py) behind Envoy + dpop-guard with the shipped envoy/envoy-arcp.yaml:
redis-server (ARCP's Redis, also the replay store's), dpop-replay (Redis backend), ARCP (uvicorn,
from the venv `make arcp-venv` builds) and Envoy.

- tests/e2e/test_arcp.py: ArcpStack, every process on a free port;
- `make run-arcp` (this file as a script): the shipped ports (Envoy 10000, admin 9901, ARCP 8001,
  dpop-replay 8081, Redis $REDIS_PORT or 6379) and a client command to walk the agent flow.
"""
import http.client
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DPOP, ENVOY, LOG_DIR, ROOT, Envoy, LoggedProcess, free_port, walk  # noqa: E402
from services import REPLAY_BIN, Redis, Replay, wait_port  # noqa: E402

ARCP_VERSION = "2.1.2"
ARCP_VENV = os.environ.get("ARCP_VENV") or os.path.join(ROOT, "target", "arcp-venv")
ARCP_PYTHON = os.path.join(ARCP_VENV, "bin", "python")

# Demo/test values only: ARCP refuses to start without them.
JWT_SECRET = "arcp-demo-jwt-secret-change-me-0123456789"
AGENT_KEY = "arcp-demo-agent-key-0123456789"
AGENT_TYPE = "testing"


def arcp_env(port, redis_port, workdir, **overrides):
    """ARCP's environment: required settings, its Redis, Three-Phase Registration on, and ARCP's
    own DPoP check on too (DPOP_REQUIRED=true: it then re-checks what the gateway let through)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCP_", "DPOP_", "REDIS_"))}
    env.update({
        "ENVIRONMENT": "development",          # TrustedHost "*"; production wants TRUSTED_HOSTS
        "TZ": "UTC",
        "ALLOWED_AGENT_TYPES": f"{AGENT_TYPE},automation",
        "JWT_SECRET": JWT_SECRET,
        "JWT_ALGORITHM": "HS256",
        "JWT_EXPIRE_MINUTES": "60",
        "ADMIN_USERNAME": "admin",
        "ADMIN_PASSWORD": "arcp-demo-admin-password-0123",
        "AGENT_KEYS": AGENT_KEY,
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(redis_port),
        "REDIS_DB": "0",
        "ARCP_HOST": "127.0.0.1",
        "ARCP_PORT": str(port),
        "ARCP_LOGS_DIR": os.path.join(workdir, "logs"),
        "ARCP_DATA_DIR": os.path.join(workdir, "data"),
        "ARCP_TPR": "true",
        # The static endpoint contract check probes 14 agent routes; the demo agent serves /health.
        "ARCP_TPR_ENDPOINT_VALIDATION": "false",
        "DPOP_ENABLED": "true",
        "DPOP_REQUIRED": "true",
        "DPOP_ALGORITHMS": "EdDSA,ES256",
        # ARCP's brute-force limiter counts 401/403 per client; the tests send refusals on purpose.
        "RATE_LIMIT_RPM": "10000",
        "RATE_LIMIT_BURST": "1000",
    })
    env.update(overrides)
    return env


class Arcp(LoggedProcess):
    """ARCP under uvicorn, as its docs run it (`uvicorn arcp.__main__:app`), with uvicorn's proxy
    headers trusted from 127.0.0.1 (Envoy): the client address and scheme come from Envoy."""

    def __init__(self, redis_port, port=None, name="arcp", **env):
        self.port = port or free_port()
        self.redis_port = redis_port
        self.workdir = os.path.join(LOG_DIR, f"{name}-{self.port}")
        self.env = arcp_env(self.port, redis_port, self.workdir, **env)
        self.proc = None
        self.log_path = os.path.join(self.workdir, "arcp.log")

    def start(self, timeout=60):
        if not os.path.exists(ARCP_PYTHON):
            raise RuntimeError(f"{ARCP_PYTHON} missing: run `make arcp-venv` (make e2e does it)")
        os.makedirs(os.path.join(self.workdir, "logs"), exist_ok=True)
        os.makedirs(os.path.join(self.workdir, "data"), exist_ok=True)
        self.logf = open(self.log_path, "w")
        # cwd = its own directory: ARCP loads a .env from the working directory (python-dotenv)
        self.proc = subprocess.Popen(
            [ARCP_PYTHON, "-m", "uvicorn", "arcp.__main__:app", "--host", "127.0.0.1",
             "--port", str(self.port), "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"],
            cwd=self.workdir, env=self.env, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ARCP exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("ARCP not ready:\n" + self.log()[-3000:])


    @property
    def origin(self):
        return f"http://127.0.0.1:{self.port}"


def cluster_ports(**ports):
    """Envoy patch: the named clusters' endpoints to the given ports."""
    def patch(bootstrap, _envoy):
        for n in walk(bootstrap):
            if n.get("name") in ports and "load_assignment" in n:
                for ep in walk(n["load_assignment"]):
                    sa = ep.get("socket_address")
                    if sa:
                        sa["port_value"] = ports[n["name"]]
    return patch


class ArcpStack:
    """Redis, dpop-replay, ARCP and Envoy with envoy/envoy-arcp.yaml (ports patched only)."""

    def __init__(self, plugin_config=None, concurrency=2, **arcp_env_overrides):
        self.plugin_config = plugin_config
        self.concurrency = concurrency
        self.arcp_env = arcp_env_overrides
        self.redis = self.replay = self.arcp = self.envoy = None

    def start(self):
        try:
            self.redis = Redis().start()
            self.replay = Replay("redis", self.redis, extra=["--redis-timeout-ms", "100"]).start()
            self.arcp = Arcp(self.redis.port, **self.arcp_env).start()
            self.envoy = Envoy(self.plugin_config, yaml_name="envoy-arcp.yaml", concurrency=self.concurrency,
                               name="arcp", patch=cluster_ports(arcp=self.arcp.port, dpop_replay=self.replay.port))
            self.envoy.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for p in (self.envoy, self.arcp, self.replay, self.redis):
            if p is not None:
                p.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self.envoy is not None and self.envoy.proc is not None:
            self.envoy.assert_no_panic()


def run():
    """`make run-arcp`: the shipped ports, until Ctrl-C."""
    redis_port = int(os.environ.get("REDIS_PORT", "6379"))
    demo = os.path.join(ROOT, "target", "demo")
    os.makedirs(demo, exist_ok=True)
    key = os.path.join(demo, "arcp-agent-key.json")
    if not os.path.exists(key):
        with open(key, "w") as f:
            f.write(subprocess.run([DPOP, "keygen", "--alg", "EdDSA"], capture_output=True, text=True,
                                   check=True).stdout)
    procs = []
    try:
        redis = Redis(port=redis_port).start()
        procs.append(redis)
        replay = Replay("redis", redis, port=8081).start()
        procs.append(replay)
        arcp = Arcp(redis_port, port=8001, name="run-arcp")
        procs.append(arcp)
        arcp.start()
        envoy_log = open(os.path.join(demo, "envoy-arcp.log"), "w")
        envoy = subprocess.Popen([ENVOY, "-c", "envoy/envoy-arcp.yaml", "--concurrency", "2",
                                  "--disable-hot-restart", "-l", os.environ.get("ENVOY_LOG_LEVEL", "info")],
                                 cwd=ROOT, stdout=envoy_log, stderr=subprocess.STDOUT)
        wait_port(10000, proc=envoy)
        py = os.path.relpath(sys.executable, ROOT)
        dpop_rel = os.path.relpath(DPOP, ROOT)
        print(f"""
  ARCP {ARCP_VERSION} behind dpop-guard (envoy/envoy-arcp.yaml)
    gateway      http://127.0.0.1:10000   (Envoy admin http://127.0.0.1:9901; log target/demo/envoy-arcp.log)
    ARCP         http://127.0.0.1:8001    (direct, for comparison; log {os.path.relpath(arcp.log_path, ROOT)})
    dpop-replay  http://127.0.0.1:8081    (replay store, on ARCP's Redis)
    redis-server 127.0.0.1:{redis_port}
    dpop-replay binary: {os.path.relpath(REPLAY_BIN, ROOT)}

  In another terminal, walk ARCP's agent flow through the gateway (a fresh proof per request):

    {py} tests/e2e/arcp_client.py --gateway http://127.0.0.1:10000 --key {os.path.relpath(key, ROOT)} --agent-key {AGENT_KEY}

  An agent route without a proof (401 dpop-required; ARCP alone does not check DPoP there):

    curl -si http://127.0.0.1:10000/agents/any-agent

  A public route (policy off): curl -s http://127.0.0.1:10000/health
  A proof by hand: {dpop_rel} proof --key {os.path.relpath(key, ROOT)} --htm GET --htu http://127.0.0.1:10000/agents

  Ctrl-C stops everything.
""", flush=True)
        envoy.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if "envoy" in locals() and envoy.poll() is None:
            envoy.terminate()
            envoy.wait()
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    run()
