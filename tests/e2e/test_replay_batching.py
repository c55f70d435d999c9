"""Issue 17: coalesced remote replay checks, end to end — real Envoys running the built filter,
the real dpop-replay binary and a real redis-server. Exactly once under a burst of one proof
(batched and with `max_batch: 1`), mean batch size above one under 64 connections, and a Redis
outage in the middle of the load (fail closed, never a 200 for a replay, recovery).

Proofs are signed up front in Python (`craft`, the `cryptography` package: ~0.1 ms each), and
sent on keep-alive connections as prebuilt bytes."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from craft import PyKey, proof
from harness import (ROOT, Envoy, RawConnection, assert_problem, build_request, load_yaml,
                     plugin_config_of)
from services import Redis, Replay, remote_patch, wait_port, with_transport

REPLAYED = "DPoP jti already used (replay attack)"
ORIGIN = "https://api.example.com"


def remote_cfg(**replay):
    cfg = json.loads(plugin_config_of(load_yaml("envoy-redis.yaml")))
    cfg["replay"].update(replay)
    return cfg


def envoy_for(replay_port, name, public_origin=None, transport="grpc", **replay):
    cfg = with_transport(remote_cfg(**replay), transport)
    if public_origin:
        cfg["public_origin"] = public_origin
    return Envoy(cfg, yaml_name="envoy-redis.yaml", concurrency=2, name=name,
                 patch=remote_patch(replay_port, http2=transport == "grpc"))


TRANSPORTS = pytest.mark.parametrize("transport", ["http", "grpc"])


def signed(n, htu, keys=4):
    """n distinct proofs (fresh jti each) for GET htu, over a few Ed25519 keys."""
    ks = [PyKey("EdDSA") for _ in range(keys)]
    return [proof(ks[i % keys], "GET", htu) for i in range(n)]


def get_bytes(envoy, path, dpop_proof):
    return build_request("GET", path, [("DPoP", dpop_proof)], authority=f"127.0.0.1:{envoy.port}")


def summed(envoys, name):
    return sum(e.stats().get(name, 0) for e in envoys)


def replay_metrics(replay):
    status, text = replay.get("/metrics")
    assert status == 200, text
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(dpop_replay_\w+?)(?:\{result="(\w+)"\})? (\d+)$', line)
        if m:
            out[m.group(1) + (f".{m.group(2)}" if m.group(2) else "")] = int(m.group(3))
    return out


def problem_type(resp):
    if resp.header("content-type") != "application/problem+json":
        return None
    return resp.json()["type"].rsplit("/", 1)[-1]


def is_replay_refusal(resp):
    return resp.status == 401 and problem_type(resp) == "dpop-invalid" and resp.json()["detail"] == REPLAYED


def is_unavailable(resp):
    return resp.status == 503 and problem_type(resp) == "replay-check-unavailable"


def burst(targets, timeout=20):
    """Open one connection per (envoy, request bytes) first, then send all at once (a barrier):
    as many requests in Envoy at the same moment as Python can manage. Returns the Responses
    in order (an exception in place of a response that never came)."""
    conns = [RawConnection(e.port, timeout=timeout) for e, _ in targets]
    barrier = threading.Barrier(len(targets))
    out = [None] * len(targets)

    def one(i):
        barrier.wait()
        try:
            out[i] = conns[i].send(targets[i][1])
        except Exception as ex:  # a hang or a reset is a finding, reported by the caller
            out[i] = ex

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    return out


def closed_loop(envoy, requests, connections, timeout=15):
    """Send each prebuilt request once over `connections` keep-alive connections (one thread
    each, all connected before the first send). Returns the Responses by index."""
    out = [None] * len(requests)
    lock = threading.Lock()
    nxt = iter(range(len(requests)))
    conns = [RawConnection(envoy.port, timeout=timeout) for _ in range(connections)]
    barrier = threading.Barrier(connections)

    def worker(c):
        barrier.wait()
        while True:
            with lock:
                i = next(nxt, None)
            if i is None:
                return
            try:
                out[i] = c.send(requests[i])
            except Exception as ex:
                out[i] = ex
                return

    threads = [threading.Thread(target=worker, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    return out


# ---- 1 and 4: one proof, 200 times at once, on two Envoys sharing dpop-replay + Redis ----

N = 200


@pytest.mark.parametrize("max_batch,transport", [(None, "http"), (1, "http"), (None, "grpc")],
                         ids=["coalesced", "max_batch_1", "grpc_stream"])
def test_exactly_once_across_two_envoys(max_batch, transport):
    redis = Redis().start()
    replay = Replay("redis", redis).start()
    extra = {} if max_batch is None else {"max_batch": max_batch}
    envoys = []
    try:
        for i in range(2):
            # one public origin: the proof's htu is valid on either Envoy. timeout_ms: a burst
            # of 200 on 2 shared cores must not turn into 503s for reasons other than the store.
            envoys.append(envoy_for(replay.port, f"batch-once-{max_batch}-{transport}-{i}", public_origin=ORIGIN,
                                    transport=transport, timeout_ms=2000, **extra).start())
        p = signed(1, ORIGIN + "/api/race")[0]
        resps = burst([(envoys[i % 2], get_bytes(envoys[i % 2], "/api/race", p)) for i in range(N)])
        errors = [r for r in resps if isinstance(r, Exception)]
        assert not errors, errors[:5]
        statuses = [r.status for r in resps]
        assert statuses.count(200) == 1, statuses
        refused = [r for r in resps if r.status != 200]
        assert all(is_replay_refusal(r) for r in refused), [(r.status, r.body[:200]) for r in refused if not is_replay_refusal(r)][:5]
        for r in refused[:3]:
            assert_problem(r, "dpop-invalid", error="invalid_dpop_proof", detail=REPLAYED)
        # fresh proofs keep working on both, one at a time on an idle proxy: a lone check is
        # sent at once (the shared-queue wake-up), not on the 1 s safety-net tick — ten in a
        # row all under 0.4 s would happen by chance with a tick-driven batcher 1 time in 10^4
        fresh = signed(10 * len(envoys), ORIGIN + "/api/x")
        slowest = 0.0
        for i, p in enumerate(fresh):
            t0 = time.time()
            r = envoys[i % 2].request("GET", "/api/x", [("DPoP", p)])
            slowest = max(slowest, time.time() - t0)
            assert r.status == 200, r.body
        assert slowest < 0.4, f"a lone replay check took {slowest:.3f} s"
        total = N + len(fresh)

        assert summed(envoys, "dpop_guard.replay.detected") == N - 1
        assert summed(envoys, "dpop_guard.denied.proof_replayed") == N - 1
        assert summed(envoys, "dpop_guard.denied") == N - 1
        assert summed(envoys, "dpop_guard.allowed") == 1 + len(fresh)
        assert summed(envoys, "dpop_guard.replay.errors") == 0
        batches = summed(envoys, "dpop_guard.replay.batches")
        batched = summed(envoys, "dpop_guard.replay.batched")
        alone = summed(envoys, "dpop_guard.replay.alone")
        m = replay_metrics(replay)
        # every check reached the service once: 1 + 20 first uses, 199 replays
        assert m["dpop_replay_checks_total.fresh"] == 1 + len(fresh), m
        assert m["dpop_replay_checks_total.replay"] == N - 1, m
        assert m["dpop_replay_checks_total.error"] == 0, m
        streams = summed(envoys, "dpop_guard.replay.streams")
        if max_batch is None:
            # every check went out alone (an idle worker) or in a batch; the Envoys' batches
            # are the service's batches; the 20 one-at-a-time fresh checks found the worker idle
            assert batched + alone == total, (batched, alone, total)
            assert alone >= len(fresh), alone
            assert batches >= 1 and batched >= 2, (batches, batched)
            if transport == "grpc":
                # every check a message on one stream per worker VM (2 Envoys x 2 workers),
                # opened once and kept
                assert 1 <= streams <= 4, streams
                assert m["dpop_replay_grpc_streams_total"] == streams, (m, streams)
                assert m["dpop_replay_grpc_messages_total"] == batches + alone, (m, batches, alone)
                # a message is a batch to the service, the single check of an idle worker too
                assert m["dpop_replay_batches_total"] == batches + alone, (m, batches, alone)
                assert m["dpop_replay_batch_entries_total"] == batched + alone, (m, batched, alone)
            else:
                assert streams == 0
                assert m["dpop_replay_batches_total"] == batches, (m, batches)
                assert m["dpop_replay_batch_entries_total"] == batched, (m, batched)
            print(f"\n[exactly-once coalesced, {transport}] burst of {N}: {batched} in {batches} batches "
                  f"(mean {batched / batches:.1f}), {alone} alone; lone checks: slowest {slowest * 1000:.0f} ms")
        else:
            # the old path: one POST /v1/replay per request, no batch at all
            assert batches == 0 and batched == 0 and alone == 0
            assert m["dpop_replay_batches_total"] == 0, m
            assert m["dpop_replay_batch_entries_total"] == 0, m
    finally:
        for e in envoys:
            e.stop()
        for e in envoys:
            e.assert_no_panic()
        replay.stop()
        redis.stop()


# ---- 2: 2000 distinct proofs, 64 connections, one Envoy: all accepted, in real batches ----

@TRANSPORTS
def test_distinct_proofs_under_64_connections_are_batched(transport):
    redis = Redis().start()
    replay = Replay("redis", redis).start()
    try:
        with envoy_for(replay.port, f"batch-load-{transport}", transport=transport, timeout_ms=2000) as e:
            proofs = signed(2000, e.origin + "/api/load")
            reqs = [get_bytes(e, "/api/load", p) for p in proofs]
            t0 = time.time()
            resps = closed_loop(e, reqs, connections=64)
            secs = time.time() - t0
            errors = [r for r in resps if not hasattr(r, "status")]
            assert not errors, errors[:5]
            bad = [(r.status, r.body[:200]) for r in resps if r.status != 200]
            assert not bad, (len(bad), bad[:5])
            s = e.stats()
            batches, batched = s.get("dpop_guard.replay.batches", 0), s.get("dpop_guard.replay.batched", 0)
            assert batched + s.get("dpop_guard.replay.alone", 0) == 2000, s
            assert s.get("dpop_guard.allowed") == 2000, s
            assert s.get("dpop_guard.replay.errors", 0) == 0, s
            assert batches > 0
            mean = batched / batches
            m = replay_metrics(replay)
            if transport == "grpc":
                streams = s.get("dpop_guard.replay.streams", 0)
                assert 1 <= streams <= 2, s
                assert m["dpop_replay_grpc_messages_total"] == batches + s.get("dpop_guard.replay.alone", 0), m
            else:
                assert m["dpop_replay_batches_total"] == batches, m
                assert m["dpop_replay_batch_entries_total"] == batched, m
            assert m["dpop_replay_checks_total.fresh"] == 2000, m
            print(f"\n[64 connections, {transport}] 2000 x 200 in {secs:.2f} s ({2000 / secs:.0f}/s): "
                  f"{batches} batches, mean batch size {mean:.2f}")
            assert mean > 1, (batches, batched)
    finally:
        replay.stop()
        redis.stop()


# ---- 3: Redis killed while distinct proofs flow (on_error deny), then back ----

class DurableRedis(Redis):
    """redis-server that keeps its keys across a SIGKILL: append-only file fsynced before each
    reply, in `dir`; restarted on the same port and dir it has every key it ever acknowledged.
    (A replay after the outage can only be refused if the store still knows the proof.)"""

    def __init__(self, dir, port=None):
        super().__init__(port)
        self.dir = dir

    def start(self):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not installed (make e2e installs the Debian package)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        return self


class Load:
    """`connections` threads, each on its own keep-alive connection, sending fresh proofs
    (signed on the fly) until stopped; every (proof, response, send time) is kept."""

    def __init__(self, envoy, path, connections):
        self.envoy, self.path = envoy, path
        self.keys = [PyKey("EdDSA") for _ in range(4)]
        self.results = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(connections)]

    def _run(self, i):
        c = RawConnection(self.envoy.port, timeout=15)
        try:
            while not self.stop_flag.is_set():
                p = proof(self.keys[i % len(self.keys)], "GET", self.envoy.origin + self.path)
                t = time.time()
                try:
                    r = c.send(get_bytes(self.envoy, self.path, p))
                except Exception as ex:
                    r = ex
                with self.lock:
                    self.results.append((p, r, t))
                if isinstance(r, Exception):
                    return
        finally:
            c.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def count(self, pred, since=0.0):
        with self.lock:
            return sum(1 for _, r, t in self.results if t >= since and not isinstance(r, Exception) and pred(r))

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()

    def wait_for(self, pred, n, since=0.0, timeout=15):
        deadline = time.time() + timeout
        while self.count(pred, since) < n:
            assert time.time() < deadline, f"waited {timeout} s for {n} answers"
            time.sleep(0.02)


@TRANSPORTS
def test_redis_killed_mid_load_fails_closed_and_recovers(transport):
    tmp = tempfile.mkdtemp(prefix="redis-aof-", dir=os.path.join(ROOT, "target"))
    redis = DurableRedis(tmp).start()
    replay = Replay("redis", redis, extra=["--redis-timeout-ms", "100"]).start()
    sent = {}  # proof -> [responses], first uses and replays together

    def record(p, r):
        sent.setdefault(p, []).append(r)

    try:
        with envoy_for(replay.port, f"batch-outage-{transport}", transport=transport, on_error="deny") as e:
            ok = lambda r: r.status == 200  # noqa: E731
            load = Load(e, "/api/outage", connections=16).start()
            try:
                load.wait_for(ok, 150)
                before = [p for p, r, _ in list(load.results) if not isinstance(r, Exception) and r.status == 200]
                redis.stop()  # SIGKILL, with batches in flight
                t_kill = time.time()
                # replays of accepted proofs while the store is gone: refused, never 200
                outage_replays = []
                for p in before[:30]:
                    r = e.request("GET", "/api/outage", [("DPoP", p)])
                    outage_replays.append(r)
                    record(p, r)
                load.wait_for(is_unavailable, 30, since=t_kill)
                redis = DurableRedis(tmp, port=redis.port).start()
                t_back = time.time()
                load.wait_for(ok, 150, since=t_back)
            finally:
                load.stop()
            for p, r, _ in load.results:
                record(p, r)
            # replays after recovery, of proofs accepted before the kill and after the return
            after = [p for p, r, t in load.results if getattr(r, "status", None) == 200 and t > t_back]
            after_replays = []
            for p in before[:40] + after[:40]:
                r = e.request("GET", "/api/outage", [("DPoP", p)])
                after_replays.append(r)
                record(p, r)
            # new proofs are accepted again
            for p in signed(5, e.origin + "/api/outage"):
                r = e.request("GET", "/api/outage", [("DPoP", p)])
                record(p, r)
                assert r.status == 200, r.body

            responses = [r for rs in sent.values() for r in rs]
            broken = [r for r in responses if isinstance(r, Exception)]
            assert not broken, broken[:5]
            # first uses: accepted, or refused for the outage — nothing else
            firsts = [rs[0] for rs in sent.values()]
            odd = [(r.status, r.body[:200]) for r in firsts if r.status != 200 and not is_unavailable(r)]
            assert not odd, odd[:5]
            # never a 200 for a replay: each proof accepted at most once over all its sends
            twice = [p for p, rs in sent.items() if sum(1 for r in rs if r.status == 200) > 1]
            assert not twice, f"{len(twice)} proofs accepted more than once"
            accepted = [p for p, rs in sent.items() if any(r.status == 200 for r in rs)]
            assert sum(1 for p, r, t in load.results if r.status == 200 and t > t_back) >= 150
            # during the outage a replay cannot be checked: 503, fail closed
            assert all(is_unavailable(r) for r in outage_replays), [(r.status, r.body[:200]) for r in outage_replays]
            # after it, the store still knows them
            assert all(is_replay_refusal(r) for r in after_replays), [(r.status, r.body[:200]) for r in after_replays if not is_replay_refusal(r)][:5]
            unavailable = sum(1 for r in responses if is_unavailable(r))
            replays = sum(1 for r in responses if is_replay_refusal(r))
            assert unavailable >= 30 + len(outage_replays)
            assert replays == len(after_replays)
            s = e.stats()
            assert s.get("dpop_guard.replay.errors", 0) == unavailable, s
            assert s.get("dpop_guard.denied.replay_unavailable", 0) == unavailable, s
            assert s.get("dpop_guard.replay.detected", 0) == replays, s
            assert s.get("dpop_guard.allowed", 0) == len(accepted), s
            assert s.get("dpop_guard.replay.batched", 0) + s.get("dpop_guard.replay.alone", 0) \
                == len(responses), s
            assert s.get("dpop_guard.replay.batches", 0) > 0, s
            if transport == "grpc":
                # the service stayed up: the streams outlived the Redis outage
                assert 1 <= s.get("dpop_guard.replay.streams", 0) <= 2, s
            print(f"\n[redis outage, {transport}] {len(responses)} requests: {len(accepted)} accepted, "
                  f"{unavailable} x 503 replay-check-unavailable, {replays} replays refused; "
                  f"outage {t_back - t_kill:.2f} s; {s.get('dpop_guard.replay.batches')} batches")
    finally:
        replay.stop()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# ---- 5: the gRPC stream (replay.transport = "grpc") when the service stalls or restarts ----

def test_grpc_stream_times_out_a_stalled_service_and_reopens_after_a_restart():
    """The service stops answering (SIGSTOP): a check fails with 503 after timeout_ms (+ the
    tick), the stream is given up, and checks succeed again once it answers. The service is
    killed and started again on its port: the closed stream is replaced by a new one."""
    import signal

    replay = Replay("memory").start()
    try:
        with envoy_for(replay.port, "grpc-restart", transport="grpc", timeout_ms=300) as e:
            def fresh():
                t0 = time.time()
                r = e.request("GET", "/api/r", [("DPoP", signed(1, e.origin + "/api/r", keys=1)[0])])
                return r, time.time() - t0

            def until_ok(limit=10.0):
                deadline = time.time() + limit
                while True:
                    r, _ = fresh()
                    if r.status == 200:
                        return
                    assert is_unavailable(r), (r.status, r.body[:200])
                    assert time.time() < deadline, "checks did not recover"
                    time.sleep(0.1)

            for _ in range(6):
                r, _ = fresh()
                assert r.status == 200, r.body
            opened = e.stats().get("dpop_guard.replay.streams", 0)
            assert 1 <= opened <= 2  # one per worker that saw a check

            os.kill(replay.proc.pid, signal.SIGSTOP)
            try:
                r, secs = fresh()
                assert is_unavailable(r), (r.status, r.body[:200])
                # 300 ms timeout, a 75 ms tick: well under a second, never Envoy's own timeouts
                assert 0.25 < secs < 1.5, secs
            finally:
                os.kill(replay.proc.pid, signal.SIGCONT)
            until_ok()

            replay.stop()
            r, _ = fresh()
            assert is_unavailable(r), (r.status, r.body[:200])
            replay = Replay("memory", port=replay.port).start()
            until_ok()
            for _ in range(6):
                r, _ = fresh()
                assert r.status == 200, r.body
            s = e.stats()
            assert s.get("dpop_guard.replay.streams", 0) > opened, s
            assert s.get("dpop_guard.replay.errors", 0) >= 2, s
    finally:
        replay.stop()
