"""Issue 14: a WebSocket (HTTP/1.1 Upgrade) through Envoy + dpop-guard. The client signs htm GET
and htu the http URL of the upgrade request (not ws://); the filter checks it like any GET, and
the upgraded connection carries frames both ways."""
import base64
import hashlib
import json
import os
import socket
import threading

import pytest

from craft import PyKey, proof
from harness import Envoy, Key, RawConnection, assert_problem, build_request, walk

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def frame(payload, opcode=0x1, mask=True):
    """One final frame (RFC 6455 5.2), payload < 64 KiB; clients mask, servers do not."""
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head = bytes([0x80 | opcode, bit | n])
    else:
        head = bytes([0x80 | opcode, bit | 126]) + n.to_bytes(2, "big")
    if not mask:
        return head + payload
    m = os.urandom(4)
    return head + m + bytes(b ^ m[i % 4] for i, b in enumerate(payload))


def read_frame(read_n):
    b0, b1 = read_n(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(read_n(2), "big")
    elif n == 127:
        n = int.from_bytes(read_n(8), "big")
    m = read_n(4) if b1 & 0x80 else None
    data = read_n(n)
    if m:
        data = bytes(b ^ m[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, data


class WsUpstream:
    """Answers an upgrade with 101 and the right Sec-WebSocket-Accept, sends one text frame with
    the request headers it saw (JSON), then echoes each client frame back upper-cased."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.sock.close()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        buf = b""

        def read_n(n):
            nonlocal buf
            while len(buf) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    raise ConnectionError
                buf += chunk
            out, buf = buf[:n], buf[n:]
            return out

        try:
            conn.settimeout(10)
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers.setdefault(k.strip().lower(), []).append(v.strip())
            if headers.get("upgrade", [""])[0].lower() != "websocket":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                return
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept_for(headers['sec-websocket-key'][0])}\r\n\r\n").encode())
            seen = {"line": lines[0], "x-dpop-jkt": headers.get("x-dpop-jkt"), "dpop": headers.get("dpop")}
            conn.sendall(frame(json.dumps(seen).encode(), mask=False))
            while True:
                op, data = read_frame(read_n)
                if op == 0x8:
                    conn.sendall(frame(b"", opcode=0x8, mask=False))
                    return
                conn.sendall(frame(data.upper(), opcode=op, mask=False))
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            conn.close()


def ws_patch(ws_port):
    """envoy.yaml with WebSocket upgrades on the gateway and /ws routed to the WebSocket server."""
    def patch(bootstrap, _envoy):
        (hcm,) = [n for n in walk(bootstrap) if n.get("stat_prefix") == "gateway"]
        hcm["upgrade_configs"] = [{"upgrade_type": "websocket"}]
        bootstrap["static_resources"]["clusters"].append({
            "name": "ws_upstream", "connect_timeout": "1s", "type": "STATIC",
            "load_assignment": {"cluster_name": "ws_upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": ws_port}}}}]}]},
        })
        (vh,) = [n for n in walk(bootstrap) if n.get("name") == "api" and "routes" in n]
        vh["routes"].insert(0, {"match": {"prefix": "/ws"}, "route": {"cluster": "ws_upstream"}})
    return patch


@pytest.fixture(scope="module")
def envoy():
    up = WsUpstream().start()
    with Envoy(patch=ws_patch(up.port), name="websocket") as e:
        yield e
    up.stop()


def upgrade(e, path, extra=()):
    key = base64.b64encode(os.urandom(16)).decode()
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
               ("Sec-WebSocket-Version", "13"), *extra]
    conn = e.raw_connection()
    return conn, key, conn.send(build_request("GET", path, headers, authority=f"127.0.0.1:{e.port}"))


def test_upgrade_with_proof(envoy):
    e, k = envoy, Key("EdDSA")
    conn, key, r = upgrade(e, "/ws/chat", [("DPoP", k.proof("GET", e.origin + "/ws/chat")), ("x-dpop-jkt", "forged")])
    with conn:
        assert r.status == 101, (r.status, r.body)
        assert r.header("sec-websocket-accept") == accept_for(key)
        assert r.header("upgrade").lower() == "websocket"

        def read_n(n):
            while len(conn.buf) < n:
                conn._fill()
            out, conn.buf = conn.buf[:n], conn.buf[n:]
            return out

        op, data = read_frame(read_n)
        seen = json.loads(data)
        assert op == 0x1 and seen["x-dpop-jkt"] == [k.jkt], seen
        assert seen["line"] == "GET /ws/chat HTTP/1.1" and seen["dpop"] is not None
        conn.sock.sendall(frame(b"ping through envoy"))
        assert read_frame(read_n) == (0x1, b"PING THROUGH ENVOY")
        conn.sock.sendall(frame(b"", opcode=0x8))
        assert read_frame(read_n)[0] == 0x8


def test_upgrade_without_proof(envoy):
    conn, _, r = upgrade(envoy, "/ws/chat")
    with conn:
        assert_problem(r, "dpop-required")


def test_upgrade_proof_must_name_the_http_url(envoy):
    e, k = envoy, Key("ES256")
    pk = PyKey("ES256")  # the dpop CLI refuses to sign a ws:// htu
    for p in (proof(pk, "GET", f"ws://127.0.0.1:{e.port}/ws/chat"), k.proof("GET", e.origin + "/ws/other")):
        conn, _, r = upgrade(e, "/ws/chat", [("DPoP", p)])
        with conn:
            assert_problem(r, "dpop-invalid")
    conn, _, r = upgrade(e, "/ws/chat", [("DPoP", k.proof("POST", e.origin + "/ws/chat"))])
    with conn:
        body = assert_problem(r, "dpop-invalid")
        assert body["detail"] == "DPoP proof htm does not match the request method"
