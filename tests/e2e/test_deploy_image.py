"""Deploying it, the image: scripts/make-image.sh writes an OCI image layout + archive in the
Wasm "compat" variant that Istio's fetcher accepts, byte-exact, deterministic."""
import copy
import glob
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tomllib

import jsonschema
import pytest
import yaml

from harness import ENVOY, ROOT, WASM, Envoy, walk

MAKE_IMAGE = os.path.join(ROOT, "scripts", "make-image.sh")
OCI_DIR = os.path.join(ROOT, "target", "oci")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def workspace_version():
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)["workspace"]["package"]["version"]


@pytest.fixture(scope="module")
def image():
    """Runs scripts/make-image.sh as `make image` does; returns the layout path and the output."""
    p = subprocess.run([MAKE_IMAGE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return os.path.join(OCI_DIR, "dpop-guard"), p.stdout


def read_blob(layout, desc):
    algo, hexd = desc["digest"].split(":")
    assert algo == "sha256"
    with open(os.path.join(layout, "blobs", "sha256", hexd), "rb") as f:
        data = f.read()
    assert sha256(data) == desc["digest"], "blob content does not match its digest"
    assert len(data) == desc["size"], "descriptor size wrong"
    return data


def layout_parts(layout):
    with open(os.path.join(layout, "oci-layout")) as f:
        assert json.load(f) == {"imageLayoutVersion": "1.0.0"}
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    (mdesc,) = index["manifests"]
    assert mdesc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    manifest_bytes = read_blob(layout, mdesc)
    manifest = json.loads(manifest_bytes)
    return index, mdesc, manifest_bytes, manifest


def test_image_layout(image):
    layout, _ = image
    index, mdesc, _, manifest = layout_parts(layout)
    assert mdesc["annotations"]["org.opencontainers.image.ref.name"] == workspace_version()
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    (ldesc,) = manifest["layers"]
    assert ldesc["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"

    config = json.loads(read_blob(layout, manifest["config"]))
    layer = read_blob(layout, ldesc)
    layer_tar = gzip.decompress(layer)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256(layer_tar)]}
    assert config["architecture"] and config["os"]

    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["plugin.wasm"]
        (m,) = members
        assert m.isreg() and m.uid == 0 and m.gid == 0 and m.mode == 0o644
        content = tar.extractfile(m).read()
    with open(WASM, "rb") as f:
        assert content == f.read(), "plugin.wasm differs from the built dpop_guard.wasm"

    # Nothing else in the layout: exactly the three blobs the manifest and index reference.
    blobs = set(os.listdir(os.path.join(layout, "blobs", "sha256")))
    assert blobs == {d["digest"].split(":")[1] for d in (mdesc, manifest["config"], ldesc)}


def test_istio_fetcher_reads_the_image(image):
    """What istio/pkg/wasm/imagefetcher.go does with an OCI-typed image: the last layer must be
    application/vnd.oci.image.layer.v1.tar+gzip; gunzip, untar, take the file whose base name is
    plugin.wasm; it must start with the Wasm magic number. The digest it pins (WasmPlugin
    sha256) is the manifest's."""
    layout, out = image
    _, mdesc, manifest_bytes, manifest = layout_parts(layout)
    last = manifest["layers"][-1]
    assert last["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(read_blob(layout, last)))) as tar:
        wasm = next(tar.extractfile(m).read() for m in tar if os.path.basename(m.name) == "plugin.wasm")
    assert len(wasm) >= 8 and wasm[:4] == b"\0asm"
    assert mdesc["digest"] == sha256(manifest_bytes)
    assert f"sha256: {mdesc['digest'].split(':')[1]}" in out
    assert "skopeo copy --preserve-digests oci-archive:target/oci/dpop-guard.tar docker://" in out


def test_image_archive_matches_layout(image):
    layout, _ = image
    archive = os.path.join(OCI_DIR, "dpop-guard.tar")
    files = {}
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert names[:2] == ["oci-layout", "index.json"]
        for m in tar:
            assert m.uid == 0 and m.gid == 0 and m.mtime == int(os.environ.get("SOURCE_DATE_EPOCH") or 0)
            if m.isreg():
                files[m.name] = tar.extractfile(m).read()
    on_disk = {}
    for dirpath, _, filenames in os.walk(layout):
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            with open(p, "rb") as f:
                on_disk[os.path.relpath(p, layout)] = f.read()
    assert files == on_disk


def test_image_is_deterministic(image, tmp_path):
    layout, _ = image
    env = dict(os.environ, OCI_DIR=str(tmp_path))
    p = subprocess.run([MAKE_IMAGE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    for rel in ("dpop-guard.tar", "dpop-guard/index.json"):
        with open(os.path.join(OCI_DIR, rel), "rb") as a, open(tmp_path / rel, "rb") as b:
            assert a.read() == b.read(), f"{rel} differs between two runs"


def test_make_image_refuses_a_missing_module(tmp_path):
    env = dict(os.environ, WASM=str(tmp_path / "nope.wasm"), OCI_DIR=str(tmp_path / "oci"))
    p = subprocess.run([MAKE_IMAGE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "make wasm" in p.stderr
    assert not os.path.exists(tmp_path / "oci")


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed (optional cross-check)")
def test_skopeo_reads_the_archive(image, tmp_path):
    layout, _ = image
    _, mdesc, manifest_bytes, _ = layout_parts(layout)
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{OCI_DIR}/dpop-guard.tar"],
                         capture_output=True, timeout=60)
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.strip() == manifest_bytes
    dest = tmp_path / "copy"
    cp = subprocess.run(["skopeo", "copy", "--preserve-digests", f"oci-archive:{OCI_DIR}/dpop-guard.tar",
                         f"dir:{dest}"], capture_output=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert sha256((dest / "manifest.json").read_bytes()) == mdesc["digest"]


def test_dockerfiles():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        steps = [l.split(None, 1) for l in f if l.strip() and not l.lstrip().startswith("#")]
    assert steps == [["FROM", "scratch\n"],
                     ["COPY", "target/wasm32-wasip1/release/dpop_guard.wasm ./plugin.wasm\n"]]
    with open(os.path.join(ROOT, "Dockerfile.dpop-replay")) as f:
        text = f.read()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) >= 2, "multi-stage: a builder and a runtime"
    assert froms[0].startswith("rust:")
    final = text[text.rindex("\nFROM "):]
    assert re.search(r"^USER\s+(nonroot|\d+)", final, re.M)
    assert re.search(r'^ENTRYPOINT\s+\["[^"]*dpop-replay"\]', final, re.M)
