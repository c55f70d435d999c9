"""Issue 5: cluster-wide replay protection through dpop-replay (Redis or memory backend),
with real Envoy processes, a real redis-server and the real dpop-replay binary."""
import concurrent.futures
import json
import time

import pytest

from harness import Envoy, Key, assert_problem, plugin_config_of, load_yaml
from services import Redis, Replay, SlowServer, remote_patch, with_transport

N = 200


def remote_cfg(**replay):
    cfg = json.loads(plugin_config_of(load_yaml("envoy-redis.yaml")))
    cfg["replay"].update(replay)
    return cfg


def envoy_for(replay_port, name, transport="grpc", **replay):
    """The shipped envoy-redis.yaml (transport grpc), or with transport "http"."""
    return Envoy(with_transport(remote_cfg(**replay), transport), yaml_name="envoy-redis.yaml",
                 concurrency=2, name=name, patch=remote_patch(replay_port, http2=transport == "grpc"))


def fire_same_proof(envoys, proof, n=N):
    """Send one proof n times concurrently, alternating between the Envoys."""
    def one(i):
        return envoys[i % len(envoys)].request("GET", "/api/race", [("DPoP", proof)]).status
    with concurrent.futures.ThreadPoolExecutor(max_workers=48) as ex:
        return list(ex.map(one, range(n)))


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_exactly_once_across_two_envoys(backend):
    redis = Redis().start() if backend == "redis" else None
    # redis: one dpop-replay per Envoy, both on the same Redis; memory: one shared dpop-replay
    replays = [Replay("redis", redis).start(), Replay("redis", redis).start()] if redis else [Replay("memory").start()]
    try:
        ports = [r.port for r in replays] * (2 // len(replays))
        envoys = []
        for i, port in enumerate(ports):
            cfg = remote_cfg()
            # both Envoys serve one public origin, so one proof's htu is valid on either
            cfg["public_origin"] = "https://api.example.com"
            envoys.append(Envoy(cfg, yaml_name="envoy-redis.yaml", concurrency=2, name=f"remote-{i}",
                                patch=remote_patch(port)).start())
        try:
            key = Key("EdDSA")
            statuses = fire_same_proof(envoys, key.proof("GET", "https://api.example.com/api/race"))
            assert statuses.count(200) == 1, statuses
            assert statuses.count(401) == N - 1, statuses
            # and fresh proofs keep working on both
            for e in envoys:
                r = e.request("GET", "/api/x", [("DPoP", key.proof("GET", "https://api.example.com/api/x"))])
                assert r.status == 200, r.body
            detected = sum(e.stats().get("dpop_guard.replay.detected", 0) for e in envoys)
            assert detected == N - 1
        finally:
            for e in envoys:
                e.stop()
                e.assert_no_panic()
    finally:
        for r in replays:
            r.stop()
        if redis:
            redis.stop()


def _ok(e, key, path="/api/x", body=None):
    method = "POST" if body is not None else "GET"
    return e.request(method, path, [("DPoP", key.proof(method, e.origin + path))], body=body)


@pytest.mark.parametrize("on_error", ["deny", "allow"])
def test_redis_down_then_back(on_error):
    redis = Redis().start()
    replay = Replay("redis", redis, extra=["--redis-timeout-ms", "100"]).start()
    key = Key("EdDSA")
    try:
        with envoy_for(replay.port, f"redis-fault-{on_error}", on_error=on_error) as e:
            assert _ok(e, key).status == 200
            redis.stop()
            t0 = time.time()
            r = _ok(e, key)
            assert time.time() - t0 < 2.0
            if on_error == "deny":
                assert_problem(r, "replay-check-unavailable", status=503)
            else:
                assert r.status == 200 and r.json()["x-dpop-jkt"] == key.jkt
            assert e.stats().get("dpop_guard.replay.errors", 0) >= 1
            # Envoy keeps serving other routes meanwhile
            assert e.request("GET", "/healthz").status == 200
            # Redis back on the same port: recovery without restarting Envoy or dpop-replay
            redis = Redis(port=redis.port).start()
            deadline = time.time() + 10
            while time.time() < deadline and _ok(e, key).status != 200:
                time.sleep(0.2)
            assert _ok(e, key).status == 200
            # replay detection works again after recovery
            p = key.proof("GET", e.origin + "/api/again")
            assert e.request("GET", "/api/again", [("DPoP", p)]).status == 200
            assert_problem(e.request("GET", "/api/again", [("DPoP", p)]), "dpop-invalid")
    finally:
        replay.stop()
        redis.stop()


@pytest.mark.parametrize("on_error", ["deny", "allow"])
def test_replay_service_killed(on_error):
    replay = Replay("memory").start()
    key = Key("ES256")
    with envoy_for(replay.port, f"svc-kill-{on_error}", on_error=on_error) as e:
        assert _ok(e, key).status == 200
        replay.stop()
        r = _ok(e, key)
        if on_error == "deny":
            assert_problem(r, "replay-check-unavailable", status=503)
        else:
            assert r.status == 200
        replay = Replay("memory", port=replay.port).start()
        deadline = time.time() + 10
        while time.time() < deadline and _ok(e, key).status != 200:
            time.sleep(0.2)
        assert _ok(e, key).status == 200
    replay.stop()


def test_slow_service_times_out():
    """replay.transport "http": the callout's timeout (an HTTP/1.1 server that answers late; the
    gRPC stream's timeout is test_replay_batching's stalled-service test)."""
    slow = SlowServer(delay=2.0).start()
    key = Key("EdDSA")
    try:
        with envoy_for(slow.port, "slow", transport="http", timeout_ms=100) as e:
            t0 = time.time()
            r = _ok(e, key)
            assert time.time() - t0 < 1.5, "request hung past the replay timeout"
            assert_problem(r, "replay-check-unavailable", status=503)
        with envoy_for(slow.port, "slow-allow", transport="http", timeout_ms=100, on_error="allow") as e:
            r = _ok(e, key, body=b"x" * 50_000)
            assert r.status == 200 and r.json()["body_bytes"] == 50_000
    finally:
        slow.stop()


def test_body_held_until_replay_answer():
    """A POST body arrives upstream intact after the callout resumes the request."""
    replay = Replay("memory").start()
    key = Key("EdDSA")
    try:
        with envoy_for(replay.port, "body") as e:
            for size in (0, 1, 70_000, 300_000):
                r = _ok(e, key, path="/api/upload", body=b"a" * size)
                assert r.status == 200, r.body
                assert r.json()["body_bytes"] == size
    finally:
        replay.stop()


def test_unknown_cluster_is_an_error_not_a_crash():
    with Envoy(remote_cfg(cluster="no_such_cluster"), yaml_name="envoy-redis.yaml", name="nocluster") as e:
        key = Key("EdDSA")
        assert_problem(_ok(e, key), "replay-check-unavailable", status=503)
