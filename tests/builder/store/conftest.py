"""Fixtures for store tests: a fresh store root, the strata CLI as a real process, sample tars."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # store_util (importlib import mode)

from tooling import REPO  # noqa: E402

from builder.images import ImageStore  # noqa: E402


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> Iterator[ImageStore]:
    s = ImageStore(root)
    yield s
    s.close()


StrataRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def strata(root: Path) -> StrataRun:
    """Run `strata --root <root> ARGS...` as a real process; check=True by default."""

    def run(*args: str, check: bool = True, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "builder.cli", "--root", str(root), *args],
                              capture_output=True, text=True, cwd=REPO, timeout=600,
                              env={**os.environ, **(env or {})}, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"strata {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    return run
