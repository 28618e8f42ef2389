"""Fixtures shared by the whole suite: real tools on loopback, started once per session.

- `docker_daemon`: a private dockerd (own data-root, exec-root and unix socket) driven through
  /usr/bin/docker (docker.io); yields the environment to run the client with (DOCKER_HOST).
- `busybox_rootfs_tar`: a deterministic rootfs tarball of Debian's static busybox with one
  symlink per applet, /tmp, /etc/passwd and /etc/group.
- `pki`: a throwaway CA with a server certificate for 127.0.0.1 and a client certificate.
Helpers (free_port, write_busybox_rootfs) live in tests/tooling.py, importable as `tooling`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dockerd import private_dockerd
from tooling import LoopbackPki, write_busybox_rootfs, write_test_pki


@pytest.fixture(scope="session")
def busybox_rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs.tar")


@pytest.fixture
def pki(tmp_path: Path) -> LoopbackPki:
    base = tmp_path / "pki"
    base.mkdir()
    return write_test_pki(base)


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[dict[str, str]]:
    """A private dockerd for the session; yields an env with DOCKER_HOST set.

    Its directories (data-root, exec-root, socket, client config) live outside pytest's tmp
    tree, so nothing dockerd leaves mounted there can break pytest's cleanup of old runs; they
    are unmounted and removed at teardown. DOCKER_CONFIG points at a private client config so
    `docker login` never touches ~/.docker.
    """
    base = Path(tempfile.mkdtemp(prefix="strata-dockerd-"))
    try:
        with private_dockerd(base) as env:
            yield {**env, "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": str(base / "client")}
    finally:
        shutil.rmtree(base, ignore_errors=True)
