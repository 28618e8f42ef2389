"""Start a private dockerd: one starter shared by the test suite and the benchmarks.

Importable as `dockerd` (tests/ is on pytest's pythonpath; benchmarks put tests/ on sys.path).
The daemon gets its own data-root, exec-root, pidfile and unix socket under a caller-chosen
directory, no iptables rules and no bridge, so no system daemon is needed or touched.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tooling import DOCKER_CLIENT


class DockerdStartError(RuntimeError):
    """dockerd exited or did not answer `docker version` in time; the message ends with its log."""


def unmount_under(base: Path) -> None:
    """Lazily unmount all mounts below `base` (dockerd's netns, overlay layers), deepest first."""
    prefix = str(base) + "/"
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@contextmanager
def private_dockerd(base: Path, timeout: float = 60.0,
                    extra_args: Sequence[str] = ()) -> Iterator[dict[str, str]]:
    """Run dockerd with all its state under the existing directory `base` (and `extra_args`,
    e.g. `--registry-mirror URL`).

    Yields a copy of os.environ with DOCKER_HOST pointing at the daemon's socket; run
    /usr/bin/docker with it. Raises DockerdStartError if the daemon is not up within `timeout`
    seconds. On exit the daemon is stopped (SIGTERM, SIGKILL after 30 s) and whatever it left
    mounted below `base` is unmounted; removing `base` is left to the caller.
    """
    sock = base / "docker.sock"
    log_path = base / "dockerd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
             "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
             "--pidfile", str(base / "docker.pid"), "--host", f"unix://{sock}",
             "--storage-driver", "overlay2", *extra_args],
            stdout=log, stderr=subprocess.STDOUT,
        )
        env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
        try:
            deadline = time.monotonic() + timeout
            while subprocess.run([DOCKER_CLIENT, "version"], env=env,
                                 capture_output=True).returncode != 0:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise DockerdStartError(
                        f"dockerd did not start:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.3)
            yield env
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            unmount_under(base)
