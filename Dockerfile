# The dpop-guard Wasm module as an OCI image for Istio's WasmPlugin (Wasm image spec, "compat"
# variant: one layer holding plugin.wasm), for people who build images with Docker.
# `make image` writes the same image without Docker (target/oci/, see scripts/make-image.sh).
#
#   make wasm
#   docker build -t REGISTRY/dpop-guard:0.1.0 .
#   docker push REGISTRY/dpop-guard:0.1.0
#
# With buildx, also set the variant annotation the spec asks for on OCI-typed images:
#   docker buildx build --annotation "manifest:module.wasm.image/variant=compat" \
#     -t REGISTRY/dpop-guard:0.1.0 --push .
#
# Keep exactly one COPY: every instruction that writes files adds a layer, and the image must
# have exactly one.
FROM scratch
COPY target/wasm32-wasip1/release/dpop_guard.wasm ./plugin.wasm
