"""The shared tool fixtures work: a private dockerd runs a container from the busybox rootfs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tooling import DOCKER_CLIENT


def test_private_dockerd_runs_busybox_rootfs(docker_daemon: dict[str, str],
                                             busybox_rootfs_tar: Path) -> None:
    def docker(*args: str) -> str:
        proc = subprocess.run([DOCKER_CLIENT, *args], env=docker_daemon, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    docker("import", str(busybox_rootfs_tar), "fixture-busybox:test")
    out = docker("run", "--rm", "--network=host", "fixture-busybox:test", "sh", "-c",
                 "echo hello from $(id -u)")
    assert out.strip() == "hello from 0"
