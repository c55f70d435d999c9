"""Issue 14: gRPC through Envoy + dpop-guard to a real gRPC server (grpcio, HTTP/2 upstream).
An allowed call carries a proof with htm POST and htu the method's URL; a refusal is a gRPC
answer (HTTP 200, trailers-only, grpc-status 16, grpc-message = the problem title, the same
WWW-Authenticate challenge), 14 for the 503 refusals."""
import json
from concurrent import futures

import grpc
import pytest

from harness import Envoy, Key, dpop, walk

SECRET = "arcp-demo-hs256-secret-0123456789abcdef"
METHOD = "/dpopguard.test.Echo/Say"


class EchoServer:
    """Unary /dpopguard.test.Echo/Say with bytes in and out (no protoc): answers JSON with the
    request bytes and the metadata that reached it."""

    def __init__(self):
        def say(request, context):
            md = {}
            for k, v in context.invocation_metadata():
                md.setdefault(k, []).append(v)
            return json.dumps({"request": request.decode(), "metadata": md}).encode()

        handler = grpc.method_handlers_generic_handler("dpopguard.test.Echo", {
            "Say": grpc.unary_unary_rpc_method_handler(say),  # no (de)serializers: bytes
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop(0)


def grpc_patch(grpc_port):
    """envoy.yaml plus an HTTP/2 cluster for the gRPC server and a route to it."""
    def patch(bootstrap, _envoy):
        bootstrap["static_resources"]["clusters"].append({
            "name": "grpc_upstream",
            "connect_timeout": "1s",
            "type": "STATIC",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                },
            },
            "load_assignment": {"cluster_name": "grpc_upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": grpc_port}}}}]}]},
        })
        (vh,) = [n for n in walk(bootstrap) if n.get("name") == "api" and "routes" in n]
        vh["routes"].insert(0, {"match": {"prefix": "/dpopguard.test.Echo/"}, "route": {"cluster": "grpc_upstream"}})
    return patch


@pytest.fixture(scope="module")
def server():
    s = EchoServer().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def envoy(server):
    with Envoy(patch=grpc_patch(server.port), name="grpc") as e:
        yield e


@pytest.fixture(scope="module")
def channel(envoy):
    with grpc.insecure_channel(f"127.0.0.1:{envoy.port}") as ch:
        yield ch


def call(channel, metadata, payload=b"hello"):
    say = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
    return say.with_call(payload, metadata=metadata, timeout=10)


def refusal(channel, metadata):
    with pytest.raises(grpc.RpcError) as ei:
        call(channel, metadata)
    err = ei.value
    md = dict(err.trailing_metadata() or ()) | dict(err.initial_metadata() or ())
    return err, md


def test_allowed_call_with_bound_token(envoy, channel):
    k = Key("EdDSA")
    token = dpop("token", "--secret", SECRET, "--bind-key", k.path)
    htu = f"http://127.0.0.1:{envoy.port}{METHOD}"
    resp, c = call(channel, [("authorization", f"DPoP {token}"), ("dpop", k.proof("POST", htu, token=token))])
    assert c.code() == grpc.StatusCode.OK
    echo = json.loads(resp)
    assert echo["request"] == "hello"
    assert echo["metadata"]["x-dpop-jkt"] == [k.jkt]
    assert echo["metadata"]["authorization"] == [f"DPoP {token}"]


def test_missing_proof_is_unauthenticated(envoy, channel):
    err, md = refusal(channel, [])
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.details() == "DPoP Proof Required"
    assert md.get("www-authenticate") == 'DPoP algs="EdDSA ES256 RS256"', md


def test_invalid_proof_is_unauthenticated(envoy, channel):
    k = Key("ES256")
    htu = f"http://127.0.0.1:{envoy.port}{METHOD}"
    err, md = refusal(channel, [("dpop", k.proof("GET", htu))])  # gRPC is POST
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.details() == "Invalid DPoP Proof"
    assert 'error="invalid_dpop_proof"' in md.get("www-authenticate", ""), md
    # and a proof for another method's URL
    err, _ = refusal(channel, [("dpop", k.proof("POST", f"http://127.0.0.1:{envoy.port}/dpopguard.test.Echo/Other"))])
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and err.details() == "Invalid DPoP Proof"


def test_grpc_refusal_on_the_wire(envoy):
    """The reply itself (HTTP/1.1 request with a gRPC content-type, as a grpc-web-less proxy
    would send it): status 200, grpc-status/grpc-message headers, no problem+json body."""
    r = envoy.request("POST", METHOD, [("content-type", "application/grpc"), ("te", "trailers")], body=b"")
    assert r.status == 200, (r.status, r.body)
    assert r.header("grpc-status") == "16"
    assert r.header("grpc-message") == "DPoP Proof Required"
    assert r.header("content-type") == "application/grpc"
    assert r.header("www-authenticate") == 'DPoP algs="EdDSA ES256 RS256"'
    assert b"problem" not in r.body and b"{" not in r.body
    # a non-gRPC content-type keeps the HTTP problem answer
    r = envoy.request("POST", METHOD, [("content-type", "application/json")], body=b"{}")
    assert r.status == 401 and r.header("content-type") == "application/problem+json"


def test_unavailable_for_503_refusals(server):
    """replay.store remote with a cluster Envoy does not know: 503 replay-check-unavailable over
    HTTP, grpc-status 14 over gRPC."""
    cfg = {"required": True, "replay": {"store": "remote", "cluster": "no_such_cluster"}}
    with Envoy(cfg, patch=grpc_patch(server.port), name="grpc-503") as e:
        k = Key("EdDSA")
        htu = f"http://127.0.0.1:{e.port}{METHOD}"
        with grpc.insecure_channel(f"127.0.0.1:{e.port}") as ch:
            err, md = refusal(ch, [("dpop", k.proof("POST", htu))])
        assert err.code() == grpc.StatusCode.UNAVAILABLE, (err.code(), err.details())
        assert err.details() == "Replay Check Unavailable"
        assert md.get("www-authenticate", "").startswith("DPoP algs="), md
