"""Real clients against a real registry process (CI runs as root with the tools installed).

Fixtures: the registry process on a free loopback port (started by tests/transfer_registries.py),
a busybox rootfs tarball, OCI image layouts written by hand (tests/oci_layouts.py; one image,
and a two-platform index) and a private containers-storage for podman and buildah. The private
dockerd is the suite's `docker_daemon` (tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oci_layouts import OciLayout, busybox_members, tar_bytes
from transfer_registries import RunningRegistry, start_strata_registry


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


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rootfs tarball: /bin/busybox-static plus a few applet symlinks."""
    path = tmp_path_factory.mktemp("rootfs") / "busybox.tar"
    path.write_bytes(tar_bytes(busybox_members()))
    return path


@pytest.fixture
def oci_layout(tmp_path: Path) -> OciLayout:
    """A layout whose images are busybox plus the files given to `image`."""
    return OciLayout(tmp_path / "layout", base=busybox_members())


# --------------------------------------------------------------------------- containers-storage


@pytest.fixture(scope="session")
def containers_storage(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Global flags giving podman and buildah a private vfs store."""
    base = tmp_path_factory.mktemp("cstorage")
    return ["--root", str(base / "root"), "--runroot", str(base / "run"),
            "--storage-driver", "vfs"]
