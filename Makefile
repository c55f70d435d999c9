# dpop-guard — every target installs what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV     := .venv
PY       := $(VENV)/bin/python
ENVOY    := $(VENV)/bin/envoy
WASM     := target/wasm32-wasip1/release/dpop_guard.wasm
DPOP     := target/release/dpop
CARGO    ?= cargo
PYTEST_ARGS ?=

.PHONY: help build wasm verify-bench-wasm bench-floor-wasm cli venv redis node-deps oidc-deps test check unit e2e validate lint run run-redis fuzz fuzz-smoke image bench bench-paired bench-perf clean

help:
	@echo "make run    - build and start Envoy on 127.0.0.1:10000 with the DPoP filter (demo upstream)"
	@echo "make run-redis - the same with redis-server + dpop-replay (remote replay store)"
	@echo "make run-arcp - ARCP 2.1.2 (PyPI) + Redis + dpop-replay behind Envoy with envoy/envoy-arcp.yaml"
	@echo "make test   - everything CI runs: lint, unit tests, wasm build, config validation, e2e against real Envoy"
	@echo "make check  - the quick loop: rustfmt, clippy, unit tests of the pure code (installs nothing)"
	@echo "make lint   - rustfmt check and clippy (native and wasm32)"
	@echo "make image  - OCI image with plugin.wasm for Istio (target/oci/); prints the push command and digest"
	@echo "make fuzz   - run every cargo-fuzz target for FUZZ_SECONDS (default 300)"
	@echo "make bench  - load benchmark on a real Envoy (req/s, p50/p99, Envoy CPU µs/req); BENCH_SECONDS=10"
	@echo "make bench-paired - the same variants as listeners of ONE Envoy, short windows in rotation (paired differences; incl. the ES256 floor, crates/bench-floor)"
	@echo "make bench-perf - perf profile of Envoy's worker per scenario: kernel, wasm code, BoringSSL, Envoy (needs perf)"

# ---- toolchain and dependencies --------------------------------------------------------
.wasm-target.stamp:
	rustup target add wasm32-wasip1
	@touch $@

$(VENV)/.stamp: requirements-test.txt
	scripts/mkvenv.sh $(VENV) requirements-test.txt
	@touch $@

venv: $(VENV)/.stamp

# ARCP 2.1.2 (PyPI arcp-py) for tests/e2e/test_arcp.py and `make run-arcp`, in its own venv
# (under target/, so `make clean` removes it): arcp-py needs cryptography >= 46, our venv pins 44.
ARCP_VENV := target/arcp-venv
.PHONY: arcp-venv run-arcp

$(ARCP_VENV)/.stamp: tests/e2e/arcp-requirements.txt
	scripts/mkvenv.sh $(ARCP_VENV) tests/e2e/arcp-requirements.txt
	@touch $@

arcp-venv: $(ARCP_VENV)/.stamp

# Third-party DPoP clients for the e2e tests (npm, versions pinned in package.json and
# package-lock.json): oauth4webapi (nonce retry, RFC 9728 discovery) and jose. `npm ci`
# installs exactly the lock file into tests/e2e/node/node_modules (git-ignored).
NODE_DIR := tests/e2e/node

$(NODE_DIR)/node_modules/.stamp: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "node-deps: npm not found (install Node.js >= 20 and npm)"; exit 1; }
	cd $(NODE_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

node-deps: $(NODE_DIR)/node_modules/.stamp

# A real authorization server for tests/e2e/test_introspection.py (npm, versions pinned in
# package.json and package-lock.json): panva's oidc-provider (DPoP, introspection, revocation,
# resource indicators) and its oauth4webapi client. `npm ci` installs exactly the lock file into
# tests/e2e/oidc/node_modules (git-ignored).
OIDC_DIR := tests/e2e/oidc

$(OIDC_DIR)/node_modules/.stamp: $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "oidc-deps: npm not found (install Node.js >= 20 and npm)"; exit 1; }
	cd $(OIDC_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

oidc-deps: $(OIDC_DIR)/node_modules/.stamp

# redis-server from Debian (root on CI and the dev machines; sudo elsewhere)
redis:
	@command -v redis-server >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }
	@redis-server --version

# ---- builds ----------------------------------------------------------------------------
wasm: .wasm-target.stamp
	$(CARGO) build --release --target wasm32-wasip1 -p dpop-guard --lib
	@ls -l $(WASM) | awk '{printf "dpop_guard.wasm: %d bytes (%.0f KiB)\n", $$5, $$5/1024}'

cli:
	$(CARGO) build --release -p dpop-cli -p dpop-replay

# The Wycheproof runner of tests/e2e/test_host_crypto.py (crates/verify-bench as a bootstrap
# wasm service: Envoy's verify_signature against our verifiers); ~40 s after `wasm`.
verify-bench-wasm: .wasm-target.stamp
	$(CARGO) build --release --target wasm32-wasip1 -p verify-bench --lib

build: wasm cli

# The floor of issue 16 (crates/bench-floor): the least a filter must do for an ES256 proof on
# the host's crypto, none of the DPoP checks; a variant of `make bench-paired`, never shipped.
bench-floor-wasm: .wasm-target.stamp
	$(CARGO) build --release --target wasm32-wasip1 -p bench-floor

# ---- checks ----------------------------------------------------------------------------
lint: .wasm-target.stamp
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(CARGO) clippy --target wasm32-wasip1 -p dpop-guard --lib -- -D warnings

# The quick loop: no installs, no wasm build, no Envoy. The wasm32 clippy pass runs only if the
# target is already installed; the emulator tier (needs the built wasm) and the Redis tests
# (need redis-server) are left to `make test`.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	@if rustup target list --installed 2>/dev/null | grep -q wasm32-wasip1; then \
	  $(CARGO) clippy --target wasm32-wasip1 -p dpop-guard --lib -- -D warnings; \
	else echo "check: wasm32-wasip1 not installed, wasm clippy skipped (make lint runs it)"; fi
	DPOP_REPLAY_SKIP_REDIS=1 $(CARGO) test --workspace --all-features --exclude proxy-wasm-emu

unit: redis wasm
	$(CARGO) test --workspace --all-features
	CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true $(CARGO) test -p jose-verify --release
	python3 scripts/limb_bounds.py

# Every shipped Envoy config must pass `envoy --mode validate` (this also runs on_configure).
validate: wasm venv
	@for f in envoy/*.yaml; do \
	  echo "validate $$f"; \
	  $(ENVOY) --mode validate -c $$f --disable-hot-restart -l error >/dev/null || exit 1; \
	done

e2e: build verify-bench-wasm venv redis arcp-venv node-deps oidc-deps
	$(PY) -m pytest tests/e2e -q $(PYTEST_ARGS)

test: lint unit validate e2e fuzz-smoke

# ---- run -------------------------------------------------------------------------------
run: build venv
	@scripts/run-demo.sh

run-redis: build venv redis
	@scripts/run-redis.sh

# Redis, dpop-replay, ARCP 2.1.2 and Envoy with envoy/envoy-arcp.yaml; prints a client command
# that walks ARCP's agent flow through the gateway. Ctrl-C stops all four.
run-arcp: build venv redis arcp-venv
	@$(PY) tests/e2e/arcp_stack.py

# ---- benchmark -------------------------------------------------------------------------
bench: build bench-floor-wasm venv
	@scripts/bench.sh

# Same-process comparison: every variant a listener of one Envoy, short windows in rotation
# (scripts/benchlib/paired.py; BENCH_PAIRED_PASSES, BENCH_PAIRED_SECONDS, BENCH_PAIRED_ONLY).
bench-paired: build bench-floor-wasm venv
	@scripts/bench.sh --paired

# Where Envoy's worker spends its CPU per request (kernel, wasm code, BoringSSL, Envoy), from
# `perf record` around single scenarios of `make bench` (scripts/perf_breakdown.py; needs perf).
bench-perf: build venv
	@$(PY) scripts/perf_breakdown.py

# ---- fuzzing (nightly + cargo-fuzz) ----------------------------------------------------
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := proof proof_signed jwk htu config token ed25519 p256 rsa request glue

.fuzz.stamp:
	rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	@touch $@

fuzz: .fuzz.stamp wasm
	for t in $(FUZZ_TARGETS); do mkdir -p fuzz/corpus/$$t; \
	  cargo +nightly fuzz run $$t fuzz/corpus/$$t fuzz/seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

# CI: 20 s per target (11 targets) keeps `make test` well inside CI's 45 minutes.
fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=20

# OCI image (Wasm "compat" variant: one layer with plugin.wasm) for Istio's WasmPlugin, without
# Docker: target/oci/dpop-guard/ (OCI layout) and target/oci/dpop-guard.tar (oci-archive).
image: wasm
	@scripts/make-image.sh

clean:
	$(CARGO) clean
	rm -rf $(VENV) .wasm-target.stamp .fuzz.stamp
