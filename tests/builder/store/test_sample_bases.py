"""sample_images/busybox/make-base.sh: offline, deterministic, and the image runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tooling import DOCKER_CLIENT, REPO

SCRIPT = REPO / "sample_images" / "busybox" / "make-base.sh"


def _make_base(root: Path, cache: Path) -> str:
    strata = f"{sys.executable} -m builder.cli"
    proc = subprocess.run([str(SCRIPT)], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "STRATA": strata, "STRATA_ARGS": f"--root {root}",
                               "CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr
    return subprocess.run([*strata.split(), "--root", str(root), "inspect", "-f",
                           "{{.Descriptor.digest}}", "busybox:latest"], capture_output=True,
                          text=True, check=True, cwd=REPO).stdout.strip()


def test_busybox_base_is_reproducible_and_runs_in_docker(
        tmp_path: Path, docker_daemon: dict[str, str]) -> None:
    first = _make_base(tmp_path / "s1", tmp_path / "c1")
    assert first == _make_base(tmp_path / "s2", tmp_path / "c2")
    archive = tmp_path / "bb.tar"
    cli = [sys.executable, "-m", "builder.cli", "--root", str(tmp_path / "s1")]
    subprocess.run([*cli, "tag", "busybox:latest", "e1-sample-busybox:1"], check=True, cwd=REPO)
    subprocess.run([*cli, "save", "-o", str(archive), "e1-sample-busybox:1"], check=True,
                   cwd=REPO)
    load = subprocess.run([DOCKER_CLIENT, "load", "-i", str(archive)], env=docker_daemon,
                          capture_output=True, text=True, check=True)
    assert "e1-sample-busybox:1" in load.stdout
    run = subprocess.run([DOCKER_CLIENT, "run", "--rm", "--network=host", "e1-sample-busybox:1",
                          "sh", "-c", "ls -l /bin/ls | grep -q busybox && id -un"],
                         env=docker_daemon, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "root"
