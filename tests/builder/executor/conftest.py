"""Fixtures for executor tests: a busybox snapshot on overlay and native, both executors."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from builder.executor import Executor, ExitStatus, ProcessSpec, open_executor
from builder.mounts import temp_mount
from builder.snapshots import Snapshotter
from builder.snapshots.copy import CopySnapshotter
from builder.snapshots.overlay import OverlaySnapshotter


@pytest.fixture(params=["overlay", "native"])
def snapshotter(request: pytest.FixtureRequest, tmp_path: Path) -> Snapshotter:
    if request.param == "overlay":
        return OverlaySnapshotter(tmp_path / "overlay")
    return CopySnapshotter(tmp_path / "native")


@pytest.fixture(params=["runtime", "chroot"])
def executor(request: pytest.FixtureRequest) -> Executor:
    return open_executor(request.param)


def _unpack(sn: Snapshotter, tar: Path, name: str, *, drop: tuple[str, ...] = ()) -> str:
    """Extract a rootfs tar into a new committed snapshot `name` (minus `drop` paths)."""
    with temp_mount(sn.prepare(f"{name}-unpack")) as root:
        subprocess.run(["tar", "-xpf", str(tar), "-C", str(root)], check=True)
        for d in drop:
            subprocess.run(["rm", "-rf", str(root / d)], check=True)
    sn.commit(name, f"{name}-unpack")
    return name


@pytest.fixture
def busybox(snapshotter: Snapshotter, busybox_rootfs_tar: Path) -> str:
    return _unpack(snapshotter, busybox_rootfs_tar, "busybox")


@pytest.fixture
def unpack() -> Callable[..., str]:
    return _unpack


@dataclass
class Result:
    status: ExitStatus
    out: str
    err: str


Runner = Callable[..., Result]


@pytest.fixture
def run(snapshotter: Snapshotter, executor: Executor, busybox: str) -> Runner:
    """run("sh script", key=..., parent=..., **ProcessSpec fields) in an ACTIVE snapshot."""
    counter = iter(range(1000))

    def _run(script: str | tuple[str, ...], *, key: str | None = None,
             parent: str = busybox, **fields: Any) -> Result:
        key = key or f"step{next(counter)}"
        try:
            mounts = snapshotter.mounts(key)
        except Exception:
            mounts = snapshotter.prepare(key, parent)
        argv = ("/bin/sh", "-c", script) if isinstance(script, str) else script
        fields.setdefault("env", ("PATH=/usr/sbin:/usr/bin:/sbin:/bin",))
        out, err = io.BytesIO(), io.BytesIO()
        status = executor.run(mounts, ProcessSpec(argv=argv, **fields), stdout=out, stderr=err)
        return Result(status, out.getvalue().decode(), err.getvalue().decode())

    return _run
