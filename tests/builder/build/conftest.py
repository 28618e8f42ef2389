"""Fixtures for real builds: a store holding busybox:latest (imported with `strata import` from
the shared busybox rootfs tar) and a `build` helper that drives the CLI in-process with the
snapshotter under test (every test using it runs with overlay AND native)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # build_util (importlib mode)
from build_util import Strata  # noqa: E402


@pytest.fixture(params=["overlay", "native"])
def snapshotter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def strata(tmp_path: Path, snapshotter: str, busybox_rootfs_tar: Path,
           capsys: pytest.CaptureFixture[str]) -> Strata:
    s = Strata(tmp_path / "root", snapshotter, capsys)
    res = s("import", str(busybox_rootfs_tar), "busybox:latest")
    assert res.rc == 0, res.err
    return s


@pytest.fixture
def context(tmp_path: Path) -> Callable[..., Path]:
    """context(Dockerfile text, **files) -> a fresh context directory."""
    counter = iter(range(1000))

    def make(dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
        ctx = tmp_path / f"ctx{next(counter)}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(dockerfile)
        for name, data in (files or {}).items():
            path = ctx / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data)
        return ctx

    return make


