"""Our own client for ARCP's documented agent flow (ARCP 2.1.2, Three-Phase Registration):

    POST /auth/agent/request_temp_token    agent_id, agent_type, agent_key  -> temp_token
    POST /auth/agent/validate_compliance   temp token; endpoint, capabilities -> 202, validation_id
    GET  /auth/agent/validation/{id}       temp token; poll until "passed"  -> validated_token
    POST /agents/register                  validated token; the registration -> access_token
    GET  /agents/{agent_id}                access token                      -> the agent

Every request carries a fresh DPoP proof made by the `dpop` CLI (with `ath` when a token is
sent), and tokens go as `Authorization: Bearer` (the only scheme ARCP reads). During validation
ARCP probes the agent's own endpoint (`GET <endpoint>/health` must answer its agent_id):
AgentHealth is that endpoint. Standard library only, so any python3 runs it:

    python3 tests/e2e/arcp_client.py --gateway http://127.0.0.1:10000 --agent-key KEY
"""
import argparse
import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DPOP = os.environ.get("DPOP_BIN") or os.path.join(ROOT, "target/release/dpop")


class FlowError(RuntimeError):
    """A step of the agent flow got an answer it cannot continue from."""

    def __init__(self, step, reply):
        super().__init__(f"{step}: HTTP {reply.status}: {reply.body[:500]!r}")
        self.step = step
        self.reply = reply


class Reply:
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


def dpop(*args):
    r = subprocess.run([DPOP, *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"dpop {args[0]} failed ({r.returncode}): {r.stderr}")
    return r.stdout.strip()


class ArcpAgent:
    """One agent talking to ARCP at `origin` (the gateway), signing proofs with `key` (a JWK
    file from `dpop keygen`). `htu_origin` is what proofs name (default: `origin`)."""

    def __init__(self, origin, key, htu_origin=None, timeout=30):
        self.origin = origin.rstrip("/")
        u = urllib.parse.urlsplit(self.origin)
        self.host, self.port = u.hostname, u.port or 80
        self.key = key
        self.htu_origin = (htu_origin or self.origin).rstrip("/")
        self.timeout = timeout
        self.sent = []  # (method, path, status) of every request, in order

    def proof(self, method, path, token=None, htu_origin=None):
        htu = (htu_origin or self.htu_origin) + path.split("?", 1)[0]
        args = ["proof", "--key", self.key, "--htm", method, "--htu", htu]
        if token:
            args += ["--token", token]
        return dpop(*args)

    def call(self, method, path, body=None, token=None, proof="fresh", headers=(), scheme="Bearer"):
        """One request. proof: "fresh" (a new proof for this request), None (no DPoP header),
        or a proof string to send as is; the token goes as `Authorization: <scheme> <token>`."""
        h = [("Host", f"{self.host}:{self.port}")]
        if proof == "fresh":
            proof = self.proof(method, path, token)
        if proof:
            h.append(("DPoP", proof))
        if token:
            h.append(("Authorization", f"{scheme} {token}"))
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h.append(("Content-Type", "application/json"))
            h.append(("Content-Length", str(len(data))))
        h.extend(headers)
        c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in h:
                c.putheader(k, v)
            c.endheaders(data)
            r = c.getresponse()
            reply = Reply(r.status, r.getheaders(), r.read())
        finally:
            c.close()
        self.sent.append((method, path, reply.status))
        return reply

    # ---- the flow, one method per step ----

    def request_temp_token(self, agent_id, agent_type, agent_key):
        r = self.call("POST", "/auth/agent/request_temp_token",
                      {"agent_id": agent_id, "agent_type": agent_type, "agent_key": agent_key})
        if r.status != 200:
            raise FlowError("request_temp_token", r)
        return r.json()["temp_token"]

    def validate_compliance(self, temp_token, agent_id, agent_type, endpoint, capabilities):
        r = self.call("POST", "/auth/agent/validate_compliance",
                      {"agent_id": agent_id, "agent_type": agent_type, "endpoint": endpoint,
                       "capabilities": capabilities}, token=temp_token)
        if r.status != 202:
            raise FlowError("validate_compliance", r)
        return r.json()["validation_id"]

    def poll_validation(self, temp_token, validation_id, timeout=30.0, interval=0.25):
        deadline = time.time() + timeout
        while True:
            r = self.call("GET", f"/auth/agent/validation/{validation_id}", token=temp_token)
            if r.status != 200:
                raise FlowError("poll", r)
            status = r.json().get("status")
            if status == "passed":
                return r.json()["validated_token"]
            if status != "pending" or time.time() > deadline:
                raise FlowError(f"poll ({status})", r)
            time.sleep(interval)

    def register(self, validated_token, registration):
        r = self.call("POST", "/agents/register", registration, token=validated_token)
        if r.status != 200:
            raise FlowError("register", r)
        return r.json()["access_token"]

    def get_agent(self, access_token, agent_id):
        r = self.call("GET", f"/agents/{agent_id}?include_metrics=true", token=access_token)
        if r.status != 200:
            raise FlowError("get_agent", r)
        return r.json()

    def walk(self, agent_id, agent_type, agent_key, endpoint, log=lambda *_: None):
        """The whole flow; returns the tokens and the registered agent."""
        capabilities = ["echo"]
        temp = self.request_temp_token(agent_id, agent_type, agent_key)
        log("request_temp_token", "temp token")
        vid = self.validate_compliance(temp, agent_id, agent_type, endpoint, capabilities)
        log("validate_compliance", vid)
        validated = self.poll_validation(temp, vid)
        log("poll", "validated token")
        access = self.register(validated, registration(agent_id, agent_type, endpoint, capabilities))
        log("register", "access token")
        agent = self.get_agent(access, agent_id)
        log("get_agent", f"{agent['agent_id']} ({agent['name']})")
        return {"temp_token": temp, "validation_id": vid, "validated_token": validated,
                "access_token": access, "agent": agent}


def registration(agent_id, agent_type, endpoint, capabilities):
    """An AgentRegistration body ARCP 2.1.2 accepts."""
    return {
        "name": "dpop-guard demo agent",
        "agent_id": agent_id,
        "agent_type": agent_type,
        "endpoint": endpoint,
        "capabilities": capabilities,
        "context_brief": "An agent registered through the dpop-guard gateway",
        "version": "1.0.0",
        "owner": "dpop-guard",
        "public_key": "dpop-guard-demo-agent-public-key-0123456789",
        "communication_mode": "remote",
        "metadata": {"registered_by": "dpop-guard tests/e2e/arcp_client.py"},
    }


class AgentHealth:
    """The agent's own endpoint, as ARCP's validation probes it: GET /health answers
    {"agent_id": ..., "status": "healthy"}."""

    def __init__(self, agent_id, port=0):
        body = json.dumps({"agent_id": agent_id, "status": "healthy"}).encode()

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path.split("?")[0] == "/health" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def main():
    ap = argparse.ArgumentParser(description="Walk ARCP's agent flow through the DPoP gateway.")
    ap.add_argument("--gateway", default="http://127.0.0.1:10000")
    ap.add_argument("--key", default=os.path.join(ROOT, "target/demo/arcp-agent-key.json"),
                    help="the agent's DPoP key (JWK file; made with `dpop keygen` if missing)")
    ap.add_argument("--agent-key", required=True, help="an ARCP registration key (ARCP's AGENT_KEYS)")
    ap.add_argument("--agent-id", default=f"demo-agent-{uuid.uuid4().hex[:8]}")
    ap.add_argument("--agent-type", default="testing")
    a = ap.parse_args()
    if not os.path.exists(a.key):
        os.makedirs(os.path.dirname(a.key), exist_ok=True)
        with open(a.key, "w") as f:
            f.write(dpop("keygen", "--alg", "EdDSA"))
    print(f"agent {a.agent_id}, DPoP key {a.key} (jkt {dpop('thumbprint', '--key', a.key)})")
    health = AgentHealth(a.agent_id)
    agent = ArcpAgent(a.gateway, a.key)
    try:
        agent.walk(a.agent_id, a.agent_type, a.agent_key, health.endpoint,
                   log=lambda step, what: print(f"  {agent.sent[-1][0]:4} {agent.sent[-1][1]:44} "
                                                f"{agent.sent[-1][2]}  {step}: {what}"))
    except FlowError as e:
        print(f"  failed at {e}", file=sys.stderr)
        return 1
    finally:
        health.stop()
    print(f"registered; {len(agent.sent)} requests, each with its own proof, all through {a.gateway}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
