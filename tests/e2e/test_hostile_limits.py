"""Hostile requests against a real Envoy with the built wasm, at the limits of time and size:
proofs replayed at the end of their life (local and remote store), and inputs sized to make the
filter work hard (huge proofs with thousands of members, large unsigned tokens, RSA proof keys
past the limits).

Timings of the "unbounded work" cases go to target/e2e-logs/hostile-timings.json. Shared
helpers and the `victim` fixture are in hostile.py.
"""
import concurrent.futures
import json
import os
import shutil
import statistics
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from craft import PyKey, jws, proof
from harness import Envoy, Key, assert_problem, ath, b64u
from hostile import REPLAYED, TOO_OLD, assert_refused, cfg_from, echo, record_timing, send, slug_of, thumbprint
from hostile import victim  # noqa: F401 (a fixture)
from services import Redis, Replay, remote_patch


# ---- 4. end-of-life replay --------------------------------------------------------------------

def _status_detail(r):
    if r.status == 200:
        return (200, None)
    body = assert_problem(r, slug_of(r), status=r.status)
    return (r.status, slug_of(r), body["detail"])


def _replay_until(e, p, path, until, out, label):
    while time.time() < until:
        out.append((f"{label} at {time.time():.2f}", _status_detail(send(e, path, [("DPoP", p)]))))
        time.sleep(0.1)


def _eol_past(e, key):
    """iat = now: first use at once, replays through iat+2 (the last second the proof is young
    enough) and past it."""
    path = "/api/eol-past"
    iat = int(time.time())
    p = key.proof("GET", e.origin + path, iat=iat)
    first = _status_detail(send(e, path, [("DPoP", p)]))
    out = []
    _replay_until(e, p, path, iat + 4, out, f"replay (iat={iat})")
    return first, out


def _eol_late_first_use(e, key):
    """First use one and a half seconds into the proof's life, replays to its end and past."""
    path = "/api/eol-late"
    iat = int(time.time())
    p = key.proof("GET", e.origin + path, iat=iat)
    time.sleep(max(0.0, iat + 1.5 - time.time()))
    first = _status_detail(send(e, path, [("DPoP", p)]))
    out = []
    _replay_until(e, p, path, iat + 4, out, f"replay (iat={iat})")
    return first, out


def _eol_future(e, key, skew=60):
    """iat = now + clock_skew (accepted), used once, replayed until past iat + proof_ttl."""
    path = "/api/eol-future"
    iat = int(time.time()) + skew
    p = key.proof("GET", e.origin + path, iat=iat)
    first = _status_detail(send(e, path, [("DPoP", p)]))
    out = [("replay at once", _status_detail(send(e, path, [("DPoP", p)])))]
    time.sleep(max(0.0, iat + 1 - time.time()))
    _replay_until(e, p, path, iat + 4, out, f"replay (iat={iat})")
    return first, out


@pytest.fixture(scope="module")
def eol_runs():
    """Four Envoys (local/remote store x clock_skew 0/60, proof_ttl 2) running every end-of-life
    scenario at once, in threads: the tests below each wait for one."""
    redis = Redis().start() if shutil.which("redis-server") else None
    replay = Replay("redis", redis).start() if redis else Replay("memory").start()
    envoys = {}
    try:
        for store in ("local", "remote"):
            for skew in (0, 60):
                if store == "local":
                    e = Envoy(cfg_from(proof_ttl=2, clock_skew=skew), name=f"eol-local-{skew}")
                else:
                    e = Envoy(cfg_from("envoy-redis.yaml", proof_ttl=2, clock_skew=skew), yaml_name="envoy-redis.yaml",
                              name=f"eol-remote-{skew}", patch=remote_patch(replay.port))
                envoys[(store, skew)] = e.start()
        key = Key("EdDSA")
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            runs = {}
            for store in ("local", "remote"):
                runs[(store, "past")] = ex.submit(_eol_past, envoys[(store, 0)], key)
                runs[(store, "late-first-use")] = ex.submit(_eol_late_first_use, envoys[(store, 0)], key)
                runs[(store, "future-iat")] = ex.submit(_eol_future, envoys[(store, 60)], key)
            yield runs
    finally:
        for e in envoys.values():
            e.stop()
        replay.stop()
        if redis:
            redis.stop()
        for e in envoys.values():
            e.assert_no_panic()


@pytest.mark.parametrize("scenario", ["past", "late-first-use", "future-iat"])
@pytest.mark.parametrize("store", ["local", "remote"])
def test_end_of_life_replay(eol_runs, store, scenario):
    """proof_ttl 2: a proof is young enough while now - iat <= 2, so its jti must be remembered at
    least that long (from iat, not from first use). Every replay is refused: as a replay, or as too
    old once the clock has passed its life; never 200."""
    first, replays = eol_runs[(store, scenario)].result(timeout=240)
    assert first == (200, None), first
    assert replays, "no replay was sent"
    bad = [(label, res) for label, res in replays
           if not (res[0] == 401 and res[1] == "dpop-invalid" and res[2] in (REPLAYED, TOO_OLD))]
    assert not bad, bad
    assert any(res[2] == REPLAYED for _, res in replays)


# ---- 8. unbounded work ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_envoy():
    with Envoy(cfg_from(max_proof_bytes=65536), name="big") as e:
        yield e


def _members(n, prefix="m"):
    return {f"{prefix}{i}": i for i in range(n)}


def _many_member_proof(k, url, where, target_len=55_000):
    """A signed proof whose header or claims carry thousands of members, ~target_len bytes."""
    n = target_len // 13
    while True:
        extra = _members(n)
        hdr = {"typ": "dpop+jwt", "alg": k.alg, "jwk": k.jwk}
        claims = {"jti": os.urandom(12).hex(), "htm": "GET", "htu": url, "iat": int(time.time())}
        (hdr if where == "header" else claims).update(extra)
        p = jws(hdr, claims, k)
        if len(p) <= target_len:
            return p, n
        n = int(n * target_len / len(p)) - 1


def _duplicate_member_proof(k, url, target_len=55_000):
    members = ",".join(['"m":0'] * (target_len // 8))
    raw = '{"typ":"dpop+jwt","alg":"EdDSA","jwk":' + json.dumps(k.jwk, separators=(",", ":")) + "," + members + "}"
    claims = {"jti": os.urandom(12).hex(), "htm": "GET", "htu": url, "iat": int(time.time())}
    return jws(None, claims, k, raw_header=raw)


def _timed(e, path, build, n=15):
    times, responses = [], []
    for _ in range(n):
        headers = build()
        t0 = time.perf_counter()
        r = send(e, path, headers)
        times.append(time.perf_counter() - t0)
        responses.append(r)
    return times, responses


@pytest.mark.parametrize("where", ["header", "claims", "duplicates"])
def test_huge_proof_with_thousands_of_members(big_envoy, where):
    """max_proof_bytes 65536 lets a ~55 KB DPoP header reach the parser: refused, quickly."""
    e = big_envoy
    k = PyKey("EdDSA")
    url = e.origin + "/api/x"

    def build():
        p = _duplicate_member_proof(k, url) if where == "duplicates" else _many_member_proof(k, url, where)[0]
        assert 50_000 <= len(p) <= 56_000, len(p)
        return [("DPoP", p)]

    times, responses = _timed(e, "/api/x", build)
    stats = record_timing(f"55KB proof, thousands of members in {where}", times)
    for r in responses:
        assert_refused(r, "dpop-invalid")
    assert statistics.median(times) < 0.050, stats


@pytest.mark.parametrize("dup", [False, True], ids=["unique", "duplicates"])
def test_large_unsigned_token_with_many_members(demo_envoy, victim, dup):
    """A ~15 KB bearer token (upstream mode decodes its payload) with many members and no cnf."""
    e = demo_envoy
    h = b64u(b'{"alg":"HS256","typ":"JWT"}')
    if dup:
        payload = ("{" + ",".join(['"m":0'] * 1800) + "}").encode()
    else:
        payload = json.dumps(_members(1100), separators=(",", ":")).encode()
    t = h + "." + b64u(payload) + "." + b64u(b"not-a-signature")
    assert 14_000 <= len(t) <= 16_500, len(t)
    k = victim["key"]

    def build():
        return [("Authorization", f"Bearer {t}"), ("DPoP", proof(k, "GET", e.origin + "/api/x", claims_extra={"ath": ath(t)}))]

    times, responses = _timed(e, "/api/x", build, n=10)
    record_timing(f"15KB bearer token, many members ({'duplicates' if dup else 'unique'})", times)
    for r in responses:
        assert_refused(r, "token-invalid", "token-not-dpop-bound")


@pytest.fixture(scope="module")
def rsa_keys():
    """RS256 keys the filter must refuse as proof keys: 8192-bit n, and e = 3."""
    out = {}
    for name, bits, e in (("n8192", 8192, 65537), ("e3", 2048, 3)):
        k = PyKey.__new__(PyKey)
        k.alg = "RS256"
        k.sk = rsa.generate_private_key(public_exponent=e, key_size=bits)
        pn = k.sk.public_key().public_numbers()
        k.jwk = {"kty": "RSA", "n": b64u(pn.n.to_bytes((pn.n.bit_length() + 7) // 8, "big")),
                 "e": b64u(pn.e.to_bytes((pn.e.bit_length() + 7) // 8, "big"))}
        out[name] = k
    return out


@pytest.mark.parametrize("which", ["n8192", "e3"])
def test_rsa_proof_key_limits(big_envoy, rsa_keys, which):
    """Proof keys are limited to e = 65537 and at most 4096 bits: a validly signed proof by
    anything else is dpop-invalid (and costs no big modular exponentiation)."""
    e, k = big_envoy, rsa_keys[which]
    times, responses = _timed(e, "/api/x", lambda: [("DPoP", proof(k, "GET", e.origin + "/api/x"))], n=8)
    record_timing(f"RS256 proof, {which}", times)
    for r in responses:
        assert_refused(r, "dpop-invalid")


def test_rsa_proof_key_4096_still_accepted(big_envoy):
    """Neighbour of the limit: a 4096-bit key with e = 65537 is an ordinary proof key."""
    k = PyKey.__new__(PyKey)
    k.alg = "RS256"
    k.sk = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    pn = k.sk.public_key().public_numbers()
    k.jwk = {"kty": "RSA", "n": b64u(pn.n.to_bytes(512, "big")), "e": "AQAB"}
    e = big_envoy
    times, responses = _timed(e, "/api/x", lambda: [("DPoP", proof(k, "GET", e.origin + "/api/x"))], n=5)
    record_timing("RS256 proof, 4096-bit key (accepted)", times)
    for r in responses:
        assert echo(r)["x-dpop-jkt"] == thumbprint(k.jwk)
