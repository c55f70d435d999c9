#!/usr/bin/env bash
# `make run-redis`: redis-server + dpop-replay (redis backend) + Envoy with envoy/envoy-redis.yaml
# (remote replay store). Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY=${ENVOY:-.venv/bin/envoy}
DPOP=target/release/dpop
REDIS_PORT=${REDIS_PORT:-6379}
KEY=target/demo/client-key.json
mkdir -p target/demo
[ -s "$KEY" ] || "$DPOP" keygen --alg EdDSA > "$KEY"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no > target/demo/redis.log 2>&1 &
pids+=($!)
target/release/dpop-replay --listen 127.0.0.1:8081 --backend redis --redis-url "redis://127.0.0.1:$REDIS_PORT" \
  > target/demo/dpop-replay.log 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:8081/readyz >/dev/null && break; sleep 0.1; done

cat <<MSG

  dpop-guard with Redis-backed replay protection
    Envoy        http://127.0.0.1:10000   (admin http://127.0.0.1:9901)
    dpop-replay  http://127.0.0.1:8081    (/healthz /readyz /metrics; log target/demo/dpop-replay.log)
    redis-server 127.0.0.1:$REDIS_PORT

  In another terminal:

    curl -s -H "DPoP: \$($DPOP proof --key $KEY --htm GET --htu http://127.0.0.1:10000/hello)" http://127.0.0.1:10000/hello

MSG
"$ENVOY" -c envoy/envoy-redis.yaml --concurrency 2 --disable-hot-restart -l "${ENVOY_LOG_LEVEL:-info}" &
pids+=($!)
wait "${pids[-1]}"
