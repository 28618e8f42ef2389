"""Layers written by real tools apply to the tool's own tree, and tools read our layers.

GNU tar (`--xattrs --format=pax`) and umoci (OCI image layers with whiteouts) both ways.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

from layer_treeutil import build_sample_tree, describe
from test_changes import overlay

from builder.layers import apply_layer, tree_changes, write_layer, write_tree_layer
from registry.oci import mediatypes

GNU_TAR_XATTRS = ["--xattrs", "--xattrs-include=*"]


def _run(*argv: str | Path) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    assert proc.returncode == 0, f"{argv[0]} failed: {proc.stderr}"
    return proc.stdout


def test_gnu_tar_layer_applies_to_the_same_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_sample_tree(src)
    layer = tmp_path / "layer.tar.gz"
    _run("tar", "--format=pax", *GNU_TAR_XATTRS, "-czf", layer, "-C", src, ".")
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(layer, "rb") as f:
        apply_layer(f, dest)
    assert describe(dest) == describe(src)


def test_gnu_tar_extracts_our_layer_to_the_same_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_sample_tree(src)
    layer = tmp_path / "layer.tar.gz"
    with open(layer, "wb") as f:
        write_tree_layer(src, f)
    dest = tmp_path / "dest"
    dest.mkdir()
    _run("tar", *GNU_TAR_XATTRS, "--same-owner", "-p", "-xzf", layer, "-C", dest)
    assert describe(dest) == describe(src)


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / digest.replace(":", "/")


def _umoci_layers(layout: Path, tag: str) -> list[Path]:
    index = json.loads((layout / "index.json").read_text())
    desc = next(m for m in index["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
    manifest = json.loads(_blob(layout, desc["digest"]).read_text())
    return [_blob(layout, layer["digest"]) for layer in manifest["layers"]]


def test_umoci_layers_with_whiteouts_apply_to_umoci_tree(tmp_path: Path) -> None:
    layout, bundle = tmp_path / "layout", tmp_path / "bundle"
    _run("umoci", "init", "--layout", layout)
    _run("umoci", "new", "--image", f"{layout}:v1")
    _run("umoci", "unpack", "--image", f"{layout}:v1", bundle)
    rootfs = bundle / "rootfs"
    build_sample_tree(rootfs)
    (rootfs / "old").mkdir()
    (rootfs / "old" / "a").write_text("a")
    (rootfs / "old" / "b").write_text("b")
    _run("umoci", "repack", "--image", f"{layout}:v1", bundle)
    shutil.rmtree(bundle)
    _run("umoci", "unpack", "--image", f"{layout}:v1", bundle)
    (rootfs / "etc" / "hostname").unlink()
    shutil.rmtree(rootfs / "old")
    (rootfs / "old").mkdir()
    (rootfs / "old" / "c").write_text("c")
    (rootfs / "bin" / "ping").write_bytes(b"new ping")
    _run("umoci", "repack", "--image", f"{layout}:v2", bundle)
    layers = _umoci_layers(layout, "v2")
    assert len(layers) == 2
    flat = tmp_path / "flat"
    flat.mkdir()
    for blob in layers:
        with open(blob, "rb") as f:
            apply_layer(f, flat, whiteouts="merge")
    assert describe(flat, mtimes=False) == describe(rootfs, mtimes=False)
    # the same layers as overlay lower directories
    lowers = []
    for i, blob in enumerate(layers):
        d = tmp_path / f"lower{i}"
        d.mkdir()
        with open(blob, "rb") as f:
            apply_layer(f, d, whiteouts="overlay", parents=lowers)
        lowers.insert(0, d)
    with overlay(lowers, None, None, tmp_path / "view") as view:
        assert describe(view, mtimes=False) == describe(rootfs, mtimes=False)


def _write_blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = _blob(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest, len(data)


def test_umoci_unpacks_our_layers_including_whiteouts(tmp_path: Path) -> None:
    base, changed = tmp_path / "base", tmp_path / "changed"
    build_sample_tree(base)
    subprocess.run(["cp", "-a", f"{base}/.", str(changed)], check=True)
    (changed / "etc" / "hostname").unlink()
    shutil.rmtree(changed / "empty-dir")
    (changed / "new-file").write_text("added\n")
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    layer_descs, diff_ids = [], []
    # umoci 0.4 reads gzip and plain layers (no zstd)
    steps = ((tree_changes(None, base), "gzip"), (tree_changes(base, changed), "none"))
    for changes, comp in steps:
        blob = io.BytesIO()
        info = write_layer(changes, blob, compression=comp)
        digest, size = _write_blob(layout, blob.getvalue())
        assert digest == str(info.digest) and size == info.size
        layer_descs.append({"mediaType": info.media_type, "digest": digest, "size": size})
        diff_ids.append(str(info.diff_id))
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()
    cdigest, csize = _write_blob(layout, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": cdigest, "size": csize},
        "layers": layer_descs,
    }).encode()
    mdigest, msize = _write_blob(layout, manifest)
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": mediatypes.OCI_MANIFEST, "digest": mdigest, "size": msize,
                       "annotations": {"org.opencontainers.image.ref.name": "t"}}],
    }))
    bundle = tmp_path / "bundle"
    _run("umoci", "unpack", "--image", f"{layout}:t", bundle)
    assert describe(bundle / "rootfs", mtimes=False) == describe(changed, mtimes=False)
    assert os.getxattr(bundle / "rootfs" / "bin" / "ping", "security.capability")
