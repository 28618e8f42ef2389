"""Real clients against a real registry process (CI runs as root with the tools installed).

Session fixtures: the registry process on a free loopback port (started by
tests/transfer_registries.py), a busybox rootfs tarball, OCI image layouts written by hand (one
image, and a two-platform index), and a private containers-storage for podman and buildah.
The private dockerd is the suite's `docker_daemon` (tests/conftest.py).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transfer_registries import RunningRegistry, start_strata_registry

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ls", "cat", "echo", "true", "uname")


def _run(*argv: str, env: dict[str, str] | None = None, timeout: float = 120,
        check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run a client command; on failure the assertion shows its output."""
    proc = subprocess.run(list(argv), capture_output=True, text=input is None, timeout=timeout,
                          env={**os.environ, **(env or {})}, input=input)
    if check:
        assert proc.returncode == 0, f"{argv} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="session")
def run() -> Any:
    """The command runner (`run(*argv, env=..., check=...)`) for tests."""
    return _run


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    reg = start_strata_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


# --------------------------------------------------------------------------- images on disk


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.mtime = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


Members = list[tuple[tarfile.TarInfo, bytes | None]]


def busybox_members(extra: dict[str, bytes] | None = None) -> Members:
    members: Members = []
    for d in ("bin", "tmp", "etc"):
        info = tarfile.TarInfo(d)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        members.append((info, None))
    data = BUSYBOX.read_bytes()
    info = tarfile.TarInfo("bin/busybox")
    info.size, info.mode = len(data), 0o755
    members.append((info, data))
    for applet in APPLETS:
        link = tarfile.TarInfo(f"bin/{applet}")
        link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
        members.append((link, None))
    for name, content in (extra or {}).items():
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(content), 0o644
        members.append((info, content))
    return members


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rootfs tarball: /bin/busybox-static plus a few applet symlinks."""
    path = tmp_path_factory.mktemp("rootfs") / "busybox.tar"
    path.write_bytes(_tar_bytes(busybox_members()))
    return path


class OciLayout:
    """Writes an OCI image layout (oci-layout, index.json, blobs/sha256/...) by hand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.index: list[dict[str, Any]] = []

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        hexd = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / hexd).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{hexd}", "size": len(data)}

    def image(self, arch: str, extra: dict[str, bytes] | None = None,
              labels: dict[str, str] | None = None) -> dict[str, Any]:
        layer_tar = _tar_bytes(busybox_members(extra))
        layer = self.blob(gzip.compress(layer_tar, mtime=0),
                          "application/vnd.oci.image.layer.v1.tar+gzip")
        config = self.blob(json.dumps({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Labels": labels or {}},
            "rootfs": {"type": "layers",
                       "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
        }).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = json.dumps({"schemaVersion": 2,
                               "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": config, "layers": [layer]}).encode()
        desc = self.blob(manifest, "application/vnd.oci.image.manifest.v1+json")
        desc["platform"] = {"architecture": arch, "os": "linux"}
        return desc

    def multi_arch(self, archs: tuple[str, ...] = ("amd64", "arm64")) -> dict[str, Any]:
        children = [self.image(arch, {"etc/arch": arch.encode()}) for arch in archs]
        index = json.dumps({"schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": children}).encode()
        return self.blob(index, "application/vnd.oci.image.index.v1+json")

    def tag(self, desc: dict[str, Any], tag: str) -> None:
        entry = {k: v for k, v in desc.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index.append(entry)
        (self.root / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": self.index}))


@pytest.fixture
def oci_layout(tmp_path: Path) -> OciLayout:
    return OciLayout(tmp_path / "layout")


# --------------------------------------------------------------------------- containers-storage


@pytest.fixture(scope="session")
def containers_storage(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Global flags giving podman and buildah a private vfs store."""
    base = tmp_path_factory.mktemp("cstorage")
    return ["--root", str(base / "root"), "--runroot", str(base / "run"),
            "--storage-driver", "vfs"]
