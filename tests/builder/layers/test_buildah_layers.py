"""Layers written by buildah (containers/storage overlay driver, as podman uses) apply to the
tree buildah itself shows, including its opaque-directory and file whiteouts."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from layer_treeutil import build_sample_tree, describe
from test_changes import overlay

from builder.layers import apply_layer


class Buildah:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.argv = ["buildah", "--root", str(base / "root"), "--runroot", str(base / "run"),
                     "--storage-driver", "overlay"]

    def __call__(self, *args: str | Path) -> str:
        proc = subprocess.run([*self.argv, *map(str, args)], capture_output=True, text=True)
        assert proc.returncode == 0, f"buildah {args[0]} failed: {proc.stderr}"
        return proc.stdout.strip()

    def close(self) -> None:
        subprocess.run([*self.argv, "rm", "--all"], capture_output=True)
        subprocess.run([*self.argv, "rmi", "--all", "--force"], capture_output=True)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.base))]
        for mnt in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mnt], capture_output=True)


@pytest.fixture()
def buildah(tmp_path: Path) -> Iterator[Buildah]:
    b = Buildah(tmp_path / "buildah")
    try:
        yield b
    finally:
        b.close()


def _layers(layout: Path, tag: str) -> list[Path]:
    index = json.loads((layout / "index.json").read_text())
    desc = next(m for m in index["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
    manifest = json.loads((layout / "blobs" / desc["digest"].replace(":", "/")).read_text())
    return [layout / "blobs" / layer["digest"].replace(":", "/") for layer in manifest["layers"]]


def test_buildah_layers_with_opaque_dirs_apply_to_buildahs_tree(
    buildah: Buildah, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    build_sample_tree(src)
    (src / "old").mkdir()
    (src / "old" / "a").write_text("a")
    layout = tmp_path / "layout"
    ctr = buildah("from", "scratch")
    mnt = Path(buildah("mount", ctr))
    subprocess.run(["cp", "-a", f"{src}/.", str(mnt)], check=True)
    buildah("umount", ctr)
    buildah("commit", "-q", ctr, f"oci:{layout}:v1")
    ctr2 = buildah("from", f"oci:{layout}:v1")
    mnt = Path(buildah("mount", ctr2))
    shutil.rmtree(mnt / "old")
    (mnt / "old").mkdir()
    (mnt / "old" / "new").write_text("new")
    (mnt / "etc" / "hostname").unlink()
    (mnt / "bin" / "ping").write_bytes(b"changed ping")
    expected = tmp_path / "expected"
    subprocess.run(["cp", "-a", f"{mnt}/.", str(expected)], check=True)
    buildah("umount", ctr2)
    buildah("commit", "-q", ctr2, f"oci:{layout}:v2")

    layers = _layers(layout, "v2")
    assert len(layers) == 2
    names = subprocess.run(["tar", "-tf", str(layers[1])], capture_output=True, text=True,
                           check=True).stdout.split()
    assert "old/.wh..wh..opq" in names and "etc/.wh.hostname" in names

    flat = tmp_path / "flat"
    flat.mkdir()
    for blob in layers:
        with open(blob, "rb") as f:
            apply_layer(f, flat, whiteouts="merge")
    assert describe(flat, mtimes=False) == describe(expected, mtimes=False)

    lowers: list[Path] = []
    for i, blob in enumerate(layers):
        d = tmp_path / f"lower{i}"
        d.mkdir()
        with open(blob, "rb") as f:
            apply_layer(f, d, whiteouts="overlay", parents=lowers)
        lowers.insert(0, d)
    with overlay(lowers, None, None, tmp_path / "view") as view:
        assert describe(view, mtimes=False) == describe(expected, mtimes=False)
