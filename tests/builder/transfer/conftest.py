"""Fixtures: real registries on loopback (see tests/transfer_registries.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from transfer_registries import RunningRegistry, start_docker_registry, start_strata_registry


def _sub(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    return path


@pytest.fixture
def strata_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    reg = start_strata_registry(_sub(tmp_path, "strata-registry"))
    yield reg
    reg.stop()


@pytest.fixture
def docker_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    reg = start_docker_registry(_sub(tmp_path, "distribution"))
    yield reg
    reg.stop()


@pytest.fixture
def basic_auth_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    reg = start_docker_registry(_sub(tmp_path, "distribution-auth"), ("alice", "s3cret"))
    yield reg
    reg.stop()
