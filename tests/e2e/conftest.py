"""Session fixtures for the end-to-end tests: docker and strata, each with the same base image.

Everything here drives real tools (dockerd, the strata CLI, skopeo, podman): these tests run
as root in CI and fail, never skip, when a tool is missing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # e2e_tree, e2e_tools (importlib import mode)

from e2e_tools import BASE_IMAGE, Docker, Strata  # noqa: E402


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    assert os.geteuid() == 0, "e2e tests run as root (RUN steps need namespaces and mounts)"


@pytest.fixture(scope="session")
def docker(docker_daemon: dict[str, str], busybox_rootfs_tar: Path) -> Docker:
    """The private dockerd with the busybox rootfs imported as BASE_IMAGE."""
    client = Docker(docker_daemon)
    client("import", str(busybox_rootfs_tar), BASE_IMAGE)
    return client


@pytest.fixture(scope="session")
def strata(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Strata:
    """A strata store root for the session with the same rootfs imported as BASE_IMAGE."""
    client = Strata(tmp_path_factory.mktemp("strata-root"))
    client("import", str(busybox_rootfs_tar), BASE_IMAGE)
    return client


@pytest.fixture(scope="session")
def strata_native(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Strata:
    """A second store whose builds use the copy-based (native) snapshotter."""
    client = Strata(tmp_path_factory.mktemp("strata-native-root"),
                    build_flags=("--snapshotter", "native"))
    client("import", str(busybox_rootfs_tar), BASE_IMAGE)
    return client
