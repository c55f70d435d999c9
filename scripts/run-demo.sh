#!/usr/bin/env bash
# `make run`: start Envoy with envoy/envoy.yaml (DPoP filter in front of an echo upstream) and
# print a copy-paste line that gets a 200.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY=${ENVOY:-.venv/bin/envoy}
DPOP=target/release/dpop
KEY=target/demo/client-key.json
mkdir -p target/demo
[ -s "$KEY" ] || "$DPOP" keygen --alg EdDSA > "$KEY"
JKT=$("$DPOP" thumbprint --key "$KEY")
cat <<MSG

  dpop-guard demo: Envoy on http://127.0.0.1:10000 (admin http://127.0.0.1:9901)
  client key: $KEY   (jkt $JKT)

  In another terminal, a request with a fresh proof (200, upstream sees x-dpop-jkt):

    curl -s -H "DPoP: \$($DPOP proof --key $KEY --htm GET --htu http://127.0.0.1:10000/hello)" http://127.0.0.1:10000/hello

  Without a proof (401 dpop-required):

    curl -si http://127.0.0.1:10000/hello

  Stats: curl -s http://127.0.0.1:9901/stats/prometheus | grep dpop_guard

MSG
exec "$ENVOY" -c envoy/envoy.yaml --concurrency 2 --disable-hot-restart -l "${ENVOY_LOG_LEVEL:-info}" --component-log-level wasm:info
