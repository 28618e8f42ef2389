"""Helpers for build tests (imported by conftest and tests: importlib import mode)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from builder.cli import main


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class Strata:
    root: Path
    snapshotter: str
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> Result:
        self.capsys.readouterr()
        rc = main(["--root", str(self.root), *args])
        cap = self.capsys.readouterr()
        return Result(rc, cap.out, cap.err)

    def build(self, context: Path, *args: str, progress: str = "plain") -> Result:
        return self("build", "--progress", progress, "--snapshotter", self.snapshotter,
                    *args, str(context))

    def inspect(self, ref: str) -> dict[str, Any]:
        res = self("inspect", ref)
        assert res.rc == 0, res.err
        data = json.loads(res.out)
        return data[0] if isinstance(data, list) else data

    def config(self, ref: str) -> dict[str, Any]:
        return dict(self.inspect(ref)["Config"])

    def files(self, ref: str, dest: Path) -> Path:
        """The image's flattened filesystem, via `strata save` + umoci-free manual apply."""
        from builder.images import ImageStore
        from builder.layers.applier import apply_layer

        dest.mkdir(parents=True, exist_ok=True)
        with ImageStore(self.root) as store:
            image = store.resolve(ref)
            for layer in store.layers(image):
                from registry.oci import Digest

                with store.content.open(Digest.parse(layer.blob_digest)) as f:
                    apply_layer(f, dest, whiteouts="merge")
        return dest

    def run(self, ref: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "strata"), "--root", str(self.root), "run",
             "--snapshotter", self.snapshotter, ref, *cmd],
            capture_output=True, text=True, timeout=120)


def blob_texts(root: Path) -> list[bytes]:
    """Every blob's uncompressed bytes (layers decompressed, tars read member by member)."""
    import gzip

    out: list[bytes] = []
    for blob in (root / "oci" / "blobs" / "sha256").iterdir():
        data = blob.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        out.append(data)
        if len(data) > 512 and data[257:262] == b"ustar":
            import io

            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                for m in tf.getmembers():
                    f = tf.extractfile(m)
                    if f is not None:
                        out.append(f.read())
    return out
