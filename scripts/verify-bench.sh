#!/usr/bin/env bash
# Micro-benchmark of proof verification per algorithm, and of the token modes' decision
# (upstream vs introspection with a warm cache): natively, then inside Envoy's V8 (the same
# loops as a bootstrap wasm service, timed with the host clock). Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY=${ENVOY:-.venv/bin/envoy}
DPOP=target/release/dpop
ITER=${ITER:-300}
out=target/bench; mkdir -p $out
if [ -n "${VB_INPUT:-}" ]; then
  cp "$VB_INPUT" $out/verify-input.json
else
now=$(date +%s)
  cases=()
  for alg in EdDSA ES256 ES384 RS256 PS256; do
    kalg=$alg; [ $alg = PS256 ] && kalg=RS256
    $DPOP keygen --alg $kalg > $out/key-$alg.json
    p=$($DPOP proof --key $out/key-$alg.json --alg $alg --htm GET --htu https://api.example.com/bench --iat $now)
    cases+=("{\"alg\":\"$alg\",\"proof\":\"$p\",\"htm\":\"GET\",\"htu\":\"https://api.example.com/bench\"}")
  done
  # the token modes' decision (crates/verify-bench/src/tokens.rs): a ~420-byte HS256 token
  # bound to an EdDSA key, a proof with its ath
  $DPOP keygen --alg EdDSA > $out/key-token.json
  tok=$($DPOP token --secret=verify-bench-hs256-secret-0123456789abcdef --bind-key=$out/key-token.json \
    --sub=agent-bench-1 --iss=https://as.example.com --aud=https://api.example.com --iat=$now \
    --claim=scope='"read write"' --claim=client_id='"bench-client"' --claim=jti='"bench-token-0001"')
  tp=$($DPOP proof --key $out/key-token.json --htm GET --htu https://api.example.com/bench --token="$tok" --iat $now)
  jkt=$($DPOP thumbprint --key $out/key-token.json)
  token_case="{\"token\":\"$tok\",\"proof\":\"$tp\",\"jkt\":\"$jkt\"}"
  input="{\"iterations\":$ITER,\"now\":$now,\"cases\":[$(IFS=,; echo "${cases[*]}")],\"token_case\":$token_case}"
  echo "$input" > $out/verify-input.json
fi

cargo build --release -q -p verify-bench --bin verify-bench
[ -n "${VB_WASM:-}" ] || cargo build --release -q -p verify-bench --lib --target wasm32-wasip1
target/release/verify-bench < $out/verify-input.json

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
value = open(f"{out}/verify-input.json").read().strip()
cfg = {
  "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
  "bootstrap_extensions": [{"name": "envoy.bootstrap.wasm", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.wasm.v3.WasmService", "singleton": True,
    "config": {"name": "verify_bench", "vm_config": {"runtime": "envoy.wasm.runtime.v8",
      "code": {"local": {"filename": os.environ.get("VB_WASM", "target/wasm32-wasip1/release/verify_bench.wasm")}}},
      "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value}}}}],
}
json.dump(cfg, open(f"{out}/verify-bench-envoy.json", "w"))
PY
$ENVOY -c $out/verify-bench-envoy.json --disable-hot-restart -l warn > $out/verify-bench-envoy.log 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  grep -q "verify-bench done\|bad input" $out/verify-bench-envoy.log && break
  sleep 0.5
done
kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
grep -o "verify-bench wasm-v8.*" $out/verify-bench-envoy.log || { tail -20 $out/verify-bench-envoy.log; exit 1; }
