"""Fixtures shared by the whole suite: real tools on loopback, started once per session.

- `docker_daemon`: a private dockerd (own data-root, exec-root and unix socket) driven through
  /usr/bin/docker (docker.io); yields the environment to run the client with (DOCKER_HOST).
- `busybox_rootfs_tar`: a deterministic rootfs tarball of Debian's static busybox with one
  symlink per applet, /tmp, /etc/passwd and /etc/group.
Helpers (free_port, write_busybox_rootfs) live in tests/tooling.py, importable as `tooling`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tooling import DOCKER_CLIENT, write_busybox_rootfs


def _unmount_under(base: Path) -> None:
    """Lazily unmount everything dockerd left mounted below `base` (netns, overlay layers)."""
    prefix = str(base) + "/"
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@pytest.fixture(scope="session")
def busybox_rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs.tar")


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[dict[str, str]]:
    """A private dockerd for the session; yields an env with DOCKER_HOST set.

    Its directories (data-root, exec-root, socket, client config) live outside pytest's tmp
    tree, so nothing dockerd leaves mounted there can break pytest's cleanup of old runs; they
    are unmounted and removed at teardown. DOCKER_CONFIG points at a private client config so
    `docker login` never touches ~/.docker.
    """
    base = Path(tempfile.mkdtemp(prefix="strata-dockerd-"))
    sock = base / "docker.sock"
    log_path = base / "dockerd.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
         "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "docker.pid"), "--host", f"unix://{sock}",
         "--storage-driver", "overlay2"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_BUILDKIT": "1",
           "DOCKER_CONFIG": str(base / "client")}
    try:
        deadline = time.monotonic() + 60
        while True:
            ok = subprocess.run([DOCKER_CLIENT, "version"], env=env, capture_output=True)
            if ok.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.3)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
