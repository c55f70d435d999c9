#!/usr/bin/env bash
# `make image`: package target/wasm32-wasip1/release/dpop_guard.wasm as an OCI image in the
# Wasm image spec's "compat" variant, the format Istio's WasmPlugin pulls (url: oci://...):
# a standard OCI image manifest with exactly one application/vnd.oci.image.layer.v1.tar+gzip
# layer holding one file, plugin.wasm, and the annotation module.wasm.image/variant=compat.
#
# No Docker daemon or image tool is needed: the OCI image layout is written directly (python3
# standard library), deterministically (fixed mtime, uid/gid 0, compact sorted JSON), so the
# same wasm always gives the same manifest digest.
#
# Output:
#   target/oci/dpop-guard/       OCI image layout (oci-layout, index.json, blobs/sha256/...)
#   target/oci/dpop-guard.tar    the same layout as one archive (skopeo's oci-archive:)
#
# Environment (all optional):
#   WASM               the module              (target/wasm32-wasip1/release/dpop_guard.wasm)
#   OCI_DIR            where to write           (target/oci)
#   TAG                image tag                (the workspace version in Cargo.toml)
#   IMAGE_REPO         for the printed push commands (ghcr.io/OWNER/dpop-guard, a placeholder)
#   SOURCE_DATE_EPOCH  file mtime in the layer  (0)
set -euo pipefail
cd "$(dirname "$0")/.."

WASM=${WASM:-target/wasm32-wasip1/release/dpop_guard.wasm}
OCI_DIR=${OCI_DIR:-target/oci}
IMAGE_REPO=${IMAGE_REPO:-ghcr.io/OWNER/dpop-guard}

if [ ! -s "$WASM" ]; then
  echo "make-image: $WASM not found: build it first (make wasm)" >&2
  exit 1
fi

if [ -z "${TAG:-}" ]; then
  # version = "x.y.z" in [workspace.package] of the root Cargo.toml
  TAG=$(awk '/^\[/{s=($0=="[workspace.package]")} s && /^version[ \t]*=/{gsub(/.*=[ \t]*"|".*/,""); print; exit}' Cargo.toml)
fi
if [ -z "$TAG" ]; then
  echo "make-image: no version in Cargo.toml [workspace.package]; set TAG" >&2
  exit 1
fi

export WASM OCI_DIR TAG IMAGE_REPO
python3 - <<'PY'
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile

wasm_path = os.environ["WASM"]
oci_dir = os.environ["OCI_DIR"]
tag = os.environ["TAG"]
repo = os.environ["IMAGE_REPO"]
mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)
name = "dpop-guard"

with open(wasm_path, "rb") as f:
    wasm = f.read()
if wasm[:4] != b"\0asm":
    raise SystemExit(f"make-image: {wasm_path} is not a WebAssembly module")


def canonical(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def tar_bytes(entries):
    """A deterministic ustar archive of (name, bytes or None for a directory) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for entry, data in entries:
            info = tarfile.TarInfo(entry)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def descriptor(media_type, data, **extra):
    d = {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}
    d.update(extra)
    return d


# The layer: plugin.wasm, alone, as tar+gzip (gzip header without name or time).
layer_tar = tar_bytes([("plugin.wasm", wasm)])
layer = gzip.compress(layer_tar, compresslevel=9, mtime=0)

image_config = {
    "architecture": "wasm",
    "os": "wasip1",
    "config": {},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
}
if os.environ.get("SOURCE_DATE_EPOCH"):
    import datetime
    image_config["created"] = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
config = canonical(image_config)

manifest = canonical({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": descriptor("application/vnd.oci.image.config.v1+json", config),
    "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
    "annotations": {
        "module.wasm.image/variant": "compat",
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.version": tag,
    },
})
manifest_desc = descriptor("application/vnd.oci.image.manifest.v1+json", manifest,
                           annotations={"org.opencontainers.image.ref.name": tag})
index = canonical({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [manifest_desc],
})
oci_layout = canonical({"imageLayoutVersion": "1.0.0"})

blobs = {hashlib.sha256(b).hexdigest(): b for b in (layer, config, manifest)}
files = [("oci-layout", oci_layout), ("index.json", index), ("blobs/", None), ("blobs/sha256/", None)]
files += [(f"blobs/sha256/{h}", blobs[h]) for h in sorted(blobs)]

# Write next to the destination, then swap in, so a reader never sees half a layout.
os.makedirs(oci_dir, exist_ok=True)
layout_dir = os.path.join(oci_dir, name)
tmp_dir = layout_dir + ".tmp"
shutil.rmtree(tmp_dir, ignore_errors=True)
os.makedirs(tmp_dir)
for rel, data in files:
    path = os.path.join(tmp_dir, rel)
    if data is None:
        os.makedirs(path, exist_ok=True)
    else:
        with open(path, "wb") as f:
            f.write(data)
shutil.rmtree(layout_dir, ignore_errors=True)
os.rename(tmp_dir, layout_dir)

archive = os.path.join(oci_dir, name + ".tar")
with open(archive + ".tmp", "wb") as f:
    f.write(tar_bytes(files))
os.replace(archive + ".tmp", archive)

digest = manifest_desc["digest"]
print(f"""OCI image (Wasm compat variant, one layer: plugin.wasm, {len(wasm)} bytes)
  layout:   {layout_dir}/
  archive:  {archive}
  tag:      {tag}
  manifest: {digest}

Push it (replace {repo} with your repository; both keep the manifest digest above):
  skopeo copy --preserve-digests oci-archive:{archive} docker://{repo}:{tag}
  # or: oras cp --from-oci-layout {layout_dir}:{tag} {repo}:{tag}

Then in the WasmPlugin (envoy/istio/), pinned to this exact image:
  url: oci://{repo}:{tag}
  sha256: {digest.split(':', 1)[1]}""")
PY
