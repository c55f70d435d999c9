"""The host crypto path in real Envoy, differentially over Wycheproof.

RS256 and ES256 are verified by Envoy's BoringSSL (foreign function `verify_signature`) when
the host has it; the JOSE-level checks (key type, curve, sizes, r/s ranges) stay in our code
before the call, so that both paths accept exactly the same inputs. This runs the repository's
Wycheproof P-256 and RSA PKCS#1 v1.5 files through `PublicJwk::verify` inside Envoy's V8 twice
— with the host verifier registered, and with our own verifiers — and wants the same verdict
on every vector, the vector's verdict, and no host error.

The runner is crates/verify-bench in its `wycheproof` mode, a bootstrap wasm service (built by
`make verify-bench-wasm`, which `make e2e` runs); it logs one summary line.
"""
import base64
import json
import os
import subprocess
import time

from harness import ENVOY, LOG_DIR, PANIC_MARKERS, ROOT

VB_WASM = os.environ.get("VERIFY_BENCH_WASM") or os.path.join(
    ROOT, "target/wasm32-wasip1/release/verify_bench.wasm")
WYCHEPROOF = os.path.join(ROOT, "tests/vectors/wycheproof")
FILES = {
    "ecdsa_secp256r1_sha256_p1363_test.json": ("ES256", "p256"),
    "rsa_signature_2048_sha256_test.json": ("RS256", "rsa2048"),
    "rsa_signature_3072_sha256_test.json": ("RS256", "rsa3072"),
    "rsa_signature_4096_sha256_test.json": ("RS256", "rsa4096"),
}
# Our policy for `acceptable` vectors (crates/jose-verify/tests/support/wycheproof.rs):
# MissingNull is rejected. Any other flag needs a decision there first.
ACCEPTABLE_REJECTED = {"MissingNull"}
SUMMARY = "verify-bench wycheproof "


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def padded_coordinate(hex_value, size):
    """`publicKey.wx`/`wy` (hex, possibly with a leading zero octet or short) as the JWK's
    field-size octets (RFC 7518 §6.2.1.2)."""
    raw = bytes.fromhex(hex_value).lstrip(b"\0")
    assert len(raw) <= size, hex_value
    return raw.rjust(size, b"\0")


def group_jwk(group):
    pk = group["publicKey"]
    if "curve" in pk:
        assert pk["curve"] == "secp256r1", pk["curve"]
        return {"kty": "EC", "crv": "P-256",
                "x": b64url(padded_coordinate(pk["wx"], 32)),
                "y": b64url(padded_coordinate(pk["wy"], 32))}
    # RFC 7518 §6.3.1: n and e without leading zero octets
    return {"kty": "RSA",
            "n": b64url(bytes.fromhex(pk["modulus"]).lstrip(b"\0")),
            "e": b64url(bytes.fromhex(pk["publicExponent"]).lstrip(b"\0"))}


def refused_by_policy(jwk):
    """Keys dpop-guard refuses (src/jose/jwk.rs, jose_verify::rsa): RSA moduli outside
    2048–4096 bits and exponents other than 65537. Every P-256 key of the file is valid."""
    if jwk["kty"] != "RSA":
        return False
    pad = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
    bits = int.from_bytes(pad(jwk["n"]), "big").bit_length()
    return int.from_bytes(pad(jwk["e"]), "big") != 65537 or not 2048 <= bits <= 4096


def build_cases():
    cases, expect = [], {"total": 0, "refused": 0, "valid_run": 0, "valid": 0}
    for name, (alg, tag) in FILES.items():
        with open(os.path.join(WYCHEPROOF, name)) as f:
            doc = json.load(f)
        n = 0
        for gi, group in enumerate(doc["testGroups"]):
            jwk = group_jwk(group)
            refused = refused_by_policy(jwk)
            for t in group["tests"]:
                n += 1
                if t["result"] == "acceptable":
                    assert set(t["flags"]) <= ACCEPTABLE_REJECTED, (name, t["tcId"], t["flags"])
                want = t["result"] == "valid"
                cases.append({"id": f"{tag}-g{gi}-tc{t['tcId']}", "alg": alg, "jwk": jwk,
                              "msg": b64url(bytes.fromhex(t["msg"])),
                              "sig": b64url(bytes.fromhex(t["sig"])), "want": want})
                expect["refused"] += refused
                expect["valid_run"] += want and not refused
        assert n == doc["numberOfTests"], name
    expect["total"] = len(cases)
    return {"mode": "wycheproof", "cases": cases}, expect


def run_in_envoy(value, name="host-crypto", timeout=240):
    """Starts Envoy with verify-bench as a bootstrap wasm service configured with `value`,
    returns (summary dict, log text) once the summary line is logged."""
    os.makedirs(LOG_DIR, exist_ok=True)
    cfg_path = os.path.join(LOG_DIR, f"envoy-{name}.json")
    log_path = os.path.join(LOG_DIR, f"envoy-{name}.log")
    cfg = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "bootstrap_extensions": [{"name": "envoy.bootstrap.wasm", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.wasm.v3.WasmService", "singleton": True,
            "config": {"name": "verify_bench", "vm_config": {
                "runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": VB_WASM}}},
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": value}}}}],
    }
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    with open(log_path, "w") as logf:
        proc = subprocess.Popen([ENVOY, "-c", cfg_path, "--concurrency", "1", "--disable-hot-restart",
                                 "-l", "warn"], stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            deadline = time.time() + timeout
            while True:
                with open(log_path) as f:
                    text = f.read()
                if SUMMARY + "{" in text or "bad input" in text:
                    break
                assert proc.poll() is None, f"envoy exited ({proc.returncode}):\n{text[-3000:]}"
                assert time.time() < deadline, f"no summary after {timeout}s:\n{text[-3000:]}"
                time.sleep(0.2)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    with open(log_path) as f:
        text = f.read()
    for m in PANIC_MARKERS:
        assert m not in text, f"{m!r} in envoy log {log_path}"
    assert "bad input" not in text, text[-3000:]
    line = next(ln for ln in text.splitlines() if SUMMARY + "{" in ln)
    summary = json.loads(line[line.index(SUMMARY) + len(SUMMARY):])
    return summary, text


def test_wycheproof_host_and_wasm_verifiers_agree_in_envoy():
    assert os.path.exists(VB_WASM), f"{VB_WASM} missing: run `make verify-bench-wasm` (make e2e does it)"
    value, expect = build_cases()
    summary, _ = run_in_envoy(json.dumps(value, separators=(",", ":")))
    print(f"\nwycheproof in {ENVOY}: {json.dumps(summary)}")
    # the host verifies (and refuses a forgery) before anything else is trusted
    assert summary["probe"] == "ok", summary
    assert summary["total"] == expect["total"], (summary, expect)
    # the keys our policy refuses (RSA e = 3), and no other
    assert summary["refused"] == expect["refused"], (summary, expect)
    assert summary["run"] == expect["total"] - expect["refused"]
    assert summary["valid_run"] == expect["valid_run"] > 0, (summary, expect)
    # the host was really asked: every valid vector reaches it, malformed ones may not
    assert summary["host_calls"] > 0
    assert summary["host_calls"] >= expect["valid_run"], summary
    assert summary["host_errors"] == 0, summary
    assert summary["host_vs_wasm"] == 0, summary
    assert summary["vs_want"] == 0, summary
    assert summary["disagreements"] == [], summary
    assert summary["accepted_host"] == summary["accepted_wasm"] == expect["valid_run"], summary
